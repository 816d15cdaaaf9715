"""ROS-free parts of the real-robot scene reset: the home pose, random start offsets, the
interpolated path, convergence, and the registry of task-specific hooks.

A hook is a callable ``hook(ctx: ResetContext) -> str | None`` registered by name with
``@register_reset_hook("name")`` and enabled with ``hil.reset.hooks: [name, ...]``; it runs
after the arm reached its start pose and may move the arm (``ctx.move_to``), the gripper
(``ctx.set_gripper``), wait (``ctx.sleep``) and report (its return value goes into the
service's message). Raising ``ResetFailed`` fails the reset with that reason.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np

from robot_rl.hil.mapping import quat_matrix, rpy_matrix
from robot_rl.robot.controller import matrix_to_quat_xyzw


class ResetFailed(RuntimeError):
    """A reset step failed; the message is the service's reason."""


class ResetContext(Protocol):
    cfg: object

    def move_to(self, position, quat_xyzw) -> None: ...
    def set_gripper(self, width: float) -> None: ...
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]: ...
    def sleep(self, seconds: float) -> None: ...


RESET_HOOKS: dict[str, Callable[[ResetContext], str | None]] = {}


def register_reset_hook(name: str):
    def register(fn):
        RESET_HOOKS[name] = fn
        return fn
    return register


@register_reset_hook("open_gripper")
def _open_gripper(ctx: ResetContext) -> str:
    ctx.set_gripper(ctx.cfg.robot.gripper_max_width)
    ctx.sleep(0.5)
    return "gripper opened"


@register_reset_hook("settle")
def _settle(ctx: ResetContext) -> str:
    ctx.sleep(1.0)
    return "waited 1 s for the scene to settle"


def check_hooks(names: list[str]) -> None:
    unknown = [n for n in names if n not in RESET_HOOKS]
    if unknown:
        raise ValueError(f"hil.reset.hooks: unknown hook(s) {unknown}; registered: "
                         f"{sorted(RESET_HOOKS)} (add one with "
                         f"robot_rl.hil.reset.register_reset_hook)")


def home_pose(cfg) -> tuple[np.ndarray, np.ndarray]:
    """TCP home pose (position, quaternion x,y,z,w) in the base frame: hil.reset.home_position /
    home_rpy, or the forward kinematics of robot.home."""
    r = cfg.hil.reset
    pos = quat = None
    if r.home_position:
        pos = np.array(r.home_position, float)
    if r.home_rpy:
        quat = matrix_to_quat_xyzw(rpy_matrix(*r.home_rpy))
    if pos is None or quat is None:
        from robot_rl.robot.kinematics import ArmKinematics
        kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
        fk = kin.forward(np.array(cfg.robot.home))
        pos = fk.translation.copy() if pos is None else pos
        quat = matrix_to_quat_xyzw(fk.rotation) if quat is None else quat
    return pos, np.asarray(quat, float)


def sample_start(cfg, home_pos, home_quat, rng: np.random.Generator):
    """Home plus a random x/y/yaw offset within the configured bounds (yaw about base z),
    clamped to the controller's workspace box. Returns (position, quaternion, (dx, dy, dyaw))."""
    r = cfg.hil.reset
    dx, dy, dyaw = (rng.uniform(*r.x_range), rng.uniform(*r.y_range), rng.uniform(*r.yaw_range))
    pos = np.asarray(home_pos, float) + [dx, dy, 0.0]
    pos = np.clip(pos, cfg.controller.workspace_min, cfg.controller.workspace_max)
    rot = rpy_matrix(0.0, 0.0, dyaw) @ quat_matrix(home_quat)
    return pos, matrix_to_quat_xyzw(rot), (float(dx), float(dy), float(dyaw))


def quat_angle(q1, q2) -> float:
    """Rotation angle between two unit quaternions (x, y, z, w), rad."""
    d = abs(float(np.dot(np.asarray(q1, float) / np.linalg.norm(q1),
                         np.asarray(q2, float) / np.linalg.norm(q2))))
    return 2.0 * math.acos(min(1.0, d))


def slerp(q1, q2, t: float) -> np.ndarray:
    q1, q2 = np.asarray(q1, float), np.asarray(q2, float)
    q1, q2 = q1 / np.linalg.norm(q1), q2 / np.linalg.norm(q2)
    d = float(np.dot(q1, q2))
    if d < 0:
        q2, d = -q2, -d
    if d > 0.9995:
        q = q1 + t * (q2 - q1)
        return q / np.linalg.norm(q)
    theta = math.acos(d)
    return (math.sin((1 - t) * theta) * q1 + math.sin(t * theta) * q2) / math.sin(theta)


def interpolate(start_pos, start_quat, goal_pos, goal_quat, max_speed: float,
                max_rot_rate: float, rate_hz: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Way-points one control period apart, no faster than max_speed / max_rot_rate; the last
    one is the goal."""
    start_pos, goal_pos = np.asarray(start_pos, float), np.asarray(goal_pos, float)
    dist = float(np.linalg.norm(goal_pos - start_pos))
    angle = quat_angle(start_quat, goal_quat)
    n = max(1, math.ceil(dist / (max_speed / rate_hz)), math.ceil(angle / (max_rot_rate / rate_hz)))
    return [(start_pos + (goal_pos - start_pos) * (k / n), slerp(start_quat, goal_quat, k / n))
            for k in range(1, n + 1)]


def converged(pos, quat, goal_pos, goal_quat, tolerance: float, rot_tolerance: float) -> bool:
    return (float(np.linalg.norm(np.asarray(pos) - goal_pos)) <= tolerance
            and quat_angle(quat, goal_quat) <= rot_tolerance)
