import glob
import json
import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.learning.replay import ReplayBuffer
from robot_rl.learning.rlpd import RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, evaluate, main, train


class PointReach(gym.Env):
    """2-D point mass must reach a random goal; 25-step time limit (truncation only).

    Small enough to learn in seconds on one CPU core, hard enough that a
    broken critic/actor/temperature does not reach the threshold.
    """

    def __init__(self, horizon: int = 25):
        self.observation_space = spaces.Box(-1, 1, (4,), np.float32)
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.horizon = horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2)
        self.goal = self.np_random.uniform(-1, 1, 2)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def step(self, a):
        self.pos = np.clip(self.pos + 0.15 * np.clip(a, -1, 1), -1, 1)
        self.t += 1
        return self._obs(), -float(np.linalg.norm(self.pos - self.goal)), False, self.t >= self.horizon, {}


ENV_ID = "RobotRLTest/PointReach-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointReach)


class _Random:
    def __init__(self, space):
        self.space = space
        self.space.seed(0)

    def act(self, obs, deterministic=True):
        return self.space.sample()


def test_learns_point_reach(precision):
    cfg = TrainGymConfig(
        agent=RLPDConfig(num_critics=2, critic_subset=2, utd_ratio=1, hidden_dims=(64, 64), batch_size=64, seed=0,
                         precision=precision),
        learning_starts=250, buffer_capacity=10_000, eval_episodes=10, verbose=False, seed=0,
    )
    res = train(PointReach(), cfg, 3000)
    random_ret = float(np.mean(evaluate(_Random(PointReach().action_space), PointReach(), 10)))
    # Random ~ -18; a learned policy reaches the goal in a few steps (~ -5).
    assert random_ret < -12
    assert res["eval_return_mean"] > 0.5 * random_ret, (res["eval_return_mean"], random_ret)
    assert res["episodes"] == 3000 // 25


@pytest.mark.slow  # ~30 s: run with `pytest -m slow`; the fast point-reach test covers learning in CI
def test_learns_pendulum():
    cfg = TrainGymConfig(agent=RLPDConfig(num_critics=2, critic_subset=2, utd_ratio=1, seed=0),
                         learning_starts=500, buffer_capacity=20_000, eval_episodes=3, verbose=False)
    res = train("Pendulum-v1", cfg, 3000)
    assert res["eval_return_mean"] > -400  # random policy: about -1200


def point_reach_demos(path, transitions: int = 100) -> str:
    """A replay directory of ``transitions`` steps of a scripted expert on PointReach."""
    env = PointReach()
    buf = ReplayBuffer(env.observation_space, 2, 1000, persist_dir=str(path), flush_every=40,
                       verbose=False)
    obs, _ = env.reset(seed=0)
    for _ in range(transitions):  # straight to the goal
        a = np.clip((obs[2:] - obs[:2]) / 0.15, -1, 1).astype(np.float32)
        nobs, r, term, trunc, _ = env.step(a)
        buf.add(obs, a, r, nobs, term, trunc, intervened=True)
        obs = env.reset()[0] if (term or trunc) else nobs
    buf.close()
    return str(path)


def test_cli_with_demos_tensorboard_and_checkpoint(tmp_path, capsys):
    demo_dir = point_reach_demos(tmp_path / "demos")
    log_dir = str(tmp_path / "tb")
    ckpt = str(tmp_path / "agent.pt")
    rc = main([ENV_ID, "--steps", "150", "--demos", demo_dir, "--log-dir", log_dir, "--checkpoint", ckpt, "--seed", "3",
               "--set", "learning_starts=100", "--set", "log_every=50", "--set", "verbose=false",
               "--set", "agent.batch_size=32", "--set", "agent.num_critics=3", "--set", "agent.utd_ratio=2",
               "--set", "agent.hidden_dims=[32,32]"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 150 and out["episodes"] == 6
    assert glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    from robot_rl.learning.checkpoint import load_checkpoint
    sd = load_checkpoint(ckpt)["agent"]
    assert sd["num_critic_updates"] == 2 * 51 and sd["num_actor_updates"] == 51
    with pytest.raises(ValueError, match="unknown keys"):
        main([ENV_ID, "--steps", "10", "--set", "agent.not_a_field=1"])


def test_train_rejects_mismatched_demos(tmp_path):
    d = str(tmp_path / "d")
    ReplayBuffer(spaces.Box(-1, 1, (3,), np.float32), 2, 10, persist_dir=d, verbose=False).close()
    with pytest.raises(ValueError, match="demos"):
        train(PointReach(), TrainGymConfig(verbose=False), 10, demos_path=d)


def test_train_gym_settings_come_through_the_schema_loader(tmp_path):
    from robot_rl.learning.train_gym import load_train_config
    from robot_rl.schema import ConfigError

    path = tmp_path / "train.yaml"
    path.write_text("eval_every: 500\neval_episodes: 3\nagent:\n  num_critics: 4\n  hidden_dims: [16, 16]\n")
    cfg = load_train_config(str(path), ["agent.num_critics=2", "learning_starts=7", "verbose=false"])
    assert (cfg.eval_every, cfg.eval_episodes, cfg.learning_starts, cfg.verbose) == (500, 3, 7, False)
    assert cfg.agent.num_critics == 2 and cfg.agent.hidden_dims == (16, 16)
    json_path = tmp_path / "train.json"  # the older JSON files still load (JSON is YAML)
    json_path.write_text(json.dumps({"buffer_capacity": 1234, "agent": {"utd_ratio": 3}}))
    cfg = load_train_config(str(json_path))
    assert cfg.buffer_capacity == 1234 and cfg.agent.utd_ratio == 3
    with pytest.raises(ConfigError, match=r"agent\.batch_size.*int"):
        load_train_config(None, ["agent.batch_size=many"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_train_config(None, ["learning_starts"])
    with pytest.raises(ConfigError, match="eval_every needs eval_episodes"):
        load_train_config(None, ["eval_every=10"])
