"""A fake ``pyrealsense2`` module implementing the subset RealSenseCamera uses.

Only for tests: no RealSense can be attached to CI. It models the behaviours
the backend has to cope with, not just the call signatures:

* device enumeration via ``context().query_devices()`` with ``camera_info``;
* ``pipeline.start`` resolves the requested mode against the device's
  supported modes (RuntimeError "Couldn't resolve requests" otherwise, like
  librealsense) and can be made to block (``start_delay_s``);
* the device produces frames on its own schedule at ``fps``: a consumer that
  calls ``wait_for_frames`` slowly misses frames (frame numbers jump);
* ``rs.control.stalled = True`` makes the device stop sending (wait_for_frames
  then times out), as on a USB stall or unplug;
* frames come from a fixed-size pool; a consumer that keeps frames alive
  exhausts it and ``wait_for_frames`` then times out, as with the real driver;
* pixel content encodes position and frame number: R = x % 256,
  G = y % 256, B = frame_number % 256.

Inject with ``monkeypatch.setitem(sys.modules, "pyrealsense2", make_fake_rs(...))``.
"""

from __future__ import annotations

import threading
import time
import types
import weakref
from dataclasses import dataclass, field

import numpy as np


class _Enum:
    """pybind11-style enum value: has ``.name`` and a dotted ``str``."""

    def __init__(self, owner: str, name: str):
        self.name = name
        self._owner = owner

    def __repr__(self) -> str:
        return f"{self._owner}.{self.name}"

    __str__ = __repr__


def _enum_ns(owner: str, *names: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{n: _Enum(owner, n) for n in names})


@dataclass
class FakeDeviceSpec:
    serial: str
    name: str = "Intel RealSense D435"
    usb_type: str = "3.2"
    firmware: str = "5.16.0.1"
    # (width, height, fps) colour modes the device accepts.
    modes: list[tuple[int, int, int]] = field(default_factory=lambda: [(640, 480, 30), (64, 48, 200)])
    fx: float = 600.0
    fy: float = 601.0
    ppx: float = 320.5
    ppy: float = 240.25
    coeffs: tuple[float, ...] = (0.1, -0.2, 0.001, 0.002, 0.03)
    timestamp_domain: str = "global_time"
    depth_scale: float = 0.001
    start_delay_s: float = 0.0


