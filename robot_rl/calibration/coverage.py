"""Which live views are worth keeping, and which image regions are still missing (ROS-free)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .board import BoardConfig, Detection, detect_board
from .errors import BoardNotFoundError
from .transforms import rotation_angle

#: Part of the MuJoCo Panda wrist camera's image the gripper never hides, as a fraction of
#: (width, height): the hand body covers x < 0.3 w and the open fingers x < 0.49 w at the top
#: and bottom (measured from a depth render of sim/calibration.xml). Wide boards fit this tall
#: region when rolled by 90 deg in the image (``--roll 90``).
SIM_WRIST_ROI_FRACTION = (0.5, 0.0, 1.0, 1.0)

def roi_pixels(fraction: Sequence[float], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = image_size
    x0, y0, x1, y1 = fraction
    return (int(round(x0 * w)), int(round(y0 * h)), int(round(x1 * w)), int(round(y1 * h)))


class CoverageTracker:
    """Decides whether a new view is worth keeping and says what is still missing.

    A view is kept when the board is detected, its board region is sharp (``min_sharpness``)
    and it shows the board at a new pose: rotated >= ``min_rotation_deg`` or its centre moved
    >= ``min_shift`` of the image diagonal relative to every kept view (a repeat adds no
    information for intrinsics or hand-eye). ``missing`` lists the image regions (3x3 cells
    of the image or ``roi``) with fewer than ``corners_per_cell`` corners so far.
    """

    def __init__(self, board: BoardConfig, image_size: tuple[int, int], K: np.ndarray | None = None,
                 D: np.ndarray | None = None, roi: tuple[int, int, int, int] | None = None,
                 grid: tuple[int, int] = (3, 3), corners_per_cell: int = 12, min_sharpness: float = 100.0,
                 min_rotation_deg: float = 8.0, min_shift: float = 0.15):
        self.board, self.image_size, self.K, self.D = board, tuple(image_size), K, D
        self.roi, self.grid, self.corners_per_cell = roi, grid, corners_per_cell
        self.min_sharpness, self.min_rotation_deg, self.min_shift = min_sharpness, min_rotation_deg, min_shift
        self.detections: list[Detection] = []
        self._poses: list[np.ndarray] = []
        self._centres: list[np.ndarray] = []

    def report(self):
        from .intrinsics import coverage_report

        return coverage_report(self.detections, self.image_size, self.grid, self.corners_per_cell, self.roi)

    @property
    def missing(self) -> list[str]:
        return self.report().missing

    def consider(self, image: np.ndarray, name: str = "") -> tuple[bool, str, Detection | None]:
        """(keep?, reason, detection)."""
        try:
            det = detect_board(image, self.board, source=name)
        except BoardNotFoundError as exc:
            return False, f"board not found ({exc})", None
        if (det.image_size[0], det.image_size[1]) != self.image_size:
            return False, f"image size {det.image_size} differs from {self.image_size}", det
        if det.sharpness < self.min_sharpness:
            return False, f"blurred (Laplacian variance {det.sharpness:.0f} < {self.min_sharpness:.0f})", det
        before = self.report()
        after = _coverage_with(self, det)
        new_cells = [c for c in before.missing if c not in after.missing]
        gained = bool(np.any((after.counts > before.counts) & ~before.covered))
        pose = None
        if self.K is not None:
            from .handeye import board_pose

            try:
                pose, _ = board_pose(det, self.K, self.D)
            except BoardNotFoundError:
                pose = None
        centre = det.image_points.mean(axis=0)
        diag = float(np.hypot(*self.image_size))
        novel_pose = True
        for T, c in zip(self._poses, self._centres):
            moved = np.linalg.norm(centre - c) / diag >= self.min_shift
            turned = pose is not None and T is not None and math.degrees(rotation_angle(pose[:3, :3] @ T[:3, :3].T)) >= self.min_rotation_deg
            if not (moved or turned):
                novel_pose = False
                break
        if self.detections and not novel_pose:
            return False, "repeats an earlier board pose (move or tilt the board/robot more)", det
        self.detections.append(det)
        self._poses.append(pose)
        self._centres.append(centre)
        why = (f"covers {', '.join(new_cells)}" if new_cells
               else "adds corners to an under-covered region" if gained else "new board pose")
        return True, why, det


def _coverage_with(tracker: CoverageTracker, det: Detection):
    from .intrinsics import coverage_report

    return coverage_report(tracker.detections + [det], tracker.image_size, tracker.grid, tracker.corners_per_cell, tracker.roi)
