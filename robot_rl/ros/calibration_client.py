"""The calibration flows' ROS 2 side: a node that feeds a RobotLink and carries its commands.

:class:`RobotCameraClient` subscribes one camera (``/camera/<name>/image_raw`` + ``camera_info``),
``/joint_states``, ``/robot/ee_pose``, ``/robot/ee_twist`` and the driver status, and publishes
``/robot/ee_target`` and ``/robot/gripper_target``; what to keep, when the arm has settled and
what to write is :mod:`robot_rl.calibration` (ROS-free). :func:`tactile_capture` collects the
frames of ``/tactile/<name>/image`` for a no-contact baseline.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String

from robot_rl.calibration.robot_link import RobotLink
from robot_rl.calibration.tactile_flow import DistinctFrames, save_stream_baseline, sensor_serial
from robot_rl.calibration.transforms import make_T, matrix_to_quat, quat_to_matrix
from robot_rl.ros import messages as m


class RobotCameraClient(RobotLink):
    """A node that watches one camera, the joint states and the end-effector pose, and moves
    the arm through ``/robot/ee_target`` (re-sent on every new ``/robot/ee_pose``, which also
    paces the MuJoCo stand-in in lockstep)."""

    def __init__(self, cfg, camera: str | None, node_name: str = "calibration", joint_history: int = 400,
                 command_interval_s: float = 0.005):
        sources = {"joints": m.JOINT_STATES, "pose": m.EE_POSE}
        if camera:
            sources.update(image=m.camera_image_topic(camera), info=m.camera_info_topic(camera))
        super().__init__(cfg, camera, joint_history, command_interval_s, sources)
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.node = rclpy.create_node(node_name)
        sub = self.node.create_subscription
        if camera:
            sub(Image, m.camera_image_topic(camera), self._on_image, m.SENSOR_QOS)
            sub(CameraInfo, m.camera_info_topic(camera), self._on_info, m.SENSOR_QOS)
        sub(JointState, m.JOINT_STATES, self._on_joints, m.SENSOR_QOS)
        sub(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        sub(TwistStamped, m.EE_TWIST, lambda msg: self.receive_twist(m.twist_from_msg(msg)), m.SENSOR_QOS)
        sub(String, m.DRIVER_STATUS, lambda msg: self.receive_status(msg.data), m.COMMAND_QOS)
        self.pub_target = self.node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.node.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True, name="calibration-spin")
        self._spin.start()

    # -- subscriptions (executor thread) ----------------------------------------------------------
    def _on_image(self, msg) -> None:
        try:
            image = m.msg_to_image(msg)
        except ValueError as exc:
            self.node.get_logger().error(f"camera {self.camera}: {exc}", throttle_duration_sec=2.0)
            return
        self.receive_image(image, m.from_time(msg.header.stamp), msg.header.frame_id)

    def _on_info(self, msg) -> None:
        self.receive_camera_info((msg.width, msg.height), msg.k, msg.d)

    def _on_joints(self, msg) -> None:
        self.receive_joint_state(m.from_time(msg.header.stamp), msg.name, msg.position, msg.velocity)

    def _on_pose(self, msg) -> None:
        p, q = m.decode_input("ee_pose", msg, ())
        self.receive_pose(m.from_time(msg.header.stamp), make_T(quat_to_matrix(q), p))

    # -- RobotLink's transport side ---------------------------------------------------------------
    def send_target(self, T: np.ndarray, stamp: float) -> None:
        self.pub_target.publish(m.pose_msg(T[:3, 3], matrix_to_quat(T[:3, :3]), stamp, self.cfg.robot.base_frame))

    def send_gripper(self, width: float) -> None:
        self.pub_gripper.publish(Float64(data=float(width)))

    def connection_hint(self) -> str:
        return f"check that the robot graph runs on this ROS_DOMAIN_ID ({os.environ.get('ROS_DOMAIN_ID', '0')})"

    def close(self) -> None:
        self.stop()
        self._executor.shutdown(timeout_sec=1.0)
        self._spin.join(timeout=2.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()


@contextmanager
def _spinning_node(name: str) -> Iterator:
    """A node spun on a background thread (rclpy initialised here when nobody did)."""
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    node = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        yield node
    finally:
        executor.shutdown(timeout_sec=1.0)
        spin.join(timeout=2.0)
        node.destroy_node()
        if owns:
            rclpy.try_shutdown()


def tactile_capture(cfg, sensor: str, n_frames: int = 100, serial: str | None = None,
                    out_dir: str | os.PathLike = "calibration/tactile", timeout: float = 60.0,
                    log: Callable[[str], None] = print):
    """Capture ``n_frames`` no-contact frames of ``/tactile/<sensor>/image`` (distinct stamps),
    build the baseline and save it under the sensor serial. Returns (baseline, npz path)."""
    serial = sensor_serial(cfg, sensor, serial)
    topic = m.tactile_topic(sensor)
    collected = DistinctFrames(n_frames)
    with _spinning_node(f"tactile_baseline_{sensor}") as node:
        node.create_subscription(
            Image, topic, lambda msg: collected.add(m.from_time(msg.header.stamp), m.msg_to_image(msg)), m.SENSOR_QOS)
        log(f"capturing {n_frames} frames of {topic} (serial {serial}); do not touch the sensor")
        frames = collected.wait(timeout, topic)
    return save_stream_baseline(frames, serial, out_dir, log)
