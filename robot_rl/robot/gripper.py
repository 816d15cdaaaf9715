"""Gripper commands for action-based grippers (franka_gripper), without ROS.

The driver receives an opening in m on ``/robot/gripper_target`` every control period (the
policy's gripper output). A forward position controller takes that value as it is; the
franka_gripper node instead runs one blocking goal at a time (``move``: go to a width;
``grasp``: close at a force until the fingers stop within ``epsilon`` of a width; ``homing``:
calibrate). ``GripperGoalPlanner`` turns the stream into goals: closing becomes a grasp (so an
object is held with the configured force), opening becomes a move, and a value within
``deadband`` of the goal already sent is not sent again (resending would preempt the running
goal every period and the fingers would never get anywhere).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Kind = Literal["move", "grasp", "homing"]


@dataclass(frozen=True)
class GripperGoal:
    """The fields of franka_msgs' Move / Grasp / Homing goals (units: m, m/s, N)."""
    kind: Kind
    width: float = 0.0
    speed: float = 0.0
    force: float = 0.0            # grasp only
    epsilon_inner: float = 0.0    # grasp only: success if width - inner <= measured
    epsilon_outer: float = 0.0    # grasp only: ... and measured <= width + outer


class GripperGoalPlanner:
    def __init__(self, max_width: float, speed: float, force: float, epsilon: float,
                 deadband: float = 0.005):
        if not (max_width > 0 and speed > 0 and force >= 0 and epsilon >= 0 and deadband >= 0):
            raise ValueError(f"gripper planner needs max_width > 0, speed > 0, force >= 0, "
                             f"epsilon >= 0, deadband >= 0; got {max_width}, {speed}, {force}, "
                             f"{epsilon}, {deadband}")
        self.max_width, self.speed, self.force = max_width, speed, force
        self.epsilon, self.deadband = epsilon, deadband
        self.last: GripperGoal | None = None

    def clamp(self, width: float) -> float:
        if not math.isfinite(width):
            raise ValueError(f"gripper opening must be finite, got {width}")
        return min(max(width, 0.0), self.max_width)

    def plan(self, width: float, measured: float | None = None) -> GripperGoal | None:
        """The goal to send for a commanded opening, or None to keep the running one.

        ``measured``: the fingers' current opening, m (None: unknown, compare with the last
        goal). Closing (below the measured/last opening) grasps; anything else moves."""
        width = self.clamp(width)
        if self.last is not None and self.last.kind != "homing" \
                and abs(width - self.last.width) <= self.deadband:
            return None
        reference = measured if measured is not None else (
            self.last.width if self.last is not None else self.max_width)
        if width < reference - self.deadband:
            goal = GripperGoal("grasp", width, self.speed, self.force, self.epsilon, self.epsilon)
        else:
            goal = GripperGoal("move", width, self.speed)
        self.last = goal
        return goal

    def homing(self) -> GripperGoal:
        self.last = GripperGoal("homing")
        return self.last
