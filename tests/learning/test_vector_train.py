"""Training from N environments stepping in parallel (robot_rl.learning.vector_train).

The stored data is read back from the run's persisted replay (replay_dir), so what is checked is
what the learner trains from: within a sub-env, each transition's next_obs is the next one's obs
except where the episode ended, the final observation is never the reset one, and terminated /
truncated are the env's own.
"""
import functools
import json
import logging
import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.envs.pick_cube import PickCubeEnv
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.learning.rlpd import RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, main, train
from robot_rl.schema import ConfigError

SMALL = dict(num_critics=2, critic_subset=2, utd_ratio=1, hidden_dims=(32, 32), batch_size=32, seed=0)


def stored(replay_dir):
    """All persisted transitions as numpy, oldest first, observations flattened."""
    buf = ReplayBuffer.load(replay_dir, resume=False, verbose=False)
    t = buf.get(np.arange(len(buf)))
    flat = lambda o: np.concatenate([o[k].numpy().reshape(len(buf), -1) for k in sorted(o)], axis=1)
    return {"obs": flat(t["obs"]), "next_obs": flat(t["next_obs"]), "actor": t["actor_id"].numpy(),
            "terminated": t["terminated"].numpy() > 0, "truncated": t["truncated"].numpy() > 0}


def per_sub_env(data, i):
    sel = data["actor"] == i
    return {k: v[sel] for k, v in data.items()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def pick_cfg():
    return load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                              "task.max_episode_steps": 25})


def test_two_mujoco_envs_in_subprocesses_store_consistent_episodes(pick_cfg, tmp_path):
    workers = set()

    def note_workers(progress):
        workers.update(p.pid for p in multiprocessing.active_children())

    steps, starts, horizon = 300, 50, 25
    cfg = TrainGymConfig(agent=RLPDConfig(**SMALL), num_envs=2, learning_starts=starts, verbose=False,
                         replay_dir=str(tmp_path / "replay"), flush_every=64)
    res = train(functools.partial(PickCubeEnv, pick_cfg), cfg, steps, callback=note_workers)

    assert res["steps"] == steps and res["num_envs"] == 2
    # One update (utd_ratio critic minibatches + one actor step) per env step from learning_starts.
    assert res["agent"].num_actor_updates == steps - starts + 1
    data = stored(str(tmp_path / "replay"))
    assert len(data["obs"]) == steps
    assert sorted(set(data["actor"].tolist())) == [0, 1]
    finished = 0
    for i in (0, 1):
        sub = per_sub_env(data, i)
        assert len(sub["obs"]) == steps // 2  # the sub-envs step in lockstep
        done = sub["terminated"] | sub["truncated"]
        assert not (sub["terminated"] & sub["truncated"]).any()
        cont = ~done[:-1]
        np.testing.assert_array_equal(sub["next_obs"][:-1][cont], sub["obs"][1:][cont])
        # At an episode end the stored next_obs is the final observation, not the reset one.
        assert (np.abs(sub["next_obs"][:-1][~cont] - sub["obs"][1:][~cont]).max(axis=1) > 1e-6).all()
        ends = np.flatnonzero(done)
        lengths = np.diff(np.concatenate([[-1], ends]))
        assert (lengths <= horizon).all()
        assert (lengths[sub["truncated"][ends]] == horizon).all()  # the time limit, and only it, truncates
        finished += len(ends)
    assert finished == res["episodes"] >= 2 * (steps // 2 // horizon)
    assert all(1 <= n <= horizon for n in res["episode_lengths"])
    assert len(workers) == 2, workers  # the sub-envs ran in two subprocesses ...
    assert not any(alive(p) for p in workers)  # ... that are gone once train returns
    assert multiprocessing.active_children() == []


def test_subprocesses_end_when_training_fails(pick_cfg):
    workers = set()

    def fail_at_first_episode(progress):
        workers.update(p.pid for p in multiprocessing.active_children())
        raise RuntimeError("callback failed")

    small = load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                               "task.max_episode_steps": 3})
    cfg = TrainGymConfig(agent=RLPDConfig(**SMALL), num_envs=2, learning_starts=2, verbose=False)
    with pytest.raises(RuntimeError, match="callback failed"):
        train(functools.partial(PickCubeEnv, small), cfg, 100, callback=fail_at_first_episode)
    assert len(workers) == 2
    assert not any(alive(p) for p in workers)
    assert multiprocessing.active_children() == []


