"""`robot-rl demo --quick` runs every stage as real processes and leaves a complete run folder;
a rerun resumes (skips finished stages) instead of starting over."""
import json
import os
import re
import subprocess
import sys


def test_quick_demo_runs_every_stage_and_resumes(tmp_path):
    run_dir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "robot_rl.cli", "demo", "--quick", "--run-dir", str(run_dir)]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert set(state["done"]) == {"demos", "train", "export", "deploy", "report"}
    numbers = state["numbers"]
    assert numbers["demonstrations"] == 3
    assert numbers["demonstration_mean_steps"] == round(numbers["demonstration_transitions"] / 3, 2)
    if numbers["deployed_success_rate"] > 0:  # then the report compares its speed with the demos'
        assert numbers["deployed_mean_steps_to_success"] >= 1 and "deployed_speedup_vs_demos" in numbers
    assert numbers["train_env_steps"] >= 200
    assert numbers["onnx_parity_max_abs_diff"] <= 1e-5
    assert 0.0 <= numbers["deployed_success_rate"] <= 1.0 and numbers["eval_episodes"] == 3
    # The deployed figure carries the load it was measured under and the controller's timing.
    assert numbers["deploy_load_average"] >= 0.0
    assert "latency p50" in numbers["deploy_controller_figures"]
    for name in ("policy.onnx", "policy.json", "report.md", "episodes.csv",
                 "training_vs_steps.png", "training_vs_time.png", "train/checkpoint",
                 "deployed_front.gif", numbers["deploy_recording"]):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "train" / "tb").glob("events.out.tfevents.*"))
    # The simulated human intervened, and its corrections were recorded as such.
    rows = (run_dir / "episodes.csv").read_text().splitlines()[1:]
    assert rows and any(float(r.split(",")[-1]) > 0 for r in rows)
    steps = [int(r.split(",")[2]) for r in rows]
    assert steps == sorted(steps) and steps[-1] > 0  # the plots' x axis: cumulative env steps

    # The actor acted on the learner's weights (every message accepted), not its initial ones.
    actor_log = (run_dir / "logs" / "train" / "actor_0.log").read_text()
    assert "rejected actor weights" not in actor_log, actor_log[-2000:]
    assert max(int(v) for v in re.findall(r"weights v(\d+)", actor_log)) > 0, actor_log[-2000:]
    # ...and on the simulated human's answer to the current observation, not the previous one.
    on_time, late = map(int, re.findall(r"simulated human answers on time (\d+), late (\d+)",
                                        actor_log)[-1])
    logged_steps = sum(int(v) for v in re.findall(r"length (\d+), interventions", actor_log))
    assert on_time >= 0.9 * logged_steps and late <= 0.02 * on_time, (on_time, late, logged_steps)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0
    assert again.stdout.count("done earlier") == 5
