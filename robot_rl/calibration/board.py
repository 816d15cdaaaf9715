"""Calibration board definitions, detection and board-image generation.

Board geometry convention (shared by checkerboard and ChArUco so that hand-eye
results do not depend on the board type):

* ``rows`` / ``cols`` count **squares**, not inner corners. A 7x10 board has
  6x9 inner corners. (ROS ``camera_calibration --size`` counts inner corners;
  convert with ``BoardConfig.inner_corners``.)
* The board frame has its origin at the outer top-left corner of the square
  grid (as the board image is printed/rendered), +x along a row (to the right
  in the printed image), +y down the columns, +z into the board. Inner corner
  (r, c) sits at ``((c + 1) * s, (r + 1) * s, 0)``.
* Square (0, 0) (top-left) is black on generated checkerboards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import cv2
import numpy as np

from .errors import BoardNotFoundError, CalibrationFileError

BOARD_TYPES = ("checkerboard", "charuco")

# Sub-pixel refinement criteria: 40 iterations or 0.001 px movement. Rendered
# and real images both converge well before that.
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 1e-3)


def aruco_available() -> bool:
    """True when this OpenCV build ships the aruco module (needed for ChArUco)."""
    return hasattr(cv2, "aruco") and hasattr(cv2.aruco, "CharucoDetector")


@dataclass(frozen=True)
class BoardConfig:
    """A planar calibration target.

    type: ``"checkerboard"`` or ``"charuco"``.
    rows, cols: number of **squares** along each direction (>= 3 each).
    square_size: edge of one square in metres.
    marker_size: ChArUco marker edge in metres (must be < square_size).
    dictionary: ChArUco dictionary name, e.g. ``"DICT_5X5_100"``.
    """

    type: str
    rows: int
    cols: int
    square_size: float
    marker_size: float | None = None
    dictionary: str | None = None

    def __post_init__(self) -> None:
        if self.type not in BOARD_TYPES:
            raise ValueError(f"board type must be one of {BOARD_TYPES}, got {self.type!r}")
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 3:
                raise ValueError(f"board {name} must be an integer number of squares >= 3, got {v!r}")
        if not (isinstance(self.square_size, (int, float)) and 0.0 < float(self.square_size) < 1.0):
            raise ValueError(
                f"board square_size must be in metres (0 < s < 1), got {self.square_size!r}; "
                "did you pass millimetres?"
            )
        if self.type == "charuco":
            if self.marker_size is None or not (0.0 < float(self.marker_size) < float(self.square_size)):
                raise ValueError(
                    f"charuco marker_size must be > 0 and smaller than square_size={self.square_size}, "
                    f"got {self.marker_size!r}"
                )
            if not self.dictionary:
                raise ValueError("charuco boards need a dictionary name, e.g. 'DICT_5X5_100'")
            if not aruco_available():
                raise ValueError("charuco board requested but this OpenCV build has no cv2.aruco module")
            if not hasattr(cv2.aruco, str(self.dictionary)):
                raise ValueError(f"unknown aruco dictionary {self.dictionary!r} (expected e.g. 'DICT_5X5_100')")
            needed = (self.rows * self.cols) // 2
            dict_size = _dictionary_size(str(self.dictionary))
            if dict_size is not None and dict_size < needed:
                raise ValueError(
                    f"dictionary {self.dictionary} has {dict_size} markers but a {self.rows}x{self.cols} "
                    f"charuco board needs {needed}"
                )

    # ---- derived geometry -------------------------------------------------
    @property
    def inner_corners(self) -> tuple[int, int]:
        """(corners per row, corners per column) = (cols-1, rows-1), OpenCV patternSize order."""
        return (self.cols - 1, self.rows - 1)

    @property
    def n_corners(self) -> int:
        return (self.cols - 1) * (self.rows - 1)

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) of the square grid in metres."""
        return (self.cols * self.square_size, self.rows * self.square_size)

    @property
    def orientation_unique(self) -> bool:
        """Whether a detection has a unique orientation (needed for pose, i.e. hand-eye).

        ChArUco markers are unique. A checkerboard is only unambiguous under a
        180 degree rotation when rows + cols is odd: then the two opposite grid
        corners have different square colours, which the detector checks.
        """
        return self.type == "charuco" or (self.rows + self.cols) % 2 == 1

    def object_points(self) -> np.ndarray:
        """(N, 3) float32 board-frame coordinates of all inner corners, row-major."""
        s = float(self.square_size)
        nx, ny = self.inner_corners
        pts = np.zeros((ny * nx, 3), np.float32)
        grid = np.mgrid[0:nx, 0:ny].T.reshape(-1, 2)  # (c, r) pairs, row-major
        pts[:, :2] = (grid + 1) * s
        return pts

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BoardConfig":
        if not isinstance(data, Mapping):
            raise CalibrationFileError(f"board config must be a mapping, got {type(data).__name__}")
        missing = [k for k in ("type", "rows", "cols", "square_size") if k not in data]
        if missing:
            raise CalibrationFileError(f"board config is missing keys {missing} (have {sorted(data)})")
        unknown = set(data) - {"type", "rows", "cols", "square_size", "marker_size", "dictionary"}
        if unknown:
            raise CalibrationFileError(f"board config has unknown keys {sorted(unknown)}")
        try:
            return cls(
                type=str(data["type"]),
                rows=int(data["rows"]),
                cols=int(data["cols"]),
                square_size=float(data["square_size"]),
                marker_size=None if data.get("marker_size") is None else float(data["marker_size"]),
                dictionary=data.get("dictionary"),
            )
        except ValueError as exc:
            raise CalibrationFileError(f"invalid board config: {exc}") from exc


