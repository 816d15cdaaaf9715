"""`robot-rl demo --task peg_insert --graph --quick`: the insertion through the pick demo's node
graph (separate processes over DDS): demos over the robot contract, HIL training with the
simulated human, export, deployment through the controller node, report; the graph carried
the hole's pose (/sim/fixtures/hole) to the processes that read it."""
import json
import os
import re
import subprocess
import sys


def test_quick_peg_graph_demo_runs_every_stage(tmp_path):
    run_dir = tmp_path / "peg"
    cmd = [sys.executable, "-m", "robot_rl.cli", "demo", "--task", "peg_insert", "--graph",
           "--quick", "--run-dir", str(run_dir),
           # config/peg_insert.yaml watches 3 episodes in 10; the quick run has ~4 episodes
           "--set", "hil.sim_human.prob=1.0"]
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert set(state["done"]) == {"demos", "train", "export", "deploy", "report"}
    numbers = state["numbers"]
    assert numbers["task"] == "peg_insert" and numbers["graph_fixtures"] == ["hole"]
    assert numbers["demonstrations"] == 3 and numbers["train_env_steps"] >= 200
    assert numbers["onnx_parity_max_abs_diff"] <= 1e-5
    assert 0.0 <= numbers["deployed_success_rate"] <= 1.0 and numbers["eval_episodes"] == 3
    for name in ("policy.onnx", "report.md", "episodes.csv", "train/checkpoint"):
        assert (run_dir / name).exists(), name
    # The simulated human watched the peg (through the hole's pose) and corrected it.
    assert numbers["train_takeovers"] >= 1
    log = (run_dir / "logs" / "train" / "intervention.log").read_text()
    assert re.search(r"sim human takes over: (no progress toward the goal|left the region)", log)
    rows = (run_dir / "episodes.csv").read_text().splitlines()[1:]
    assert rows and any(float(r.split(",")[-1]) > 0 for r in rows)
    # The deployed controller read the hole too: its episodes ran (a missing input fails them).
    assert "evaluation episode 3/3" in proc.stdout + proc.stderr
