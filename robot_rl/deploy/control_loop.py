"""ROS-free fixed-rate loop core and latency statistics.

The ROS node owns the I/O; this module owns *when* a control step happens and how
late it was.  Scheduling uses absolute deadlines (``start + k * period``) on
``time.perf_counter_ns`` so per-tick errors do not accumulate into drift, and wakes up
with ``time.sleep`` until ~200 us before the deadline and then spins: ``sleep`` on a
general-purpose kernel overshoots by 50-100+ us, spinning the last stretch trades a
little CPU for sub-10 us wake-up precision.

A tick that starts more than ``miss_threshold`` (default half a period) after its
deadline is a *miss*.  When the loop falls more than a whole period behind, the missed
grid points are skipped and only the most recent one runs (late) instead of running
every missed tick back to back: a burst of stale commands is worse than one late one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["RateLoop", "LatencyStats", "SampleBuffer", "Tick", "PhaseLock"]


class SampleBuffer:
    """Fixed-capacity ring buffer of int64 nanosecond samples (no per-sample allocation)."""

    def __init__(self, capacity: int = 10_000):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._buf = np.zeros(capacity, dtype=np.int64)
        self._n = 0  # total samples ever recorded

    def add(self, value_ns: int) -> None:
        self._buf[self._n % self._buf.size] = value_ns
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._buf.size)

    @property
    def total(self) -> int:
        return self._n

    def values(self) -> np.ndarray:
        """The retained samples (the last ``capacity``), oldest first."""
        n = len(self)
        if self._n <= self._buf.size:
            return self._buf[:n].copy()
        i = self._n % self._buf.size
        return np.concatenate([self._buf[i:], self._buf[:i]])

    def summary_ms(self) -> dict[str, float]:
        v = self.values()
        if v.size == 0:
            nan = float("nan")
            return {"n": 0, "mean": nan, "p50": nan, "p99": nan, "max": nan}
        ms = v.astype(np.float64) / 1e6
        p50, p99 = np.percentile(ms, [50, 99])
        return {"n": int(v.size), "mean": float(ms.mean()), "p50": float(p50), "p99": float(p99), "max": float(ms.max())}

    def clear(self) -> None:
        self._n = 0


class LatencyStats:
    """p50/p99 of obs->command latency, tick period and period jitter.

    * latency: ``record_latency(obs_stamp_ns, command_stamp_ns)`` -- both on the
      ``perf_counter_ns`` clock (or both on any one monotonic clock).
    * period: time between consecutive tick starts.
    * jitter: lateness of each tick start relative to its absolute deadline (>= 0).
    """

    def __init__(self, capacity: int = 10_000):
        self.latency = SampleBuffer(capacity)
        self.period = SampleBuffer(capacity)
        self.jitter = SampleBuffer(capacity)
        self.deadline_misses = 0
        self.skipped_ticks = 0

    def record_latency(self, obs_stamp_ns: int, command_stamp_ns: int) -> None:
        self.latency.add(command_stamp_ns - obs_stamp_ns)

    def record_tick(self, period_ns: int | None, lateness_ns: int) -> None:
        if period_ns is not None:
            self.period.add(period_ns)
        self.jitter.add(lateness_ns)

    def summary(self) -> dict[str, object]:
        """Milliseconds; suitable for logging / a diagnostics topic."""
        return {
            "latency_ms": self.latency.summary_ms(),
            "period_ms": self.period.summary_ms(),
            "jitter_ms": self.jitter.summary_ms(),
            "deadline_misses": self.deadline_misses,
            "skipped_ticks": self.skipped_ticks,
        }

    def format(self) -> str:
        s = self.summary()

        def f(d: dict) -> str:
            return f"p50 {d['p50']:.3f} p99 {d['p99']:.3f} max {d['max']:.3f} ms (n={d['n']})"

        return (
            f"latency {f(s['latency_ms'])} | period {f(s['period_ms'])} | jitter {f(s['jitter_ms'])} | "
            f"misses {s['deadline_misses']} skipped {s['skipped_ticks']}"
        )


@dataclass(frozen=True)
class Tick:
    index: int  # deadline index k (start + k * period)
    deadline_ns: int
    start_ns: int  # when the tick actually started
    lateness_ns: int  # start - deadline (>= 0)
    missed: bool  # the previous tick's work ran past this tick's deadline


class RateLoop:
    """Absolute-deadline fixed-rate scheduler.

    Either drive it yourself::

        loop = RateLoop(100.0)
        while running:
            tick = loop.wait()      # returns at the next deadline
            step(tick)

    or ``loop.run(step, max_ticks=...)``.  ``loop.stats`` holds period / jitter /
    misses; the caller may add obs->command latencies to the same object.
    """

    def __init__(
        self,
        rate_hz: float,
        spin_s: float = 200e-6,
        miss_threshold_s: float | None = None,
        stats: LatencyStats | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not (rate_hz > 0 and np.isfinite(rate_hz)):
            raise ValueError(f"rate_hz must be finite and > 0, got {rate_hz}")
        if spin_s < 0:
            raise ValueError(f"spin_s must be >= 0, got {spin_s}")
        self.rate_hz = float(rate_hz)
        self.period_ns = round(1e9 / rate_hz)
        self.spin_ns = int(spin_s * 1e9)
        # A tick counts as a miss if it starts more than this after its deadline;
        # default: half a period, i.e. the previous step overran its time slot.
        self.miss_threshold_ns = int((miss_threshold_s if miss_threshold_s is not None else 0.5 / rate_hz) * 1e9)
        self.stats = stats if stats is not None else LatencyStats()
        self._clock = clock_ns
        self._sleep = sleep
        self._start_ns: int | None = None
        self._k = 0
        self._last_start: int | None = None

    def start(self) -> None:
        """Anchor the deadline grid at now (the first ``wait`` returns immediately)."""
        self._start_ns = self._clock()
        self._k = 0
        self._last_start = None

    @property
    def started(self) -> bool:
        return self._start_ns is not None

    def shift(self, delta_ns: int) -> None:
        """Move every future deadline by ``delta_ns`` (the grid's phase; the period stays)."""
        if self._start_ns is not None:
            self._start_ns += int(delta_ns)

    def slack_ns(self) -> int:
        """Nanoseconds until the next deadline (negative when already late; 0 before start)."""
        return 0 if self._start_ns is None else self._deadline(self._k) - self._clock()

    def _deadline(self, k: int) -> int:
        assert self._start_ns is not None
        return self._start_ns + k * self.period_ns

    def wait(self, warm: Callable[[], object] | None = None, warm_s: float = 0.0) -> Tick:
        """Block until the next deadline and return its :class:`Tick`; if given (and ``warm_s``
        > 0), call ``warm()`` ``warm_s`` before the deadline when that much time is left."""
        if self._start_ns is None:
            self.start()
        now = self._clock()
        if now >= self._deadline(self._k) + self.period_ns:
            # More than a whole period behind (the previous step overran): drop the
            # grid points already missed and run the most recent one now, late.  Firing
            # each missed tick back to back would send a burst of stale commands.
            latest = (now - self._start_ns) // self.period_ns
            self.stats.skipped_ticks += int(latest - self._k)
            self._k = int(latest)
        deadline = self._deadline(self._k)
        warm_ns = int(warm_s * 1e9)
        if warm is not None and warm_ns > 0 and deadline - now > warm_ns:
            self._sleep((deadline - warm_ns - now) / 1e9)
            warm()
            now = self._clock()
        if now < deadline:
            remaining = deadline - now
            if remaining > self.spin_ns:
                self._sleep((remaining - self.spin_ns) / 1e9)
            while self._clock() < deadline:
                pass  # spin: see module docstring
        start = self._clock()
        lateness = start - deadline
        missed = lateness > self.miss_threshold_ns
        tick = Tick(self._k, deadline, start, lateness, missed)
        if missed:
            self.stats.deadline_misses += 1
        period = None if self._last_start is None else start - self._last_start
        self.stats.record_tick(period, lateness)
        self._last_start = start
        self._k += 1
        return tick

    def run(
        self,
        step: Callable[[Tick], object],
        max_ticks: int | None = None,
        duration_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> LatencyStats:
        """Call ``step(tick)`` at the loop rate until a stop condition; returns the stats."""
        if max_ticks is None and duration_s is None and should_stop is None:
            raise ValueError("run() needs max_ticks, duration_s or should_stop, or it never ends")
        self.start()
        end = None if duration_s is None else self._start_ns + int(duration_s * 1e9)
        n = 0
        while True:
            if max_ticks is not None and n >= max_ticks:
                break
            if should_stop is not None and should_stop():
                break
            if end is not None and self._deadline(self._k) >= end:
                break
            step(self.wait())
            n += 1
        return self.stats


class PhaseLock:
    """Keeps the tick grid just after the arrivals of a faster input stream.

    A 100 Hz loop reading a 1 kHz state stream at arbitrary phase acts on a sample that is
    0-1 ms old (uniformly): half of a 2 ms latency budget. Locking the deadlines to
    ``target_age`` after the stream's arrivals makes the sample fresh at every tick
    without waiting for it. ``update(age, stream_period)`` takes the age of the newest
    sample at a tick and the stream's period and returns the shift for the grid
    (``RateLoop.shift``): a proportional step, clamped to ``max_step_fraction`` of the
    stream period, so that a late or missing sample (age ~ one stream period) nudges the
    grid instead of yanking it; the clamp also bounds what the lock adds to a tick period.
    Only for streams faster than the loop: at equal rates a late sample would be missed
    altogether, and the loop should free-run. ``track(seq, age, loop_period, tick)`` decides
    that from the stream's publication sequence numbers: samples sent per tick of the grid,
    counted between the ticks that saw a new sample (median of the last 8 >= 1.5; ``locked``
    says whether it does), and returns the shift, 0 when not locked. Per grid tick, not per
    tick that saw a new sample: on a loaded machine a stream at the loop's rate often delivers
    two samples to one tick and none to the next (or the loop skips a tick), which is still
    one sample per tick.

    ``equal_rate=True`` also locks to a stream at the loop's rate (samples per tick >= 0.75):
    a simulator or a camera that publishes once per control period, where a free-running grid
    acts on a sample 0-1 period old and, near the stream's phase, now on two samples in one
    period and then on none. There a missing sample is not a late tick but a late sample: the
    phase error is taken modulo the stream period (a sample that arrived just after the
    previous tick reads as a tick a little early, not as one almost a period late), and
    ``target_age_s`` must cover the stream's arrival jitter (a sample later than that is
    acted on one tick later). Off by default: at 500 Hz a loaded machine delivers a
    loop-rate stream in pairs, and locking to it there did harm.
    """

    def __init__(self, target_age_s: float, gain: float = 0.25, max_step_fraction: float = 0.05,
                 equal_rate: bool = False):
        if target_age_s < 0 or not 0 < gain <= 1 or not 0 < max_step_fraction <= 1:
            raise ValueError(f"PhaseLock needs target_age_s >= 0, 0 < gain <= 1, "
                             f"0 < max_step_fraction <= 1; got {target_age_s}, {gain}, {max_step_fraction}")
        self.equal_rate = equal_rate
        self.target_ns = int(target_age_s * 1e9)
        self.gain = gain
        self.max_step_fraction = max_step_fraction
        self.locked = False
        self._last_seq: int | None = None
        self._last_tick = 0
        self._per_tick: deque[float] = deque(maxlen=8)  # samples the stream sent per grid tick

    def track(self, seq: int | None, age_ns: int, loop_period_ns: int, tick: int) -> int:
        """Grid shift for the newest sample (publication sequence number ``seq``, ``age_ns``
        old at grid tick ``tick``, :attr:`Tick.index`). A repeated ``seq`` (no new sample)
        changes nothing; an unknown one (``None``: the rmw gives none) or one that went back (a
        restarted publisher) unlocks."""
        if seq is not None and seq == self._last_seq:
            return 0
        last, self._last_seq = self._last_seq, seq
        last_tick, self._last_tick = self._last_tick, tick
        if seq is None or last is None or seq < last:
            self.locked = False
            return 0
        self._per_tick.append((seq - last) / max(1, tick - last_tick))
        per_tick = sorted(self._per_tick)[len(self._per_tick) // 2]
        faster = per_tick >= 1.5
        self.locked = faster or (self.equal_rate and per_tick >= 0.75)
        if not self.locked:
            return 0
        return self.update(age_ns, int(loop_period_ns / per_tick), wrap=not faster)

    def update(self, age_ns: int, stream_period_ns: int, wrap: bool = False) -> int:
        """Grid shift in ns for a sample ``age_ns`` old at the tick (negative: earlier ticks);
        ``wrap``: the phase error modulo the stream period, in (-period/2, period/2]."""
        limit = int(self.max_step_fraction * stream_period_ns)
        error = age_ns - self.target_ns
        if wrap:
            error = (error + stream_period_ns // 2) % stream_period_ns - stream_period_ns // 2
        step = int(self.gain * error)
        return -max(-limit, min(limit, step))