def _dictionary_size(name: str) -> int | None:
    try:
        return int(name.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return None


def _charuco_board(board: BoardConfig):
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, str(board.dictionary)))
    cb = cv2.aruco.CharucoBoard(
        (board.cols, board.rows), float(board.square_size), float(board.marker_size), dictionary
    )
    return cb


# ---------------------------------------------------------------------------
# Board image generation (for printing and for simulated ground truth)
# ---------------------------------------------------------------------------
def render_board_image(board: BoardConfig, px_per_square: int = 80, margin_px: int | None = None) -> np.ndarray:
    """Grayscale uint8 image of the board with a white quiet-zone margin.

    The square grid occupies exactly ``cols*px_per_square`` x
    ``rows*px_per_square`` pixels starting at ``(margin_px, margin_px)``, so a
    print (or a simulated texture) scaled to ``px_per_square`` pixels per
    ``square_size`` metres has the exact metric geometry. The white margin
    (default one square) is required by the checkerboard detector.
    """
    if margin_px is None:
        margin_px = px_per_square
    if px_per_square < 10:
        raise ValueError(f"px_per_square must be >= 10 for a detectable board, got {px_per_square}")
    w = board.cols * px_per_square
    h = board.rows * px_per_square
    if board.type == "checkerboard":
        grid = np.full((h, w), 255, np.uint8)
        for r in range(board.rows):
            for c in range(board.cols):
                if (r + c) % 2 == 0:
                    grid[r * px_per_square : (r + 1) * px_per_square, c * px_per_square : (c + 1) * px_per_square] = 0
        return cv2.copyMakeBorder(grid, margin_px, margin_px, margin_px, margin_px, cv2.BORDER_CONSTANT, value=255)
    cb = _charuco_board(board)
    img = cb.generateImage((w + 2 * margin_px, h + 2 * margin_px), marginSize=margin_px, borderBits=1)
    return img


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------
@dataclass
class Detection:
    """Board corners found in one image.

    image_points: (N, 2) float32 sub-pixel corner locations (pixel centres at integers).
    object_points: (N, 3) float32 matching board-frame coordinates (metres).
    ids: (N,) corner indices into ``BoardConfig.object_points()`` order.
    sharpness: variance of the Laplacian inside the board region (higher = sharper).
    """

    image_points: np.ndarray
    object_points: np.ndarray
    ids: np.ndarray
    image_size: tuple[int, int]  # (width, height)
    sharpness: float
    source: str = ""

    @property
    def n_corners(self) -> int:
        return int(len(self.ids))


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale view of a gray/BGR/BGRA image (ints and floats in [0,1] accepted)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2GRAY)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
        else:
            raise ValueError(f"image must be gray, BGR or BGRA; got shape {img.shape}")
    elif img.ndim != 2:
        raise ValueError(f"image must be 2-D (gray) or 3-D (colour); got shape {img.shape}")
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def laplacian_variance(gray: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian, optionally only over ``mask`` (the board region).

    Measuring only the board region keeps a sharp background from hiding a
    motion-blurred board, and a plain background from penalising a sharp one.
    """
    lap = cv2.Laplacian(gray, cv2.CV_64F, ksize=1)  # classic 4-neighbour kernel
    if mask is not None:
        vals = lap[mask > 0]
        if vals.size < 16:
            vals = lap.ravel()
    else:
        vals = lap.ravel()
    return float(vals.var())


def board_region_mask(image_points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    w, h = image_size
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.asarray(image_points, np.float32).reshape(-1, 1, 2)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def _subpix_window(pts: np.ndarray, nx: int) -> tuple[int, int]:
    # Window half-size ~ 1/4 of the smallest square edge in the image, capped:
    # big enough to average noise, small enough never to reach the next corner.
    grid = pts.reshape(-1, nx, 2)
    d = np.linalg.norm(np.diff(grid, axis=1), axis=2)
    if grid.shape[0] > 1:
        d = np.concatenate([d.ravel(), np.linalg.norm(np.diff(grid, axis=0), axis=2).ravel()])
    edge = float(np.min(d)) if d.size else 20.0
    half = int(np.clip(edge / 4.0, 2, 11))
    return (half, half)


def _charuco_window(pts: np.ndarray, ids: np.ndarray, board: BoardConfig) -> tuple[int, int]:
    nx = board.cols - 1
    d = [
        float(np.linalg.norm(pts[a] - pts[b]))
        for a in range(len(ids))
        for b in range(len(ids))
        if ids[b] == ids[a] + 1 and ids[a] // nx == ids[b] // nx
    ]
    square_px = float(np.median(d)) if d else 20.0
    gap_px = square_px * (board.square_size - float(board.marker_size)) / (2.0 * board.square_size)
    half = int(np.clip(round(0.6 * gap_px), 2, 6))
    return (half, half)


def _fix_checkerboard_order(gray: np.ndarray, pts: np.ndarray, board: BoardConfig) -> np.ndarray:
    """Put detected checkerboard corners into the board-frame order.

    ``findChessboardCorners`` may start at any of the grid's corners. For
    intrinsics this does not matter, for board *pose* it does: a 180 degree
    flip silently turns the board frame around. We (1) make the order
    right-handed as seen from the front of the board (the detector can return a
    mirrored order) and (2) for boards with rows+cols odd, use the colour of the
    outer square next to the first corner (black by construction) to pick
    between the two 180-degree-related orders.
    """
    nx, ny = board.inner_corners
    grid = pts.reshape(ny, nx, 2).copy()
    # (1) handedness: with x to the right along a row and y down the columns,
    # a board seen from its printed side has positive image-plane cross product.
    ex = grid[0, -1] - grid[0, 0]
    ey = grid[-1, 0] - grid[0, 0]
    if ex[0] * ey[1] - ex[1] * ey[0] < 0:
        grid = grid[::-1]
    if board.orientation_unique:
        # (2) sample the outer square diagonal to corner 0 (board square (0,0),
        # black) and its neighbour square (0,1) (white) through the homography.
        obj = board.object_points()[:, :2].astype(np.float64)
        H, _ = cv2.findHomography(obj, grid.reshape(-1, 2).astype(np.float64))
        if H is not None:
            s = board.square_size
            probes = np.array([[[0.5 * s, 0.5 * s]], [[1.5 * s, 0.5 * s]], [[0.5 * s, 1.5 * s]]])
            img_probes = cv2.perspectiveTransform(probes, H).reshape(-1, 2)
            vals = [_sample(gray, p) for p in img_probes]
            if None not in vals and vals[0] > 0.5 * (vals[1] + vals[2]):
                grid = grid[::-1, ::-1]
    return grid.reshape(-1, 2)


def _sample(gray: np.ndarray, p: np.ndarray, r: int = 2) -> float | None:
    x, y = int(round(p[0])), int(round(p[1]))
    h, w = gray.shape
    if not (r <= x < w - r and r <= y < h - r):
        return None
    return float(gray[y - r : y + r + 1, x - r : x + r + 1].mean())


def detect_board(image: np.ndarray, board: BoardConfig, source: str = "", min_corners: int | None = None) -> Detection:
    """Find the board in one image and refine corners to sub-pixel accuracy.

    Raises BoardNotFoundError (naming ``source``) when the board is not found
    or too few ChArUco corners are visible. Blur is *measured* here
    (``Detection.sharpness``) but judged by the caller's threshold.
    """
    gray = to_gray(image)
    h, w = gray.shape
    name = source or "image"
    if board.type == "checkerboard":
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        found, corners = cv2.findChessboardCorners(gray, board.inner_corners, flags=flags)
        if not found or corners is None:
            raise BoardNotFoundError(
                f"{name}: no {board.rows}x{board.cols}-square checkerboard ({board.inner_corners[0]}x"
                f"{board.inner_corners[1]} inner corners) found; check the board size, that the whole "
                "board is in view with a white margin, and focus/lighting"
            )
        pts = corners.reshape(-1, 2).astype(np.float32)
        win = _subpix_window(pts, board.inner_corners[0])
        pts = cv2.cornerSubPix(gray, pts.reshape(-1, 1, 2), win, (-1, -1), _SUBPIX_CRITERIA).reshape(-1, 2)
        pts = _fix_checkerboard_order(gray, pts, board)
        ids = np.arange(board.n_corners)
        obj = board.object_points()
    else:
        cb = _charuco_board(board)
        detector = cv2.aruco.CharucoDetector(cb)
        ch_corners, ch_ids, _, marker_ids = detector.detectBoard(gray)
        n = 0 if ch_ids is None else len(ch_ids)
        need = max(6, min_corners or 0)
        if n < need:
            nm = 0 if marker_ids is None else len(marker_ids)
            raise BoardNotFoundError(
                f"{name}: ChArUco board not found ({nm} markers, {n} corners; need >= {need} corners). "
                f"Check dictionary {board.dictionary}, board size {board.rows}x{board.cols} and focus"
            )
        pts = ch_corners.reshape(-1, 2).astype(np.float32)
        ids = ch_ids.reshape(-1).astype(int)
        # An extra cornerSubPix pass snaps the interpolated corners onto the
        # saddle points, but its window must stay clear of the marker edges
        # that sit (square - marker)/2 away from each corner; a too-large
        # window biased corners by ~0.1 px and focal length by ~0.5% in the
        # MuJoCo tests.
        win = _charuco_window(pts, ids, board)
        pts = cv2.cornerSubPix(gray, pts.reshape(-1, 1, 2).copy(), win, (-1, -1), _SUBPIX_CRITERIA).reshape(-1, 2)
        # OpenCV's ChArUco corner i lies at ((c+1)s, (r+1)s) exactly like our
        # checkerboard convention, so the shared board frame holds.
        obj = board.object_points()[ids]
        if cb.checkCharucoCornersCollinear(ch_ids):
            raise BoardNotFoundError(f"{name}: visible ChArUco corners are collinear; cannot use this view")
    if min_corners is not None and len(ids) < min_corners:
        raise BoardNotFoundError(f"{name}: only {len(ids)} board corners visible, need >= {min_corners}")
    mask = board_region_mask(pts, (w, h))
    return Detection(
        image_points=pts.astype(np.float32),
        object_points=np.asarray(obj, np.float32),
        ids=np.asarray(ids, int),
        image_size=(w, h),
        sharpness=laplacian_variance(gray, mask),
        source=source,
    )
