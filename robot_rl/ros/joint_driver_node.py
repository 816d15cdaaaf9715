"""Joint driver node: the arm's side of the topic contract.

Publishes ``/joint_states`` (URDF names), ``/robot/ee_pose`` and ``/robot/ee_twist``; accepts
``/robot/ee_target`` (PoseStamped, base frame), ``/robot/joint_target`` (JointState, by name) and
``/robot/gripper_target`` (Float64, finger opening in m). Bad commands are refused with a logged
reason on ``/robot/status`` and the previous target is held; clamps are logged there too.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from geometry_msgs.msg import PoseStamped

from robot_rl.config import Config
from robot_rl.robot.controller import ClampReport, CommandError, matrix_to_quat_xyzw
from robot_rl.ros import messages as m


class JointDriverNode(Node):
    """``adapter`` is an ArmAdapter, or a factory ``(cfg, node) -> ArmAdapter``; without ``cfg``
    the node reads the configuration from its own ROS parameters."""

    def __init__(self, adapter, cfg: Config | None = None, name: str = "joint_driver"):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        self.cfg = cfg
        self.adapter = adapter(cfg, self) if callable(adapter) else adapter
        self.frame = cfg.robot.base_frame
        self.arm_joints = cfg.robot.arm_joints
        self.rejected = 0
        self.clamped = 0
        self.on_command = None  # the sim's lockstep hook: called after each accepted arm target
        self.pub_joints = self.create_publisher(JointState, m.JOINT_STATES, m.SENSOR_QOS)
        self.pub_pose = self.create_publisher(PoseStamped, m.EE_POSE, m.SENSOR_QOS)
        self.pub_twist = self.create_publisher(m.TwistStamped, m.EE_TWIST, m.SENSOR_QOS)
        self.pub_status = self.create_publisher(String, m.DRIVER_STATUS, m.COMMAND_QOS)
        self.create_subscription(PoseStamped, m.EE_TARGET, self._on_ee_target, m.COMMAND_QOS)
        self.create_subscription(JointState, m.JOINT_TARGET, self._on_joint_target,
                                 m.COMMAND_QOS)
        self.create_subscription(Float64, m.GRIPPER_TARGET, self._on_gripper, m.COMMAND_QOS)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker(warn=("rejected", "clamped"))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"rejected": self.rejected, "clamped": self.clamped}))

    # -- commands -----------------------------------------------------------------------------
    def report_status(self, text: str, error: bool) -> None:
        """One ``REJECTED:`` (error) or ``CLAMPED:`` line on /robot/status, and the log; the
        format is described in ``robot_rl.robot.workspace``."""
        # rclpy ties a severity to each logging call site, hence two separate calls.
        if error:
            self.get_logger().error(text)
        else:
            self.clamped += 1
            self.get_logger().warning(text)
        self.pub_status.publish(String(data=("REJECTED: " if error else "CLAMPED: ") + text))

    def _apply(self, what: str, command) -> None:
        try:
            with self.adapter.lock:
                report: ClampReport = command()
        except CommandError as exc:
            self.rejected += 1
            self.report_status(f"{what}: {exc}; holding the previous target", error=True)
            if self.on_command is not None:
                self.on_command()  # a refused command is still a (holding) control period
            return
        for line in report.clamped:
            self.report_status(f"{what}: {line}", error=False)
        if self.on_command is not None:
            self.on_command()

    def _on_ee_target(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.frame:
            self.rejected += 1
            self.report_status(f"ee_target in frame '{msg.header.frame_id}', expected "
                               f"'{self.frame}'", error=True)
            return
        position, quat = m.pose_from_msg(msg)
        orientation = None if not np.any(quat) else quat  # an all-zero quaternion keeps orientation
        self._apply("ee_target",
                    lambda: self.adapter.controller.set_cartesian_target(position, orientation))

    def _on_joint_target(self, msg: JointState) -> None:
        try:
            q = m.joint_positions_by_name(msg, self.arm_joints)
        except ValueError as exc:
            self.rejected += 1
            self.report_status(f"joint_target: {exc}", error=True)
            return
        self._apply("joint_target", lambda: self.adapter.controller.set_joint_target(q))

    def _on_gripper(self, msg: Float64) -> None:
        width = msg.data
        if not np.isfinite(width):
            self.rejected += 1
            self.report_status(f"gripper_target {width} is not finite; holding", error=True)
            return
        sent = self.adapter.set_gripper(width)
        if sent != width:
            self.report_status(f"gripper_target {width:.4f} m outside [0, "
                         f"{self.cfg.robot.gripper_max_width}], clamped to {sent:.4f}", error=False)

    # -- state --------------------------------------------------------------------------------
    def publish_state(self) -> float:
        reading, stamp = self.adapter.read()
        self.pub_joints.publish(m.joint_state_msg(reading.names, reading.position,
                                                  reading.velocity, reading.effort, stamp))
        n = len(self.arm_joints)
        q, dq = reading.position[:n], reading.velocity[:n]
        pose, jac, _ = self.adapter.kinematics.state(q, dq)
        self.pub_pose.publish(m.pose_msg(pose.translation, matrix_to_quat_xyzw(pose.rotation),
                                         stamp, self.frame))
        self.pub_twist.publish(m.twist_msg(jac @ dq, stamp, self.frame))
        return stamp


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    from robot_rl.ros.ros2_control_adapter import Ros2ControlAdapter

    nodes: list[JointDriverNode] = []

    def make():
        nodes.append(JointDriverNode(Ros2ControlAdapter))
        return nodes

    def stop():
        for node in nodes:
            node.adapter.stop()

    return run_nodes(make, args, on_shutdown=stop)


if __name__ == "__main__":
    raise SystemExit(main())
