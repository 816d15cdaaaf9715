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


def test_checkpointed_run_resumes_where_it_stopped(bench, tmp_path):
    """A run stopped after its last evaluation continues from that step with its online replay
    and curve (a 50,000-step run outlives a session), rather than starting over."""
    ck, first, second = tmp_path / "ck", tmp_path / "a.json", tmp_path / "b.json"
    small = ["--steps", "20", "--eval-every", "10", "--eval-episodes", "1", "--final-episodes", "1",
             "--no-bc-baseline", "--demos", "1", "--batch", "32", "--checkpoint", str(ck)]
    assert bench.main(small + ["--json-out", str(first)]) == 0
    small[1] = "30"
    assert bench.main(small + ["--json-out", str(second)]) == 0
    import json
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert [r["env_steps"] for r in a["rl_curve"]] == [10, 20]
    assert [r["env_steps"] for r in b["rl_curve"]] == [10, 20, 30]
    assert b["rl_curve"][:2] == a["rl_curve"]
    assert b["rl_curve"][-1]["online_transitions"] == 30


def test_checkpoint_without_agent_state_is_refused(bench, tmp_path):
    (tmp_path / "ck" / "online").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no agent state"):
        bench.main(["--steps", "10", "--eval-every", "10", "--no-bc-baseline", "--demos", "1",
                    "--batch", "32", "--checkpoint", str(tmp_path / "ck")])
