"""A stock Gymnasium-Robotics task (FetchPickAndPlace-v4) as a robot_rl task: the wrapper, the
scripted demonstrator that reads only the observation, and ``train_gym.train`` on it (issue 25,
"a user with their own env"). Real MuJoCo through gymnasium-robotics, no fakes."""
import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="the 'test' extra installs gymnasium-robotics")

from robot_rl.envs.fetch import (FETCH_OBS_DIM, OBJECT_POS, FetchPickPlaceExpert,  # noqa: E402
                                 SuccessTask, make_fetch_env)
from robot_rl.learning.demos import record_episodes  # noqa: E402
from robot_rl.learning.rlpd import RLPDConfig  # noqa: E402
from robot_rl.learning.train_gym import TrainGymConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = make_fetch_env("FetchPickAndPlace-v4")
    yield e
    e.close()


def test_flat_observation_is_observation_then_goal(env):
    obs, _ = env.reset(seed=3)
    raw = env.unwrapped._get_obs()
    assert env.observation_space.shape == (FETCH_OBS_DIM + 3,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:FETCH_OBS_DIM], raw["observation"], atol=1e-6)
    np.testing.assert_allclose(obs[FETCH_OBS_DIM:], raw["desired_goal"], atol=1e-6)


def test_joint_accessors_work_on_this_mujoco(env):
    """gymnasium-robotics' own accessors fail on MuJoCo 4's enums; the block's free joint is 7 wide."""
    from gymnasium_robotics.utils import mujoco_utils

    obs, _ = env.reset(seed=4)
    u = env.unwrapped
    qpos = mujoco_utils.get_joint_qpos(u.model, u.data, "object0:joint")
    assert qpos.shape == (7,) and mujoco_utils.get_joint_qvel(u.model, u.data, "object0:joint").shape == (6,)
    np.testing.assert_allclose(qpos[:3], obs[OBJECT_POS], atol=1e-6)
    with pytest.raises(KeyError, match="no_such_joint"):
        mujoco_utils.get_joint_qpos(u.model, u.data, "no_such_joint")


def test_expert_succeeds_and_success_ends_the_episode_with_reward_one(env):
    expert = FetchPickPlaceExpert()
    successes = 0
    for seed in range(4):
        obs, _ = env.reset(seed=100 + seed)
        expert.reset()
        rewards, done = [], False
        while not done:
            obs, r, term, trunc, info = env.step(expert(obs))
            rewards.append(r)
            done = term or trunc
        assert term == bool(info["is_success"]) and not (term and trunc)
        assert rewards[:-1] == [0.0] * (len(rewards) - 1)  # sparse: 1 only on the success step
        successes += int(term)
        assert rewards[-1] == float(term)
    assert successes >= 3


def test_an_env_without_goal_conditioned_observations_is_refused():
    with pytest.raises(ValueError, match="desired_goal"):
        SuccessTask(gym.make("Pendulum-v1"))


def test_train_gym_runs_on_the_fetch_task_with_demonstrations():
    rec = record_episodes(make_fetch_env(), FetchPickPlaceExpert(0.1, np.random.default_rng(0)), 2, seed=7)
    assert len(rec.buffer) == sum(rec.episode_lengths) and len(rec.episode_lengths) == 2
    cfg = TrainGymConfig(agent=RLPDConfig(num_critics=2, utd_ratio=1, batch_size=32, hidden_dims=(32, 32),
                                          bc_weight=2.0, bc_q_filter=True, seed=0),
                         eval_every=40, eval_episodes=1, verbose=False, buffer_capacity=200)
    eval_env = make_fetch_env()
    res = train(make_fetch_env, cfg, 80, demos=rec, eval_env=eval_env)
    assert [e["step"] for e in res["evaluations"]] == [40, 80]
    assert res["steps"] == 80 and res["episodes"] >= 1
    action = res["agent"].act(eval_env.reset(seed=0)[0], deterministic=True)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)
