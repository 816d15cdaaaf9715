"""What the controller node reports about its loop, and its pre-deadline rehearsal, without ROS.

:class:`LoopFigures` keeps the loop's latency / period / jitter / compute samples and their
percentiles for ``/controller/status``; :class:`Rehearsal` runs a whole tick on a twin core
before each deadline (``deploy.warm_s``) so the real tick runs with warm caches.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any

from robot_rl.deploy.control_loop import LatencyStats, SampleBuffer
from robot_rl.deploy.controller_core import ControllerCore, StepResult
from robot_rl.envs.task import Snapshot

__all__ = ["LoopFigures", "Rehearsal", "json_safe", "controller_health", "set_fifo_priority"]


class LoopFigures:
    """Latency (DDS receipt of the newest input -> command published), tick period and jitter
    (``stats``, fed by the RateLoop), and compute time (tick start -> command published)."""

    def __init__(self):
        self.stats = LatencyStats()
        self.compute = SampleBuffer()
        self._figures: dict[str, Any] | None = None
        self._figures_at = 0.0

    def record(self, tick_start_ns: int, newest_input_ns: int, done_ns: int) -> None:
        if newest_input_ns:
            self.stats.record_latency(newest_input_ns, done_ns)
        self.compute.add(done_ns - tick_start_ns)

    def line(self, rate_hz: float, provider: str, core: ControllerCore) -> str:
        c = self.compute.summary_ms()
        return (f"{rate_hz:g} Hz on {provider}: {self.stats.format()} | compute p50 "
                f"{c['p50']:.3f} p99 {c['p99']:.3f} ms | mode {core.safety.mode.value}, "
                f"ticks {core.ticks}, clamps {dict(core.clamp_counts)}")

    def figures(self) -> dict[str, Any]:
        """Percentiles over the last 10,000 ticks, recomputed at most once a second: at the
        default 10 Hz status rate, recomputing them for every message (~0.5 ms holding the
        interpreter) delayed control ticks (100 Hz bench: p99 jitter 0.73-0.80 vs 0.07-0.23 ms
        at 2 Hz)."""
        now = time.monotonic()
        if self._figures is None or now - self._figures_at >= 1.0:
            s = self.stats.summary()
            c = self.compute.summary_ms()
            self._figures_at = now
            self._figures = {
                "latency_ms": {"p50": s["latency_ms"]["p50"], "p99": s["latency_ms"]["p99"], "n": s["latency_ms"]["n"]},
                "period_ms": {"p50": s["period_ms"]["p50"], "p99": s["period_ms"]["p99"]},
                "jitter_ms": {"p50": s["jitter_ms"]["p50"], "p99": s["jitter_ms"]["p99"]},
                "compute_ms": {"p50": c["p50"], "p99": c["p99"]},
                "deadline_misses": s["deadline_misses"],
                "skipped_ticks": s["skipped_ticks"],
            }
        return self._figures


class Rehearsal:
    """A whole tick -- observation, policy, command mapping, safety filter -- on a twin core
    that shares only the policy, run before each deadline. On a busy 2-core machine a tick's
    code and data are out of cache again within a few ms (the core step: 156 us back to back,
    304 us 2 ms after the previous one, 688 us after 10 ms), so the real tick runs warm;
    docs/deployment.md has the latency figures. Three rehearsals in a row longer than
    ``warm_s`` switch it off for good (a heavy policy, a slow or loaded machine)."""

    def __init__(self, core: ControllerCore, warm_s: float):
        self.twin = core.twin()
        self.warm_s = warm_s
        self.on = True
        self._overruns = 0

    @property
    def ticks(self) -> int:
        """Rehearsed ticks so far (they stop growing once the rehearsal is off)."""
        return self.twin.ticks

    def rehearse(self, snap: Snapshot, stamps: dict[str, float]) -> StepResult:
        return self.twin.rehearse(snap, time.perf_counter(), stamps)

    def took(self, seconds: float) -> str | None:
        """Count an overrun; the reason when this one switched the rehearsal off, else None."""
        self._overruns = self._overruns + 1 if seconds > self.warm_s else 0
        if self._overruns < 3:
            return None
        self.on = False
        return (f"tick rehearsal took {seconds * 1e3:.2f} ms, more than deploy.warm_s "
                f"{self.warm_s * 1e3:g} ms, three times in a row: rehearsal off "
                "(raise deploy.warm_s to keep it, or set 0)")


def json_safe(x):
    """``x`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return x


def controller_health(tracker, status: dict, period_s: float):
    """OK / WARN / ERROR for /diagnostics from the controller's status dict (``tracker``: a
    ``robot_rl.diagnostics.HealthTracker``)."""
    from robot_rl.diagnostics import controller_conditions

    counters = {"ticks": status["ticks"], "forwarded": status["forwarded"],
                "held": status["held"], "clamps": sum(status["clamp_counts"].values()),
                "faults": sum(status["fault_counts"].values()),
                "deadline_misses": status["deadline_misses"]}
    return tracker.assess(
        counters, controller_conditions(status, period_s),
        values={k: status[k] for k in ("mode", "clamp_counts", "fault_counts", "latency_ms",
                                       "jitter_ms", "provider")})


def set_fifo_priority(priority: int) -> tuple[bool, str]:
    """SCHED_FIFO at ``priority`` for the calling thread only: (done, what happened)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True, f"control loop thread: SCHED_FIFO priority {priority}"
    except (OSError, AttributeError) as exc:
        return False, f"could not set SCHED_FIFO priority {priority} for the control loop: {exc}"
