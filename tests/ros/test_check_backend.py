"""``robot-rl check-backend`` against live backends over real DDS: the MuJoCo stand-in graph, the
ros2_control driver path (joint_driver + the stand-in hardware process: in
test_check_backend_ros2_control.py, so that the stand-in graph of this module is not running
beside it), and a backend with a stream withdrawn, which the checker must catch (non-zero exit,
the topic named)."""
import subprocess
import sys

import pytest

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph

pytestmark = pytest.mark.timeout(180)


def check_backend(config_path, *extra, timeout=120):
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", "check-backend",
                           "--config", str(config_path), *extra],
                          capture_output=True, text=True, timeout=timeout)


def rows(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if f"│ {status} " in line]


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The MuJoCo stand-in graph with one small camera and the default tactile sensors."""
    tmp = tmp_path_factory.mktemp("check_sim")
    cfg = load_config(None, {"cameras": [{"name": "front", "width": 64, "height": 48}]})
    path = tmp / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)), log_dir=tmp / "logs").start()
    yield cfg, path, tmp
    nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())


def test_stand_in_passes_every_check(stand_in):
    _, path, tmp = stand_in
    table = tmp / "table.md"
    result = check_backend(path, "--duration", "2", "--markdown", str(table))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert not rows(out, "FAIL")
    text = table.read_text()
    for subject in ("/camera/front/image_raw", "/tactile/left/image", "/clock", "/scene/reset",
                    "joint_target with TCP past", "ee_target NaN", "gripper_target"):
        assert f"{subject}" in text, subject
    assert "SKIP" not in text  # the stand-in serves everything, reset included
    assert text.count("| PASS |") >= 30


def test_a_withdrawn_stream_is_a_violation(stand_in):
    """The checker expects a second camera the running backend does not publish."""
    cfg, _, tmp = stand_in
    expecting_more = load_config(None, {"cameras": [{"name": "front", "width": 64, "height": 48},
                                                    {"name": "wrist", "width": 64, "height": 48}]})
    path = tmp / "expects_wrist.yaml"
    save_config(expecting_more, path)
    result = check_backend(path, "--duration", "1", "--no-motion", "--discovery-timeout", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = rows(result.stdout, "FAIL")
    assert any("/camera/wrist/image_raw" in line and "no publisher" in line for line in failed)
    assert all("wrist" in line for line in failed), "\n".join(failed)  # and nothing else
    assert "violation(s)" in result.stdout
