"""A no-contact tactile baseline from a live stream of frames (ROS-free).

``robot-rl calibrate tactile-capture`` resolves the sensor's serial from the configuration
(:func:`sensor_serial`), feeds the frames of ``/tactile/<name>/image`` into a
:class:`DistinctFrames` until it holds N frames with distinct stamps, then
:func:`save_stream_baseline` builds and saves the baseline under the serial
(:mod:`robot_rl.calibration.tactile` file layout). The ROS 2 subscription is in
:func:`robot_rl.ros.calibration_client.tactile_capture`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import CalibrationError
from .tactile import TactileBaseline, capture_baseline, save_baseline

Log = Callable[[str], None]


def sensor_serial(cfg, sensor: str, serial: str | None = None) -> str:
    """The serial a baseline of ``sensor`` is stored under: ``serial`` or ``tactile[].serial``."""
    names = [t.name for t in cfg.tactile]
    if sensor not in names:
        raise CalibrationError(f"tactile sensor {sensor!r} is not configured; configured: {names}")
    serial = serial or cfg.tactile[names.index(sensor)].serial
    if not serial:
        raise CalibrationError(f"tactile sensor {sensor!r} has no serial in the configuration "
                               f"(tactile[].serial); pass --serial")
    return serial


class DistinctFrames:
    """Collects ``n_frames`` frames with distinct stamps (a repeated stamp is the same reading
    published again). :meth:`add` may be called from another thread."""

    def __init__(self, n_frames: int):
        if n_frames < 1:
            raise ValueError(f"n_frames must be at least 1, got {n_frames}")
        self.n_frames = n_frames
        self.frames: list[np.ndarray] = []
        self._stamps: set[float] = set()
        self._done = threading.Event()

    def add(self, stamp: float, frame: np.ndarray) -> None:
        if stamp in self._stamps or self._done.is_set():
            return
        self._stamps.add(stamp)
        self.frames.append(np.array(frame, copy=True))
        if len(self.frames) >= self.n_frames:
            self._done.set()

    def wait(self, timeout: float, source: str) -> list[np.ndarray]:
        """The first ``n_frames`` frames, or :class:`CalibrationError` naming ``source``."""
        if not self._done.wait(timeout):
            raise CalibrationError(f"only {len(self.frames)} of {self.n_frames} frames from {source} within "
                                   f"{timeout:.0f} s; is the tactile node running?")
        return self.frames[: self.n_frames]


def save_stream_baseline(frames: list[np.ndarray], serial: str, out_dir: str | os.PathLike,
                         log: Log = print) -> tuple[TactileBaseline, Path]:
    baseline = capture_baseline(frames, serial)
    path = save_baseline(baseline, out_dir)
    log(f"wrote {path}: {baseline.n_frames} frames, shape {baseline.shape}, median std {np.median(baseline.std):.4g}, "
        f"noise floor {baseline.noise_floor:.3g}")
    return baseline, path
