"""Camera intrinsic calibration (pinhole + plumb_bob distortion).

Pipeline: load images -> detect the board with sub-pixel corners -> reject
blurred views -> check that the accepted views cover the whole image ->
``cv2.calibrateCamera`` -> report per-view and RMS reprojection error -> write
a ROS ``camera_info`` YAML.

Nothing here imports ROS; the ROS node and the ``robot-rl`` CLI call
:func:`calibrate_intrinsics`, :func:`write_camera_info`,
:func:`load_camera_info` and :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import yaml

from robot_rl.paths import atomic_write_text

from .board import BoardConfig, Detection, aruco_available, detect_board, render_board_image  # noqa: F401
from .errors import (
    BlurredImageError,
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    InsufficientViewsError,
    PoorCoverageError,
)

__all__ = [
    "BoardConfig",
    "QualityConfig",
    "CoverageReport",
    "RejectedView",
    "IntrinsicsResult",
    "CameraInfo",
    "load_images",
    "detect_views",
    "coverage_report",
    "calibrate_intrinsics",
    "calibrate_from_detections",
    "camera_info_dict",
    "write_camera_info",
    "load_camera_info",
    "load_intrinsics",
    "main",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")

Log = Callable[[str], None]


@dataclass
class QualityConfig:
    """Thresholds that decide whether views are good enough to calibrate from.

    min_sharpness: variance of the (4-neighbour) Laplacian inside the board
        region below which a view is rejected as blurred. Measured on MuJoCo
        640x480 renders: sharp views 4000-5600, Gaussian blur sigma 1 px
        390-540, 1.5 px 140-190, 2 px 65-90; sensor noise of 3 grey levels
        adds ~70. 100 is the usual rule of thumb; tune per camera if needed.
    min_relative_sharpness: also reject views below this fraction of the
        median sharpness of the batch. Catches individual motion-blurred
        frames in an otherwise sharp sequence, whatever the absolute level.
    grid: (cols, rows) cells the image is divided into for coverage.
    min_corners_per_cell: corners (over all accepted views) a cell needs to
        count as covered.
    min_coverage: fraction of cells that must be covered (1.0 = all of them;
        corners near the image border are what pins down distortion).
    min_views: accepted views needed before solving.
    max_rms_px: refuse results whose overall RMS reprojection error exceeds this.
    min_max_tilt_deg: at least one view must be tilted this much relative to
        the optical axis, otherwise focal length is not observable (fronto-
        parallel views only constrain f/distance).
    """

    min_sharpness: float = 100.0
    min_relative_sharpness: float = 0.2
    grid: tuple[int, int] = (3, 3)
    min_corners_per_cell: int = 3
    min_coverage: float = 1.0
    min_views: int = 8
    max_rms_px: float = 1.0
    min_max_tilt_deg: float = 10.0
    #: usable image rectangle (x0, y0, x1, y1) in pixels, end exclusive, or None for the whole
    #: image. Coverage cells split this rectangle, e.g. when the gripper permanently hides part
    #: of a wrist camera's image (the MuJoCo Panda wrist camera: x < ~315 px at 640x480).
    roi: tuple[int, int, int, int] | None = None


@dataclass
class RejectedView:
    source: str
    reason: str


@dataclass
class CoverageReport:
    grid: tuple[int, int]
    counts: np.ndarray  # (rows, cols) corner counts per cell
    covered: np.ndarray  # (rows, cols) bool
    missing: list[str]

    @property
    def fraction(self) -> float:
        return float(self.covered.mean())

    def __str__(self) -> str:
        lines = [f"coverage {self.fraction * 100:.0f}% of {self.grid[0]}x{self.grid[1]} image cells (corner counts):"]
        for row in self.counts:
            lines.append("  " + " ".join(f"{int(c):5d}" for c in row))
        if self.missing:
            lines.append("  missing: " + ", ".join(self.missing))
        return "\n".join(lines)


@dataclass
class IntrinsicsResult:
    K: np.ndarray
    D: np.ndarray
    image_size: tuple[int, int]  # (width, height)
    rms: float
    per_view_errors: list[tuple[str, float]]
    rejected: list[RejectedView]
    coverage: CoverageReport
    std_intrinsics: dict[str, float] = field(default_factory=dict)
    view_tilts_deg: list[float] = field(default_factory=list)
    camera_name: str = "camera"
    rvecs: list[np.ndarray] = field(default_factory=list)
    tvecs: list[np.ndarray] = field(default_factory=list)

    def summary(self) -> str:
        K = self.K
        lines = [
            f"camera {self.camera_name}: {self.image_size[0]}x{self.image_size[1]}, "
            f"{len(self.per_view_errors)} views used, {len(self.rejected)} rejected",
            f"fx={K[0, 0]:.3f} fy={K[1, 1]:.3f} cx={K[0, 2]:.3f} cy={K[1, 2]:.3f}  "
            f"D={np.array2string(self.D.ravel(), precision=5)}",
        ]
        if self.std_intrinsics:
            lines.append(
                "1-sigma: " + " ".join(f"{k}={v:.3f}" for k, v in self.std_intrinsics.items() if k in ("fx", "fy", "cx", "cy"))
            )
        lines.append(f"RMS reprojection error: {self.rms:.4f} px")
        for name, err in self.per_view_errors:
            lines.append(f"  view {name}: {err:.4f} px")
        for rv in self.rejected:
            lines.append(f"  rejected {rv.source}: {rv.reason}")
        lines.append(str(self.coverage))
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def load_images(source: str | os.PathLike | Sequence) -> list[tuple[str, np.ndarray]]:
    """Load calibration images.

    ``source`` may be a folder (all image files in it, sorted by name), a
    single file path, or a list of paths and/or in-memory arrays (arrays are
    named ``view_<i>``). Returns ``[(name, image), ...]``.
    """
    items: list[tuple[str, np.ndarray]] = []
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise CalibrationError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {p}")
            source = files
        elif p.is_file():
            source = [p]
        else:
            raise CalibrationError(f"image source {p} does not exist")
    for i, item in enumerate(source):
        if isinstance(item, np.ndarray):
            items.append((f"view_{i:03d}", item))
            continue
        path = Path(item)
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise CalibrationError(f"could not read image {path} (missing or not an image)")
        items.append((path.name, img))
    if not items:
        raise InsufficientViewsError("no images given")
    return items


def detect_views(
    images: Iterable[tuple[str, np.ndarray]],
    board: BoardConfig,
    quality: QualityConfig | None = None,
    log: Log | None = None,
) -> tuple[list[Detection], list[RejectedView], tuple[int, int]]:
    """Detect the board in each image; split into accepted detections and rejected views.

    A view is rejected when the board is not found or the board region is
    blurred (``quality.min_sharpness``). All images must have the same size.
    """
    quality = quality or QualityConfig()
    accepted: list[Detection] = []
    rejected: list[RejectedView] = []
    size: tuple[int, int] | None = None
    for name, img in images:
        h, w = img.shape[:2]
        if size is None:
            size = (w, h)
        elif size != (w, h):
            raise CalibrationError(
                f"image {name} is {w}x{h} but earlier images are {size[0]}x{size[1]}; "
                "all views of one camera must have the same resolution"
            )
        try:
            det = detect_board(img, board, source=name)
        except BoardNotFoundError as exc:
            rejected.append(RejectedView(name, f"board not found: {exc}"))
            if log:
                log(f"reject {name}: board not found")
            continue
        if det.sharpness < quality.min_sharpness:
            reason = (
                f"blurred: Laplacian variance {det.sharpness:.1f} in the board region is below "
                f"min_sharpness={quality.min_sharpness:.1f}"
            )
            rejected.append(RejectedView(name, reason))
            if log:
                log(f"reject {name}: {reason}")
            continue
        accepted.append(det)
    if size is None:
        raise InsufficientViewsError("no images given")
    if accepted and quality.min_relative_sharpness > 0:
        median = float(np.median([d.sharpness for d in accepted]))
        keep = []
        for det in accepted:
            if det.sharpness < quality.min_relative_sharpness * median:
                reason = (
                    f"blurred: Laplacian variance {det.sharpness:.1f} is below {quality.min_relative_sharpness:.0%} "
                    f"of the batch median {median:.1f} (motion blur?)"
                )
                rejected.append(RejectedView(det.source, reason))
                if log:
                    log(f"reject {det.source}: {reason}")
            else:
                keep.append(det)
        accepted = keep
    return accepted, rejected, size


_REGION_ROWS = {3: ("top", "middle", "bottom")}
_REGION_COLS = {3: ("left", "centre", "right")}


def _cell_name(r: int, c: int, rows: int, cols: int) -> str:
    if rows == 3 and cols == 3:
        if r == 1 and c == 1:
            return "centre"
        return f"{_REGION_ROWS[3][r]}-{_REGION_COLS[3][c]}"
    return f"cell(row {r}, col {c})"


def coverage_report(
    detections: Sequence[Detection],
    image_size: tuple[int, int],
    grid: tuple[int, int] = (3, 3),
    min_corners_per_cell: int = 3,
    roi: tuple[int, int, int, int] | None = None,
) -> CoverageReport:
    """Count detected corners per image-grid cell over all views.

    ``roi`` (x0, y0, x1, y1): split only this rectangle into cells; corners outside it are
    not counted (the rest of the image is known to be hidden, e.g. by the gripper).
    """
    w, h = image_size
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, w, h)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"coverage roi {roi} must lie inside the {w}x{h} image with x0 < x1, y0 < y1")
    gc, gr = grid
    counts = np.zeros((gr, gc), int)
    for det in detections:
        pts = det.image_points
        inside = (pts[:, 0] >= x0) & (pts[:, 0] < x1) & (pts[:, 1] >= y0) & (pts[:, 1] < y1)
        pts = pts[inside]
        ci = np.clip(((pts[:, 0] - x0) / (x1 - x0) * gc).astype(int), 0, gc - 1)
        ri = np.clip(((pts[:, 1] - y0) / (y1 - y0) * gr).astype(int), 0, gr - 1)
        np.add.at(counts, (ri, ci), 1)
    covered = counts >= min_corners_per_cell
    missing = [_cell_name(r, c, gr, gc) for r in range(gr) for c in range(gc) if not covered[r, c]]
    return CoverageReport(grid=grid, counts=counts, covered=covered, missing=missing)


# ---------------------------------------------------------------------------
# Solve
# ---------------------------------------------------------------------------
def calibrate_from_detections(
    detections: Sequence[Detection],
    image_size: tuple[int, int],
    quality: QualityConfig | None = None,
    rejected: Sequence[RejectedView] = (),
    camera_name: str = "camera",
    flags: int = 0,
    log: Log | None = print,
) -> IntrinsicsResult:
    """Solve intrinsics from accepted detections, after view-count and coverage checks."""
    quality = quality or QualityConfig()
    rejected = list(rejected)
    if len(detections) < quality.min_views:
        why = ""
        if rejected:
            kinds: dict[str, int] = {}
            for rv in rejected:
                k = rv.reason.split(":")[0]
                kinds[k] = kinds.get(k, 0) + 1
            why = " Rejected: " + ", ".join(f"{n} {k}" for k, n in kinds.items()) + "."
            examples = "; ".join(f"{rv.source}: {rv.reason}" for rv in rejected[:3])
            why += f" e.g. {examples}"
        exc_type = InsufficientViewsError
        if rejected and all(rv.reason.startswith("blurred") for rv in rejected):
            exc_type = BlurredImageError
        elif rejected and all(rv.reason.startswith("board not found") for rv in rejected) and not detections:
            exc_type = BoardNotFoundError
        raise exc_type(
            f"only {len(detections)} usable views, need at least {quality.min_views} "
            f"(total given {len(detections) + len(rejected)}).{why}"
        )
    cov = coverage_report(detections, image_size, quality.grid, quality.min_corners_per_cell, quality.roi)
    if cov.fraction + 1e-9 < quality.min_coverage:
        raise PoorCoverageError(
            f"board views cover only {cov.fraction * 100:.0f}% of the image "
            f"(need {quality.min_coverage * 100:.0f}%); missing regions: {', '.join(cov.missing)}. "
            "Capture more views with the board in those parts of the image.\n" + str(cov)
        )
    obj = [d.object_points.reshape(-1, 1, 3).astype(np.float32) for d in detections]
    img = [d.image_points.reshape(-1, 1, 2).astype(np.float32) for d in detections]
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    rms, K, D, rvecs, tvecs, std_in, _std_ex, per_view = cv2.calibrateCameraExtended(
        obj, img, image_size, None, None, flags=flags, criteria=criteria
    )
    K = np.asarray(K, float)
    D = np.asarray(D, float).ravel()
    std_in = np.asarray(std_in, float).ravel()
    per_view = np.asarray(per_view, float).ravel()
    tilts = []
    for rv in rvecs:
        R, _ = cv2.Rodrigues(rv)
        # board normal (+z of board) expressed in the camera; 0 deg = fronto-parallel
        tilts.append(float(np.degrees(np.arccos(np.clip(abs(R[2, 2]), -1.0, 1.0)))))
    result = IntrinsicsResult(
        K=K,
        D=D,
        image_size=tuple(image_size),
        rms=float(rms),
        per_view_errors=[(d.source, float(e)) for d, e in zip(detections, per_view)],
        rejected=rejected,
        coverage=cov,
        std_intrinsics=dict(zip(("fx", "fy", "cx", "cy"), std_in[:4].tolist())),
        view_tilts_deg=tilts,
        camera_name=camera_name,
        rvecs=[np.asarray(r).ravel() for r in rvecs],
        tvecs=[np.asarray(t).ravel() for t in tvecs],
    )
    if log:
        log(result.summary())
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CalibrationError(f"calibration diverged (K={K.tolist()}); check the board definition")
    if rms > quality.max_rms_px:
        worst = sorted(result.per_view_errors, key=lambda x: -x[1])[:3]
        raise CalibrationError(
            f"RMS reprojection error {rms:.3f} px exceeds max_rms_px={quality.max_rms_px}; "
            f"worst views: {', '.join(f'{n} ({e:.2f} px)' for n, e in worst)}. Wrong board size, "
            "motion blur or rolling shutter are the usual causes"
        )
    if max(tilts) < quality.min_max_tilt_deg:
        raise CalibrationError(
            f"all views are nearly fronto-parallel (max board tilt {max(tilts):.1f} deg < "
            f"{quality.min_max_tilt_deg} deg); focal length is not observable. Add views with the board "
            "tilted 20-40 deg left/right and up/down"
        )
    return result


def calibrate_intrinsics(
    images: str | os.PathLike | Sequence,
    board: BoardConfig,
    camera_name: str = "camera",
    quality: QualityConfig | None = None,
    flags: int = 0,
    log: Log | None = print,
) -> IntrinsicsResult:
    """Full intrinsic calibration from an image folder or list of images/paths.

    Raises a :class:`CalibrationError` subclass (message says what to fix)
    instead of returning a calibration that fails the quality checks.
    """
    quality = quality or QualityConfig()
    loaded = load_images(images)
    detections, rejected, size = detect_views(loaded, board, quality, log=log)
    return calibrate_from_detections(detections, size, quality, rejected, camera_name, flags, log)


# ---------------------------------------------------------------------------
# ROS camera_info YAML
# ---------------------------------------------------------------------------
@dataclass
class CameraInfo:
    """Contents of a ROS camera_info YAML (as loaded and validated)."""

    camera_name: str
    image_size: tuple[int, int]  # (width, height)
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    R: np.ndarray
    P: np.ndarray


_DIST_LENGTHS = {"plumb_bob": (5,), "rational_polynomial": (8,), "equidistant": (4,)}


def camera_info_dict(K, D, image_size, camera_name: str = "camera", alpha: float = 0.0) -> dict:
    """ROS camera_info fields for a monocular camera.

    The projection matrix follows ``camera_calibration`` (the ROS calibrator):
    ``P = [K' | 0]`` with ``K'`` from ``getOptimalNewCameraMatrix`` at
    ``alpha`` (0 = only valid pixels after rectification).
    """
    K = np.asarray(K, float).reshape(3, 3)
    D = np.asarray(D, float).ravel()
    w, h = int(image_size[0]), int(image_size[1])
    if D.size not in (4, 5, 8, 12, 14):
        raise ValueError(f"unexpected number of distortion coefficients: {D.size}")
    if D.size < 5:
        D = np.concatenate([D, np.zeros(5 - D.size)])
    model = "plumb_bob" if D.size == 5 else "rational_polynomial"
    if D.size > 8:
        if np.any(np.abs(D[8:]) > 0):
            raise ValueError("thin-prism/tilted distortion terms cannot be stored in a ROS camera_info")
        D = D[:8]
    newK, _ = cv2.getOptimalNewCameraMatrix(K, D, (w, h), alpha, (w, h))
    P = np.zeros((3, 4))
    P[:3, :3] = newK
    return {
        "image_width": w,
        "image_height": h,
        "camera_name": str(camera_name),
        "camera_matrix": {"rows": 3, "cols": 3, "data": [float(x) for x in K.ravel()]},
        "distortion_model": model,
        "distortion_coefficients": {"rows": 1, "cols": int(D.size), "data": [float(x) for x in D]},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": [float(x) for x in np.eye(3).ravel()]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": [float(x) for x in P.ravel()]},
    }


def write_camera_info(path: str | os.PathLike, K, D=None, image_size=None, camera_name: str = "camera", extra_comment: str = "") -> Path:
    """Write a ROS camera_info YAML. ``K`` may also be an :class:`IntrinsicsResult`.

    The file is written atomically (temp file + rename) so a crashed
    calibration never leaves a half-written file that a driver would load.
    """
    if isinstance(K, IntrinsicsResult):
        res = K
        K, D, image_size = res.K, res.D, res.image_size
        camera_name = res.camera_name if camera_name == "camera" else camera_name
        extra_comment = extra_comment or f"RMS reprojection error {res.rms:.4f} px over {len(res.per_view_errors)} views"
    if D is None or image_size is None:
        raise ValueError("write_camera_info needs K, D and image_size (or an IntrinsicsResult)")
    info = camera_info_dict(K, D, image_size, camera_name)
    header = "# ROS camera_info written by robot_rl.calibration.intrinsics\n"
    if extra_comment:
        header += "".join(f"# {line}\n" for line in extra_comment.splitlines())
    body = yaml.safe_dump(info, sort_keys=False, default_flow_style=None, width=200)
    return atomic_write_text(path, header + body)


def _matrix_field(data: dict, key: str, rows: int | None, cols: int | None, path) -> np.ndarray:
    if key not in data:
        raise CalibrationFileError(f"{path}: missing '{key}' (expected a mapping with rows, cols, data)")
    f = data[key]
    if not isinstance(f, dict) or not {"rows", "cols", "data"} <= set(f):
        raise CalibrationFileError(f"{path}: '{key}' must be a mapping with rows, cols, data; got {f!r}")
    try:
        r, c = int(f["rows"]), int(f["cols"])
        vals = np.asarray(f["data"], dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise CalibrationFileError(f"{path}: '{key}' has non-numeric rows/cols/data ({exc})") from exc
    if (rows is not None and r != rows) or (cols is not None and c != cols):
        raise CalibrationFileError(f"{path}: '{key}' must be {rows}x{cols}, file says {r}x{c}")
    if vals.size != r * c:
        raise CalibrationFileError(f"{path}: '{key}' says {r}x{c} but has {vals.size} values")
    if not np.all(np.isfinite(vals)):
        raise CalibrationFileError(f"{path}: '{key}' contains NaN/inf")
    return vals.reshape(r, c)


def load_camera_info(path: str | os.PathLike) -> CameraInfo:
    """Load and validate a ROS camera_info YAML.

    Raises :class:`CalibrationFileError` naming the file, the field and what
    was expected for: missing file, non-YAML, missing fields, wrong matrix
    shapes, non-positive focal lengths, principal point outside the image,
    distortion model/coefficient mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationFileError(f"camera_info file {path} does not exist; run `robot-rl calibrate intrinsics` first")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CalibrationFileError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CalibrationFileError(f"{path}: expected a YAML mapping with camera_info fields, got {type(data).__name__}")
    for key in ("image_width", "image_height"):
        if key not in data:
            raise CalibrationFileError(f"{path}: missing '{key}'")
        if not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] <= 0:
            raise CalibrationFileError(f"{path}: '{key}' must be a positive integer, got {data[key]!r}")
    w, h = data["image_width"], data["image_height"]
    K = _matrix_field(data, "camera_matrix", 3, 3, path)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if fx <= 0 or fy <= 0:
        raise CalibrationFileError(f"{path}: camera_matrix focal lengths must be positive, got fx={fx}, fy={fy}")
    if not (0 <= cx < w and 0 <= cy < h):
        raise CalibrationFileError(
            f"{path}: principal point ({cx:.1f}, {cy:.1f}) lies outside the {w}x{h} image; "
            "is the file for a different resolution?"
        )
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise CalibrationFileError(f"{path}: camera_matrix must have the form [fx s cx; 0 fy cy; 0 0 1], got {K.tolist()}")
    model = data.get("distortion_model")
    if model not in _DIST_LENGTHS:
        raise CalibrationFileError(
            f"{path}: distortion_model must be one of {sorted(_DIST_LENGTHS)}, got {model!r}"
        )
    D = _matrix_field(data, "distortion_coefficients", 1, None, path).ravel()
    if D.size not in _DIST_LENGTHS[model]:
        raise CalibrationFileError(
            f"{path}: distortion_model {model} needs {_DIST_LENGTHS[model][0]} coefficients, file has {D.size}"
        )
    R = _matrix_field(data, "rectification_matrix", 3, 3, path) if "rectification_matrix" in data else np.eye(3)
    if "projection_matrix" in data:
        P = _matrix_field(data, "projection_matrix", 3, 4, path)
    else:
        P = np.hstack([K, np.zeros((3, 1))])
    name = data.get("camera_name", path.stem)
    return CameraInfo(camera_name=str(name), image_size=(w, h), K=K, D=D, distortion_model=model, R=R, P=P)


