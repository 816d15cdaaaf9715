"""The in-process Gymnasium PickCubeEnv: API conformance, observations, expert, limits."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_rl.envs.expert import PickExpert
from robot_rl.envs.pick_cube import PickCubeEnv
from robot_rl.config import load_config
from robot_rl.envs.task import CUBE_HALF

SMALL_CAMERAS = [{"name": "front", "width": 64, "height": 64},
                 {"name": "wrist", "width": 64, "height": 64}]
IMAGES = {"task.observations": ["state", "images"], "cameras": SMALL_CAMERAS}


# Advice, not an API violation: unbounded state vectors are deliberate.
ALLOWED_WARNINGS = ("infinity",)


def _check(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")     # gymnasium reports most problems as warnings
        check_env(env, skip_render_check=True)
    problems = [str(w.message) for w in caught
                if not any(text in str(w.message) for text in ALLOWED_WARNINGS)]
    assert not problems, problems


def test_check_env_state_tactile(env_factory):
    env = env_factory()
    assert set(env.observation_space.spaces) == {"state", "tactile_left", "tactile_right"}
    _check(env)


def test_check_env_images(env_factory):
    env = env_factory(IMAGES)
    assert set(env.observation_space.spaces) == {"state", "image_front", "image_wrist"}
    _check(env)


def test_check_env_all_groups_yaw_actions(env_factory):
    env = env_factory({"task.observations": ["state", "object", "tactile"],
                       "task.action_space": "xyz_yaw_gripper"})
    assert env.action_space.shape == (5,)
    _check(env)


def test_images_follow_camera_resize(env_factory):
    cameras = [{"name": "front", "width": 64, "height": 64, "resize": [32, 24]},
               {"name": "wrist", "width": 64, "height": 64}]
    env = env_factory({"task.observations": ["state", "images"], "cameras": cameras})
    obs, _ = env.reset(seed=0)
    assert env.observation_space["image_front"].shape == (24, 32, 3)
    assert obs["image_front"].shape == (24, 32, 3)


def test_observations_in_space_and_images(env_factory):
    env = env_factory(IMAGES)
    obs, info = env.reset(seed=3)
    assert info == {"success": False}
    assert env.observation_space.contains(obs)
    for name in ("front", "wrist"):
        image = obs[f"image_{name}"]
        assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert np.mean(np.abs(obs["image_front"].astype(int) - obs["image_wrist"].astype(int))) > 10
    state = obs["state"]
    np.testing.assert_allclose(state[:3], env.world.ee_pose()[0], atol=1e-6)
    assert state[6] == pytest.approx(env.cfg.robot.gripper_max_width, abs=1e-3)
    assert state[7] == 0.0
    obs2, *_ = env.step(np.array([1.0, 0.0, 0.0, 1.0], np.float32))
    assert env.observation_space.contains(obs2)
    assert obs2["state"][7] == 1.0                         # gripper-closed flag latched
    assert obs2["state"][0] > state[0] + 0.005             # moved along +x
    assert not np.array_equal(obs2["image_wrist"], obs["image_wrist"])


def test_reset_reproducible_by_seed(env_factory):
    env = env_factory()
    obs_a, _ = env.reset(seed=11)
    cube_a = env.world.object_pose()[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(np.float32)
    traj_a = [env.step(a)[0]["state"] for a in actions]
    env.reset(seed=12)
    assert not np.allclose(env.world.object_pose()[0], cube_a)
    obs_b, _ = env.reset(seed=11)
    np.testing.assert_array_equal(env.world.object_pose()[0], cube_a)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    traj_b = [env.step(a)[0]["state"] for a in actions]
    np.testing.assert_array_equal(np.array(traj_a), np.array(traj_b))


def _run_expert(env, seed):
    obs, info = env.reset(seed=seed)
    expert = PickExpert(env.cfg.task.max_step_pos, env.cfg.task.lift_height)
    max_tactile = {"left": 0.0, "right": 0.0}
    for step in range(env.cfg.task.max_episode_steps):
        action = expert.act(env._snap, env.action_space.shape[0])
        assert env.action_space.contains(action)
        obs, reward, terminated, truncated, info = env.step(action)
        if expert.phase == "lift":
            for side in max_tactile:
                max_tactile[side] = max(max_tactile[side], float(obs[f"tactile_{side}"].sum()))
        if terminated or truncated:
            return terminated, reward, info, max_tactile, obs
    raise AssertionError("episode neither terminated nor truncated at max_episode_steps")


def test_expert_succeeds(env_factory):
    env = env_factory()
    results = [_run_expert(env, seed) for seed in range(10)]
    successes = [terminated for terminated, *_ in results]
    assert all(successes), successes  # both fingers driven through one tendon: no lost grasps
    for terminated, reward, info, tactile, obs in results:
        assert info["success"] == terminated
        assert reward == float(terminated)
        if terminated:
            # Success means lifted and held: the cube is up, and both pads feel it.
            assert env.world is not None
            assert tactile["left"] > 1.0 and tactile["right"] > 1.0, tactile


def test_tactile_zero_at_reset(env_factory):
    env = env_factory()
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(np.zeros(4, np.float32))
    for side in ("left", "right"):
        assert obs[f"tactile_{side}"].shape == (4, 4)
        assert obs[f"tactile_{side}"].sum() < 1e-3


def test_success_state_after_lift(env_factory):
    env = env_factory()
    terminated, reward, info, tactile, obs = _run_expert(env, 0)
    assert terminated and reward == 1.0
    cube = env.world.object_pose()[0]
    assert cube[2] - CUBE_HALF >= env.cfg.task.lift_height
    assert obs["tactile_left"].sum() > 1.0 and obs["tactile_right"].sum() > 1.0


def test_time_limit_truncates(env_factory):
    env = env_factory({"task.max_episode_steps": 5})
    env.reset(seed=0)
    for i in range(5):
        obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert not terminated and reward == 0.0
        assert truncated == (i == 4)
    assert info == {"success": False}
    env.reset(seed=0)                                # the counter restarts with the episode
    assert env.step(np.zeros(4, np.float32))[3] is False


@pytest.mark.parametrize("action", [
    [np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, 0], [0, 0, 0, 0, 0],
])
def test_bad_actions_raise(env_factory, action):
    env = env_factory()
    env.reset(seed=0)
    before = env.world.time
    with pytest.raises(ValueError):
        env.step(np.array(action, np.float32))
    assert env.world.time == before                  # nothing was stepped


def test_out_of_range_action_is_clipped(env_factory):
    env = env_factory()
    env.reset(seed=0)
    start = env.world.ee_pose()[0]
    env.step(np.array([0, 0, 10.0, -1], np.float32))
    # At most max_step_pos of target motion per step.
    target = env.world.controller.target_pos
    assert target[2] - start[2] == pytest.approx(env.cfg.task.max_step_pos, abs=1e-6)


def test_step_before_reset_raises():
    env = PickCubeEnv(load_config(None, {"task.observations": ["state"]}))
    try:
        with pytest.raises(RuntimeError):
            env.step(np.zeros(4, np.float32))
    finally:
        env.close()
