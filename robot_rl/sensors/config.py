"""Typed configs for sensor backends.

Plain dataclasses with defaults, so the central YAML schema can embed them.
YAML gives lists where we want tuples; ``__post_init__`` coerces and validates
so a bad value fails when the config is loaded, not when the robot starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .image_ops import validate_size

CAMERA_BACKENDS = ("sim", "realsense")
TACTILE_BACKENDS = ("sim", "usb_optical", "serial_taxel")
TAXEL_UNITS = ("normalized", "newton")


def _opt_tuple(value: Any, n: int, field: str) -> Optional[tuple[int, ...]]:
    if value is None:
        return None
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{field} must be a list of {n} ints or null, got {value!r}") from None
    if len(items) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{field} must be a list of {n} ints or null, got {value!r}")
    return items


def _check_crop(crop: Optional[tuple[int, ...]], field: str) -> None:
    # Bounds against the image are checked at start(), when the size is known.
    if crop is not None and (crop[0] < 0 or crop[1] < 0 or crop[2] <= 0 or crop[3] <= 0):
        raise ValueError(f"{field} (x, y, w, h) needs x, y >= 0 and w, h > 0, got {crop!r}")


@dataclass
class CameraConfig:
    name: str = "camera"
    backend: str = "sim"                 # "sim" | "realsense"
    serial: str = ""                     # RealSense serial; "" = the only connected device
    width: int = 640                     # native stream size requested from the device
    height: int = 480
    fps: int = 30
    crop: Optional[tuple[int, int, int, int]] = None  # (x, y, w, h) in native pixels
    resize: Optional[tuple[int, int]] = None          # (width, height) after crop
    enable_depth: bool = False           # RealSense: depth aligned to colour, read via latest_depth()
    start_timeout_s: float = 5.0         # bound on device open + first frame
    info_file: str = ""                  # calibrated camera_info YAML, published as CameraInfo

    def __post_init__(self) -> None:
        if self.backend not in CAMERA_BACKENDS:
            raise ValueError(f"camera {self.name!r}: backend must be one of {CAMERA_BACKENDS}, "
                             f"got {self.backend!r}")
        self.serial = str(self.serial)  # YAML turns all-digit serials into ints
        validate_size((self.width, self.height), f"camera {self.name!r} width/height")
        if not isinstance(self.fps, int) or self.fps <= 0:
            raise ValueError(f"camera {self.name!r}: fps must be a positive int, got {self.fps!r}")
        self.crop = _opt_tuple(self.crop, 4, f"camera {self.name!r} crop")
        self.resize = _opt_tuple(self.resize, 2, f"camera {self.name!r} resize")
        _check_crop(self.crop, f"camera {self.name!r} crop")
        if self.resize is not None:
            validate_size(self.resize, f"camera {self.name!r} resize")
        if self.crop is not None:
            x, y, w, h = self.crop
            if x + w > self.width or y + h > self.height:
                raise ValueError(f"camera {self.name!r}: crop {self.crop} falls outside the "
                                 f"{self.width}x{self.height} stream")
        if not self.start_timeout_s > 0:
            raise ValueError(f"camera {self.name!r}: start_timeout_s must be > 0")

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of delivered frames."""
        if self.resize is not None:
            return self.resize  # type: ignore[return-value]
        if self.crop is not None:
            return self.crop[2], self.crop[3]
        return self.width, self.height


@dataclass
class TactileConfig:
    name: str = "tactile"
    backend: str = "sim"                 # "sim" | "usb_optical" | "serial_taxel"
    # usb_optical: "/dev/videoN", "N" (index) or a video file path (replay);
    # serial_taxel: "/dev/ttyUSB0", "/dev/serial/by-id/...". "" = find by `serial`.
    device: str = ""
    serial: str = ""                     # expected hardware serial (USB iSerial); "" = don't check
    shape: tuple[int, int] = (16, 16)    # serial_taxel: taxel rows, cols
    # usb_optical capture request (0 = driver default) and post-processing.
    width: int = 320
    height: int = 240
    fps: int = 25
    crop: Optional[tuple[int, int, int, int]] = None
    resize: Optional[tuple[int, int]] = None
    # serial_taxel wire and scaling.
    baudrate: int = 115200
    units: str = "normalized"            # "normalized" (raw / 65535) | "newton" (raw * newtons_per_count)
    newtons_per_count: float = 0.0
    zero_frames: int = 20                # frames averaged by zero()
    # Where the calibration module keeps per-sensor baselines; the backends do
    # not read it themselves (the calibration module builds the baseline hook).
    baseline_dir: str = ""
    start_timeout_s: float = 3.0         # bound on device open + first frame
    sim_body: str = ""                   # sim only: the finger body whose pad carries the taxels

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def cols(self) -> int:
        return self.shape[1]

    def __post_init__(self) -> None:
        if self.backend not in TACTILE_BACKENDS:
            raise ValueError(f"tactile {self.name!r}: backend must be one of {TACTILE_BACKENDS}, "
                             f"got {self.backend!r}")
        self.device = str(self.device)
        self.serial = str(self.serial)
        shape = _opt_tuple(self.shape, 2, f"tactile {self.name!r} shape")
        if shape is None or not all(1 <= s <= 255 for s in shape):
            raise ValueError(f"tactile {self.name!r}: shape must be 2 ints in 1..255, got {self.shape!r}")
        self.shape = shape  # type: ignore[assignment]
        for f in ("width", "height", "fps"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"tactile {self.name!r}: {f} must be an int >= 0, got {v!r}")
        self.crop = _opt_tuple(self.crop, 4, f"tactile {self.name!r} crop")
        self.resize = _opt_tuple(self.resize, 2, f"tactile {self.name!r} resize")
        _check_crop(self.crop, f"tactile {self.name!r} crop")
        if self.resize is not None:
            validate_size(self.resize, f"tactile {self.name!r} resize")
        if not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"tactile {self.name!r}: baudrate must be a positive int")
        if self.units not in TAXEL_UNITS:
            raise ValueError(f"tactile {self.name!r}: units must be one of {TAXEL_UNITS}, got {self.units!r}")
        if self.units == "newton" and not self.newtons_per_count > 0:
            raise ValueError(f"tactile {self.name!r}: units 'newton' needs newtons_per_count > 0 "
                             f"(from the sensor's calibration sheet)")
        if not isinstance(self.zero_frames, int) or self.zero_frames < 1:
            raise ValueError(f"tactile {self.name!r}: zero_frames must be an int >= 1")
        if not self.start_timeout_s > 0:
            raise ValueError(f"tactile {self.name!r}: start_timeout_s must be > 0")
