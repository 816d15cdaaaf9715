"""``teleop``: the intervention device moves the arm directly, no policy involved.

The first motion of a new robot, or collecting a scene by hand: the ``intervention`` node reads
the device (SpaceMouse, gamepad, keyboard, ``joy``) and publishes ``hil.topic`` (Joy, the action
in [-1, 1] and the dead-man in ``buttons[0]``); every control period in which the dead-man is
held and that message is fresher than ``hil.joy.timeout``, this node turns the action into a TCP
target exactly as the configured task does for a policy (``task.command``; pick_cube: at most
``task.max_step_pos`` m per period from the current TCP, the orientation held; with
``task.relative_frame`` the axes are those of the TCP pose when teleop started) and publishes it
on ``/robot/ee_target``, and the gripper opening on ``/robot/gripper_target`` when it changes.
Released, it sends nothing: the driver holds the last target. The driver clamps every target
into the workspace box as it does for a policy.

    robot-rl up --profile teleop --config config/real_panda.yaml --set hil.device=spacemouse
    ros2 launch robot_rl real_panda.launch.py robot_ip:=... profile:=teleop
"""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Float64

from robot_rl.envs.task import Task, make_task
from robot_rl.ros import messages as m
from robot_rl.ros.node_utils import declare_config, run_nodes


class TeleopNode(Node):
    def __init__(self, name: str = "teleop"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        self.task: Task | None = None  # built on the first pose: holds its orientation
        self.pose: PoseStamped | None = None
        self.joy: tuple[float, Joy] | None = None
        self.width: float | None = None
        self.sent = 0
        self.pub_target = self.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.create_subscription(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        self.create_subscription(Joy, cfg.hil.topic, self._on_joy, 10)
        self.create_timer(1.0 / cfg.control_rate_hz, self._tick)
        self.get_logger().info(f"teleop: {cfg.hil.topic} (dead-man held) -> {m.EE_TARGET}, "
                               f"{cfg.task.max_step_pos} m per period at {cfg.control_rate_hz} Hz")

    def _on_pose(self, msg: PoseStamped) -> None:
        self.pose = msg
        if self.task is None:
            self.task = make_task(self.cfg, m.pose_from_msg(msg)[1])

    def _on_joy(self, msg: Joy) -> None:
        self.joy = (time.monotonic(), msg)

    def _tick(self) -> None:
        if self.joy is None or self.pose is None or self.task is None:
            return
        received, joy = self.joy
        fresh = time.monotonic() - received <= self.cfg.hil.joy.timeout
        if not (fresh and joy.buttons and joy.buttons[0]):
            return
        snap = m.snapshot_from_inputs({"ee_pose": m.decode_input("ee_pose", self.pose, ()),
                                       "joint_states": self.width if self.width is not None else 0.0}, 0.0)
        try:
            target, orientation, width = self.task.command(np.array(joy.axes), snap)
        except ValueError as exc:  # wrong size or NaN from the device: say so, send nothing
            self.get_logger().error(f"{self.cfg.hil.topic}: {exc}", throttle_duration_sec=1.0)
            return
        self.pub_target.publish(m.pose_msg(target, orientation, 0.0, self.cfg.robot.base_frame))
        self.sent += 1
        if width != self.width:
            self.width = width
            self.pub_gripper.publish(Float64(data=float(width)))


def main(args=None) -> int:
    return run_nodes(lambda: [TeleopNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
