"""Sensor backends: cameras and tactile sensors behind one small contract.

``base`` defines the contract; ``realsense``, ``tactile_usb`` and
``tactile_serial`` are the real-hardware backends (their driver imports are
lazy, so importing this package needs only numpy and OpenCV). Sim backends
register themselves with ``register_camera_backend`` / ``register_tactile_backend``.
"""

from __future__ import annotations

from typing import Callable

from .base import (
    CameraBackend,
    CameraIntrinsics,
    DeviceNotFoundError,
    Frame,
    SensorError,
    SensorTimeout,
    TactileBackend,
    TactileLayout,
)
from .config import CameraConfig, TactileConfig

__all__ = [
    "CameraBackend", "CameraConfig", "CameraIntrinsics", "DeviceNotFoundError", "Frame",
    "SensorError", "SensorTimeout", "TactileBackend", "TactileConfig", "TactileLayout",
    "make_camera", "make_tactile", "register_camera_backend", "register_tactile_backend",
]

_CAMERA_FACTORIES: dict[str, Callable[[CameraConfig], CameraBackend]] = {}
_TACTILE_FACTORIES: dict[str, Callable[[TactileConfig], TactileBackend]] = {}


def register_camera_backend(name: str, factory: Callable[[CameraConfig], CameraBackend]) -> None:
    _CAMERA_FACTORIES[name] = factory


def register_tactile_backend(name: str, factory: Callable[[TactileConfig], TactileBackend]) -> None:
    _TACTILE_FACTORIES[name] = factory


def _realsense(cfg: CameraConfig) -> CameraBackend:
    from .realsense import RealSenseCamera
    return RealSenseCamera(cfg)


def _usb_optical(cfg: TactileConfig) -> TactileBackend:
    from .tactile_usb import UsbOpticalTactile
    return UsbOpticalTactile(cfg)


def _serial_taxel(cfg: TactileConfig) -> TactileBackend:
    from .tactile_serial import SerialTaxelTactile
    return SerialTaxelTactile(cfg)


register_camera_backend("realsense", _realsense)
register_tactile_backend("usb_optical", _usb_optical)
register_tactile_backend("serial_taxel", _serial_taxel)


def _make(kind: str, registry: dict, config_type: type, cfg):
    if not isinstance(cfg, config_type):
        raise TypeError(f"make_{kind} needs a {config_type.__name__} (robot_rl.config sections "
                        f"are one), got {type(cfg).__name__}")
    try:
        factory = registry[cfg.backend]
    except KeyError:
        raise SensorError(f"{kind} backend {cfg.backend!r} is not registered (known: "
                          f"{sorted(registry)}); sim backends register via "
                          f"robot_rl.sensors.register_{kind}_backend") from None
    return factory(cfg)


def make_camera(cfg: CameraConfig) -> CameraBackend:
    """Construct (not start) the camera backend named by ``cfg.backend``."""
    return _make("camera", _CAMERA_FACTORIES, CameraConfig, cfg)


def make_tactile(cfg: TactileConfig) -> TactileBackend:
    """Construct (not start) the tactile backend named by ``cfg.backend``."""
    return _make("tactile", _TACTILE_FACTORIES, TactileConfig, cfg)
