"""The joint driver's view of an arm: read joints, set controller targets, command the gripper.

An adapter owns the loop that runs the impedance controller at the hardware rate (the physics
step in MuJoCo, a dedicated thread for ros2_control), so the driver node only forwards targets
and publishes state. New robots plug in here.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robot_rl.robot.controller import ImpedanceController
from robot_rl.robot.kinematics import ArmKinematics


@dataclass
class JointReading:
    names: list[str]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class ArmAdapter(Protocol):
    kinematics: ArmKinematics
    controller: ImpedanceController
    lock: threading.Lock  # guards controller targets against the control loop

    def read(self):
        """Latest ``JointReading`` (arm then gripper joints, by name) and its stamp in s."""

    def set_gripper(self, width: float) -> float:
        """Commanded finger opening in m; returns the clamped value actually sent."""

    def gripper_width(self) -> float: ...


class SimArmAdapter:
    """The MuJoCo world as hardware; the controller runs inside ``SimWorld.step_physics``."""

    def __init__(self, world, lock: threading.Lock):
        self.world = world
        self.kinematics = world.kin
        self.controller = world.controller
        self.lock = lock

    def read(self):
        return self.world.joints(), self.world.time

    def set_gripper(self, width: float) -> float:
        return self.world.set_gripper(width)

    def gripper_width(self) -> float:
        return self.world.gripper_width()
