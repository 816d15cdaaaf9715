"""``workspace_marker``: draws the controller's workspace box in rviz.

Publishes a ``visualization_msgs/MarkerArray`` on ``/robot_rl/workspace_box`` (the box edges and
a translucent volume, in ``robot.base_frame``), once a second and transient-local, so an rviz
started later still shows it. The box is ``controller.workspace_min``/``workspace_max``: the
one the driver clamps every command into.
"""
from __future__ import annotations

from geometry_msgs.msg import Point
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from visualization_msgs.msg import Marker, MarkerArray

from robot_rl.bringup import WORKSPACE_TOPIC, box_edges
from robot_rl.ros.node_utils import declare_config, run_nodes


class WorkspaceMarkerNode(Node):
    def __init__(self, name: str = "workspace_marker"):
        super().__init__(name)
        cfg = declare_config(self)
        lo, hi = cfg.controller.workspace_min, cfg.controller.workspace_max
        edges = Marker(ns="workspace_box", id=0, type=Marker.LINE_LIST, action=Marker.ADD)
        edges.points = [Point(x=x, y=y, z=z) for x, y, z in box_edges(lo, hi)]
        edges.scale.x = 0.004  # line width, m
        edges.color.r, edges.color.g, edges.color.b, edges.color.a = 1.0, 0.55, 0.0, 1.0
        volume = Marker(ns="workspace_box", id=1, type=Marker.CUBE, action=Marker.ADD)
        volume.pose.position.x, volume.pose.position.y, volume.pose.position.z = (
            (a + b) / 2 for a, b in zip(lo, hi))
        volume.pose.orientation.w = 1.0
        volume.scale.x, volume.scale.y, volume.scale.z = (b - a for a, b in zip(lo, hi))
        volume.color.r, volume.color.g, volume.color.b, volume.color.a = 1.0, 0.55, 0.0, 0.08
        for marker in (edges, volume):
            marker.header.frame_id = cfg.robot.base_frame
        self.markers = MarkerArray(markers=[edges, volume])
        qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub = self.create_publisher(MarkerArray, WORKSPACE_TOPIC, qos)
        self.create_timer(1.0, self.publish)
        self.publish()

    def publish(self) -> None:
        stamp = self.get_clock().now().to_msg()
        for marker in self.markers.markers:
            marker.header.stamp = stamp
        self.pub.publish(self.markers)


def main(args=None) -> int:
    return run_nodes(lambda: [WorkspaceMarkerNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
