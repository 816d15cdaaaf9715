"""`robot-rl demo --rehearsal --quick`: the hardware dress rehearsal runs every stage as real
processes on the stand-in in its rehearsal mode, and its report carries the issue's figures,
with no node of the training graph linked to a simulator-only name (audited on the live graph)."""
import json
import os
import subprocess
import sys

import yaml

FIGURES = ("rehearsal_deployed_success_rate", "rehearsal_wall_clock_min",
           "classifier_false_positive_rate", "privileged_subscriptions")


def test_quick_rehearsal_runs_every_stage_without_simulator_links(tmp_path):
    run_dir = tmp_path / "rehearsal"
    cmd = [sys.executable, "-m", "robot_rl.cli", "demo", "--rehearsal", "--quick",
           "--run-dir", str(run_dir)]
    env = {**os.environ, "MUJOCO_GL": "egl"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert set(state["done"]) == {"demos", "classifier", "train", "export", "deploy", "report"}

    # What the training graph ran with: the stand-in as hardware, nothing privileged observed.
    train_cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert train_cfg["sim"]["rehearsal"] is True and train_cfg["sim"]["operator"] == "correct"
    assert train_cfg["hil"]["reward"]["source"] == "classifier"
    assert "object" not in train_cfg["task"]["observations"]
    assert "images" in train_cfg["task"]["observations"]
    demos_cfg = yaml.safe_load((run_dir / "config_demos.yaml").read_text())
    assert demos_cfg["sim"]["operator"] == "demonstrate" and demos_cfg["sim"]["rehearsal"] is True

    numbers = state["numbers"]
    assert numbers["demonstrations"] == 3
    assert numbers["classifier_positive_frames"] > 0
    assert numbers["train_env_steps"] >= 200
    assert numbers["graph_audits"] >= 2
    # evaluation rounds during training (1 episode each in --quick), the last one after the
    # training steps; the export deployed the best round's weights
    rounds = [json.loads(line) for folder in (run_dir / "train" / "actors").glob("*/best_policy")
              for line in (folder / "rounds.jsonl").read_text().splitlines()]
    assert len(rounds) >= 2 and max(r["started_at_step"] for r in rounds) >= 200
    assert all(r["episodes"] == 1 for r in rounds)
    kept = numbers["exported_evaluation_round"]
    assert kept["success_rate"] == max(r["success_rate"] for r in rounds)
    assert numbers["privileged_subscriptions"] == 0, numbers["privileged_links"]
    # the frozen image trunk was fitted to the demonstrations before RL
    assert "image trunk fitted to the demos by BC: 50 steps" in (
        run_dir / "logs" / "train" / "learner.log").read_text()

    report = json.loads((run_dir / "report.json").read_text())
    assert all(key in report for key in FIGURES), sorted(report)
    assert report["privileged_subscriptions"] == 0
    assert 0.0 <= report["rehearsal_deployed_success_rate"] <= 1.0
    assert numbers["eval_episodes"] == 3
    assert 0.0 <= report["classifier_false_positive_rate"] <= 1.0
    assert 0 < report["rehearsal_wall_clock_min"] < 15
    for name in ("policy.onnx", "report.md", "classifier/model.json", "train/checkpoint",
                 "classifier_confusion.png"):
        assert (run_dir / name).exists(), name
