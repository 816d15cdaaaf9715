"""bench/past_demos.py's demonstrator and bound (issue 25): the slowed scripted expert moves the
arm slower but grips the same, and the fastest script is faster than the demonstrations, which
is what makes the 'faster than the demonstrations' figures mean something."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.envs.pick_cube import PickCubeEnv

BENCH = Path(__file__).resolve().parents[2] / "bench" / "past_demos.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("past_demos_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                              "task.max_episode_steps": 50})


def test_slowed_expert_scales_the_arm_not_the_gripper(bench, cfg):
    env = PickCubeEnv(cfg)
    try:
        obs, _ = env.reset(seed=3)
        full = bench.ExpertPolicy(env.task.expert(), env)
        slow = bench.SlowedExpert(env.task.expert(), env, 0.5)
        a_full, a_slow = full(obs), slow(obs)
        np.testing.assert_allclose(a_slow[:3], 0.5 * a_full[:3], atol=1e-6)
        assert a_slow[-1] == a_full[-1]
        with pytest.raises(ValueError, match="demo speed"):
            bench.SlowedExpert(env.task.expert(), env, 0.0)
    finally:
        env.close()


def test_fastest_script_beats_the_scripted_demonstrations(bench, cfg, tmp_path):
    fastest = bench.fastest_scripted_steps(cfg, 3)
    rec = bench.record_demos(cfg, str(tmp_path / "demos"), 3, seed=0, speed=1.0)
    assert fastest["success_rate"] == 1.0
    assert fastest["mean_steps_to_success"] < rec["transitions"] / rec["episodes"]
