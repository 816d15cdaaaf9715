"""Exception types raised by the calibration package.

Every calibration step refuses to produce a result it cannot vouch for; it
raises one of these instead. All of them derive from :class:`CalibrationError`
(itself a ``ValueError``) so callers that only want "did calibration work?"
can catch one type, while tests and the ROS node can tell the failure modes
apart and show an operator what to fix.
"""

from __future__ import annotations


class CalibrationError(ValueError):
    """Base class: the inputs cannot yield a trustworthy calibration."""


class BoardNotFoundError(CalibrationError):
    """The calibration board was not detected in an image (or in any image)."""


class BlurredImageError(CalibrationError):
    """A view was rejected because it is too blurred to locate corners precisely."""


class InsufficientViewsError(CalibrationError):
    """Too few usable views to solve (or to solve reliably)."""


class PoorCoverageError(CalibrationError):
    """The board views do not cover enough of the image (regions are missing)."""


class DegenerateMotionError(CalibrationError):
    """Hand-eye robot/camera motions do not constrain the transform (e.g. one rotation axis)."""


class InconsistentDataError(CalibrationError):
    """Paired inputs contradict each other (e.g. robot and camera rotations disagree)."""


class CalibrationFileError(CalibrationError):
    """A calibration file is missing, malformed or does not match what was expected."""


class WorkspaceError(CalibrationError):
    """A planned pose (or every planned pose) lies outside the allowed workspace."""
