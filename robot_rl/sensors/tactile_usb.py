"""Optical tactile sensor that enumerates as a USB (UVC) camera, e.g. GelSight
Mini or DIGIT, read with OpenCV.

``config.device`` may be "/dev/videoN", a /dev/v4l/by-id/... symlink, an index
"N", or "" with ``config.serial`` set (the USB serial is looked up in sysfs).
Any other existing path is opened as a video file and replayed in a loop at
``config.fps``, which is how the processing path is tested without hardware.

Why the details:
* The device path is checked before OpenCV sees it: ``VideoCapture`` on a
  missing node just returns "not opened" with a log line, and a permission
  problem looks the same; we want to say which of the two it is.
* V4L2 devices are opened by index with CAP_V4L2 (opening by name is not
  supported by every OpenCV build), with a 1-frame driver buffer so "latest"
  really is recent, and a read timeout so the reader thread can be joined.
* Timestamps: OpenCV's V4L2 backend reports the kernel buffer timestamp in
  CAP_PROP_POS_MSEC, and uvcvideo stamps buffers with CLOCK_MONOTONIC at the
  start of the frame, which maps exactly onto our host clock. If the value is
  implausible (other drivers/backends) we fall back to the arrival time.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from typing import Any, Callable

import cv2
import numpy as np

from ._stream import LatestFrameSlot, ReaderThread, StreamingSensor, run_bounded
from .base import DeviceNotFoundError, Frame, SensorError, TactileLayout
from .clock import host_time_ns, monotonic_to_host_ns
from .config import TactileConfig
from .image_ops import ImageTransform

log = logging.getLogger(__name__)

BaselineHook = Callable[[np.ndarray], np.ndarray]

_READ_TIMEOUT_MS = 1000
_JOIN_TIMEOUT_S = 3.0     # > read timeout: a read in flight must be allowed to finish
_SYSFS_V4L = "/sys/class/video4linux"
_VIDEO_RE = re.compile(r"^/dev/video(\d+)$")


def _v4l_hint() -> str:
    present = sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
    return (f"video devices present: {', '.join(present) if present else 'none'}. Check the USB cable, "
            f"`v4l2-ctl --list-devices` (the sensor is usually the first node of its group), and that "
            f"the user is in the `video` group (`sudo usermod -aG video $USER`, then log in again)")


def usb_serial_of_video_node(node: str, sysfs_root: str = _SYSFS_V4L) -> str:
    """USB iSerial of the device behind /dev/videoN ("" if unknown)."""
    m = _VIDEO_RE.match(os.path.realpath(node))
    if not m:
        return ""
    d = os.path.realpath(os.path.join(sysfs_root, f"video{m.group(1)}", "device"))
    # device -> the USB *interface*; the serial lives on its parent USB device.
    for _ in range(4):
        f = os.path.join(d, "serial")
        if os.path.isfile(f):
            with open(f) as fh:
                return fh.read().strip()
        d = os.path.dirname(d)
    return ""


def find_video_node_by_serial(serial: str, sysfs_root: str = _SYSFS_V4L) -> str:
    """Lowest-numbered /dev/videoN whose USB serial is ``serial`` ("" if none).

    UVC cameras expose a capture node and a metadata node; the capture node is
    the lower number."""
    nodes = []
    for entry in glob.glob(os.path.join(sysfs_root, "video*")):
        name = os.path.basename(entry)
        if name[5:].isdigit() and usb_serial_of_video_node(f"/dev/{name}", sysfs_root) == serial:
            nodes.append(int(name[5:]))
    return f"/dev/video{min(nodes)}" if nodes else ""


class UsbOpticalTactile(StreamingSensor):
    """Latest-frame reader for a UVC optical tactile sensor. Frame.data is
    uint8 (H, W, 3) RGB after crop/resize, or whatever the baseline hook returns."""

    def __init__(self, config: TactileConfig, baseline_hook: BaselineHook | None = None,
                 hook_units: str = "baseline_subtracted"):
        if config.backend != "usb_optical":
            raise ValueError(f"UsbOpticalTactile needs backend 'usb_optical', got {config.backend!r}")
        self.config = config
        self._what = f"optical tactile sensor {config.name!r}"
        self._hook = baseline_hook
        self._hook_units = hook_units
        self._slot = LatestFrameSlot(self._what)
        self._reader: ReaderThread | None = None
        self._cap: Any = None
        self._is_file = False
        self._source = ""
        self._serial = config.serial
        self._transform: ImageTransform | None = None
        self._out_shape: tuple[int, ...] | None = None
        self._seq = 0
        self._next_due = 0.0
        self._fail_since: float | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._reader is not None:
            return
        cfg = self.config
        source, index = self._resolve_source()
        self._source = source
        t0 = time.monotonic()
        if index is not None:
            self._serial = self._check_serial(source)

            def open_cap() -> Any:
                cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
                if cap.isOpened():
                    # Request the mode before the first read; 0 keeps the driver default.
                    if cfg.width and cfg.height:
                        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
                        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
                    if cfg.fps:
                        cap.set(cv2.CAP_PROP_FPS, cfg.fps)
                    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
                    if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
                        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, _READ_TIMEOUT_MS)
                return cap
        else:
            self._serial = cfg.serial or source

            def open_cap() -> Any:
                return cv2.VideoCapture(source)
        cap = run_bounded(open_cap, cfg.start_timeout_s, f"{self._what}: opening {source}",
                          cleanup_late=lambda c: c.release())
        if not cap.isOpened():
            cap.release()
            raise SensorError(f"{self._what}: OpenCV could not open {source}; is it busy in another "
                              f"process (`fuser {source}`)? {_v4l_hint() if index is not None else ''}")
        self._cap = cap
        self._is_file = index is None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            self._transform = ImageTransform(w, h, cfg.crop, cfg.resize)
        except ValueError as exc:
            self.stop()
            raise ValueError(f"{self._what} ({source}, {w}x{h}): {exc}") from exc
        self._slot.reset()
        self._seq = 0
        self._out_shape = None
        self._fail_since = None
        self._next_due = time.monotonic()
        self._reader = ReaderThread(f"optical-{cfg.name}", self._step, self._slot.fail)
        self._reader.start()
        try:
            self._slot.get(max(0.05, cfg.start_timeout_s - (time.monotonic() - t0)))
        except BaseException as exc:
            self.stop()
            if isinstance(exc, SensorError):
                raise SensorError(f"{self._what}: {source} opened, but no first frame ({exc})") from exc
            raise

    def _resolve_source(self) -> tuple[str, int | None]:
        """(path, V4L2 index or None for a video file)."""
        cfg = self.config
        dev = cfg.device
        if not dev:
            if not cfg.serial:
                raise SensorError(f"{self._what}: set `device` (/dev/videoN or index) or `serial`")
            dev = find_video_node_by_serial(cfg.serial)
            if not dev:
                raise DeviceNotFoundError(f"{self._what}: no video device with USB serial "
                                          f"{cfg.serial!r}; {_v4l_hint()}")
        if dev.isdigit():
            dev = f"/dev/video{dev}"
        if dev.startswith("/dev/"):
            if not os.path.exists(dev):
                raise DeviceNotFoundError(f"{self._what}: video device {dev} does not exist; {_v4l_hint()}")
            real = os.path.realpath(dev)
            if not os.access(real, os.R_OK | os.W_OK):
                raise SensorError(f"{self._what}: permission denied on {dev} ({real}); add the user to the "
                                  f"`video` group (`sudo usermod -aG video $USER`, then log in again)")
            m = _VIDEO_RE.match(real)
            if not m:
                raise SensorError(f"{self._what}: {dev} resolves to {real}, not a /dev/videoN node")
            return dev, int(m.group(1))
        if not os.path.isfile(dev):
            raise DeviceNotFoundError(f"{self._what}: {dev!r} is neither a /dev/video node, an index, "
                                      f"nor an existing video file")
        return dev, None

    def _check_serial(self, node: str) -> str:
        reported = usb_serial_of_video_node(node)
        if self.config.serial and reported and reported != self.config.serial:
            raise SensorError(f"{self._what}: {node} has USB serial {reported!r}, config expects "
                              f"{self.config.serial!r}; use /dev/v4l/by-id/ paths to pin devices")
        return reported or self.config.serial or node

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        joined = True
        if reader is not None:
            joined = reader.stop(_JOIN_TIMEOUT_S)
        cap, self._cap = self._cap, None
        if cap is not None:
            if joined:
                cap.release()
            else:
                # Releasing under a read still in progress can crash inside
                # the driver; leaking one handle is the lesser evil.
                log.error("%s: reader still blocked in read(); not releasing the capture", self._what)

    # -- data --------------------------------------------------------------
    def layout(self) -> TactileLayout:
        units = "rgb8" if self._hook is None else self._hook_units
        if self._out_shape is not None:
            return TactileLayout(kind="optical", shape=self._out_shape, units=units)
        if self._transform is not None and self._hook is None:
            w, h = self._transform.out_size
            return TactileLayout(kind="optical", shape=(h, w, 3), units=units)
        if self.config.resize is not None and self._hook is None:
            w, h = self.config.resize
            return TactileLayout(kind="optical", shape=(h, w, 3), units=units)
        raise SensorError(f"{self._what}: frame size is known once the device is open; call start() first")

    @property
    def serial(self) -> str:
        return self._serial

    def set_baseline_hook(self, hook: BaselineHook | None, units: str = "baseline_subtracted") -> None:
        """Install/replace/remove the baseline hook while streaming. The
        calibration module typically reads raw frames first, builds the
        baseline, then installs the hook. Applies from the next frame."""
        self._hook_units = units
        self._hook = hook
        self._out_shape = None

    # -- reader thread -----------------------------------------------------
    def _step(self, stop: threading.Event) -> None:
        cap = self._cap
        if self._is_file:
            # Pace replay like a camera; otherwise a file is read at disk speed.
            delay = self._next_due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            self._next_due = max(self._next_due + 1.0 / (self.config.fps or 30), time.monotonic() - 0.1)
        ok, bgr = cap.read()
        arrival = host_time_ns()
        if not ok or bgr is None:
            if self._is_file:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the recording
                return
            # Disconnects show up as repeated read failures; latest() reports
            # the stall, and after 2 s we declare the device gone.
            now = time.monotonic()
            self._fail_since = self._fail_since or now
            self._slot.note("cv2.VideoCapture.read() failed")
            if now - self._fail_since > 2.0:
                raise SensorError(f"{self._source} stopped delivering frames (unplugged?); {_v4l_hint()}")
            stop.wait(0.02)
            return
        self._fail_since = None
        stamp = arrival
        if not self._is_file:
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            cand = monotonic_to_host_ns(int(ms * 1e6))
            if 0 <= arrival - cand < 1_000_000_000:
                stamp = cand
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # OpenCV decodes to BGR; contract is RGB
        assert self._transform is not None
        img = self._transform.apply(rgb)
        hook = self._hook
        if hook is not None:
            img = np.ascontiguousarray(hook(img))
        self._out_shape = img.shape
        self._slot.publish(Frame(data=img, stamp_ns=stamp, seq=self._seq))
        self._seq += 1
