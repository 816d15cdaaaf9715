"""The workspace_marker node over DDS: a late subscriber (rviz started after it) gets the box."""
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
from visualization_msgs.msg import Marker, MarkerArray

from robot_rl.bringup import WORKSPACE_TOPIC
from robot_rl.config import load_config, save_config
from robot_rl.graph import NodeSpec
from robot_rl.launcher import NodeGraph


def test_marker_node_draws_the_configured_box(tmp_path, ros_context):
    cfg = load_config(None, {"controller.workspace_min": [0.3, -0.2, 0.05],
                             "controller.workspace_max": [0.6, 0.2, 0.4]})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    spec = NodeSpec("workspace_marker", "workspace_marker", "robot_rl.ros.workspace_marker_node",
                    {"config_file": str(path)})
    with NodeGraph([spec], log_dir=tmp_path / "logs"):
        node = rclpy.create_node("marker_listener")
        got = []
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(MarkerArray, WORKSPACE_TOPIC, got.append, qos)
        deadline = time.monotonic() + 30.0
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    assert got, (tmp_path / "logs" / "workspace_marker.log").read_text()
    edges, volume = got[0].markers
    assert edges.type == Marker.LINE_LIST and edges.header.frame_id == cfg.robot.base_frame
    points = np.array([[p.x, p.y, p.z] for p in edges.points])
    assert len(points) == 24
    np.testing.assert_allclose(points.min(axis=0), [0.3, -0.2, 0.05])
    np.testing.assert_allclose(points.max(axis=0), [0.6, 0.2, 0.4])
    assert volume.type == Marker.CUBE
    np.testing.assert_allclose([volume.scale.x, volume.scale.y, volume.scale.z], [0.3, 0.4, 0.35])
