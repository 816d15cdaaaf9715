"""``robot-rl check-backend`` against the ros2_control driver path over real DDS: the
joint_driver (driver.adapter=ros2_control) with the stand-in hardware process playing the arm
behind the ros2_control topics. Alone in its module: a second backend on the same domain (the
other module's stand-in graph) would publish /joint_states too, which the checker reports."""
import pytest

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph, standin_hardware_nodes
from robot_rl.launcher import NodeGraph
from tests.ros.test_check_backend import check_backend, rows

pytestmark = pytest.mark.timeout(180)


def test_ros2_control_driver_path_passes(tmp_path):
    # A 250 Hz hardware and driver loop, state published at 50 Hz: rates a loaded 2-core CI
    # machine sustains in Python (at 500/100 Hz and load average 11-16 the driver's state fell
    # to 66-87 Hz, which the checker rightly reports; docs/real_robot.md).
    cfg = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                             "driver.loop_rate_hz": 250.0,
                             "driver.publish_rate_hz": 50.0, "sim.physics_dt": 0.004,
                             "cameras": [], "tactile": []})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    specs = graph(cfg, str(path)) + standin_hardware_nodes(cfg, str(path))
    with NodeGraph(specs, log_dir=tmp_path / "logs") as nodes:
        # Wall-clock rates of Python processes on a shared 2-core machine are a figure for
        # bench/driver_jitter.py, not a test: fresh-clone CI on a quiet machine measured the 50 Hz
        # state at 23.7 Hz in one 4 s window (a stall). Here the rate rule only catches a
        # stream that all but stopped (±90 %); users get ±20 % (the rule itself is tested in
        # tests/test_check_backend.py).
        result = check_backend(path, "--duration", "6", "--rate-tolerance", "0.9")
        assert not nodes.failed(), nodes.failed()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "wall time" in out  # a real arm's clock: no sim time, no /clock stream expected
    assert not any("│ /clock " in line for line in out.splitlines())
    skipped = rows(out, "SKIP")
    assert len(skipped) == 1 and "/scene/reset" in skipped[0]  # served by the train profile
