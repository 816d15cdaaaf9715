"""SIGINT and SIGTERM, to the main process alone and to its process group, stop `robot-rl up`,
`robot-rl demo` and every node cleanly (exit code, no traceback), leaving no process behind
(issue 19, item 4). Processes are real; readiness is waited on through their logs, never a
fixed sleep. The bound here only catches a hang (the issue saw SIGTERM ignored for over 30 s):
how long a stop takes against the 5 s target depends on the load and is measured by
bench/stop_time.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_rl.launcher import alive, descendants

STOP_WITHIN_S = 25.0  # a hang guard that holds on a loaded 2-core CI; 5 s: bench/stop_time.py
LIGHT = ["--set", "cameras=[]", "--set", "task.observations=[state,object,tactile]",
         "--set", "agent.num_critics=2", "--set", "agent.utd_ratio=2"]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} while waiting for {what}:\n"
                        f"{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def text_of(*paths: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "main.log"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", *args], cwd=tmp_path,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group, like a shell job
    return proc, log


def stop_and_check(proc: subprocess.Popen, sig: int, to_group: bool, log: Path,
                   node_logs: list[Path], expected_codes: tuple[int, ...]) -> float:
    family = descendants(proc.pid)
    assert family, "no child processes were started"
    t0 = time.monotonic()
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    while any(alive(p) for p in family) and time.monotonic() - t0 < 30:
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    left = [p for p in family if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    output = text_of(log, *node_logs)
    assert not left, f"processes left behind: {left}"
    assert "Traceback" not in output, output[-4000:]
    assert code in expected_codes, f"exit code {code}:\n{output[-3000:]}"
    assert elapsed < STOP_WITHIN_S, f"took {elapsed:.1f} s to stop everything"
    return elapsed


@pytest.mark.parametrize("sig, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-main", "SIGINT-to-group"])
def test_up_train_graph_stops_cleanly(tmp_path, sig, to_group):
    run = tmp_path / "run"
    proc, log = start(["up", "--profile", "train", "--run-dir", str(run), *LIGHT,
                       "--set", f"learner.run_dir={run / 'train'}"], tmp_path)
    wait_for(lambda: "acting" in log.read_text() and "learner up" in log.read_text(), 120,
             "the learner and the actor", proc, log)
    assert (run / "keys" / "keyring.json").exists()  # security.auto: the run is signed
    stop_and_check(proc, sig, to_group, log, [], (0,))  # `up` nodes print to its output
    assert "[learner] saved" in log.read_text()  # the learner saved on the way out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_each_node_stops_cleanly_on_a_group_signal(tmp_path, sig):
    """A node graph in one process group (as `ros2 launch` or a container runs it): the signal
    reaches every node at once."""
    from robot_rl.config import load_config, save_config
    cfg = load_config(None, {"cameras": [], "task.observations": ["state", "object", "tactile"]})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    log = tmp_path / "nodes.log"
    out = open(log, "wb")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "robot_rl.ros.sim_node", "--ros-args", "-p",
             f"config_file:={path}"], stdout=out, stderr=subprocess.STDOUT,
            process_group=0))  # a new group in this session, led by this node
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "robot_rl.ros.intervention_node", "--ros-args", "-p",
             f"config_file:={path}"], stdout=out, stderr=subprocess.STDOUT,
            process_group=procs[0].pid))
        wait_for(lambda: "intervention device sim_human" in log.read_text()
                 and "mujoco" in log.read_text().lower(), 90, "both nodes", procs[0], log)
        time.sleep(0.5)  # let both reach their spin loops (a signal during import is also fine)
        t0 = time.monotonic()
        os.killpg(procs[0].pid, sig)
        codes = [p.wait(timeout=30) for p in procs]
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = log.read_text()
    assert codes == [0, 0], text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert elapsed < STOP_WITHIN_S


@pytest.mark.parametrize("sig, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-main", "SIGINT-to-group"])
def test_demo_stops_cleanly_during_training(tmp_path, sig, to_group):
    run = tmp_path / "demo"
    run.mkdir()
    # Skip the demonstrations stage (recorded elsewhere in the suite): training starts at once.
    (run / "state.json").write_text(json.dumps({"done": {"demos": 1.0}, "numbers": {}}))
    proc, log = start(["demo", "--run-dir", str(run), "--quick", "--train-steps", "100000",
                       "--set", "learner.demos=''", "--set", "learner.min_online=32", *LIGHT],
                      tmp_path)
    node_logs = [run / "logs" / "train" / f"{n}.log" for n in ("learner", "actor_0",
                                                               "intervention", "mujoco_sim")]
    wait_for(lambda: "env steps" in log.read_text()
             and "training starts" in text_of(node_logs[0]), 150, "training", proc, log)
    stop_and_check(proc, sig, to_group, log, node_logs, (128 + sig,))
    state = json.loads((run / "state.json").read_text())
    assert "train" not in state["done"]  # interrupted, so a rerun resumes the stage
    assert f"stopped ({signal.Signals(sig).name}) during train" in log.read_text()
    assert (run / "train" / "checkpoint").exists()  # the learner saved on the way out
