"""Guided capture planning for intrinsic and hand-eye calibration.

Given a camera model and a (rough) board pose, produce end-effector poses
that put the board at spread-out positions in the image with varied tilts,
which is what both calibrations need:

* intrinsics: corners in every image region (distortion) + tilted views
  (focal length is unobservable from fronto-parallel views);
* hand-eye: rotations about several distinct axes (a single axis leaves the
  translation along it unobservable).

Every pose is checked against a :class:`WorkspaceBox` and for the whole board
staying inside the image before it is returned; rejected candidates are kept
in ``CapturePlan.rejected`` with the reason. Executing the motion (joint
driver / IK) is the caller's job. :class:`HumanPrompt` turns a plan (or a
generic intrinsics sequence) into instructions for a person instead.

Frames: ``T_a_b`` = a <- b. Camera frames are OpenCV optical frames (+z
forward, +y down). Board frame as in :mod:`robot_rl.calibration.board`
(origin at the grid's top-left outer corner, +z into the board).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .board import BoardConfig
from .errors import WorkspaceError
from .transforms import check_pose, euler_xyz_to_matrix, invert_T, make_T

__all__ = [
    "CameraModel",
    "WorkspaceBox",
    "PlannedPose",
    "CapturePlan",
    "DEFAULT_TILTS_DEG",
    "plan_board_views",
    "plan_eye_in_hand",
    "plan_eye_to_hand",
    "HumanPrompt",
]

#: (tilt about camera x, tilt about camera y, roll about the optical axis), deg.
#: Alternating signs and axes give hand-eye >= 3 distinct rotation axes and
#: intrinsics tilted views in both directions; 25 deg is within what a
#: checkerboard detector handles reliably at typical distances.
DEFAULT_TILTS_DEG: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (25.0, 0.0, 0.0),
    (0.0, 25.0, 0.0),
    (-25.0, 0.0, 10.0),
    (0.0, -25.0, -10.0),
    (18.0, 18.0, 15.0),
    (-18.0, 18.0, -15.0),
    (18.0, -18.0, -15.0),
    (-18.0, -18.0, 15.0),
)


@dataclass(frozen=True)
class CameraModel:
    K: np.ndarray
    image_size: tuple[int, int]  # (width, height)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, float)
        if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"CameraModel.K must be a 3x3 matrix with positive focal lengths, got {K.tolist()}")
        object.__setattr__(self, "K", K)

    @classmethod
    def from_camera_info(cls, path) -> "CameraModel":
        from .intrinsics import load_camera_info

        info = load_camera_info(path)
        return cls(info.K, info.image_size)

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(p_cam)
        uvw = (self.K @ p.T).T
        return uvw[:, :2] / uvw[:, 2:3]

    def ray(self, u: float, v: float) -> np.ndarray:
        d = np.linalg.solve(self.K, np.array([u, v, 1.0]))
        return d / d[2]  # z = 1


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box (base frame, metres) the end-effector origin must stay in."""

    min_xyz: tuple[float, float, float]
    max_xyz: tuple[float, float, float]

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.min_xyz, float), np.asarray(self.max_xyz, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box needs min_xyz < max_xyz per axis, got {self.min_xyz} / {self.max_xyz}")

    def contains(self, p) -> bool:
        p = np.asarray(p, float).reshape(3)
        return bool(np.all(p >= self.min_xyz) and np.all(p <= self.max_xyz))

    def violation(self, p) -> str:
        p = np.asarray(p, float).reshape(3)
        msgs = []
        for k, ax in enumerate("xyz"):
            if p[k] < self.min_xyz[k]:
                msgs.append(f"{ax}={p[k]:.3f} < min {self.min_xyz[k]:.3f}")
            elif p[k] > self.max_xyz[k]:
                msgs.append(f"{ax}={p[k]:.3f} > max {self.max_xyz[k]:.3f}")
        return ", ".join(msgs)


@dataclass
class PlannedPose:
    T_base_ee: np.ndarray
    T_cam_board: np.ndarray  # the board pose the camera should see
    image_target: tuple[float, float]  # pixel where the board centre should appear
    region: str
    tilt_deg: tuple[float, float, float]
    distance_m: float
    description: str


@dataclass
class CapturePlan:
    mode: str
    poses: list[PlannedPose]
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.poses)

    def ee_poses(self) -> list[np.ndarray]:
        return [p.T_base_ee for p in self.poses]


