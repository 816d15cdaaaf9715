"""Intel RealSense colour camera backend (pyrealsense2).

Design notes (the why):

* Devices are enumerated with ``rs.context().query_devices()`` *before* the
  pipeline is started. That query returns in milliseconds, whereas
  ``pipeline.start()`` with no device blocks ~15 s before raising; checking
  first is what makes "no camera" fail fast.
* ``pipeline.start()`` itself still runs under a time bound (a helper thread):
  a half-enumerated or USB-2-throttled device can stall it. If the bound
  expires we raise, and the helper stops the pipeline if start ever returns.
* The reader thread copies pixel data out of each librealsense frame and drops
  the frame at once. librealsense frames come from a small fixed pool; a
  consumer that holds them (even through a numpy view) starves the pool and the
  stream stops with "Frame didn't arrive", and released buffers get reused.
* Only the newest frame is kept (``LatestFrameSlot``); no queue can grow.
* Timestamps: with the default ``global_time`` domain librealsense already maps
  the device clock onto the host wall clock (latency-compensated), so we only
  convert wall -> host clock. With ``hardware_clock`` we estimate the offset
  ourselves (``DeviceClockMapper``). ``system_time`` is the host arrival time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ._stream import LatestFrameSlot, ReaderThread, StreamingSensor, run_bounded
from .base import CameraIntrinsics, DeviceNotFoundError, Frame, SensorError
from .clock import DeviceClockMapper, host_time_ns, wall_to_host_ns
from .config import CameraConfig
from .image_ops import ImageTransform

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pyrealsense2 is not importable. Install it into this environment with "
    "`pip install pyrealsense2` (wheels exist for x86_64 Linux/Windows, Python 3.7-3.12); "
    "on aarch64 (Jetson) build librealsense with -DBUILD_PYTHON_BINDINGS=ON"
)
NO_DEVICE_HINT = (
    "no RealSense device found; check USB3 cable, udev rules (99-realsense-libusb.rules), "
    "`rs-enumerate-devices`"
)

_POLL_MS = 100          # reader's wait_for_frames bound: how fast stop() is honoured
_JOIN_TIMEOUT_S = 2.0


def import_pyrealsense2() -> Any:
    """Import pyrealsense2 lazily so the rest of the package works without it.

    Tests inject a fake by placing it in ``sys.modules['pyrealsense2']``.
    """
    try:
        import pyrealsense2 as rs  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise SensorError(INSTALL_HINT) from exc
    return rs


@dataclass(frozen=True)
class RealSenseDeviceInfo:
    serial: str
    name: str
    usb_type: str  # "3.2", "2.1", ... or "" when the device does not report it
    firmware: str


def _info(rs: Any, dev: Any, key: str) -> str:
    field = getattr(rs.camera_info, key)
    try:
        return str(dev.get_info(field)) if dev.supports(field) else ""
    except RuntimeError:
        return ""


def list_realsense_devices(rs: Any | None = None) -> list[RealSenseDeviceInfo]:
    """Connected RealSense devices (fast: no streaming is started)."""
    rs = rs or import_pyrealsense2()
    out = []
    for dev in rs.context().query_devices():
        out.append(RealSenseDeviceInfo(
            serial=_info(rs, dev, "serial_number"),
            name=_info(rs, dev, "name"),
            usb_type=_info(rs, dev, "usb_type_descriptor"),
            firmware=_info(rs, dev, "firmware_version"),
        ))
    return out


def _describe(devs: list[RealSenseDeviceInfo]) -> str:
    return ", ".join(f"{d.serial} ({d.name or 'unknown model'}, USB {d.usb_type or '?'})" for d in devs)


class RealSenseCamera(StreamingSensor):
    """RGB stream of one RealSense device, selected by serial number."""

    def __init__(self, config: CameraConfig):
        if config.backend != "realsense":
            raise ValueError(f"RealSenseCamera needs backend 'realsense', got {config.backend!r}")
        self.config = config
        self._what = f"RealSense camera {config.name!r}"
        self._transform = ImageTransform(config.width, config.height, config.crop, config.resize)
        self._slot = LatestFrameSlot(self._what)
        self._depth_slot = LatestFrameSlot(self._what + " depth")
        self._reader: ReaderThread | None = None
        self._rs: Any = None
        self._pipeline: Any = None
        self._align: Any = None
        self._depth_scale = 0.0
        self._intrinsics: CameraIntrinsics | None = None
        self._native_intrinsics: CameraIntrinsics | None = None
        self._mapper = DeviceClockMapper()
        self._serial = ""
        self.device_frames_dropped = 0  # gaps in the device frame counter
        self._last_device_frame: int | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._reader is not None:
            return
        rs = self._rs = import_pyrealsense2()
        cfg = self.config
        self._serial = self._select_device(rs)
        t0 = time.monotonic()

        rs_cfg = rs.config()
        rs_cfg.enable_device(self._serial)
        rs_cfg.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        if cfg.enable_depth:
            rs_cfg.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
        pipeline = rs.pipeline()
        mode = f"color {cfg.width}x{cfg.height}@{cfg.fps} rgb8" + (" + depth z16" if cfg.enable_depth else "")
        try:
            profile = run_bounded(lambda: pipeline.start(rs_cfg), cfg.start_timeout_s,
                                  f"{self._what}: pipeline.start (serial {self._serial})",
                                  cleanup_late=lambda _p: pipeline.stop())
        except RuntimeError as exc:  # librealsense errors, e.g. unsupported mode
            raise SensorError(f"{self._what}: could not start serial {self._serial} with {mode}: {exc}. "
                              f"Check the mode with `rs-enumerate-devices -s {self._serial}`; a USB 2 "
                              f"link only supports low resolutions/fps") from exc
        self._pipeline = pipeline
        try:
            self._configure_from_profile(rs, profile)
            self._slot.reset()
            self._depth_slot.reset()
            self._mapper.reset()
            self._last_device_frame = None
            self.device_frames_dropped = 0
            self._reader = ReaderThread(f"realsense-{cfg.name}", self._step, self._slot.fail)
            self._reader.start()
            remaining = max(0.05, cfg.start_timeout_s - (time.monotonic() - t0))
            try:
                self._slot.get(remaining)
            except SensorError as exc:
                raise SensorError(f"{self._what}: streaming started but no frame arrived ({exc}); "
                                  f"check USB bandwidth (USB3 port, no hub) and power") from exc
        except BaseException:
            self.stop()
            raise
        log.info("%s: streaming serial %s, %s", self._what, self._serial, mode)

    def _select_device(self, rs: Any) -> str:
        devices = list_realsense_devices(rs)
        if not devices:
            raise DeviceNotFoundError(f"{self._what}: {NO_DEVICE_HINT}")
        wanted = self.config.serial
        if wanted:
            match = [d for d in devices if d.serial == wanted]
            if not match:
                raise DeviceNotFoundError(
                    f"{self._what}: RealSense serial {wanted!r} is not connected; connected devices: "
                    f"{_describe(devices)}")
            dev = match[0]
        elif len(devices) == 1:
            dev = devices[0]
        else:
            raise SensorError(f"{self._what}: {len(devices)} RealSense devices connected ("
                              f"{_describe(devices)}); set `serial` to choose one")
        if dev.usb_type.startswith("2"):
            log.warning("%s: serial %s is on a USB %s link; high resolution/fps modes will fail",
                        self._what, dev.serial, dev.usb_type)
        return dev.serial

    def _configure_from_profile(self, rs: Any, profile: Any) -> None:
        vsp = profile.get_stream(rs.stream.color).as_video_stream_profile()
        i = vsp.get_intrinsics()
        model = getattr(i.model, "name", str(i.model).rsplit(".", 1)[-1])
        native = CameraIntrinsics(width=int(i.width), height=int(i.height), fx=float(i.fx),
                                  fy=float(i.fy), cx=float(i.ppx), cy=float(i.ppy),
                                  model=model, coeffs=tuple(float(c) for c in i.coeffs))
        if (native.width, native.height) != self._transform.in_size:
            raise SensorError(f"{self._what}: device delivers {native.width}x{native.height}, "
                              f"requested {self._transform.in_size}")
        self._native_intrinsics = native
        self._intrinsics = self._transform.intrinsics(native)
        if self.config.enable_depth:
            self._depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            # Depth and colour come from different imagers; align depth into the
            # colour frame so the same crop/resize and intrinsics apply to both.
            self._align = rs.align(rs.stream.color)

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            # wait_for_frames is bounded by _POLL_MS, so this join is prompt.
            reader.stop(_JOIN_TIMEOUT_S)
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except RuntimeError as exc:  # already stopped / device gone
                log.debug("%s: pipeline.stop: %s", self._what, exc)
        self._align = None

    # -- data --------------------------------------------------------------
    def latest_depth(self, timeout_s: float = 1.0) -> Frame:
        """Depth aligned to colour: float32 (H, W) metres, same crop/resize/seq/stamp
        as the colour frame of the same frameset. Requires ``enable_depth``."""
        if not self.config.enable_depth:
            raise SensorError(f"{self._what}: depth is disabled (set enable_depth: true)")
        if self._reader is None:
            raise SensorError(f"{self._what}: not started")
        return self._depth_slot.get(timeout_s)

    def intrinsics(self) -> CameraIntrinsics:
        """Intrinsics of delivered frames (after crop/resize). Valid after start()."""
        if self._intrinsics is None:
            raise SensorError(f"{self._what}: intrinsics are read from the device; call start() first")
        return self._intrinsics

    @property
    def serial(self) -> str:
        return self._serial

    # -- reader thread -----------------------------------------------------
    def _step(self, stop: threading.Event) -> None:
        try:
            frames = self._pipeline.wait_for_frames(_POLL_MS)
        except RuntimeError as exc:
            # Timeouts and transient USB errors look alike here; keep polling
            # and let latest() report a stall (with this message) if it lasts.
            self._slot.note(str(exc))
            stop.wait(0.01)  # avoid a hot loop if the driver fails instantly
            return
        arrival = host_time_ns()
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return
        stamp = self._stamp(color, arrival)
        self._count_drops(int(color.get_frame_number()))
        rgb = np.asanyarray(color.get_data())
        # Copy out of the librealsense buffer (see module doc); apply() copies
        # when cropping/resizing, so only the identity case needs an explicit one.
        rgb = rgb.copy() if self._transform.is_identity else self._transform.apply(rgb)
        depth = None
        if self._align is not None:
            dframe = frames.get_depth_frame()
            if dframe:
                raw = np.asanyarray(dframe.get_data())
                # Nearest, not area: averaging across a depth edge invents
                # surfaces that do not exist ("flying pixels").
                raw = self._transform.apply(raw, interpolation=cv2.INTER_NEAREST)
                depth = raw.astype(np.float32) * np.float32(self._depth_scale)
        del frames, color  # release the pool buffers before blocking again
        seq = self._slot.received
        if depth is not None:
            self._depth_slot.publish(Frame(data=depth, stamp_ns=stamp, seq=seq))
        self._slot.publish(Frame(data=rgb, stamp_ns=stamp, seq=seq))

    def _stamp(self, frame: Any, arrival_ns: int) -> int:
        ts_ns = int(round(frame.get_timestamp() * 1e6))  # librealsense reports ms
        domain = frame.get_frame_timestamp_domain()
        name = getattr(domain, "name", str(domain).rsplit(".", 1)[-1])
        if name in ("global_time", "system_time"):
            # Clamp: a frame cannot be acquired after we received it.
            return min(wall_to_host_ns(ts_ns), arrival_ns)
        return self._mapper.map(ts_ns, arrival_ns)

    def _count_drops(self, n: int) -> None:
        last, self._last_device_frame = self._last_device_frame, n
        if last is not None and n > last + 1:
            self.device_frames_dropped += n - last - 1
