"""Calibration: camera intrinsics, hand-eye extrinsics, tactile baselines, guided capture.

ROS-free library, split by concern: the maths (``board``, ``intrinsics``, ``handeye``,
``guided`` planning, ``tactile``), the capture folder format (``capture_set``), the solver over
it (``solve``), view coverage (``coverage``), the robot interface the flows drive
(``robot_link``), the capture flows (``capture_flow``), the live tactile baseline
(``tactile_flow``) and the commands (``cli``). The ROS 2 node that connects them to the robot
is ``robot_rl.ros.calibration_client``; nothing here imports rclpy. Outputs live under the repository's top-level ``calibration/``
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
