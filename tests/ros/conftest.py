"""Fixtures that start real node processes on a private DDS domain."""
import os
import random

import pytest

# Before anything initialises rclpy: keep DDS on this machine, and give this test session a
# domain of its own so parallel runs (and the user's robot) never cross-talk.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))

import rclpy  # noqa: E402

from robot_rl.config import load_config, save_config  # noqa: E402
from robot_rl.graph import graph  # noqa: E402
from robot_rl.launcher import NodeGraph  # noqa: E402


def start_sim(tmp_path, overrides=None):
    cfg = load_config(None, overrides or {})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)), log_dir=tmp_path / "logs").start()
    return cfg, nodes


@pytest.fixture(scope="module")
def sim_graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    cfg, nodes = start_sim(tmp, {"task.observations": ["state", "tactile", "images"],
                                 "cameras": [{"name": "front", "width": 64, "height": 48},
                                             {"name": "wrist", "width": 64, "height": 48}]})
    yield cfg, nodes
    nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())


@pytest.fixture(scope="module")
def ros_context():
    rclpy.init()
    yield
    rclpy.try_shutdown()