class Counter(gym.Env):
    """obs = (sub-env id, step in episode, episode index); sub-env ``k`` truncates after
    ``4 + k`` steps; every third episode terminates (success) after 2 steps instead."""

    observation_space = spaces.Box(-1e6, 1e6, (3,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, k: int):
        self.k, self.episode, self.t = k, -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {"is_success": False}

    def _obs(self):
        return np.array([self.k, self.t, self.episode], np.float32)

    def step(self, action):
        self.t += 1
        terminated = self.episode % 3 == 2 and self.t == 2
        truncated = not terminated and self.t >= 4 + self.k
        return self._obs(), float(self.t), terminated, truncated, {"is_success": terminated}


@pytest.mark.parametrize("mode", ["SameStep", "NextStep", "Disabled"])
def test_every_autoreset_mode_stores_final_observations_and_bootstrap_flags(mode, tmp_path):
    # copy=False: the env reuses its output arrays, as a GPU-batched env does with its buffers.
    envs = gym.vector.SyncVectorEnv([functools.partial(Counter, k) for k in range(3)], autoreset_mode=mode,
                                    copy=False)
    steps = 90
    cfg = TrainGymConfig(agent=RLPDConfig(**SMALL), learning_starts=10, verbose=False,
                         replay_dir=str(tmp_path / "replay"), flush_every=16)
    res = train(envs, cfg, steps)
    envs.close()
    data = stored(str(tmp_path / "replay"))
    assert len(data["obs"]) == steps == res["steps"]  # NEXT_STEP's reset-only steps are not stored
    assert res["agent"].num_actor_updates == steps - 10 + 1
    for k in range(3):
        sub = per_sub_env(data, k)
        assert (sub["obs"][:, 0] == k).all() and (sub["next_obs"][:, 0] == k).all()
        np.testing.assert_array_equal(sub["next_obs"][:, 1], sub["obs"][:, 1] + 1)  # final obs, never a reset one
        np.testing.assert_array_equal(sub["next_obs"][:, 2], sub["obs"][:, 2])  # within one episode
        episode, t = sub["obs"][:, 2], sub["next_obs"][:, 1]
        np.testing.assert_array_equal(sub["terminated"], (episode % 3 == 2) & (t == 2))
        np.testing.assert_array_equal(sub["truncated"], ~sub["terminated"] & (t >= 4 + k))
        done = sub["terminated"] | sub["truncated"]
        assert (sub["obs"][1:, 1][done[:-1]] == 0).all()  # the next episode starts from its reset
        assert (np.diff(episode) == done[:-1]).all()  # no episode skipped or repeated
    ends = data["terminated"] | data["truncated"]
    assert res["episodes"] == int(ends.sum())
    assert sum(res["episode_successes"]) == int(data["terminated"].sum()) > 0  # success read from final infos


def test_sync_vector_env_of_one_matches_the_single_env_loop_update_count():
    one = train(Counter(0), TrainGymConfig(agent=RLPDConfig(**SMALL), learning_starts=5, verbose=False), 40)
    vec = train(lambda: Counter(0), TrainGymConfig(agent=RLPDConfig(**SMALL), learning_starts=5, verbose=False,
                                                   vector_env="sync"), 40)
    assert vec["num_envs"] == one["num_envs"] == 1
    assert vec["agent"].num_actor_updates == one["agent"].num_actor_updates == 36
    assert vec["episode_lengths"] == one["episode_lengths"]
    assert vec["episode_successes"] == one["episode_successes"]


def test_bad_parallel_settings_are_refused_by_name():
    with pytest.raises(ConfigError, match="num_envs: must be >= 1, got 0"):
        TrainGymConfig.from_dict({"num_envs": 0})
    with pytest.raises(ConfigError, match="num_envs: must be >= 1, got -2"):
        train(Counter(0), TrainGymConfig(num_envs=-2, verbose=False), 10)
    with pytest.raises(ConfigError, match="num_envs: must be >= 1"):
        main(["Pendulum-v1", "--steps", "5", "--num-envs", "0"])
    with pytest.raises(ConfigError, match="vector_env: must be one of"):
        TrainGymConfig.from_dict({"vector_env": "threads"})
    with pytest.raises(ConfigError, match="num_envs.*cannot be copied into subprocesses"):
        train(Counter(0), TrainGymConfig(num_envs=2, verbose=False), 10)
    envs = gym.vector.SyncVectorEnv([functools.partial(Counter, k) for k in range(2)])
    try:
        with pytest.raises(ConfigError, match="num_envs.*is 3 but the given vector env has 2"):
            train(envs, TrainGymConfig(num_envs=3, verbose=False), 10)
        with pytest.raises(ValueError, match="needs eval_env="):
            train(envs, TrainGymConfig(eval_episodes=1, verbose=False), 10)
    finally:
        envs.close()
    assert multiprocessing.active_children() == []


class NeverRaised(Exception):
    """The in-process MuJoCo env has no stream to time out and no clock to jump back."""


def test_ros_learner_core_takes_interleaved_steps_of_two_actors(tmp_path):
    """The ROS path's N: actor processes with distinct actor ids, one learner. Each received
    env step buys one update, whichever actor sent it, and each actor's episodes stay whole."""
    from robot_rl.learning.actor_core import ActorCore
    from robot_rl.learning.learner_core import LearnerCore

    small = {"task.observations": ["state", "object"], "cameras": [], "tactile": [], "task.max_episode_steps": 8,
             "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8, "agent.utd_ratio": 2,
             "learner.tensorboard": False, "learner.min_online": 4, "learner.run_dir": str(tmp_path / "run")}
    messages = {0: [], 1: []}
    actors = {}
    learner = LearnerCore(load_config(None, small))
    try:
        for i in (0, 1):
            actors[i] = ActorCore(load_config(None, {**small, "actor.actor_id": i}), messages[i].append,
                                  lambda text: None)
            episode_ends = []

            def on_event(text, actor=actors[i], ends=episode_ends):
                if json.loads(text)["event"] in ("success", "failure", "timeout"):
                    ends.append(1)
                    if len(ends) == 2:
                        actor.stop.set()

            actors[i]._send_event = on_event
            env = PickCubeEnv(actors[i].cfg)
            try:
                actors[i].run(env, NeverRaised, NeverRaised, logging.getLogger("actor"))
            finally:
                env.close()
        assert len(messages[0]) == len(messages[1]) == 16
        for m0, m1 in zip(messages[0], messages[1]):  # as two actors' messages arrive
            assert learner.receive(m0) is None and learner.receive(m1) is None
            learner.step(wait=0.0)
        while learner.step(wait=0.0).updated:
            pass
        assert learner.env_steps == 32 and len(learner.online) == 32
        assert learner.updates == 32 - 4 + 1  # from min_online on, one update per env step of either actor
        t = learner.online.get(np.arange(32))
        actor = t["actor_id"].numpy()
        for i in (0, 1):
            sel = actor == i
            obs, nxt = t["obs"]["state"].numpy()[sel], t["next_obs"]["state"].numpy()[sel]
            done = (t["terminated"].numpy() + t["truncated"].numpy())[sel] > 0
            assert sel.sum() == 16 and done.sum() == 2
            np.testing.assert_array_equal(nxt[:-1][~done[:-1]], obs[1:][~done[:-1]])
    finally:
        for a in actors.values():
            a.close()
        learner.close()


def test_demonstrations_evaluations_and_checkpoints_work_from_a_vector_env(tmp_path):
    from robot_rl.learning.checkpoint import load_agent, save_agent
    from robot_rl.learning.demos import record_episodes
    from robot_rl.learning.rlpd import RLPDAgent

    demos = record_episodes(Counter(0), lambda obs: np.zeros(1, np.float32), episodes=2)  # the 3rd, 6th: successes
    assert len(demos.buffer) == 4
    envs = gym.vector.SyncVectorEnv([functools.partial(Counter, k) for k in range(2)], autoreset_mode="SameStep")
    seen = []
    cfg = TrainGymConfig(agent=RLPDConfig(**SMALL), verbose=False, eval_every=20, eval_episodes=2)
    res = train(envs, cfg, 60, demos=demos, eval_env=Counter(0), callback=lambda p: seen.append(p["event"]) and None)
    envs.close()
    assert res["agent"].num_actor_updates == 60  # with demonstrations: no warm-up
    assert [e["step"] for e in res["evaluations"]] == [20, 40, 60] and seen.count("eval") == 3
    assert res["best"] is not None and "actor_state" in res["best"]
    save_agent(str(tmp_path / "ckpt"), res["agent"])
    again = RLPDAgent(envs.single_observation_space, envs.single_action_space, cfg.agent)
    load_agent(str(tmp_path / "ckpt"), again)
    obs = np.array([0, 1, 0], np.float32)
    np.testing.assert_allclose(again.act(obs, deterministic=True), res["agent"].act(obs, deterministic=True))