def _region_name(fu: float, fv: float) -> str:
    col = "left" if fu < -0.33 else "right" if fu > 0.33 else "centre"
    row = "top" if fv < -0.33 else "bottom" if fv > 0.33 else "middle"
    if col == "centre" and row == "middle":
        return "centre"
    return f"{row}-{col}"


def _board_corners(board: BoardConfig) -> np.ndarray:
    w, h = board.size_m
    return np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]], float)


def plan_board_views(
    camera: CameraModel,
    board: BoardConfig,
    n_views: int = 15,
    distance: float | None = None,
    fill: float = 0.45,
    tilts_deg: Sequence[tuple[float, float, float]] = DEFAULT_TILTS_DEG,
    margin_px: float = 12.0,
    max_tilt_deg: float = 25.0,
    roi: tuple[float, float, float, float] | None = None,
    roll_deg: float = 0.0,
) -> list[tuple[np.ndarray, tuple[float, float], str, tuple[float, float, float], float]]:
    """Relative camera<-board poses spreading the board over the image.

    Returns ``[(T_cam_board, (u, v), region, tilt, distance), ...]`` for up to
    ``n_views`` views: a 3x3 grid of image positions (snake order) crossed with
    the tilt list, distance alternating +-15% around ``distance`` (default:
    board spans ``fill`` of the image width). A candidate whose board corners
    would leave the image is pulled toward the centre until it fits.

    roi: (x0, y0, x1, y1) pixels, end exclusive: place the board only inside this rectangle
    (the grid, the fill and the in-image check use it), e.g. the part of a wrist camera's
    image the gripper does not hide. roll_deg: extra rotation of the board about the optical
    axis for every view, e.g. 90 to fit a wide board into a tall ``roi``.
    """
    if n_views < 1:
        raise ValueError("n_views must be >= 1")
    for t in tilts_deg:
        if max(abs(t[0]), abs(t[1])) > max_tilt_deg + 1e-9:
            raise ValueError(f"tilt {t} exceeds max_tilt_deg={max_tilt_deg}")
    W_img, H_img = camera.image_size
    x0, y0, x1, y1 = roi if roi is not None else (0.0, 0.0, float(W_img), float(H_img))
    if not (0 <= x0 < x1 <= W_img and 0 <= y0 < y1 <= H_img):
        raise ValueError(f"roi {roi} must lie inside the {W_img}x{H_img} image with x0 < x1, y0 < y1")
    w_img, h_img = x1 - x0, y1 - y0
    K = camera.K
    bw, bh = board.size_m
    c, s = abs(np.cos(np.radians(roll_deg))), abs(np.sin(np.radians(roll_deg)))
    ext_u, ext_v = c * bw + s * bh, s * bw + c * bh  # board extent along image u / v
    if distance is None:
        distance = K[0, 0] * ext_u / (fill * w_img)
    cx, cy = x0 + (w_img - 1) / 2.0, y0 + (h_img - 1) / 2.0
    # half extent of the board in pixels at `distance`, to push board edges to image edges
    half_u = 0.5 * K[0, 0] * ext_u / distance
    half_v = 0.5 * K[1, 1] * ext_v / distance
    span_u = max(w_img / 2.0 - half_u - margin_px, 0.0)
    span_v = max(h_img / 2.0 - half_v - margin_px, 0.0)
    grid = [(-1, -1), (0, -1), (1, -1), (1, 0), (0, 0), (-1, 0), (-1, 1), (0, 1), (1, 1)]
    centre_b = np.array([bw / 2.0, bh / 2.0, 0.0])
    corners_b = _board_corners(board)
    out = []
    k = 0
    while len(out) < n_views and k < 6 * n_views:
        gu, gv = grid[k % len(grid)]
        # the tilt index is offset every round so a grid cell gets a new tilt each pass
        tilt = tilts_deg[(k + (k // len(grid)) * 2) % len(tilts_deg)]
        d = distance * (1.0 + 0.15 * ((k % 3) - 1) * (1 if (k // 3) % 2 == 0 else -1))
        k += 1
        R = euler_xyz_to_matrix(*np.radians(tilt))  # board orientation in camera (fronto-parallel = I)
        if roll_deg:
            R = euler_xyz_to_matrix(0.0, 0.0, np.radians(roll_deg)) @ R
        placed = None
        for shrink in np.linspace(1.0, 0.0, 11):
            u = cx + gu * span_u * shrink
            v = cy + gv * span_v * shrink
            p_centre = camera.ray(u, v) * d
            t = p_centre - R @ centre_b
            T_cb = make_T(R, t)
            pc = (T_cb[:3, :3] @ corners_b.T).T + T_cb[:3, 3]
            if np.any(pc[:, 2] <= 0.05):
                continue
            uv = camera.project(pc)
            if np.all(uv[:, 0] >= x0 + margin_px) and np.all(uv[:, 0] <= x1 - 1 - margin_px) and np.all(
                uv[:, 1] >= y0 + margin_px
            ) and np.all(uv[:, 1] <= y1 - 1 - margin_px):
                placed = (T_cb, (float(u), float(v)))
                break
        if placed is None:
            continue
        T_cb, uv = placed
        out.append((T_cb, uv, _region_name((uv[0] - cx) / (w_img / 2), (uv[1] - cy) / (h_img / 2)), tuple(tilt), float(d)))
    if not out:
        raise WorkspaceError("no board placement fits in the image; use a smaller board or a larger distance")
    return out


def _describe(tilt, region, d, mode):
    tx, ty, rz = tilt
    parts = []
    if tx:
        parts.append(f"tilt {abs(tx):.0f} deg {'top edge away' if tx > 0 else 'top edge toward the camera'}")
    if ty:
        parts.append(f"tilt {abs(ty):.0f} deg {'right edge away' if ty < 0 else 'left edge away'}")
    if rz:
        parts.append(f"rotate {abs(rz):.0f} deg {'clockwise' if rz > 0 else 'counter-clockwise'} in the image")
    tilt_txt = ", ".join(parts) if parts else "facing the camera squarely"
    return f"board centred in the {region} of the image, ~{d:.2f} m away, {tilt_txt}"


def plan_eye_in_hand(
    camera: CameraModel,
    T_base_board: np.ndarray,
    T_ee_cam: np.ndarray,
    board: BoardConfig,
    workspace: WorkspaceBox,
    n_views: int = 15,
    distance: float | None = None,
    tilts_deg: Sequence[tuple[float, float, float]] = DEFAULT_TILTS_DEG,
    min_views: int = 5,
    roi: tuple[float, float, float, float] | None = None,
    roll_deg: float = 0.0,
    reachable=None,
) -> CapturePlan:
    """End-effector poses for a wrist camera looking at a board fixed in the base frame.

    T_base_board: board pose (rough is fine, e.g. from one detection + FK).
    T_ee_cam: nominal camera mount (CAD); the calibration then refines it.
    roi / roll_deg: see :func:`plan_board_views`. reachable: optional
    ``T_base_ee -> None | reason`` (e.g. an IK check against the joint limits);
    poses it refuses are kept in ``plan.rejected``.
    Raises :class:`WorkspaceError` if fewer than ``min_views`` poses fit.
    """
    T_base_board = check_pose(T_base_board, "T_base_board")
    T_cam_ee = invert_T(check_pose(T_ee_cam, "T_ee_cam"))
    return _plan("eye_in_hand", lambda T_cb: T_base_board @ invert_T(T_cb) @ T_cam_ee,
                 camera, board, workspace, n_views, distance, tilts_deg, min_views, roi,
                 roll_deg, reachable)


def plan_eye_to_hand(
    camera: CameraModel,
    T_base_cam: np.ndarray,
    T_ee_board: np.ndarray,
    board: BoardConfig,
    workspace: WorkspaceBox,
    n_views: int = 15,
    distance: float | None = None,
    tilts_deg: Sequence[tuple[float, float, float]] = DEFAULT_TILTS_DEG,
    min_views: int = 5,
    roi: tuple[float, float, float, float] | None = None,
    roll_deg: float = 0.0,
    reachable=None,
) -> CapturePlan:
    """End-effector poses that present a gripper-held board to a fixed camera.

    T_base_cam: nominal camera pose (rough); T_ee_board: how the board is held.
    """
    T_base_cam = check_pose(T_base_cam, "T_base_cam")
    T_board_ee = invert_T(check_pose(T_ee_board, "T_ee_board"))
    return _plan("eye_to_hand", lambda T_cb: T_base_cam @ T_cb @ T_board_ee,
                 camera, board, workspace, n_views, distance, tilts_deg, min_views, roi,
                 roll_deg, reachable)


def _plan(mode, ee_pose_for_view, camera, board, workspace, n_views, distance, tilts_deg,
          min_views, roi, roll_deg, reachable) -> CapturePlan:
    """Board views spread over the image -> end-effector poses (``ee_pose_for_view`` maps a
    camera<-board view to base<-ee for the mounting), kept when inside the workspace box and
    reachable."""
    plan = CapturePlan(mode=mode, poses=[])
    for T_cb, uv, region, tilt, d in plan_board_views(
        camera, board, n_views * 2, distance, tilts_deg=tilts_deg, roi=roi, roll_deg=roll_deg
    ):
        T_base_ee = ee_pose_for_view(T_cb)
        desc = _describe(tilt, region, d, mode)
        if not workspace.contains(T_base_ee[:3, 3]):
            plan.rejected.append((desc, f"end-effector outside workspace: {workspace.violation(T_base_ee[:3, 3])}"))
            continue
        why = reachable(T_base_ee) if reachable is not None else None
        if why:
            plan.rejected.append((desc, f"not reachable: {why}"))
            continue
        plan.poses.append(PlannedPose(T_base_ee, T_cb, uv, region, tilt, d, desc))
        if len(plan.poses) >= n_views:
            break
    _require(plan, min_views)
    return plan


def _require(plan: CapturePlan, min_views: int) -> None:
    if len(plan.poses) < min_views:
        reasons = "; ".join(r for _, r in plan.rejected[:3])
        raise WorkspaceError(
            f"only {len(plan.poses)} of the planned {plan.mode} poses lie inside the workspace (need {min_views}); "
            f"e.g. {reasons}. Move the board/camera nearer the workspace centre or enlarge the box"
        )


class HumanPrompt:
    """Turn a capture plan into instructions for a person (no robot motion).

    ``HumanPrompt(plan)`` for robot-mounted setups where an operator jogs the
    arm; ``HumanPrompt.for_intrinsics(camera, board)`` for a hand-held board in
    front of a camera. Iterate to get one instruction string per view;
    :meth:`for_missing_regions` phrases a coverage report's gaps.
    """

    def __init__(self, plan: CapturePlan | None = None, views: list | None = None, mode: str | None = None):
        if plan is None and views is None:
            raise ValueError("HumanPrompt needs a CapturePlan or a list of planned views")
        self.plan = plan
        self._views = views
        self.mode = mode or (plan.mode if plan else "intrinsics")

    @classmethod
    def for_intrinsics(cls, camera: CameraModel, board: BoardConfig, n_views: int = 15) -> "HumanPrompt":
        return cls(views=plan_board_views(camera, board, n_views), mode="intrinsics")

    def __len__(self) -> int:
        return len(self.plan.poses) if self.plan else len(self._views)

    def __iter__(self) -> Iterator[str]:
        return self.instructions()

    def instructions(self) -> Iterator[str]:
        if self.plan is not None:
            items = [(p.description, p.T_base_ee) for p in self.plan.poses]
        else:
            items = [(_describe(t, r, d, self.mode), None) for _, _, r, t, d in self._views]
        n = len(items)
        for i, (desc, T) in enumerate(items, 1):
            if self.mode == "eye_in_hand":
                head = "Jog the arm so the wrist camera sees the"
            elif self.mode == "eye_to_hand":
                head = "Jog the arm (holding the board) so the fixed camera sees the"
            else:
                head = "Hold the board still so the camera sees the"
            text = f"View {i}/{n}: {head} {desc}."
            if T is not None:
                p = T[:3, 3]
                text += f" Target end-effector position (base frame): x={p[0]:.3f} y={p[1]:.3f} z={p[2]:.3f} m."
            text += " Keep the whole board in view and hold still until the capture is confirmed."
            yield text

    @staticmethod
    def for_missing_regions(missing: Sequence[str]) -> list[str]:
        return [f"Add a view with the board in the {region} of the image (tilted ~20 deg)." for region in missing]
