"""Sensor backends: cameras and tactile sensors behind one small contract.

``base`` defines the contract; ``realsense``, ``tactile_usb`` and
``tactile_serial`` are the real-hardware backends (their driver imports are
lazy, so importing this package needs only numpy and OpenCV). Sim backends
register themselves with ``register_camera_backend`` / ``register_tactile_backend``.
"""

from __future__ import annotations

from typing import Any, Callable

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
from .config import CameraConfig, TactileConfig, camera_config_from, tactile_config_from

__all__ = [
    "CameraBackend", "CameraConfig", "CameraIntrinsics", "DeviceNotFoundError", "Frame",
    "SensorError", "SensorTimeout", "TactileBackend", "TactileConfig", "TactileLayout",
    "camera_config_from", "tactile_config_from",
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


def make_camera(cfg: Any) -> CameraBackend:
    """Construct (not start) the camera backend named by ``cfg.backend``.

    ``cfg`` may be a ``CameraConfig`` or any config object/mapping using the
    same field names (see ``config.camera_config_from``)."""
    cfg = camera_config_from(cfg)
    try:
        factory = _CAMERA_FACTORIES[cfg.backend]
    except KeyError:
        raise SensorError(f"camera backend {cfg.backend!r} is not registered (known: "
                          f"{sorted(_CAMERA_FACTORIES)}); sim backends register via "
                          f"robot_rl.sensors.register_camera_backend") from None
    return factory(cfg)


def make_tactile(cfg: Any) -> TactileBackend:
    """Construct (not start) the tactile backend named by ``cfg.backend``.

    ``cfg`` may be a ``TactileConfig`` or any config object/mapping using the
    same field names; ``rows``/``cols`` and ``rate_hz`` are understood too
    (see ``config.tactile_config_from``)."""
    cfg = tactile_config_from(cfg)
    try:
        factory = _TACTILE_FACTORIES[cfg.backend]
    except KeyError:
        raise SensorError(f"tactile backend {cfg.backend!r} is not registered (known: "
                          f"{sorted(_TACTILE_FACTORIES)}); sim backends register via "
                          f"robot_rl.sensors.register_tactile_backend") from None
    return factory(cfg)
