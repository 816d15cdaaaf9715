"""Arm kinematics and dynamics from the URDF, through pinocchio.

The gripper joints are locked out of the model: the arm controller sees exactly the arm joints,
in the order the configuration names them, whatever order the URDF declares them in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from robot_rl.robot.description import resolve_urdf


@dataclass
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class ArmKinematics:
    def __init__(self, urdf: str, arm_joints: list[str], ee_frame: str,
                 locked_positions: dict[str, float] | None = None):
        path = resolve_urdf(urdf)
        full = pin.buildModelFromUrdf(str(path))
        names = list(full.names)
        missing = [j for j in arm_joints if j not in names]
        if missing:
            raise ValueError(f"joints {missing} are not in {path}; the URDF has "
                             f"{[n for n in names if n != 'universe']}")
        locked = [full.getJointId(n) for n in names[1:] if n not in arm_joints]
        q_locked = pin.neutral(full)
        for name, value in (locked_positions or {}).items():
            jid = full.getJointId(name)
            q_locked[full.joints[jid].idx_q] = value
        self.model = pin.buildReducedModel(full, locked, q_locked) if locked else full
        if not self.model.existFrame(ee_frame):
            raise ValueError(f"end-effector frame '{ee_frame}' is not in {path}")
        self.data = self.model.createData()
        self.ee_frame_id = self.model.getFrameId(ee_frame)
        self.joint_names = arm_joints
        # Permutation between the configured joint order and pinocchio's q vector.
        self._q_index = np.array([self.model.joints[self.model.getJointId(j)].idx_q
                                  for j in arm_joints])
        m = self.model
        self.limits = JointLimits(
            lower=m.lowerPositionLimit[self._q_index].copy(),
            upper=m.upperPositionLimit[self._q_index].copy(),
            velocity=m.velocityLimit[self._q_index].copy(),
            effort=m.effortLimit[self._q_index].copy())
        self._identity_order = (m.nq == len(arm_joints)
                                 and np.array_equal(self._q_index, np.arange(m.nq)))
        self._q = pin.neutral(m)
        self._v = np.zeros(m.nv)
        self.nq = len(arm_joints)

    def _set(self, q: np.ndarray, v: np.ndarray | None = None) -> None:
        if self._identity_order:  # the common case: a plain copy, no fancy indexing
            self._q[:] = q
            if v is not None:
                self._v[:] = v
            return
        self._q[self._q_index] = q
        if v is not None:
            self._v[self._q_index] = v

    def forward(self, q: np.ndarray) -> pin.SE3:
        """End-effector pose in the base frame."""
        self._set(q)
        pin.framesForwardKinematics(self.model, self.data, self._q)
        return self.data.oMf[self.ee_frame_id].copy()

    def state(self, q: np.ndarray, v: np.ndarray) -> tuple[pin.SE3, np.ndarray, np.ndarray]:
        """Pose, 6×n Jacobian (world-aligned frame at the TCP) and gravity torques, in one pass."""
        self._set(q, v)
        m, d = self.model, self.data
        pin.computeJointJacobians(m, d, self._q)
        pin.updateFramePlacements(m, d)
        jac = pin.getFrameJacobian(m, d, self.ee_frame_id, pin.LOCAL_WORLD_ALIGNED)
        gravity = pin.computeGeneralizedGravity(m, d, self._q)
        if self._identity_order:
            return d.oMf[self.ee_frame_id], jac, gravity
        return d.oMf[self.ee_frame_id], jac[:, self._q_index], gravity[self._q_index]

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        self._set(q)
        M = pin.crba(self.model, self.data, self._q)
        M = np.triu(M) + np.triu(M, 1).T
        return M[np.ix_(self._q_index, self._q_index)]

    def inverse(self, target: pin.SE3, q0: np.ndarray, iters: int = 200,
                tol: float = 1e-4) -> np.ndarray:
        """Damped least-squares IK, clamped to the joint limits (used for resets and tests)."""
        q = np.array(q0, dtype=float)
        for _ in range(iters):
            pose, jac, _ = self.state(q, np.zeros_like(q))
            err = pin.log6(pose.actInv(target)).vector
            err_world = np.concatenate([pose.rotation @ err[:3], pose.rotation @ err[3:]])
            if np.linalg.norm(err_world) < tol:
                break
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err_world)
            q = np.clip(q + dq, self.limits.lower, self.limits.upper)
        return q
