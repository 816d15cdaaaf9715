"""Backend contract shared by real-hardware and simulated sensors.

Everything a policy, recorder or ROS node needs from a camera or tactile sensor
goes through the two Protocols below, so a sim backend and a real backend are
interchangeable. Keep this file small: every name here is part of the contract.

Semantics that all backends must honour (docs/sensors.md has the long form):

* ``start()`` opens the device and returns once the backend is streaming, or
  raises ``SensorError`` (``DeviceNotFoundError`` when the device is absent)
  within a bounded time. It never hangs.
* ``latest(timeout_s)`` returns the newest frame. It blocks only while there is
  no *fresh* frame, i.e. none has been received yet or the newest one was
  received more than ``timeout_s`` ago (a stalled stream); if none arrives
  within ``timeout_s`` it raises ``SensorTimeout``. It never queues: frames that
  arrive between two calls are skipped, visible as gaps in ``Frame.seq``.
* ``stop()`` stops streaming and joins every thread the backend started. It is
  idempotent. Both backends are context managers (``with cam: ...``).
* ``Frame.stamp_ns`` is the acquisition time in ns on the backend's clock. Real
  backends use ``robot_rl.sensors.clock.host_time_ns()`` (wall-clock epoch that
  advances monotonically); sim backends use sim time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np


class SensorError(RuntimeError):
    """A sensor could not be opened, configured, or stopped streaming."""


class DeviceNotFoundError(SensorError):
    """The requested device is not connected / not visible to this process."""


class SensorTimeout(SensorError, TimeoutError):
    """No fresh frame arrived within the requested timeout."""


@dataclass
class Frame:
    """One camera or tactile reading.

    data: camera -> uint8 (H, W, 3) RGB, C-contiguous;
          taxel tactile -> float32 (H, W) in ``TactileLayout.units``;
          optical tactile -> uint8 (H, W, 3) RGB.
    stamp_ns: acquisition time in ns on the backend's clock (see module doc).
    seq: strictly increasing per backend since ``start()``; a gap of k means
         k frames were received but superseded before anyone asked for them.
    """

    data: np.ndarray
    stamp_ns: int
    seq: int


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the image *as delivered* (after crop/resize).

    Pixel convention: integer coordinates are pixel centres (OpenCV and
    librealsense convention). ``model`` names the distortion model using
    librealsense names ("none", "brown_conrady", "inverse_brown_conrady",
    "modified_brown_conrady", "kannala_brandt4", "ftheta"); ``coeffs`` are
    its coefficients, which act on normalised coordinates and are therefore
    unchanged by crop/resize.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    coeffs: tuple[float, ...] = ()

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix as float64."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            dtype=np.float64,
        )


@dataclass(frozen=True)
class TactileLayout:
    """What a tactile backend's ``Frame.data`` looks like.

    kind "taxel": shape (rows, cols), float32, units "normalized" or "newton".
    kind "optical": shape (H, W, 3), uint8 RGB, units "rgb8".
    """

    kind: Literal["taxel", "optical"]
    shape: tuple[int, ...]
    units: str


@runtime_checkable
class CameraBackend(Protocol):
    def start(self) -> None: ...
    def latest(self, timeout_s: float = 1.0) -> Frame: ...
    def intrinsics(self) -> CameraIntrinsics: ...
    def stop(self) -> None: ...
    def __enter__(self) -> "CameraBackend": ...
    def __exit__(self, exc_type, exc, tb) -> None: ...


@runtime_checkable
class TactileBackend(Protocol):
    def start(self) -> None: ...
    def latest(self, timeout_s: float = 1.0) -> Frame: ...
    def layout(self) -> TactileLayout: ...

    @property
    def serial(self) -> str: ...

    def stop(self) -> None: ...
    def __enter__(self) -> "TactileBackend": ...
    def __exit__(self, exc_type, exc, tb) -> None: ...
