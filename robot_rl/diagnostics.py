"""Node health as OK / WARN / ERROR with reasons, from the counters the nodes already keep.

ROS-free: :class:`HealthTracker` turns cumulative counters (rejected messages, clamps, frames
published...) into a level and a message naming what changed since the previous report;
``robot_rl.ros.node_utils.Diagnostics`` publishes the result on ``/diagnostics``
(``diagnostic_msgs/DiagnosticArray``), which ``ros2 topic echo``, ``rqt_robot_monitor`` and
Foxglove show.

Levels follow ``diagnostic_msgs/DiagnosticStatus``: a problem counter that grew since the last
report makes the node WARN (or ERROR), a liveness counter that has not grown for a few seconds
makes it WARN ("published: no new value for 3.2 s"); the next report with no new problem is OK
again, so the level says how the node is now and the values say what happened overall.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable

LEVELS = ("OK", "WARN", "ERROR", "STALE")


@dataclass
class Health:
    level: str = "OK"
    message: str = "OK"
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"health level {self.level!r}: expected one of {LEVELS}")


def _worst(levels: Iterable[str]) -> str:
    return max(levels, key=LEVELS.index, default="OK")


def flat_values(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts/lists as ``key.sub: text`` pairs (DiagnosticStatus holds string pairs)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_values(value, name + "."))
        elif isinstance(value, float):
            out[name] = "nan" if not math.isfinite(value) else f"{value:.6g}"
        elif isinstance(value, (list, tuple)):
            out[name] = ", ".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


class HealthTracker:
    """Assesses a node from its cumulative counters, one report at a time.

    ``warn`` / ``error``: counters of problems (rejected commands, sequence gaps...); growth
    since the previous report raises the level and is named in the message.
    ``alive``: counters that must grow while the node works (frames published, control
    periods); one that has not grown for ``stale_after_s`` makes the node WARN. The clock
    starts at the first report, so a node is not flagged for the time before it started.
    """

    def __init__(self, warn: Iterable[str] = (), error: Iterable[str] = (),
                 alive: Iterable[str] = (), stale_after_s: float = 3.0):
        self.warn, self.error, self.alive = tuple(warn), tuple(error), tuple(alive)
        self.stale_after_s = stale_after_s
        self._previous: dict[str, float] = {}
        self._grew_at: dict[str, float] = {}

    def assess(self, counters: dict, conditions: Iterable[tuple[str, str]] = (),
               values: dict | None = None, now: float | None = None) -> Health:
        """``conditions``: node-specific (level, reason) pairs that hold now (an e-stop...)."""
        now = time.monotonic() if now is None else now
        reasons: list[tuple[str, str]] = [c for c in conditions if c[0] != "OK"]
        for level, names in (("ERROR", self.error), ("WARN", self.warn)):
            for name in names:
                total = counters.get(name, 0) or 0
                grew = total - self._previous.get(name, 0)
                if grew > 0:
                    reasons.append((level, f"{name} +{grew:g} (total {total:g})"))
        for name in self.alive:
            if name not in self._grew_at or counters.get(name, 0) != self._previous.get(name, 0):
                self._grew_at[name] = now
            elif now - self._grew_at[name] > self.stale_after_s:
                reasons.append(("WARN", f"{name}: no new value for {now - self._grew_at[name]:.1f} s"))
        self._previous = {k: v for k, v in counters.items() if isinstance(v, (int, float))}
        level = _worst(level for level, _ in reasons)
        message = "; ".join(reason for _, reason in reasons) if reasons else "OK"
        return Health(level, message, {**counters, **(values or {})})


def controller_conditions(status: dict, period_s: float) -> list[tuple[str, str]]:
    """What is wrong with the deployment controller now, from its ``/controller/status``."""
    out = []
    if status.get("mode") == "ESTOP":  # robot_rl.deploy.safety.SafetyMode
        out.append(("ERROR", "e-stop latched"))
    if status.get("faults"):
        out.append(("ERROR", f"faults: {', '.join(map(str, status['faults']))}"))
    if status.get("stale_sensors"):
        out.append(("WARN", f"stale sensors: {', '.join(map(str, status['stale_sensors']))}"))
    p99 = (status.get("latency_ms") or {}).get("p99")
    if isinstance(p99, (int, float)) and math.isfinite(p99) and p99 > 1e3 * period_s:
        out.append(("WARN", f"latency p99 {p99:.2f} ms exceeds the {1e3 * period_s:g} ms period"))
    return out
