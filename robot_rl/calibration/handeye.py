"""Hand-eye calibration: eye-in-hand (camera on the gripper) and eye-to-hand (fixed camera).

Inputs per view: an image of the calibration board (-> ``T_cam_board`` from
solvePnP) and the end-effector pose ``T_base_ee`` (4x4, base <- ee) from
forward kinematics at the moment the image was taken.

Unknowns and the classic ``AX = XB`` form:

* eye-in-hand: X = ``T_ee_cam``; the board is fixed in the base frame, so
  ``T_base_ee_i X T_cam_board_i = T_base_board`` is the same for every i.
* eye-to-hand: X = ``T_base_cam``; the board is fixed on the gripper, so
  ``T_ee_base_i X T_cam_board_i = T_ee_board`` is the same for every i. This
  is the eye-in-hand problem with the robot poses inverted (OpenCV documents
  the same trick for ``cv2.calibrateHandEye``).

For a pair of views (i, j): ``A = G_j^-1 G_i`` (gripper motion), ``B = C_j C_i^-1``
(camera motion), with ``G = T_base_ee`` (or its inverse) and
``C = T_cam_board``; then ``A X = X B``.

Why own implementations: the OpenCV 5 Python wheel in this image exposes the
``CALIB_HAND_EYE_*`` constants but not ``cv2.calibrateHandEye``. The five
methods OpenCV offers are implemented here from their papers (numpy only)
under the same names; when a build does provide ``cv2.calibrateHandEye`` it is
used as an extra cross-check (``opencv_cross_check``), never silently instead.

* TSAI: Tsai & Lenz 1989, modified Rodrigues vectors, linear least squares.
* PARK: Park & Martin 1994, rotation from log-map vectors via (M^T M)^-1/2 M^T.
* HORAUD: Horaud & Dornaika 1995, unit quaternion as the smallest eigenvector.
* ANDREFF: Andreff et al. 2001, rotation+translation jointly linear (Kronecker).
* DANIILIDIS: Daniilidis 1999, dual quaternions, simultaneous via SVD.

Rotation-first methods (TSAI, PARK, HORAUD) share the translation step
``(R_A - I) t_X = R_X t_B - t_A`` solved by linear least squares.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import yaml

from robot_rl.paths import atomic_write_text

from .board import BoardConfig, Detection, detect_board
from .errors import (
    BlurredImageError,
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    DegenerateMotionError,
    InconsistentDataError,
    InsufficientViewsError,
)
from .transforms import (
    check_pose,
    invert_T,
    make_T,
    matrix_to_quat,
    matrix_to_rotvec,
    project_to_so3,
    quat_to_matrix,
    rotation_angle,
    skew,
)

__all__ = [
    "METHODS",
    "EYE_IN_HAND",
    "EYE_TO_HAND",
    "HandEyeConfig",
    "MethodResult",
    "HandEyeResult",
    "Extrinsic",
    "board_pose",
    "solve_ax_xb",
    "check_motion_diversity",
    "solve_hand_eye",
    "calibrate_hand_eye",
    "extrinsic_dict",
    "write_extrinsic",
    "load_extrinsic",
    "static_transform_args",
    "load_robot_poses",
    "main",
]

METHODS = ("TSAI", "PARK", "HORAUD", "ANDREFF", "DANIILIDIS")
EYE_IN_HAND = "eye_in_hand"
EYE_TO_HAND = "eye_to_hand"
MODES = (EYE_IN_HAND, EYE_TO_HAND)

Log = Callable[[str], None]


@dataclass
class HandEyeConfig:
    """Thresholds for rejecting inputs/results.

    min_views: views with both a board pose and a robot pose.
    min_rotation_spread_deg: the largest relative robot rotation between any
        two views must reach this (pure translations leave X's rotation and
        the translation along the rotation axes unobservable).
    min_distinct_axes: relative-rotation axes (sign-free, in the base frame)
        that differ by > axis_separation_deg from each other. Two non-parallel
        axes are the mathematical minimum; 3 gives a well-conditioned solve.
    max_angle_mismatch_deg: per view, the median |angle(A_ij) - angle(B_ij)|
        over j. Robot and camera motions of a rigid mount rotate by the same
        angle; a mismatch means mis-paired images/poses or stale FK.
    max_residual_mm / max_residual_deg: refuse a best solution whose board
        pose consistency (RMS over views) exceeds these.
    max_pnp_error_px: drop views whose board pose reprojects worse than this.
    min_sharpness: drop views whose board region is blurred (variance of the
        Laplacian, as for intrinsics); a blurred board gives a biased pose.
    """

    min_views: int = 5
    min_rotation_spread_deg: float = 10.0
    min_distinct_axes: int = 3
    axis_separation_deg: float = 15.0
    min_pair_rotation_deg: float = 3.0
    max_angle_mismatch_deg: float = 2.0
    max_residual_mm: float = 5.0
    max_residual_deg: float = 1.0
    max_pnp_error_px: float = 2.0
    min_sharpness: float = 100.0


@dataclass
class MethodResult:
    method: str
    T: np.ndarray  # the estimated X
    residual_mm: float  # RMS deviation of the target pose over views (translation)
    residual_deg: float  # same, rotation
    score: float  # residual_mm + lever * residual_rad (mm); lower is better
    reprojection_px: float | None = None


@dataclass
class HandEyeResult:
    """Result of hand-eye calibration.

    T: eye-in-hand -> ``T_ee_cam``; eye-to-hand -> ``T_base_cam`` (camera =
    OpenCV optical frame). T_target: the consensus board pose (``T_base_board``
    or ``T_ee_board``).
    """

    mode: str
    T: np.ndarray
    method: str
    methods: dict[str, MethodResult]
    T_target: np.ndarray
    n_views: int
    used_views: list[str] = field(default_factory=list)
    rejected_views: list[tuple[str, str]] = field(default_factory=list)
    opencv_cross_check: dict[str, float] | None = None

    def summary(self) -> str:
        what = "T_ee_cam" if self.mode == EYE_IN_HAND else "T_base_cam"
        lines = [f"hand-eye ({self.mode}, {self.n_views} views): best method {self.method}"]
        for name, r in self.methods.items():
            rp = f", reproj {r.reprojection_px:.3f} px" if r.reprojection_px is not None else ""
            mark = "*" if name == self.method else " "
            lines.append(
                f" {mark} {name:10s} target consistency {r.residual_mm:7.3f} mm {r.residual_deg:7.4f} deg{rp}  "
                f"t={np.array2string(r.T[:3, 3], precision=4)}"
            )
        q = matrix_to_quat(self.T[:3, :3])
        lines.append(f"{what}: t={np.array2string(self.T[:3, 3], precision=5)} q_xyzw={np.array2string(q, precision=5)}")
        for name, why in self.rejected_views:
            lines.append(f"  dropped view {name}: {why}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Quaternion algebra (wxyz internally: the scalar-first form keeps the
# multiplication matrices readable). Public I/O stays xyzw.
# ---------------------------------------------------------------------------
def _q_wxyz(R: np.ndarray) -> np.ndarray:
    x, y, z, w = matrix_to_quat(R)
    return np.array([w, x, y, z])


def _q_mul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    pw, pv = p[0], p[1:]
    qw, qv = q[0], q[1:]
    return np.concatenate([[pw * qw - pv @ qv], pw * qv + qw * pv + np.cross(pv, qv)])


def _q_left(q: np.ndarray) -> np.ndarray:
    """Matrix L(q) with q*p = L(q) p."""
    w, x, y, z = q
    return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])


def _q_right(q: np.ndarray) -> np.ndarray:
    """Matrix R(q) with p*q = R(q) p."""
    w, x, y, z = q
    return np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])


def _q_to_R(q_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = q_wxyz
    return quat_to_matrix([x, y, z, w])


# ---------------------------------------------------------------------------
# AX = XB solvers
# ---------------------------------------------------------------------------
def _motion_pairs(G: Sequence[np.ndarray], C: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """All pairs i<j: A = G_j^-1 G_i, B = C_j C_i^-1 (so that A X = X B)."""
    pairs = []
    n = len(G)
    for i in range(n):
        for j in range(i + 1, n):
            A = invert_T(G[j]) @ G[i]
            B = C[j] @ invert_T(C[i])
            pairs.append((A, B))
    return pairs


def _translation_ls(pairs, Rx: np.ndarray) -> np.ndarray:
    M = np.vstack([A[:3, :3] - np.eye(3) for A, _ in pairs])
    b = np.concatenate([Rx @ B[:3, 3] - A[:3, 3] for A, B in pairs])
    t, *_ = np.linalg.lstsq(M, b, rcond=None)
    return t


def _tsai(pairs) -> np.ndarray:
    # Modified Rodrigues vector P = 2 sin(theta/2) k. For A X = X B:
    # skew(P_A + P_B) P' = P_B - P_A, with P' = P_X / sqrt(4 - |P_X|^2).
    rows, rhs = [], []
    for A, B in pairs:
        pa = _mod_rodrigues(A[:3, :3])
        pb = _mod_rodrigues(B[:3, :3])
        rows.append(skew(pa + pb))
        rhs.append(pb - pa)
    p_prime, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)
    px = 2.0 * p_prime / math.sqrt(1.0 + float(p_prime @ p_prime))
    n2 = float(px @ px)
    Rx = (1.0 - n2 / 2.0) * np.eye(3) + 0.5 * (np.outer(px, px) + math.sqrt(max(4.0 - n2, 0.0)) * skew(px))
    Rx = project_to_so3(Rx)
    return make_T(Rx, _translation_ls(pairs, Rx))


def _mod_rodrigues(R: np.ndarray) -> np.ndarray:
    rv = matrix_to_rotvec(R)
    theta = float(np.linalg.norm(rv))
    if theta < 1e-12:
        return np.zeros(3)
    return 2.0 * math.sin(theta / 2.0) * rv / theta


def _park(pairs) -> np.ndarray:
    # log(R_A) = R_X log(R_B); with M = sum beta alpha^T, R_X = (M^T M)^-1/2 M^T.
    M = np.zeros((3, 3))
    for A, B in pairs:
        M += np.outer(matrix_to_rotvec(B[:3, :3]), matrix_to_rotvec(A[:3, :3]))
    MtM = M.T @ M
    w, V = np.linalg.eigh(MtM)
    if w.min() <= 1e-12 * max(w.max(), 1e-300):
        raise DegenerateMotionError("PARK: rotation axes span less than 3-D; cannot invert M^T M")
    Rx = V @ np.diag(1.0 / np.sqrt(w)) @ V.T @ M.T
    Rx = project_to_so3(Rx)
    return make_T(Rx, _translation_ls(pairs, Rx))


def _horaud(pairs) -> np.ndarray:
    # q_A * q_X = q_X * q_B  ->  (L(q_A) - R(q_B)) q_X = 0; minimise over unit q_X:
    # smallest eigenvector of sum (L - R)^T (L - R).
    S = np.zeros((4, 4))
    for A, B in pairs:
        qa = _q_wxyz(A[:3, :3])
        qb = _q_wxyz(B[:3, :3])
        M = _q_left(qa) - _q_right(qb)
        S += M.T @ M
    _, V = np.linalg.eigh(S)
    Rx = _q_to_R(V[:, 0])
    return make_T(Rx, _translation_ls(pairs, Rx))


def _andreff(pairs) -> np.ndarray:
    # Column-major vec: vec(R_A R_X) = (I kron R_A) vec(R_X) and
    # vec(R_X R_B) = (R_B^T kron I) vec(R_X). Translation: R_A t_X + t_A = R_X t_B + t_X
    # -> -(t_B^T kron I) vec(R_X) + (R_A - I) t_X = -t_A. One linear system in 12 unknowns.
    I3 = np.eye(3)
    rows, rhs = [], []
    for A, B in pairs:
        Ra, ta = A[:3, :3], A[:3, 3]
        Rb, tb = B[:3, :3], B[:3, 3]
        rows.append(np.hstack([np.kron(I3, Ra) - np.kron(Rb.T, I3), np.zeros((9, 3))]))
        rhs.append(np.zeros(9))
        rows.append(np.hstack([-np.kron(tb.reshape(1, 3), I3), Ra - I3]))
        rhs.append(-ta)
    z, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)
    Rx_raw = z[:9].reshape(3, 3, order="F")
    # The linear solution is not exactly orthonormal under noise: project it,
    # then re-solve t with the projected rotation (the joint t was fitted to
    # the un-projected matrix).
    if np.linalg.det(Rx_raw) < 0:
        Rx_raw = -Rx_raw
    Rx = project_to_so3(Rx_raw)
    return make_T(Rx, _translation_ls(pairs, Rx))


def _dual_quat(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = _q_wxyz(T[:3, :3])
    t = np.concatenate([[0.0], T[:3, 3]])
    return q, 0.5 * _q_mul(t, q)


def _daniilidis(pairs) -> np.ndarray:
    rows = []
    for A, B in pairs:
        qa, qa_d = _dual_quat(A)
        qb, qb_d = _dual_quat(B)
        # Same rotation angle => equal scalar parts only if both have w >= 0
        # (matrix_to_quat guarantees it); flip the dual part together with q.
        a, ad, b, bd = qa[1:], qa_d[1:], qb[1:], qb_d[1:]
        S = np.zeros((6, 8))
        S[:3, 0] = a - b
        S[:3, 1:4] = skew(a + b)
        S[3:, 0] = ad - bd
        S[3:, 1:4] = skew(ad + bd)
        S[3:, 4] = a - b
        S[3:, 5:8] = skew(a + b)
        rows.append(S)
    T = np.vstack(rows)
    _, sv, Vt = np.linalg.svd(T)
    v7, v8 = Vt[-2], Vt[-1]
    u1, w1 = v7[:4], v7[4:]
    u2, w2 = v8[:4], v8[4:]
    # q = l1 u1 + l2 u2, q' = l1 w1 + l2 w2 with |q| = 1 and q.q' = 0.
    a_ = u1 @ w1
    b_ = u1 @ w2 + u2 @ w1
    c_ = u2 @ w2
    if abs(a_) < 1e-12:
        candidates = [-c_ / b_] if abs(b_) > 1e-12 else [0.0]
    else:
        disc = b_ * b_ - 4 * a_ * c_
        if disc < 0:
            disc = 0.0  # noise can push a double root slightly negative
        candidates = [(-b_ + math.sqrt(disc)) / (2 * a_), (-b_ - math.sqrt(disc)) / (2 * a_)]
    best = None
    for s in candidates:
        val = s * s * (u1 @ u1) + 2 * s * (u1 @ u2) + u2 @ u2
        if best is None or val > best[1]:
            best = (s, val)
    s, val = best
    l2 = 1.0 / math.sqrt(val)
    l1 = s * l2
    q = l1 * u1 + l2 * u2
    qd = l1 * w1 + l2 * w2
    Rx = _q_to_R(q / np.linalg.norm(q))
    q_conj = np.concatenate([[q[0]], -q[1:]])
    t = 2.0 * _q_mul(qd, q_conj)[1:]
    return make_T(Rx, t)


_SOLVERS = {"TSAI": _tsai, "PARK": _park, "HORAUD": _horaud, "ANDREFF": _andreff, "DANIILIDIS": _daniilidis}


def solve_ax_xb(G: Sequence[np.ndarray], C: Sequence[np.ndarray], method: str = "TSAI") -> np.ndarray:
    """Solve ``G_i X C_i = const`` (i.e. AX = XB over all view pairs) with one method.

    G: gripper poses as used by the formulation (``T_base_ee`` for eye-in-hand,
    ``T_ee_base`` for eye-to-hand); C: ``T_cam_board`` per view. No input checks
    here; see :func:`solve_hand_eye`.
    """
    method = method.upper()
    if method not in _SOLVERS:
        raise ValueError(f"unknown hand-eye method {method!r}; expected one of {METHODS}")
    return _SOLVERS[method](_motion_pairs(G, C))


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _rotation_mean(Rs: Sequence[np.ndarray]) -> np.ndarray:
    return project_to_so3(np.sum(Rs, axis=0))


def _distinct_axes(axes: Sequence[np.ndarray], sep_deg: float) -> list[np.ndarray]:
    reps: list[np.ndarray] = []
    cos_sep = math.cos(math.radians(sep_deg))
    for a in axes:
        if all(abs(float(a @ r)) < cos_sep for r in reps):
            reps.append(a)
    return reps


def check_motion_diversity(
    T_base_ee: Sequence[np.ndarray], T_cam_board: Sequence[np.ndarray], config: HandEyeConfig | None = None, names: Sequence[str] | None = None
) -> dict[str, float]:
    """Raise if the views cannot determine the hand-eye transform well.

    Checks view count, rotation spread, number of distinct rotation axes and
    that robot and camera agree on how far they rotated between views.
    Returns diagnostics (max rotation deg, distinct axes, worst angle mismatch).
    """
    cfg = config or HandEyeConfig()
    n = len(T_base_ee)
    names = list(names) if names is not None else [f"view {i}" for i in range(n)]
    if n != len(T_cam_board):
        raise CalibrationError(f"got {n} robot poses but {len(T_cam_board)} board poses; they must be paired 1:1")
    if n < max(3, cfg.min_views):
        raise InsufficientViewsError(
            f"hand-eye needs at least {max(3, cfg.min_views)} views with the board detected, got {n}; "
            "capture more poses (the guided planner produces ~15)"
        )
    max_rot = 0.0
    axes = []
    mismatch = np.zeros((n, n))
    for i in range(n):
        Ri = T_base_ee[i][:3, :3]
        for j in range(i + 1, n):
            Rij = Ri.T @ T_base_ee[j][:3, :3]
            rv = matrix_to_rotvec(Rij)
            ang = float(np.degrees(np.linalg.norm(rv)))
            max_rot = max(max_rot, ang)
            if ang >= cfg.min_pair_rotation_deg:
                axes.append(Ri @ (rv / np.linalg.norm(rv)))  # axis in the base frame
            cam_ang = float(np.degrees(rotation_angle(T_cam_board[j][:3, :3] @ T_cam_board[i][:3, :3].T)))
            mismatch[i, j] = mismatch[j, i] = abs(ang - cam_ang)
    if max_rot < cfg.min_rotation_spread_deg:
        raise DegenerateMotionError(
            f"robot orientations differ by at most {max_rot:.2f} deg between views (need >= "
            f"{cfg.min_rotation_spread_deg} deg). Pure translations cannot determine the hand-eye rotation; "
            "tilt the end-effector about different axes (e.g. +-25 deg)"
        )
    reps = _distinct_axes(axes, cfg.axis_separation_deg)
    if len(reps) < cfg.min_distinct_axes:
        ax_txt = "; ".join(np.array2string(a, precision=2) for a in reps)
        raise DegenerateMotionError(
            f"relative robot rotations use only {len(reps)} distinct axis/axes (base frame: {ax_txt}); need >= "
            f"{cfg.min_distinct_axes} separated by > {cfg.axis_separation_deg} deg. Rotations about a single axis "
            "leave the translation along that axis unobservable; add tilts about other axes"
        )
    per_view = np.array([np.median(np.delete(mismatch[i], i)) for i in range(n)])
    bad = [k for k in range(n) if per_view[k] > cfg.max_angle_mismatch_deg]
    if bad:
        listing = ", ".join(f"{names[k]} ({per_view[k]:.2f} deg)" for k in bad[:8])
        raise InconsistentDataError(
            f"robot and camera disagree on rotation angles for {len(bad)} view(s): {listing} "
            f"(median |robot angle - camera angle| > {cfg.max_angle_mismatch_deg} deg). Check image/pose "
            "pairing and timestamps (robot must be still when the image is taken)"
        )
    return {"max_rotation_deg": max_rot, "distinct_axes": float(len(reps)), "worst_angle_mismatch_deg": float(per_view.max())}


# ---------------------------------------------------------------------------
# Board pose
# ---------------------------------------------------------------------------
def board_pose(det: Detection, K: np.ndarray, D: np.ndarray | None) -> tuple[np.ndarray, float]:
    """``(T_cam_board, RMS reprojection px)`` for one detection.

    IPPE gives the planar pose in closed form (both candidates); we keep the
    better one and polish it with Levenberg-Marquardt.
    """
    K = np.asarray(K, float)
    D = np.zeros(5) if D is None else np.asarray(D, float).ravel()
    obj = det.object_points.reshape(-1, 1, 3).astype(np.float64)
    img = det.image_points.reshape(-1, 1, 2).astype(np.float64)
    if len(obj) < 4:
        raise BoardNotFoundError(f"{det.source}: only {len(obj)} corners, need >= 4 for a board pose")
    ok, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj, img, K, D, flags=cv2.SOLVEPNP_IPPE)
    if not ok or len(rvecs) == 0:
        raise BoardNotFoundError(f"{det.source}: solvePnP failed")
    k = int(np.argmin(np.asarray(errs).ravel()))
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvecs[k].copy(), tvecs[k].copy())
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, D)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img.reshape(-1, 2)) ** 2, axis=1))))
    R, _ = cv2.Rodrigues(rvec)
    return make_T(R, tvec.ravel()), rms


# ---------------------------------------------------------------------------
# Solve
# ---------------------------------------------------------------------------
def _target_poses(mode: str, T_base_ee, X, T_cam_board) -> list[np.ndarray]:
    if mode == EYE_IN_HAND:
        return [T_base_ee[i] @ X @ T_cam_board[i] for i in range(len(T_base_ee))]
    return [invert_T(T_base_ee[i]) @ X @ T_cam_board[i] for i in range(len(T_base_ee))]


def _consistency(targets: Sequence[np.ndarray]) -> tuple[np.ndarray, float, float]:
    t = np.array([T[:3, 3] for T in targets])
    t_mean = t.mean(axis=0)
    R_mean = _rotation_mean([T[:3, :3] for T in targets])
    t_rms = float(np.sqrt(np.mean(np.sum((t - t_mean) ** 2, axis=1))))
    r_err = [rotation_angle(T[:3, :3] @ R_mean.T) for T in targets]
    r_rms = float(np.degrees(np.sqrt(np.mean(np.square(r_err)))))
    return make_T(R_mean, t_mean), t_rms, r_rms


def solve_hand_eye(
    T_base_ee: Sequence[np.ndarray],
    T_cam_board: Sequence[np.ndarray],
    mode: str = EYE_IN_HAND,
    methods: Sequence[str] = METHODS,
    config: HandEyeConfig | None = None,
    detections: Sequence[Detection] | None = None,
    K: np.ndarray | None = None,
    D: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    log: Log | None = None,
) -> HandEyeResult:
    """Solve hand-eye from paired poses with every requested method and pick the best.

    T_base_ee: end-effector poses (4x4, base <- ee) from forward kinematics.
    T_cam_board: board poses (4x4, camera optical frame <- board) from solvePnP.
    mode: ``"eye_in_hand"`` (returns T_ee_cam) or ``"eye_to_hand"`` (returns T_base_cam).

    Each method is scored by how consistently it places the (static) board:
    RMS translation (mm) and rotation (deg) of ``T_base_board`` (eye-in-hand)
    or ``T_ee_board`` (eye-to-hand) over all views; the score converts the
    rotation part to mm at the median camera-board distance. When detections
    and K are given the reprojection of the consensus board is reported too.
    """
    cfg = config or HandEyeConfig()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    G_in = [check_pose(T, f"T_base_ee[{i}]") for i, T in enumerate(T_base_ee)]
    C = [check_pose(T, f"T_cam_board[{i}]") for i, T in enumerate(T_cam_board)]
    names = list(names) if names is not None else [f"view {i}" for i in range(len(G_in))]
    check_motion_diversity(G_in, C, cfg, names)
    G = G_in if mode == EYE_IN_HAND else [invert_T(T) for T in G_in]
    lever_m = float(np.median([np.linalg.norm(T[:3, 3]) for T in C]))
    pairs = _motion_pairs(G, C)
    results: dict[str, MethodResult] = {}
    errors: dict[str, str] = {}
    for m in methods:
        m = m.upper()
        if m not in _SOLVERS:
            raise ValueError(f"unknown hand-eye method {m!r}; expected one of {METHODS}")
        try:
            X = _SOLVERS[m](pairs)
        except (np.linalg.LinAlgError, CalibrationError, ValueError, ZeroDivisionError) as exc:
            errors[m] = str(exc)
            continue
        if not np.all(np.isfinite(X)):
            errors[m] = "non-finite result"
            continue
        T_target, t_rms, r_rms = _consistency(_target_poses(mode, G_in, X, C))
        score = t_rms * 1000.0 + math.radians(r_rms) * lever_m * 1000.0
        reproj = None
        if detections is not None and K is not None:
            reproj = _reprojection(mode, G_in, X, T_target, detections, K, D)
        results[m] = MethodResult(m, X, t_rms * 1000.0, r_rms, score, reproj)
    if not results:
        raise CalibrationError(f"every hand-eye method failed: {errors}")
    best = min(results.values(), key=lambda r: r.score)
    T_target, _, _ = _consistency(_target_poses(mode, G_in, best.T, C))
    result = HandEyeResult(
        mode=mode, T=best.T, method=best.method, methods=results, T_target=T_target, n_views=len(G_in), used_views=names
    )
    result.opencv_cross_check = _opencv_cross_check(G, C, best.T)
    if log:
        log(result.summary())
    if best.residual_mm > cfg.max_residual_mm or best.residual_deg > cfg.max_residual_deg:
        raise CalibrationError(
            f"best hand-eye solution ({best.method}) leaves the board pose inconsistent by {best.residual_mm:.2f} mm / "
            f"{best.residual_deg:.3f} deg RMS over views (limits {cfg.max_residual_mm} mm / {cfg.max_residual_deg} deg). "
            f"Check that robot poses are base<-ee (not ee<-base), in metres, that mode={mode} is right, "
            "that the board did not move and the intrinsics are correct"
        )
    return result


def _reprojection(mode, G_in, X, T_target, detections, K, D) -> float:
    """RMS px of board corners predicted from robot poses + X + consensus board pose."""
    D = np.zeros(5) if D is None else np.asarray(D, float).ravel()
    sq = []
    for i, det in enumerate(detections):
        if mode == EYE_IN_HAND:
            T_cb = invert_T(G_in[i] @ X) @ T_target
        else:
            T_cb = invert_T(X) @ G_in[i] @ T_target
        rvec, _ = cv2.Rodrigues(T_cb[:3, :3])
        proj, _ = cv2.projectPoints(det.object_points.astype(np.float64), rvec, T_cb[:3, 3], np.asarray(K, float), D)
        sq.append(np.sum((proj.reshape(-1, 2) - det.image_points) ** 2, axis=1))
    return float(np.sqrt(np.mean(np.concatenate(sq))))


def _opencv_cross_check(G, C, X) -> dict[str, float] | None:
    fn = getattr(cv2, "calibrateHandEye", None)
    if fn is None:
        return None
    try:
        R, t = fn([g[:3, :3] for g in G], [g[:3, 3] for g in G], [c[:3, :3] for c in C], [c[:3, 3] for c in C],
                  method=cv2.CALIB_HAND_EYE_TSAI)
    except cv2.error:
        return None
    Xcv = make_T(R, np.asarray(t).ravel())
    return {
        "tsai_delta_mm": float(np.linalg.norm(Xcv[:3, 3] - X[:3, 3]) * 1000),
        "tsai_delta_deg": float(np.degrees(rotation_angle(Xcv[:3, :3] @ X[:3, :3].T))),
    }


def calibrate_hand_eye(
    images: Sequence,
    T_base_ee: Sequence[np.ndarray],
    board: BoardConfig,
    K: np.ndarray,
    D: np.ndarray | None = None,
    mode: str = EYE_IN_HAND,
    methods: Sequence[str] = METHODS,
    config: HandEyeConfig | None = None,
    names: Sequence[str] | None = None,
    log: Log | None = print,
) -> HandEyeResult:
    """Images + robot poses -> hand-eye transform.

    Views where the board is not found (or its pose reprojects badly) are
    dropped together with their robot pose and listed in
    ``result.rejected_views``; the remaining views must still pass every check.
    """
    cfg = config or HandEyeConfig()
    if len(images) != len(T_base_ee):
        raise CalibrationError(f"got {len(images)} images but {len(T_base_ee)} robot poses; they must be paired 1:1")
    if not board.orientation_unique:
        raise CalibrationError(
            f"a {board.rows}x{board.cols} checkerboard looks the same rotated by 180 deg, so its pose is ambiguous; "
            "use a ChArUco board or a checkerboard with rows + cols odd (e.g. 7x10)"
        )
    names = list(names) if names is not None else [f"view_{i:03d}" for i in range(len(images))]
    dets, poses, C, kept, rejected = [], [], [], [], []
    for name, img, T in zip(names, images, T_base_ee):
        if isinstance(img, (str, os.PathLike)):
            arr = cv2.imread(str(img), cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise CalibrationError(f"could not read image {img}")
            img = arr
        try:
            det = detect_board(img, board, source=name)
            T_cb, err = board_pose(det, K, D)
        except BoardNotFoundError as exc:
            rejected.append((name, f"board not found: {exc}"))
            continue
        if det.sharpness < cfg.min_sharpness:
            rejected.append((name, f"blurred: Laplacian variance {det.sharpness:.1f} < min_sharpness={cfg.min_sharpness}"))
            continue
        if err > cfg.max_pnp_error_px:
            rejected.append((name, f"board pose reprojection {err:.2f} px > {cfg.max_pnp_error_px} px"))
            continue
        dets.append(det)
        poses.append(np.asarray(T, float))
        C.append(T_cb)
        kept.append(name)
    if not C and rejected and all(w.startswith("blurred") for _, w in rejected):
        raise BlurredImageError(
            f"all {len(images)} hand-eye views are too blurred to use (e.g. {rejected[0][0]}: {rejected[0][1]}); "
            "hold the robot still during capture and check focus"
        )
    if not C:
        raise BoardNotFoundError(
            f"board not found in any of the {len(images)} images ({board.type} {board.rows}x{board.cols}); "
            f"first error: {rejected[0][1] if rejected else 'none'}"
        )
    if len(C) < cfg.min_views and rejected:
        raise InsufficientViewsError(
            f"only {len(C)} of {len(images)} views usable (need {cfg.min_views}); dropped: "
            + "; ".join(f"{n}: {w}" for n, w in rejected[:5])
        )
    result = solve_hand_eye(poses, C, mode, methods, cfg, detections=dets, K=K, D=D, names=kept, log=None)
    result.rejected_views = rejected
    if log:
        log(result.summary())
    return result


# ---------------------------------------------------------------------------
# Extrinsic YAML
# ---------------------------------------------------------------------------
@dataclass
class Extrinsic:
    parent_frame: str
    child_frame: str
    T: np.ndarray  # parent <- child

    @property
    def translation(self) -> np.ndarray:
        return self.T[:3, 3].copy()

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return matrix_to_quat(self.T[:3, :3])


def extrinsic_dict(T: np.ndarray, parent_frame: str, child_frame: str, metadata: dict | None = None) -> dict:
    """YAML-ready block ``{parent_frame, child_frame, translation{x,y,z}, rotation{x,y,z,w}}``.

    The transform maps child-frame points into the parent frame (the tf2
    static transform from parent to child). ``metadata`` goes under
    ``calibration:`` and is ignored by consumers that only need the transform.
    """
    T = check_pose(T, "extrinsic")
    if not parent_frame or not child_frame:
        raise ValueError("parent_frame and child_frame must be non-empty frame ids")
    q = matrix_to_quat(T[:3, :3])
    out = {
        "parent_frame": str(parent_frame),
        "child_frame": str(child_frame),
        "translation": {"x": float(T[0, 3]), "y": float(T[1, 3]), "z": float(T[2, 3])},
        "rotation": {"x": float(q[0]), "y": float(q[1]), "z": float(q[2]), "w": float(q[3])},
    }
    if metadata:
        out["calibration"] = metadata
    return out


def _result_metadata(result: HandEyeResult) -> dict:
    return {
        "mode": result.mode,
        "method": result.method,
        "n_views": result.n_views,
        "residuals": {
            name: {"translation_mm": round(r.residual_mm, 4), "rotation_deg": round(r.residual_deg, 5)}
            | ({"reprojection_px": round(r.reprojection_px, 4)} if r.reprojection_px is not None else {})
            for name, r in result.methods.items()
        },
    }


def write_extrinsic(path: str | os.PathLike, T_or_result, parent_frame: str, child_frame: str, metadata: dict | None = None) -> Path:
    """Write the extrinsic YAML block atomically; accepts a 4x4 or a :class:`HandEyeResult`."""
    if isinstance(T_or_result, HandEyeResult):
        meta = _result_metadata(T_or_result)
        if metadata:
            meta.update(metadata)
        T = T_or_result.T
    else:
        T, meta = T_or_result, metadata
    data = extrinsic_dict(T, parent_frame, child_frame, meta)
    return atomic_write_text(path, "# extrinsic (parent <- child), written by robot_rl.calibration.handeye\n"
                             + yaml.safe_dump(data, sort_keys=False))


def load_extrinsic(path_or_dict) -> Extrinsic:
    """Load/validate an extrinsic block (file path or already-parsed mapping)."""
    src = str(path_or_dict) if not isinstance(path_or_dict, dict) else "extrinsic block"
    if isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            raise CalibrationFileError(f"extrinsic file {p} does not exist; run `robot-rl calibrate handeye` first")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise CalibrationFileError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CalibrationFileError(f"{src}: expected a mapping, got {type(data).__name__}")
    missing = [k for k in ("parent_frame", "child_frame", "translation", "rotation") if k not in data]
    if missing:
        raise CalibrationFileError(f"{src}: missing keys {missing}; expected parent_frame, child_frame, translation{{x,y,z}}, rotation{{x,y,z,w}}")
    try:
        t = np.array([float(data["translation"][k]) for k in "xyz"])
        q = np.array([float(data["rotation"][k]) for k in "xyzw"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationFileError(f"{src}: translation needs numeric x,y,z and rotation numeric x,y,z,w ({exc})") from exc
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise CalibrationFileError(f"{src}: translation/rotation contain NaN/inf")
    nq = float(np.linalg.norm(q))
    if abs(nq - 1.0) > 1e-3:
        raise CalibrationFileError(f"{src}: rotation quaternion must be unit length (xyzw), |q|={nq:.6f}")
    return Extrinsic(str(data["parent_frame"]), str(data["child_frame"]), make_T(quat_to_matrix(q), t))


def static_transform_args(ext: Extrinsic) -> list[str]:
    """Arguments for ``ros2 run tf2_ros static_transform_publisher`` (Humble+ flag form)."""
    t, q = ext.translation, ext.quaternion_xyzw
    return [
        "--x", f"{t[0]:.6f}", "--y", f"{t[1]:.6f}", "--z", f"{t[2]:.6f}",
        "--qx", f"{q[0]:.8f}", "--qy", f"{q[1]:.8f}", "--qz", f"{q[2]:.8f}", "--qw", f"{q[3]:.8f}",
        "--frame-id", ext.parent_frame, "--child-frame-id", ext.child_frame,
    ]


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def load_robot_poses(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Robot poses file: YAML mapping image file name -> pose.

    A pose is either a 4x4 nested list (base <- ee) or
    ``{translation: [x, y, z], rotation: [qx, qy, qz, qw]}``.
    """
    p = Path(path)
    if not p.is_file():
        raise CalibrationFileError(f"robot poses file {p} does not exist")
    data = yaml.safe_load(p.read_text())
    if isinstance(data, dict) and "poses" in data:
        data = data["poses"]
    if not isinstance(data, dict) or not data:
        raise CalibrationFileError(f"{p}: expected a mapping image_name -> pose (4x4 or translation/rotation)")
    out = {}
    for name, v in data.items():
        try:
            if isinstance(v, dict):
                t = np.asarray(v["translation"], float).reshape(3)
                q = np.asarray(v["rotation"], float).reshape(4)
                if abs(np.linalg.norm(q) - 1) > 1e-3:
                    raise ValueError(f"quaternion not unit length (|q|={np.linalg.norm(q):.5f})")
                T = make_T(quat_to_matrix(q), t)
            else:
                T = np.asarray(v, float).reshape(4, 4)
            out[str(name)] = check_pose(T, f"{p}:{name}")
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationFileError(f"{p}: pose for {name!r} is malformed: {exc}") from exc
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``robot-rl calibrate handeye --images DIR --poses poses.yaml --camera-info cam.yaml --board ... --mode eye_in_hand --out ext.yaml``."""
    from .intrinsics import IMAGE_SUFFIXES, add_board_arguments, board_from_args, load_intrinsics

    ap = argparse.ArgumentParser(prog="robot-rl calibrate handeye", description="Hand-eye calibration from board images + robot poses.")
    ap.add_argument("--images", required=True, help="folder of board images")
    ap.add_argument("--poses", required=True, help="YAML: image file name -> base<-ee pose")
    ap.add_argument("--camera-info", required=True, help="ROS camera_info YAML of the camera")
    add_board_arguments(ap)
    ap.add_argument("--mode", choices=MODES, default=EYE_IN_HAND)
    ap.add_argument("--parent-frame", default=None, help="default: ee frame (eye_in_hand) / base frame (eye_to_hand)")
    ap.add_argument("--ee-frame", default="panda_hand")
    ap.add_argument("--base-frame", default="panda_link0")
    ap.add_argument("--child-frame", default="camera_color_optical_frame")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        board = board_from_args(args)
        K, D, _ = load_intrinsics(args.camera_info)
        poses = load_robot_poses(args.poses)
        folder = Path(args.images)
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if not files:
            raise CalibrationError(f"no images found in {folder}")
        missing = [f.name for f in files if f.name not in poses]
        if missing:
            raise CalibrationError(f"no robot pose for images {missing[:5]} in {args.poses}")
        result = calibrate_hand_eye(
            [str(f) for f in files], [poses[f.name] for f in files], board, K, D, args.mode,
            [m.strip().upper() for m in args.methods.split(",") if m.strip()], names=[f.name for f in files],
        )
        parent = args.parent_frame or (args.ee_frame if args.mode == EYE_IN_HAND else args.base_frame)
        out = write_extrinsic(args.out, result, parent, args.child_frame)
    except (CalibrationError, ValueError) as exc:
        print(f"hand-eye calibration failed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
