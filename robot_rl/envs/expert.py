"""Scripted expert for the pick task: source of demonstrations and of the simulated human.

It reads only what the task's observations could give (TCP, gripper, object position), through
a ``Snapshot``, so it can drive the in-process env and the ROS 2 facade alike. Get it from the
task (``task.expert(noise, rng)``), so its actions are in the task's action frame (the episode's
start frame with ``task.relative_frame``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

# The scene's cube (not robot_rl.envs.task's copy: the task module builds this expert, so
# importing it from here would make the two modules import each other).
from robot_rl.sim.world import CUBE_HALF

if TYPE_CHECKING:
    from robot_rl.envs.task import Snapshot


class PickExpert:
    """approach above the cube -> descend -> close -> lift; noise makes demos diverse."""

    def __init__(self, max_step_pos: float, lift_height: float, noise: float = 0.0,
                 rng: np.random.Generator | None = None, task=None):
        self.task = task  # None: actions in the base frame, ``action_dims`` given to act()
        self.max_step = max_step_pos
        self.lift_height = lift_height
        self.noise = noise
        self.rng = rng or np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        self.phase = "approach"
        self.closing_steps = 0

    def act(self, snap: Snapshot, action_dims: int | None = None) -> np.ndarray:
        if snap.object_pos is None:
            raise ValueError("the scripted expert needs the object position (simulator state)")
        cube, tcp = snap.object_pos, snap.ee_pos
        grasp_z = cube[2] + 0.005
        grip = -1.0
        if self.phase == "approach":
            goal = np.array([cube[0], cube[1], cube[2] + 0.08])
            if np.linalg.norm((goal - tcp)[:2]) < 0.008:
                self.phase = "descend"
        if self.phase == "descend":
            goal = np.array([cube[0], cube[1], grasp_z])
            if abs(tcp[2] - grasp_z) < 0.008 and np.linalg.norm((cube - tcp)[:2]) < 0.012:
                self.phase = "close"
        if self.phase == "close":
            goal, grip = tcp.copy(), 1.0
            self.closing_steps += 1
            if self.closing_steps >= 3:
                self.phase = "lift"
        if self.phase == "lift":
            goal = np.array([cube[0], cube[1], CUBE_HALF + self.lift_height + 0.05])
            grip = 1.0
        step = (goal - tcp) / self.max_step
        if self.task is not None and self.task.relative_frame:
            step = self.task.vector_to_task_frame(step, snap)
        delta = np.clip(step, -1.0, 1.0)
        if self.noise:
            delta = np.clip(delta + self.rng.normal(0, self.noise, 3), -1.0, 1.0)
        if action_dims is None:
            action_dims = len(self.task.action_names) if self.task is not None else 4
        action = np.zeros(action_dims, dtype=np.float32)
        action[:3], action[-1] = delta, grip
        return action
