"""Tactile sensor baselines: per-taxel (or per-pixel) no-contact statistics.

Capture N frames with nothing touching the sensor, store the per-element mean
and standard deviation keyed by the sensor serial, and normalise live frames as
``(raw - mean) / scale`` with ``scale = max(std, noise_floor)``. The noise
floor keeps dead or saturated taxels (std ~ 0) from turning tiny ADC jitter
into huge normalised values.

Storage layout (``directory`` is normally ``calibration/tactile``)::

    <directory>/index.yaml          # serial -> file, shape, dtype, n_frames, ...
    <directory>/<serial>.npz        # arrays: mean, std (float64), no pickled objects

``.npz`` files are written with plain arrays and read with
``allow_pickle=False`` so a baseline file can never execute code.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml

from robot_rl.paths import atomic_write_bytes, atomic_write_text

from .errors import CalibrationError, CalibrationFileError

__all__ = ["TactileBaseline", "capture_baseline", "save_baseline", "load_baseline", "list_baselines", "main"]

_SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INDEX_NAME = "index.yaml"


def _check_serial(serial: str) -> str:
    serial = str(serial)
    # The serial becomes a file name: refuse path separators / traversal.
    if not _SERIAL_RE.match(serial) or ".." in serial:
        raise ValueError(
            f"sensor serial {serial!r} must be 1-128 characters of letters, digits, '.', '_' or '-' "
            "(it is used as a file name)"
        )
    return serial


@dataclass
class TactileBaseline:
    serial: str
    mean: np.ndarray
    std: np.ndarray
    n_frames: int
    noise_floor: float
    created: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mean.shape)

    @property
    def scale(self) -> np.ndarray:
        return np.maximum(self.std, self.noise_floor)

    def apply(self, raw: np.ndarray, deadband: float = 0.0) -> np.ndarray:
        """Normalise one frame (or a batch ``(B, *shape)``): ``(raw - mean) / max(std, noise_floor)``.

        deadband: values with ``|normalised| < deadband`` (in sigma units) are
        set to 0, e.g. 3.0 to suppress no-contact noise in a contact mask.
        """
        raw = np.asarray(raw)
        if raw.shape != self.shape and raw.shape[1:] != self.shape:
            raise ValueError(
                f"tactile frame shape {raw.shape} does not match baseline {self.shape} for sensor {self.serial} "
                f"(expected {self.shape} or (batch, *{self.shape}))"
            )
        out = (raw.astype(np.float64) - self.mean) / self.scale
        if deadband > 0:
            out[np.abs(out) < deadband] = 0.0
        return out


def capture_baseline(
    frames: Iterable[np.ndarray] | np.ndarray,
    serial: str,
    noise_floor: float | None = None,
    min_frames: int = 10,
    max_drift_sigma: float = 3.0,
) -> TactileBaseline:
    """Statistics from no-contact frames.

    frames: iterable of equally shaped arrays, or an array ``(N, *shape)``.
    noise_floor: minimum scale; default 10% of the median per-element std
        (at least 1e-6): dead or clipped taxels (std ~ 0) get floored while
        normally noisy ones keep their own std.
    max_drift_sigma: the mean of the first and second half of the capture may
        differ by at most this many (pooled) standard deviations of the mean
        (i.e. ``max_drift_sigma * scale / sqrt(N/2)``), element-wise on the
        median: catches touching the sensor or thermal drift during capture.
    """
    serial = _check_serial(serial)
    if isinstance(frames, np.ndarray):
        stack = frames
    else:
        frames = list(frames)
        if not frames:
            raise CalibrationError(f"no tactile frames captured for sensor {serial}")
        shapes = {np.shape(f) for f in frames}
        if len(shapes) != 1:
            raise CalibrationError(f"tactile frames for sensor {serial} have differing shapes {sorted(shapes)}")
        stack = np.stack([np.asarray(f) for f in frames])
    if stack.ndim < 2:
        raise CalibrationError(f"expected frames shaped (N, *sensor_shape), got {stack.shape}")
    n = stack.shape[0]
    if n < min_frames:
        raise CalibrationError(f"only {n} tactile frames for sensor {serial}, need >= {min_frames} for a stable baseline")
    data = stack.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise CalibrationError(f"tactile frames for sensor {serial} contain NaN/inf")
    mean = data.mean(axis=0)
    std = data.std(axis=0, ddof=1)
    if noise_floor is None:
        noise_floor = max(0.1 * float(np.median(std)), 1e-6)
    if noise_floor <= 0:
        raise ValueError(f"noise_floor must be > 0, got {noise_floor}")
    scale = np.maximum(std, noise_floor)
    half = n // 2
    drift = np.abs(data[:half].mean(axis=0) - data[half:].mean(axis=0)) / (scale / np.sqrt(half))
    med_drift = float(np.median(drift))
    if med_drift > max_drift_sigma:
        raise CalibrationError(
            f"sensor {serial}: baseline not stationary (first vs second half differ by {med_drift:.1f} sigma, median "
            f"over elements; limit {max_drift_sigma}). Make sure nothing touches the sensor and it has warmed up"
        )
    return TactileBaseline(serial, mean, std, n, float(noise_floor), _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def _read_index(directory: Path) -> dict:
    path = directory / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CalibrationFileError(f"{path}: not valid YAML ({exc})") from exc
    sensors = data.get("sensors", {}) if isinstance(data, dict) else None
    if not isinstance(sensors, dict):
        raise CalibrationFileError(f"{path}: expected a mapping with a 'sensors' mapping")
    return sensors


def save_baseline(baseline: TactileBaseline, directory: str | os.PathLike) -> Path:
    """Write ``<serial>.npz`` and update ``index.yaml`` in ``directory``; returns the npz path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    serial = _check_serial(baseline.serial)
    npz = directory / f"{serial}.npz"

    data = io.BytesIO()
    np.savez(data, mean=baseline.mean.astype(np.float64), std=baseline.std.astype(np.float64))
    atomic_write_bytes(npz, data.getvalue())
    sensors = _read_index(directory)
    sensors[serial] = {
        "file": npz.name,
        "shape": [int(s) for s in baseline.shape],
        "n_frames": int(baseline.n_frames),
        "noise_floor": float(baseline.noise_floor),
        "created": baseline.created,
    }
    atomic_write_text(directory / INDEX_NAME, yaml.safe_dump({"sensors": sensors}, sort_keys=True))
    return npz


