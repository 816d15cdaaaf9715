"""Cartesian impedance controller on pinocchio, meant to run at the physics/hardware rate.

    tau = J^T (K e_clipped - D J dq) + N (K_n (q_home - q) - D_n dq) + g(q) + tau_limits

- Reference limiting: the pose error e is clipped to ``max_pos_error``/``max_rot_error``, so the
  spring force is bounded (|F| <= K * max_error) however far or blocked the target is. This is
  what keeps contact forces bounded when a learned policy pushes into the table.
- Targets are clamped into the workspace box before they reach the spring; non-finite targets are
  refused and the previous target held.
- Joint limits: a repulsive torque acts inside ``joint_limit_margin`` of each URDF limit, and joint
  targets are clamped to the limits minus the margin.
- Joint targets are also checked against the workspace box along their straight joint-space
  path (``robot_rl.robot.workspace``): scaled back to the last point inside, or refused.
- Gravity: g(q) is added unless the hardware adds it itself (``hardware_compensates_gravity``,
  true for a Franka's torque interface, whose commands are on top of its own gravity model).
- Output stage, per joint: the commanded torque (without the gravity the controller adds) may
  change by at most ``max_torque_rate * period_s`` per control period (a Franka rejects jumps
  above 1000 N m/s), then the total is clamped to the effort limits (URDF or configured).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pinocchio as pin

from robot_rl.config import ControllerConfig
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.robot.workspace import JOINT_PATH_MARGIN, WorkspaceBox, check_joint_path


class CommandError(ValueError):
    """A command was malformed (wrong size, NaN/Inf); the previous target is held."""


@dataclass
class ClampReport:
    """What the last ``set_*`` call had to change; nodes log these."""
    clamped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.clamped)


def quat_xyzw_to_matrix(quat: np.ndarray) -> np.ndarray:
    x, y, z, w = quat
    return pin.Quaternion(w, x, y, z).normalized().toRotationMatrix()


def matrix_to_quat_xyzw(rot: np.ndarray) -> np.ndarray:
    q = pin.Quaternion(rot)
    return np.array([q.x, q.y, q.z, q.w])


def _clip_norm(vec: np.ndarray, limit: float) -> np.ndarray:
    norm = math.sqrt(float(vec @ vec))  # np.linalg.norm costs ~3 µs: this runs at 500 Hz+
    return vec * (limit / norm) if norm > limit else vec


class ImpedanceController:
    """``period_s``: the control period the loop calls ``compute`` at (the torque-rate limit is
    per period); ``effort_limits``: N m per joint, default the URDF's."""

    def __init__(self, kinematics: ArmKinematics, config: ControllerConfig, home: np.ndarray,
                 *, period_s: float = 0.001, hardware_compensates_gravity: bool = False,
                 effort_limits=None):
        self.kin = kinematics
        self.cfg = config
        self.home = np.asarray(home, dtype=float)
        self.box = WorkspaceBox(config.workspace_min, config.workspace_max)
        self.box_min, self.box_max = self.box.lower, self.box.upper
        margin = config.joint_limit_margin
        self.q_min = kinematics.limits.lower + margin
        self.q_max = kinematics.limits.upper - margin
        configured = effort_limits is not None and len(effort_limits) > 0
        self.effort = (np.asarray(effort_limits, dtype=float) if configured
                       else kinematics.limits.effort.copy())
        if self.effort.shape != (kinematics.nq,) or np.any(self.effort <= 0):
            raise ValueError(f"effort limits need {kinematics.nq} positive values "
                             f"({kinematics.joint_names}), got {self.effort.tolist()}")
        if not period_s > 0:
            raise ValueError(f"control period must be > 0 s, got {period_s}")
        self.period_s = float(period_s)
        self.adds_gravity = not hardware_compensates_gravity
        self.max_torque_step = config.max_torque_rate * self.period_s  # N m per period
        # The controller's own torque (gravity excluded) sent last period: the rate limit's
        # reference. Starts at zero, as a torque interface does.
        self.last_torque = np.zeros(kinematics.nq)
        self.measured_q = self.home.copy()  # joints seen by the last compute(): path starts
        self.path_ref = self.home.copy()    # joint mode: the reference travelling the path
        self._path_speed = 0.0
        self._k = np.array([config.stiffness_pos] * 3 + [config.stiffness_rot] * 3)
        self._d = 2.0 * config.damping_ratio * np.sqrt(self._k)
        self.mode = "cartesian"
        pose = kinematics.forward(self.home)
        self.target_pos = np.clip(pose.translation.copy(), self.box_min, self.box_max)
        self.target_rot = pose.rotation.copy()
        self.target_q = self.home.copy()
        self.last_pose = pose

    def set_stiffness(self, stiffness_pos: float, stiffness_rot: float) -> None:
        """New Cartesian spring gains (N/m, N m/rad); the damping follows by damping_ratio.
        The simulator's domain randomisation varies them per episode."""
        if not (stiffness_pos > 0 and stiffness_rot > 0):
            raise ValueError(f"stiffness must be > 0, got {stiffness_pos}, {stiffness_rot}")
        self.cfg = replace(self.cfg, stiffness_pos=float(stiffness_pos),
                           stiffness_rot=float(stiffness_rot))
        self._k = np.array([self.cfg.stiffness_pos] * 3 + [self.cfg.stiffness_rot] * 3)
        self._d = 2.0 * self.cfg.damping_ratio * np.sqrt(self._k)

    # -- commands ---------------------------------------------------------------------------
    def set_cartesian_target(self, position, quat_xyzw=None) -> ClampReport:
        """Target TCP position (m, base frame) and optionally orientation (x, y, z, w)."""
        position = np.asarray(position, dtype=float)
        if position.shape != (3,):
            raise CommandError(f"Cartesian target needs 3 position values, got {position.shape}")
        if not np.all(np.isfinite(position)):
            raise CommandError(f"Cartesian target position is not finite: {position}"
                               )
        report = ClampReport()
        clipped, faces = self.box.clamp(position)
        if faces:
            report.clamped.append(
                f"target {np.round(position, 4).tolist()} outside the workspace box at "
                f"{', '.join(f.describe() for f in faces)}, clamped to "
                f"{np.round(clipped, 4).tolist()}")
        rot = self.target_rot
        if quat_xyzw is not None:
            quat = np.asarray(quat_xyzw, dtype=float)
            if quat.shape != (4,) or not np.all(np.isfinite(quat)) or np.linalg.norm(quat) < 1e-6:
                raise CommandError(f"Cartesian target orientation must be a finite, non-zero "
                                   f"quaternion (x, y, z, w), got {quat}")
            rot = quat_xyzw_to_matrix(quat)
        self.target_pos, self.target_rot, self.mode = clipped, rot, "cartesian"
        return report

    def set_joint_target(self, q) -> ClampReport:
        q = np.asarray(q, dtype=float)
        if q.shape != (self.kin.nq,):
            raise CommandError(f"joint target needs {self.kin.nq} values "
                               f"({self.kin.joint_names}), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise CommandError(f"joint target is not finite: {q}")
        report = ClampReport()
        clipped = np.clip(q, self.q_min, self.q_max)
        for i in np.flatnonzero(clipped != q):
            report.clamped.append(f"{self.kin.joint_names[i]} target {q[i]:.3f} outside "
                                  f"[{self.q_min[i]:.3f}, {self.q_max[i]:.3f}], clamped")
        path = check_joint_path(self.kin, self.box, self.measured_q, clipped,
                                margin=JOINT_PATH_MARGIN)
        driving = ", ".join(path.driving_joints) or "no single joint"
        if path.refused:
            raise CommandError("; ".join(report.clamped + [
                f"TCP would leave the workspace box at {path.face.describe()} at the start "
                f"of the path, driven by {driving}"]))
        if path.changed:
            report.clamped.append(
                f"TCP would leave the workspace box at {path.face.describe()}, driven by "
                f"{driving}; target scaled back to "
                f"{path.fraction:.0%} of the way: {np.round(path.target, 3).tolist()} "
                f"(TCP {np.round(path.tcp, 3).tolist()})")
        self.path_ref = self.measured_q.copy()  # the checked path starts where the arm is
        self._path_speed = 0.0
        self.target_q, self.mode = path.target, "joint"
        return report

    def reset(self, q: np.ndarray) -> None:
        """A fresh start at ``q`` (a simulator reset): Cartesian hold, no torque history. Not for
        a running arm: the rate limit must ramp from the torque last sent."""
        self.mode = "cartesian"
        self.hold(q)
        self.last_torque = np.zeros(self.kin.nq)

    def hold(self, q: np.ndarray) -> None:
        """Make the current pose the target (used on start, reset and e-stop)."""
        pose = self.kin.forward(q)
        self.target_pos = np.clip(pose.translation.copy(), self.box_min, self.box_max)
        self.target_rot = pose.rotation.copy()
        self.target_q = np.clip(np.asarray(q, dtype=float), self.q_min, self.q_max)
        self.measured_q = np.array(q, dtype=float)
        self.path_ref, self._path_speed = self.target_q.copy(), 0.0

    # -- the loop ---------------------------------------------------------------------------
    def compute(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        pose, jac, gravity = self.kin.state(q, dq)
        self.last_pose = pose
        self.measured_q[:] = q
        if self.mode == "joint":
            # A joint spring (damping scaled by each joint's inertia) pulled by a reference that
            # travels the straight joint-space path the workspace-box check verified, with a
            # bounded speed and acceleration and its velocity fed forward: the arm stays on
            # that path instead of cutting across (joints with different bandwidths would).
            v_ref, a_ref = self._advance_path()
            error = self.path_ref - q
            largest = float(np.max(np.abs(error)))
            if largest > self.cfg.max_joint_error:  # reference limiting, as a whole
                error = error * (self.cfg.max_joint_error / largest)
            mass = self.kin.mass_matrix(q)
            stiffness = self.cfg.joint_stiffness
            tau = (stiffness * error - 2.0 * np.sqrt(stiffness * np.diag(mass)) * (dq - v_ref)
                   + mass @ a_ref)
        else:
            pos_err = _clip_norm(self.target_pos - pose.translation, self.cfg.max_pos_error)
            rot_err = _clip_norm(pin.log3(self.target_rot @ pose.rotation.T),
                                 self.cfg.max_rot_error)
            error = np.concatenate([pos_err, rot_err])
            wrench = self._k * error - self._d * (jac @ dq)
            tau = jac.T @ wrench
            # Nullspace posture task, projected with a damped pseudo-inverse so it cannot
            # disturb the TCP (a 6×6 solve: cheaper than an SVD at the physics rate).
            posture = self.cfg.nullspace_stiffness * (self.home - q)
            jjt = jac @ jac.T
            jjt[np.diag_indices(6)] += 1e-4
            tau += posture - jac.T @ np.linalg.solve(jjt, jac @ posture)
        tau -= self.cfg.joint_damping * dq
        tau += self._joint_limit_torque(q)
        return self._output_stage(tau, gravity)

    def _advance_path(self) -> np.ndarray:
        """Move ``path_ref`` one period toward ``target_q`` (max-abs joint speed ramped by
        ``joint_path_accel`` up to ``joint_path_speed`` and down to stop on the target);
        returns its velocity and acceleration."""
        delta = self.target_q - self.path_ref
        remaining = float(np.max(np.abs(delta)))
        dt, accel, before = self.period_s, self.cfg.joint_path_accel, self._path_speed
        speed = min(before + accel * dt, self.cfg.joint_path_speed,
                    math.sqrt(2.0 * accel * remaining))
        if speed * dt >= remaining:
            self.path_ref = self.target_q.copy()
            self._path_speed = 0.0
            return np.zeros_like(delta), np.zeros_like(delta)
        self._path_speed = speed
        direction = delta / remaining
        self.path_ref = self.path_ref + direction * (speed * dt)
        return direction * speed, direction * ((speed - before) / dt)

    def _output_stage(self, tau: np.ndarray, gravity: np.ndarray) -> np.ndarray:
        """Rate-limit the controller's torque, add gravity where the hardware does not, clamp
        the total to the effort limits (the rate reference is what was actually sent)."""
        step = self.max_torque_step
        tau = np.clip(tau, self.last_torque - step, self.last_torque + step)
        if self.adds_gravity:
            tau = np.clip(tau, -self.effort - gravity, self.effort - gravity)
            self.last_torque = tau
            return tau + gravity
        tau = np.clip(tau, -self.effort, self.effort)
        self.last_torque = tau
        return tau.copy()

    def _joint_limit_torque(self, q: np.ndarray) -> np.ndarray:
        below = np.minimum(q - self.q_min, 0.0)
        above = np.maximum(q - self.q_max, 0.0)
        return -self.cfg.joint_limit_stiffness * (below + above)
