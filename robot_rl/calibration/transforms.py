"""Small rigid-transform helpers (numpy only; no scipy in the runtime image).

Conventions used throughout the calibration package:

* A pose ``T_a_b`` is a 4x4 homogeneous matrix mapping points expressed in
  frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``), i.e. "a <- b".
* Quaternions are stored **xyzw** (the ROS / tf2 order), always normalised and
  with ``w >= 0`` so that the same rotation always serialises the same way.
* Camera frames are **OpenCV optical frames**: +z forward (into the scene),
  +x right, +y down. This equals the ROS ``*_optical_frame`` convention.
"""

from __future__ import annotations

import numpy as np

#: Rotation taking vectors from an OpenCV/ROS optical camera frame into a
#: MuJoCo/OpenGL camera frame. MuJoCo cameras look along their local -z with +y
#: up, OpenCV cameras look along +z with +y down; both have +x to the right. The
#: two frames therefore differ by a 180 degree rotation about x: y and z flip
#: sign. ``T_world_cvcam = T_world_mjcam @ T_MJCAM_CVCAM``.
R_MJCAM_CVCAM = np.diag([1.0, -1.0, -1.0])
T_MJCAM_CVCAM = np.eye(4)
T_MJCAM_CVCAM[:3, :3] = R_MJCAM_CVCAM


def make_T(R: np.ndarray, t) -> np.ndarray:
    """Build a 4x4 pose from a 3x3 rotation and a translation 3-vector."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=float).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=float).reshape(3)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    """Invert a rigid transform without a general matrix inverse (exact for SE(3))."""
    T = np.asarray(T, dtype=float)
    R = T[:3, :3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ T[:3, 3]
    return out


def skew(v) -> np.ndarray:
    """Cross-product matrix: ``skew(a) @ b == np.cross(a, b)``."""
    x, y, z = np.asarray(v, dtype=float).reshape(3)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Closest rotation matrix (Frobenius norm) to ``M``, via SVD."""
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=float))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    return U @ D @ Vt


def rotvec_to_matrix(rv) -> np.ndarray:
    """Axis-angle vector (angle = norm, radians) to rotation matrix (Rodrigues)."""
    rv = np.asarray(rv, dtype=float).reshape(3)
    theta = float(np.linalg.norm(rv))
    if theta < 1e-12:
        return np.eye(3) + skew(rv)
    k = skew(rv / theta)
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix to axis-angle vector; stable near 0 and near 180 degrees."""
    q = matrix_to_quat(R)  # xyzw, w >= 0 -> angle in [0, pi]
    v = q[:3]
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[3])
    return v / s * angle


def rotation_angle(R: np.ndarray) -> float:
    """Rotation angle of ``R`` in radians, in [0, pi]."""
    return float(np.linalg.norm(matrix_to_rotvec(R)))


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix to unit quaternion **xyzw** with w >= 0.

    Uses the largest-diagonal branch (Shepperd's method) so precision does not
    collapse for rotations near 180 degrees.
    """
    R = np.asarray(R, dtype=float).reshape(3, 3)
    tr = np.trace(R)
    if tr > 0.0:
        s = np.sqrt(tr + 1.0) * 2.0
        w = 0.25 * s
        x = (R[2, 1] - R[1, 2]) / s
        y = (R[0, 2] - R[2, 0]) / s
        z = (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2.0
        w = (R[2, 1] - R[1, 2]) / s
        x = 0.25 * s
        y = (R[0, 1] + R[1, 0]) / s
        z = (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2.0
        w = (R[0, 2] - R[2, 0]) / s
        x = (R[0, 1] + R[1, 0]) / s
        y = 0.25 * s
        z = (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2.0
        w = (R[1, 0] - R[0, 1]) / s
        x = (R[0, 2] + R[2, 0]) / s
        y = (R[1, 2] + R[2, 1]) / s
        z = 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return q


def quat_to_matrix(q) -> np.ndarray:
    """Unit quaternion **xyzw** to rotation matrix (normalises the input)."""
    x, y, z, w = np.asarray(q, dtype=float).reshape(4) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def wxyz_to_xyzw(q) -> np.ndarray:
    """MuJoCo stores quaternions as wxyz; ROS uses xyzw."""
    q = np.asarray(q, dtype=float).reshape(4)
    return np.array([q[1], q[2], q[3], q[0]])


def xyzw_to_wxyz(q) -> np.ndarray:
    q = np.asarray(q, dtype=float).reshape(4)
    return np.array([q[3], q[0], q[1], q[2]])


def euler_xyz_to_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation ``Rz @ Ry @ Rx`` (fixed-axis x, then y, then z), radians."""
    return rotvec_to_matrix([0, 0, rz]) @ rotvec_to_matrix([0, ry, 0]) @ rotvec_to_matrix([rx, 0, 0])


def pose_error(T_est: np.ndarray, T_ref: np.ndarray) -> tuple[float, float]:
    """(translation error in metres, rotation error in degrees) between two poses."""
    T_est = np.asarray(T_est, dtype=float)
    T_ref = np.asarray(T_ref, dtype=float)
    dt = float(np.linalg.norm(T_est[:3, 3] - T_ref[:3, 3]))
    dR = T_est[:3, :3] @ T_ref[:3, :3].T
    return dt, float(np.degrees(rotation_angle(dR)))


def check_pose(T, name: str = "pose") -> np.ndarray:
    """Validate a 4x4 rigid transform; return it as float array or raise ValueError naming ``name``."""
    T = np.asarray(T, dtype=float)
    if T.shape != (4, 4):
        raise ValueError(f"{name}: expected a 4x4 homogeneous transform, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError(f"{name}: contains NaN/inf")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-9):
        raise ValueError(f"{name}: last row must be [0 0 0 1], got {T[3].tolist()}")
    R = T[:3, :3]
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    if err > 1e-4 or np.linalg.det(R) < 0:
        raise ValueError(
            f"{name}: rotation block is not a proper rotation (|R R^T - I|max={err:.2e}, det={np.linalg.det(R):.4f})"
        )
    return T
