"""The Gymnasium training API as a user with their own env meets it: demonstrations from any
env and policy (no robot dependencies), in memory or on disk, periodic evaluation with a
success rate, callbacks with the live agent, the best policy kept, valid JSON."""
import json
import os
import runpy
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.learning.demos import episode_success, record_episodes
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.learning.rlpd import RLPDConfig
from robot_rl.learning.train_gym import TrainGymConfig, main, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LineReach(gym.Env):
    """1-D point: reach x >= 0.9 from a random start within 20 steps (success in info)."""

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 0)), 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.t / 20], np.float32)

    def step(self, a):
        self.x = float(np.clip(self.x + 0.2 * float(np.clip(a[0], -1, 1)), -1, 1))
        self.t += 1
        success = self.x >= 0.9
        return self._obs(), float(success), success, self.t >= 20, {"is_success": success}


def right(obs):
    return np.array([1.0], np.float32)


def dawdle(obs):  # never reaches the goal in time
    return np.array([0.01], np.float32)


SMALL = dict(num_critics=2, utd_ratio=1, batch_size=32, hidden_dims=(32, 32), seed=0)


def test_episode_success_reads_the_standard_keys():
    assert episode_success({"is_success": np.array(True)}, False, True)
    assert not episode_success({"success": False}, True, False)
    assert episode_success({}, True, False) and not episode_success({}, False, True)


def test_record_in_memory_and_on_disk_are_the_same(tmp_path):
    rec = record_episodes(LineReach(), right, 3, out=str(tmp_path / "demos"), seed=5)
    assert len(rec.episode_lengths) == 3 and rec.attempts == 3
    assert len(rec.buffer) == rec.transitions == sum(rec.episode_lengths)
    loaded = ReplayBuffer.load(str(tmp_path / "demos"), resume=False, verbose=False)
    n = len(loaded)
    assert n == rec.transitions
    a, b = rec.buffer.get(np.arange(n)), loaded.get(np.arange(n))
    for key in ("action", "reward", "terminated", "truncated"):
        assert np.array_equal(a[key].numpy(), b[key].numpy())
    assert np.array_equal(a["obs"]["state"].numpy(), b["obs"]["state"].numpy())
    assert a["reward"].numpy().sum() == 3  # one success per kept episode


def test_failed_episodes_are_dropped_and_kept_ones_survive_an_error(tmp_path):
    class FirstEpisodeOnly:  # a stateful policy: reset() is called before every episode
        episodes, steps = 0, []

        def reset(self):
            self.episodes += 1
            self.steps.append(0)

        def __call__(self, obs):
            self.steps[-1] += 1
            return right(obs) if self.episodes == 1 else dawdle(obs)

    policy = FirstEpisodeOnly()
    out = str(tmp_path / "demos")
    with pytest.raises(RuntimeError, match="only 1/3 successful episodes"):
        record_episodes(LineReach(), policy, 3, out=out, max_attempts=4)
    assert policy.episodes == 4 and policy.steps[1:] == [20, 20, 20]  # three timed out
    assert len(ReplayBuffer.load(out, resume=False, verbose=False)) == policy.steps[0]  # the kept one
    with pytest.raises(FileExistsError):
        record_episodes(LineReach(), right, 1, out=out)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        record_episodes(LineReach(), right, 0)


def test_train_with_in_memory_demos_evaluates_calls_back_and_keeps_the_best():
    demos = record_episodes(LineReach(), right, 5)
    seen = []

    def callback(progress):
        seen.append((progress["event"], progress["step"]))
        assert progress["agent"] is not None
        if progress["event"] == "eval" and progress["step"] >= 200:
            return False  # the user stops training early

    cfg = TrainGymConfig(agent=RLPDConfig(bc_weight=2.0, **SMALL), eval_every=100, eval_episodes=3,
                         verbose=False)
    res = train(LineReach(), cfg, 1000, demos=demos, callback=callback)
    assert res["steps"] == 200  # stopped by the callback at the second evaluation
    assert [e["step"] for e in res["evaluations"]] == [100, 200]
    assert ("eval", 100) in seen and any(event == "episode" for event, _ in seen)
    assert len(res["episode_successes"]) == res["episodes"]
    best = res["best"]
    assert best["success_rate"] == max(e["success_rate"] for e in res["evaluations"])
    assert set(best["actor_state"]) == set(res["agent"].actor_state_dict())
    # with demonstrations there is no random warm-up: the agent updated from the first step
    assert res["agent"].num_actor_updates == 200


def test_without_demos_the_default_warm_up_is_random():
    res = train(LineReach(), TrainGymConfig(agent=RLPDConfig(**SMALL), verbose=False), 50)
    assert res["agent"].num_actor_updates == 0  # RANDOM_WARMUP_STEPS = 1000 > 50


def test_bad_loop_settings_are_refused():
    with pytest.raises(ValueError, match="eval_every needs eval_episodes"):
        train(LineReach(), TrainGymConfig(eval_every=10, verbose=False), 10)
    with pytest.raises(ValueError, match="log_every must be > 0"):
        train(LineReach(), TrainGymConfig(log_every=0, verbose=False), 10)
    with pytest.raises(ValueError, match="not both"):
        train(LineReach(), None, 10, demos_path="x", demos="y")


def test_cli_summary_is_valid_json_when_no_episode_ended(capsys):
    rc = main(["MountainCarContinuous-v0", "--steps", "20", "--set", "verbose=false",
               "--set", "agent.hidden_dims=[16,16]", "--set", "agent.num_critics=2"])
    assert rc == 0
    text = capsys.readouterr().out
    summary = json.loads(text)  # strict JSON: NaN would not parse in other languages' readers
    assert "NaN" not in text and summary["final_return_mean"] is None and summary["episodes"] == 0


def test_learning_api_imports_without_robot_dependencies():
    code = ("import sys\n"
            "for name in ('cv2', 'pinocchio', 'mujoco', 'rclpy'): sys.modules[name] = None\n"
            "import robot_rl.learning.demos, robot_rl.learning.train_gym\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_docs_example_learns_mountain_car_from_demonstrations():
    example = runpy.run_path(os.path.join(ROOT, "docs", "examples", "gym_with_demos.py"))
    result = example["main"](["--steps", "500"])
    assert result["best"]["success_rate"] >= 0.8
