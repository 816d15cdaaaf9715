"""Calibration: camera intrinsics, hand-eye extrinsics, tactile baselines, guided capture.

ROS-free library; the ROS node and the ``robot-rl calibrate`` CLI call these
functions. Outputs live under the repository's top-level ``calibration/``
folder (see ``calibration/README.md`` and ``docs/calibration.md``).

Heavy dependencies (OpenCV) are imported by the submodules, so importing this
package stays cheap for code that only needs, e.g., the tactile baselines.
"""

from .errors import (
    BlurredImageError,
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    DegenerateMotionError,
    InconsistentDataError,
    InsufficientViewsError,
    PoorCoverageError,
    WorkspaceError,
)

__all__ = [
    "CalibrationError",
    "BoardNotFoundError",
    "BlurredImageError",
    "InsufficientViewsError",
    "PoorCoverageError",
    "DegenerateMotionError",
    "InconsistentDataError",
    "CalibrationFileError",
    "WorkspaceError",
]
