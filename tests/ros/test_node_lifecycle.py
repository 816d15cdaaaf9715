"""Processes start, fail clearly on bad configuration, and stop cleanly on Ctrl-C (SIGINT)."""
import subprocess
import sys
import time

from robot_rl.graph import NodeSpec
from robot_rl.launcher import NodeGraph

from .conftest import start_sim


def test_sigint_stops_every_node_cleanly(tmp_path):
    _, nodes = start_sim(tmp_path, {"cameras": [], "sim.rate": "realtime"})
    time.sleep(6.0)
    assert not nodes.failed(), (tmp_path / "logs" / "mujoco_sim.log").read_text()
    start = time.monotonic()
    nodes.stop()
    assert time.monotonic() - start < 8.0
    assert all(p.returncode == 0 for p in nodes.processes.values()), \
        (tmp_path / "logs" / "mujoco_sim.log").read_text()


def test_malformed_config_exits_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("controller:\n  stifness_pos: 10\n")
    spec = NodeSpec("mujoco_sim", "mujoco_sim", "robot_rl.ros.sim_node",
                    {"config_file": str(bad)}, composed=True)
    with NodeGraph([spec], log_dir=tmp_path / "logs") as nodes:
        code = nodes.processes["mujoco_sim"].wait(timeout=30)
    log = (tmp_path / "logs" / "mujoco_sim.log").read_text()
    assert code == 2
    assert "controller.stifness_pos" in log and "stiffness_pos" in log


def test_parameter_override_is_applied_and_validated(tmp_path):
    spec = NodeSpec("mujoco_sim", "mujoco_sim", "robot_rl.ros.sim_node",
                    {"sim.rate": "warp"}, composed=True)
    with NodeGraph([spec], log_dir=tmp_path / "logs") as nodes:
        code = nodes.processes["mujoco_sim"].wait(timeout=30)
    log = (tmp_path / "logs" / "mujoco_sim.log").read_text()
    assert code == 2 and "sim.rate" in log and "'warp'" in log


def test_cli_config_check_reports_unknown_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sim:\n  physics_dt: 0.002\n  colour: red\n")
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "config", "check", "--config",
                           str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "sim.colour" in proc.stderr and str(bad) in proc.stderr
