"""Gripper backends for the ros2_control driver, chosen by ``driver.gripper_backend``.

* ``position_controller``: a forward position controller (``std_msgs/Float64MultiArray`` on
  ``driver.gripper_command_topic``, one value per finger joint: half the opening each); the
  finger joints come with the hardware JointState.
* ``franka_gripper``: franka_ros2's gripper node, whose ``move`` / ``grasp`` / ``homing``
  action servers (``franka_msgs/action/...``) live under ``driver.franka_gripper_namespace``
  and whose finger joints are published on ``<namespace>/joint_states``. Closing commands
  become grasps at ``robot.gripper_force``; see ``robot_rl.robot.gripper``.

franka_msgs is imported only when that backend is chosen; where it is missing the driver stops
with an error naming the package and the alternative.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from robot_rl.config import Config
from robot_rl.robot.gripper import GripperGoal, GripperGoalPlanner
from robot_rl.ros import messages as m

Report = Callable[[str, bool], None]  # (text, is_error) -> publishes CLAMPED:/REJECTED:


class GripperBackendError(RuntimeError):
    """The configured gripper backend cannot run here."""


class PositionControllerGripper:
    fingers_in_hardware_state = True

    def __init__(self, cfg: Config, node, report: Report | None = None):
        self.max_width = cfg.robot.gripper_max_width
        self.fingers = len(cfg.robot.gripper_joints)
        self._pub = node.create_publisher(Float64MultiArray, cfg.driver.gripper_command_topic, 1)

    def command(self, width: float) -> float:
        width = float(np.clip(width, 0.0, self.max_width))
        self._pub.publish(Float64MultiArray(data=[width / self.fingers] * self.fingers))
        return width

    def finger_positions(self) -> np.ndarray | None:
        return None  # they arrive with the hardware JointState


class FrankaMsgsCodec:
    """franka_msgs' action types and their goal/result fields."""

    def __init__(self):
        try:
            from franka_msgs.action import Grasp, Homing, Move
            from franka_msgs.msg import GraspEpsilon
        except ImportError as exc:
            raise GripperBackendError(
                f"driver.gripper_backend is 'franka_gripper' but the ROS 2 package franka_msgs "
                f"is not importable ({exc}). Install franka_ros2 (its franka_msgs package, from "
                f"apt where your distribution has it or built in your colcon workspace) and "
                f"source it, or set driver.gripper_backend: position_controller") from None
        self.types = {"move": Move, "grasp": Grasp, "homing": Homing}
        self._epsilon = GraspEpsilon

    def action_type(self, kind: str):
        return self.types[kind]

    def goal(self, goal: GripperGoal):
        kind = self.types[goal.kind]
        if goal.kind == "move":
            return kind.Goal(width=goal.width, speed=goal.speed)
        if goal.kind == "grasp":
            return kind.Goal(width=goal.width, speed=goal.speed, force=goal.force,
                             epsilon=self._epsilon(inner=goal.epsilon_inner,
                                                   outer=goal.epsilon_outer))
        return kind.Goal()

    def outcome(self, result) -> tuple[bool, str]:
        return bool(result.success), str(result.error)


class FrankaGripperActions:
    fingers_in_hardware_state = False

    def __init__(self, cfg: Config, node, report: Report | None = None, codec=None):
        self.codec = codec if codec is not None else FrankaMsgsCodec()
        self.node = node
        self.report = report or (lambda text, error: None)
        self.finger_names = list(cfg.robot.gripper_joints)
        self.planner = GripperGoalPlanner(cfg.robot.gripper_max_width, cfg.driver.gripper_speed,
                                          cfg.robot.gripper_force, cfg.driver.grasp_epsilon)
        ns = cfg.driver.franka_gripper_namespace.rstrip("/")
        self.action_names = {kind: f"{ns}/{kind}" for kind in ("move", "grasp", "homing")}
        self.clients = {kind: ActionClient(node, self.codec.action_type(kind), name)
                        for kind, name in self.action_names.items()}
        self.joint_topic = f"{ns}/joint_states"
        node.create_subscription(JointState, self.joint_topic, self._on_joints, m.SENSOR_QOS)
        self._fingers: np.ndarray | None = None
        self._unavailable_reported = False
        self.outcomes: deque = deque(maxlen=100)  # (goal, status, success, error), newest last

    # -- commands -----------------------------------------------------------------------------
    def command(self, width: float) -> float:
        width = self.planner.clamp(width)
        measured = self.finger_positions()
        goal = self.planner.plan(width, None if measured is None else float(np.sum(measured)))
        if goal is not None:
            self._send(goal)
        return width

    def home(self) -> None:
        self._send(self.planner.homing())

    def _send(self, goal: GripperGoal) -> None:
        client = self.clients[goal.kind]
        if not client.server_is_ready():
            self.planner.last = None  # resend once the server is there
            if not self._unavailable_reported:
                self._unavailable_reported = True
                self.report(f"gripper_target: franka_gripper action server "
                            f"'{self.action_names[goal.kind]}' is not available; is franka_gripper "
                            f"running in this namespace?", True)
            return
        self._unavailable_reported = False
        future = client.send_goal_async(self.codec.goal(goal))
        future.add_done_callback(lambda done: self._on_goal_response(goal, done))

    def _on_goal_response(self, goal: GripperGoal, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self.outcomes.append((goal, GoalStatus.STATUS_UNKNOWN, False, "goal rejected"))
            self.report(f"gripper_target: franka_gripper refused the {goal.kind} goal "
                        f"(width {goal.width:.4f} m)", True)
            return
        handle.get_result_async().add_done_callback(
            lambda done: self._on_result(goal, done))

    def _on_result(self, goal: GripperGoal, future) -> None:
        response = future.result()
        success, error = self.codec.outcome(response.result)
        self.outcomes.append((goal, response.status, success, error))
        if response.status == GoalStatus.STATUS_CANCELED:
            return  # preempted by a newer goal: expected
        if not success:
            self.report(f"gripper_target: franka_gripper {goal.kind} to {goal.width:.4f} m "
                        f"failed: {error or 'no reason given'}", True)

    # -- state --------------------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index for n in self.finger_names):
            self._fingers = np.array([msg.position[index[n]] for n in self.finger_names])

    def finger_positions(self) -> np.ndarray | None:
        return self._fingers


def make_gripper_backend(cfg: Config, node, report: Report | None = None):
    if cfg.driver.gripper_backend == "franka_gripper":
        return FrankaGripperActions(cfg, node, report)
    return PositionControllerGripper(cfg, node, report)