def make_fake_rs(devices: list[FakeDeviceSpec], pool_size: int = 8) -> types.ModuleType:
    rs = types.ModuleType("pyrealsense2")
    rs.camera_info = _enum_ns("camera_info", "serial_number", "name", "usb_type_descriptor",
                              "firmware_version")
    rs.stream = _enum_ns("stream", "color", "depth")
    rs.format = _enum_ns("format", "rgb8", "z16")
    rs.distortion = _enum_ns("distortion", "none", "brown_conrady", "inverse_brown_conrady")
    rs.timestamp_domain = _enum_ns("timestamp_domain", "hardware_clock", "system_time", "global_time")
    rs.stats = types.SimpleNamespace(frames_produced=0, last_frame_number=-1, pipelines_running=0,
                                     live_frames=0, max_live_frames=0)
    # Test control: while True the device sends nothing (USB stall / unplug).
    rs.control = types.SimpleNamespace(stalled=False)
    stats = rs.stats
    stats_lock = threading.Lock()

    class device:
        def __init__(self, spec: FakeDeviceSpec):
            self.spec = spec

        def supports(self, info: _Enum) -> bool:
            return info.name in ("serial_number", "name", "usb_type_descriptor", "firmware_version")

        def get_info(self, info: _Enum) -> str:
            s = self.spec
            return {"serial_number": s.serial, "name": s.name, "usb_type_descriptor": s.usb_type,
                    "firmware_version": s.firmware}[info.name]

        def first_depth_sensor(self):
            return types.SimpleNamespace(get_depth_scale=lambda: self.spec.depth_scale)

    class context:
        def query_devices(self):
            return [device(s) for s in devices]

    class config:
        def __init__(self):
            self.serial = None
            self.streams: dict[str, tuple] = {}

        def enable_device(self, serial: str) -> None:
            self.serial = serial

        def enable_stream(self, stream, width, height, fmt, fps) -> None:
            self.streams[stream.name] = (width, height, fmt.name, fps)

    class intrinsics:
        def __init__(self, spec: FakeDeviceSpec, w: int, h: int):
            self.width, self.height = w, h
            # Scale the reference (640x480) calibration to the mode, as a
            # real device's per-mode intrinsics roughly do.
            s = w / 640.0
            self.fx, self.fy = spec.fx * s, spec.fy * s
            self.ppx, self.ppy = spec.ppx * s, spec.ppy * s
            self.model = rs.distortion.inverse_brown_conrady
            self.coeffs = list(spec.coeffs)

    class video_stream_profile:
        def __init__(self, intr):
            self._intr = intr

        def as_video_stream_profile(self):
            return self

        def get_intrinsics(self):
            return self._intr

    class pipeline_profile:
        def __init__(self, dev: device, w: int, h: int):
            self._dev, self._w, self._h = dev, w, h

        def get_stream(self, stream):
            return video_stream_profile(intrinsics(self._dev.spec, self._w, self._h))

        def get_device(self):
            return self._dev

    class frame:
        def __init__(self, data: np.ndarray, number: int, ts_ms: float, domain: _Enum):
            self._data, self._number, self._ts, self._domain = data, number, ts_ms, domain
            with stats_lock:
                stats.live_frames += 1
                stats.max_live_frames = max(stats.max_live_frames, stats.live_frames)
            weakref.finalize(self, _release)

        def __bool__(self) -> bool:
            return True

        def get_data(self):
            return self._data

        def get_timestamp(self) -> float:
            return self._ts

        def get_frame_number(self) -> int:
            return self._number

        def get_frame_timestamp_domain(self):
            return self._domain

    def _release() -> None:
        with stats_lock:
            stats.live_frames -= 1

    class frameset:
        def __init__(self, color: frame, depth: frame | None):
            self._color, self._depth = color, depth

        def get_color_frame(self):
            return self._color

        def get_depth_frame(self):
            return self._depth

    class align:
        def __init__(self, to_stream):
            self.to = to_stream

        def process(self, frames):
            return frames  # fake depth is generated already in the colour geometry

    class pipeline:
        def __init__(self):
            self._spec: FakeDeviceSpec | None = None
            self._t0 = 0.0
            self._next = 0
            self._mode = None
            self._depth = False

        def start(self, cfg: config):
            if not devices:
                time.sleep(0.2)  # the real one blocks ~15 s; short here
                raise RuntimeError("No device connected")
            spec = next((d for d in devices if d.serial == cfg.serial), None) if cfg.serial else devices[0]
            if spec is None:
                raise RuntimeError("No device connected")
            time.sleep(spec.start_delay_s)
            w, h, fmt, fps = cfg.streams["color"]
            if (w, h, fps) not in spec.modes or fmt != "rgb8":
                raise RuntimeError("Couldn't resolve requests")
            self._spec, self._mode, self._depth = spec, (w, h, fps), "depth" in cfg.streams
            self._t0 = time.monotonic()
            self._next = 0
            stats.pipelines_running += 1
            return pipeline_profile(device(spec), w, h)

        def stop(self) -> None:
            if self._spec is None:
                raise RuntimeError("stop() cannot be called before start()")
            self._spec = None
            stats.pipelines_running -= 1

        def wait_for_frames(self, timeout_ms: int = 5000):
            if self._spec is None:
                raise RuntimeError("wait_for_frames cannot be called before start()")
            w, h, fps = self._mode
            spec = self._spec
            deadline = time.monotonic() + timeout_ms / 1000.0
            # Device clock: frame n is exposed at t0 + n / fps. The driver
            # hands out the newest completed frame, so slow callers skip frames.
            while True:
                now = time.monotonic()
                newest = int((now - self._t0) * fps)
                if newest >= self._next and stats.live_frames < pool_size and not rs.control.stalled:
                    break
                wake = self._t0 + self._next / fps if newest < self._next else now + 0.001
                if wake > deadline:
                    time.sleep(max(0.0, deadline - now))
                    raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
                time.sleep(max(0.0, wake - now))
            n = newest
            self._next = n + 1
            ys, xs = np.mgrid[0:h, 0:w]
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = xs % 256
            img[..., 1] = ys % 256
            img[..., 2] = n % 256
            exposure_t = self._t0 + n / fps
            if spec.timestamp_domain == "hardware_clock":
                ts_ms = 12345.0 + (exposure_t - self._t0) * 1000.0  # device µs counter in ms
            else:  # global/system time are host wall clock in ms
                ts_ms = (time.time() - (time.monotonic() - exposure_t)) * 1000.0
            domain = getattr(rs.timestamp_domain, spec.timestamp_domain)
            color = frame(img, n, ts_ms, domain)
            depth = None
            if self._depth:
                depth = frame((1000 + xs).astype(np.uint16), n, ts_ms, domain)
            with stats_lock:
                stats.frames_produced += 1
                stats.last_frame_number = n
            return frameset(color, depth)

    for obj in (device, context, config, intrinsics, video_stream_profile, pipeline_profile,
                frame, frameset, align, pipeline):
        setattr(rs, obj.__name__, obj)
    return rs