def load_intrinsics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(K 3x3, D (n,), (width, height))`` from a validated camera_info YAML."""
    info = load_camera_info(path)
    return info.K, info.D, info.image_size


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("board")
    g.add_argument("--board", required=True, help="'checkerboard', 'charuco', or a YAML file with a BoardConfig mapping")
    g.add_argument("--rows", type=int, help="number of squares down the board")
    g.add_argument("--cols", type=int, help="number of squares across the board")
    g.add_argument("--square-size", type=float, help="square edge in metres")
    g.add_argument("--marker-size", type=float, help="ChArUco marker edge in metres")
    g.add_argument("--dictionary", default="DICT_5X5_100", help="ChArUco dictionary (default DICT_5X5_100)")


def board_from_args(args: argparse.Namespace) -> BoardConfig:
    if args.board in ("checkerboard", "charuco"):
        missing = [f"--{n.replace('_', '-')}" for n in ("rows", "cols", "square_size") if getattr(args, n) is None]
        if args.board == "charuco" and args.marker_size is None:
            missing.append("--marker-size")
        if missing:
            raise CalibrationError(f"board '{args.board}' needs {' '.join(missing)}")
        return BoardConfig(
            type=args.board,
            rows=args.rows,
            cols=args.cols,
            square_size=args.square_size,
            marker_size=args.marker_size if args.board == "charuco" else None,
            dictionary=args.dictionary if args.board == "charuco" else None,
        )
    p = Path(args.board)
    if not p.is_file():
        raise CalibrationError(f"--board must be 'checkerboard', 'charuco' or an existing YAML file, got {args.board!r}")
    data = yaml.safe_load(p.read_text())
    if isinstance(data, dict) and "board" in data:
        data = data["board"]
    return BoardConfig.from_dict(data)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="robot-rl calibrate intrinsics", description="Calibrate camera intrinsics from board images.")
    ap.add_argument("--images", required=True, help="folder of images (or one image file)")
    add_board_arguments(ap)
    ap.add_argument("--out", required=True, help="output ROS camera_info YAML")
    ap.add_argument("--camera-name", default=None, help="camera_name field (default: output file stem)")
    ap.add_argument("--min-sharpness", type=float, default=QualityConfig.min_sharpness)
    ap.add_argument("--min-relative-sharpness", type=float, default=QualityConfig.min_relative_sharpness)
    ap.add_argument("--min-coverage", type=float, default=QualityConfig.min_coverage, help="fraction of 3x3 image cells to cover")
    ap.add_argument("--min-views", type=int, default=QualityConfig.min_views)
    ap.add_argument("--max-rms", type=float, default=QualityConfig.max_rms_px)
    ap.add_argument("--fix-k3", action="store_true", help="do not estimate k3 (recommended for narrow lenses / few views)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``robot-rl calibrate intrinsics --images DIR --board ... --out file.yaml``. Returns exit code."""
    args = build_parser().parse_args(argv)
    try:
        board = board_from_args(args)
        quality = QualityConfig(
            min_sharpness=args.min_sharpness,
            min_relative_sharpness=args.min_relative_sharpness,
            min_coverage=args.min_coverage, min_views=args.min_views, max_rms_px=args.max_rms
        )
        name = args.camera_name or Path(args.out).stem
        flags = cv2.CALIB_FIX_K3 if args.fix_k3 else 0
        result = calibrate_intrinsics(args.images, board, camera_name=name, quality=quality, flags=flags, log=print)
        out = write_camera_info(args.out, result)
    except (CalibrationError, ValueError) as exc:
        print(f"calibration failed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
