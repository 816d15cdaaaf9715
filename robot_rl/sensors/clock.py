"""Host clock used for real-sensor timestamps, and device->host clock mapping.

``host_time_ns()`` is "monotonic-aligned wall time": it reads CLOCK_MONOTONIC
and adds a wall-clock offset captured once at import. Values are therefore on
the UNIX epoch (so they can go straight into ROS header stamps and be compared
across processes on one host to within NTP error at import time), but they never
jump when NTP or an operator steps the system clock mid-run. All real backends
stamp frames on this clock so camera and tactile streams are mutually
comparable.
"""

from __future__ import annotations

import time

# Captured back-to-back; the pair defines the affine map monotonic -> epoch.
_WALL0_NS = time.time_ns()
_MONO0_NS = time.monotonic_ns()


def host_time_ns() -> int:
    """Now, in ns since the UNIX epoch, advancing with CLOCK_MONOTONIC."""
    return _WALL0_NS + (time.monotonic_ns() - _MONO0_NS)


def monotonic_to_host_ns(mono_ns: int) -> int:
    """Convert a CLOCK_MONOTONIC timestamp (e.g. a V4L2 buffer time) to host time."""
    return _WALL0_NS + (mono_ns - _MONO0_NS)


def wall_to_host_ns(wall_ns: int) -> int:
    """Convert a system wall-clock timestamp (e.g. librealsense global time).

    The offset between the current wall clock and our host clock is measured
    now, so a wall-clock step since import is removed rather than propagated.
    """
    return wall_ns - (time.time_ns() - host_time_ns())


class DeviceClockMapper:
    """Maps a free-running device clock to host time from arrival times.

    For each sample, ``arrival - device`` is the clock offset plus transport
    latency. Latency is always >= 0 and its minimum is the least-delayed
    transfer, so the running minimum of that difference is the best offset
    estimate (the approach of convex-hull / "min filter" time sync). Device
    crystals drift by tens of ppm, so the estimate is allowed to creep upward
    by ``drift_ppm`` of elapsed time; a real latency spike never lowers it.

    Properties: the mapped stamp is never later than the arrival time, and a
    device clock that jumps (reset, wrap not unwrapped by the caller) by more
    than ``resync_after_ns`` relative to host time restarts the estimate.
    """

    def __init__(self, drift_ppm: float = 200.0, resync_after_ns: int = 1_000_000_000):
        self._drift = drift_ppm * 1e-6
        self._resync_after_ns = resync_after_ns
        self._offset: int | None = None
        self._last_arrival: int | None = None

    def reset(self) -> None:
        self._offset = None
        self._last_arrival = None

    def map(self, device_ns: int, arrival_host_ns: int) -> int:
        sample = arrival_host_ns - device_ns
        if self._offset is None or abs(sample - self._offset) > self._resync_after_ns:
            self._offset = sample
        else:
            assert self._last_arrival is not None
            elapsed = max(0, arrival_host_ns - self._last_arrival)
            # Let the estimate rise slowly (drift), but follow any lower sample at once.
            self._offset = min(self._offset + int(elapsed * self._drift), sample)
        self._last_arrival = arrival_host_ns
        return device_ns + self._offset
