"""The pick-and-lift task, independent of where the robot's data comes from.

Both Gymnasium environments (in-process MuJoCo and the ROS 2 facade) assemble a ``Snapshot`` of
the hardware contract and hand it here, so observations, actions, rewards and success mean
exactly the same thing in both, and on a real robot.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin
from gymnasium import spaces

from robot_rl.config import Config
from robot_rl.robot.controller import matrix_to_quat_xyzw, quat_xyzw_to_matrix

CUBE_HALF = 0.025
GRIPPER_CLOSE, GRIPPER_OPEN = 0.5, -0.5  # thresholds on the gripper action


@dataclass
class Snapshot:
    """One synchronized reading of the robot contract (all fields from the same instant)."""
    stamp: float
    ee_pos: np.ndarray
    ee_quat: np.ndarray            # x, y, z, w
    ee_vel: np.ndarray             # linear (3) + angular (3), base frame
    gripper_width: float
    tactile: dict[str, np.ndarray] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    object_pos: np.ndarray | None = None  # privileged: simulator state only


# The reward each task can produce, declared once: the learner refuses transitions outside
# it (a finite 1e6 reward from a bad or hostile actor would wreck the critic at its first update).
# sparse: 0, or 1 on success. dense: -1 + 0.9 * progress in [-1, -0.1] per step, 0 on success.
REWARD_RANGES = {"sparse": (0.0, 1.0), "dense": (-1.0, 0.0)}


def reward_range(task_cfg) -> tuple[float, float]:
    """``(low, high)`` of the reward of the configured task (``cfg.task``)."""
    return REWARD_RANGES[task_cfg.reward]


class PickCubeTask:
    """Observation/action mapping, scripted reward and success for picking and lifting a cube."""

    def __init__(self, cfg: Config, home_quat: np.ndarray):
        self.cfg = cfg
        self.task = cfg.task
        self.home_rot = quat_xyzw_to_matrix(home_quat)
        self.gripper_closed = False
        self.use_yaw = self.task.action_space == "xyz_yaw_gripper"
        self.action_names = ["dx", "dy", "dz"] + (["dyaw"] if self.use_yaw else []) + ["gripper"]
        self.action_space = spaces.Box(-1.0, 1.0, (len(self.action_names),), np.float32)
        self.observation_space = spaces.Dict(self._observation_spaces())
        self.reward_range = reward_range(self.task)

    def _observation_spaces(self) -> dict[str, spaces.Space]:
        obs: dict[str, spaces.Space] = {}
        groups = self.task.observations
        if "state" in groups:
            # TCP position (3), TCP linear velocity (3), finger opening (1), gripper closed (1)
            obs["state"] = spaces.Box(-np.inf, np.inf, (8,), np.float32)
        if "object" in groups:
            # Cube position and cube-minus-TCP (3 + 3): simulator state, not on a real robot.
            obs["object"] = spaces.Box(-np.inf, np.inf, (6,), np.float32)
        if "tactile" in groups:
            for t in self.cfg.tactile:
                obs[f"tactile_{t.name}"] = spaces.Box(0.0, np.inf, (t.rows, t.cols), np.float32)
        if "images" in groups:
            for cam in self.cfg.cameras:
                width, height = (cam.resize or (cam.crop[2:] if cam.crop else None)
                                 or (cam.width, cam.height))
                obs[f"image_{cam.name}"] = spaces.Box(0, 255, (height, width, 3), np.uint8)
        return obs

    def reset(self) -> None:
        self.gripper_closed = False

    def observe(self, snap: Snapshot) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        keys = self.observation_space.spaces
        if "state" in keys:
            obs["state"] = np.concatenate([
                snap.ee_pos, snap.ee_vel[:3], [snap.gripper_width, float(self.gripper_closed)]
            ]).astype(np.float32)
        if "object" in keys:
            if snap.object_pos is None:
                raise ValueError("the 'object' observation needs the simulator's object pose; "
                                 "remove 'object' from task.observations on a real robot")
            obs["object"] = np.concatenate(
                [snap.object_pos, snap.object_pos - snap.ee_pos]).astype(np.float32)
        for t in self.cfg.tactile:
            key = f"tactile_{t.name}"
            if key in keys:
                obs[key] = np.asarray(snap.tactile[t.name], np.float32)
        for cam in self.cfg.cameras:
            key = f"image_{cam.name}"
            if key in keys:
                obs[key] = snap.images[cam.name]
        return obs

    def command(self, action: np.ndarray, snap: Snapshot) -> tuple[np.ndarray, np.ndarray, float]:
        """Action in [-1, 1] -> (TCP target position, orientation x,y,z,w, gripper opening m)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected "
                             f"{self.action_space.shape} ({', '.join(self.action_names)})")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action is not finite: {action}")
        action = np.clip(action, -1.0, 1.0)
        target = snap.ee_pos + action[:3] * self.task.max_step_pos
        rot = self.home_rot
        if self.use_yaw:
            current_yaw = pin.rpy.matrixToRpy(quat_xyzw_to_matrix(snap.ee_quat) @ self.home_rot.T)[2]
            yaw = current_yaw + action[3] * self.task.max_step_yaw
            rot = pin.rpy.rpyToMatrix(0.0, 0.0, yaw) @ self.home_rot
        grip = action[-1]
        if grip >= GRIPPER_CLOSE:
            self.gripper_closed = True
        elif grip <= GRIPPER_OPEN:
            self.gripper_closed = False
        width = 0.0 if self.gripper_closed else self.cfg.robot.gripper_max_width
        return target, matrix_to_quat_xyzw(rot), width

    def success(self, snap: Snapshot) -> bool:
        if snap.object_pos is None:
            return False
        lifted = snap.object_pos[2] - CUBE_HALF >= self.task.lift_height
        held = np.linalg.norm(snap.object_pos - snap.ee_pos) < 0.04
        return bool(lifted and held)

    def progress(self, snap: Snapshot) -> float:
        """0..1 toward success from simulator state: reach the cube, grasp it, lift it."""
        if snap.object_pos is None:
            return 0.0
        distance = float(np.linalg.norm(snap.object_pos - snap.ee_pos))
        reach = 1.0 - np.tanh(10.0 * distance)
        closed_on_cube = (distance < 0.03 and self.gripper_closed
                          and snap.gripper_width > 0.5 * 2 * CUBE_HALF)
        lift = np.clip((snap.object_pos[2] - CUBE_HALF) / self.task.lift_height, 0.0, 1.0)
        return float(0.3 * reach + 0.2 * closed_on_cube + 0.5 * lift * closed_on_cube)

    def reward(self, snap: Snapshot) -> float:
        """sparse: 1 on success, as in SERL. dense: -1 + 0.9 * progress per step, 0 on success."""
        success = self.success(snap)
        if self.task.reward == "sparse":
            return float(success)
        return 0.0 if success else -1.0 + 0.9 * self.progress(snap)