def list_baselines(directory: str | os.PathLike) -> list[str]:
    return sorted(_read_index(Path(directory)))


def load_baseline(directory: str | os.PathLike, serial: str, expected_shape: Sequence[int] | None = None) -> TactileBaseline:
    """Load the baseline of sensor ``serial``; raise CalibrationFileError if missing or mismatched."""
    directory = Path(directory)
    serial = _check_serial(serial)
    sensors = _read_index(directory)
    if serial not in sensors:
        known = ", ".join(sorted(sensors)) or "none"
        raise CalibrationFileError(
            f"no tactile baseline for sensor {serial!r} in {directory} (known: {known}); "
            "run `robot-rl calibrate tactile` with nothing touching the sensor"
        )
    entry = sensors[serial]
    npz = directory / str(entry.get("file", f"{serial}.npz"))
    if not npz.is_file():
        raise CalibrationFileError(f"index lists {npz.name} for sensor {serial} but the file is missing")
    try:
        with np.load(npz, allow_pickle=False) as z:
            mean, std = z["mean"], z["std"]
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationFileError(f"{npz}: unreadable or missing 'mean'/'std' arrays ({exc})") from exc
    if mean.shape != std.shape:
        raise CalibrationFileError(f"{npz}: mean shape {mean.shape} != std shape {std.shape}")
    if list(mean.shape) != list(entry.get("shape", mean.shape)):
        raise CalibrationFileError(f"{npz}: array shape {mean.shape} disagrees with index shape {entry.get('shape')}")
    if expected_shape is not None and tuple(mean.shape) != tuple(expected_shape):
        raise CalibrationFileError(
            f"tactile baseline for sensor {serial} has shape {tuple(mean.shape)} but the sensor reports "
            f"{tuple(expected_shape)}; recapture the baseline (sensor model/resolution changed?)"
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))) or np.any(std < 0):
        raise CalibrationFileError(f"{npz}: baseline contains NaN/inf or negative std")
    return TactileBaseline(serial, mean, std, int(entry.get("n_frames", 0)), float(entry.get("noise_floor", 1e-6)), str(entry.get("created", "")))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``robot-rl calibrate tactile --frames frames.npy --serial SN --out-dir calibration/tactile``.

    ``frames.npy`` holds ``(N, *sensor_shape)`` no-contact frames (recorded by
    the sensor driver; live capture is wired in the ROS node).
    """
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="robot-rl calibrate tactile")
    ap.add_argument("--frames", required=True, help=".npy array (N, *sensor_shape) of no-contact frames")
    ap.add_argument("--serial", required=True)
    ap.add_argument("--out-dir", default="calibration/tactile")
    ap.add_argument("--noise-floor", type=float, default=None)
    args = ap.parse_args(argv)
    try:
        frames = np.load(args.frames, allow_pickle=False)
        b = capture_baseline(frames, args.serial, noise_floor=args.noise_floor)
        path = save_baseline(b, args.out_dir)
    except (CalibrationError, ValueError, OSError) as exc:
        print(f"tactile baseline failed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({b.n_frames} frames, shape {b.shape}, median std {np.median(b.std):.4g})")
    return 0
