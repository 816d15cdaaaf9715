"""Safety layer between the policy and the robot: pure numpy, no ROS, no torch.

Every command the policy produces passes through :meth:`SafetyLayer.filter` before it
reaches a driver.  The layer is deliberately separate from the policy: it is small,
testable in isolation, and it stays correct whatever the network does.

Guarantees (each has a property test in ``tests/deploy/test_safety_properties.py``):

* Every returned command is finite and inside the configured bounds -- the workspace
  box (end-effector mode) or the joint position limits (joint mode), plus the bounds
  of any trailing "extra" dims such as a gripper.
* Between two consecutive returned commands the change per dim is at most the rate
  limit (``max_delta_per_period``, and ``joint_velocity_max * dt`` or
  ``ee_speed_max * dt``), up to float rounding of ``ref + step``.
* A non-finite command, measured state or observation is never forwarded: the layer
  holds instead.
* A sensor whose newest stamp is older than its max age puts the layer in HOLD and the
  report names the sensor.
* ESTOP is latched; only :meth:`SafetyLayer.reset_estop` leaves it (to IDLE).

Why clamping keeps the bounds after rate limiting: the rate-limit reference (the last
returned command) is always inside the bounds, and clipping the bounded command to
``[ref - step, ref + step]`` yields a value between ``ref`` and that command, so it is
inside the same per-dim interval.

State machine (illegal requests raise :class:`IllegalTransitionError`)::

    IDLE --activate--> HOLD --engage--> POLICY
    IDLE <-deactivate- HOLD <-disengage/fault- POLICY
    any  --estop--> ESTOP --reset_estop--> IDLE

Time: ``now`` and all sensor stamps must come from the same clock, in seconds.
"""

from __future__ import annotations

import enum
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.deploy.errors import IllegalTransitionError

__all__ = [
    "SafetyMode",
    "SafetyConfig",
    "RobotState",
    "SafetyReport",
    "SafetyStateMachine",
    "SafetyLayer",
    "TRANSITIONS",
    "IllegalTransitionError",
]


class SafetyMode(str, enum.Enum):
    IDLE = "IDLE"  # not commanding the robot at all (filter returns None)
    HOLD = "HOLD"  # commanding a fixed hold target
    POLICY = "POLICY"  # forwarding clamped policy commands
    ESTOP = "ESTOP"  # latched emergency stop: hold target, only reset_estop() leaves it


# Allowed explicit transitions.  Self-transitions are accepted as no-ops (a repeated
# "engage" button press is not an error); everything else not listed raises.
TRANSITIONS: dict[SafetyMode, frozenset[SafetyMode]] = {
    SafetyMode.IDLE: frozenset({SafetyMode.HOLD, SafetyMode.ESTOP}),
    SafetyMode.HOLD: frozenset({SafetyMode.POLICY, SafetyMode.IDLE, SafetyMode.ESTOP}),
    SafetyMode.POLICY: frozenset({SafetyMode.HOLD, SafetyMode.ESTOP}),
    # Leaving ESTOP is not a transition request but reset_estop(), so that no generic
    # "go to mode X" code path can clear an emergency stop by accident.
    SafetyMode.ESTOP: frozenset(),
}


# --------------------------------------------------------------------------- config


@dataclass
class SafetyConfig:
    """Safety limits.  Units: metres, radians, seconds.

    ``command_mode``:
      * ``"joint_position"``: command = joint position targets (one per entry of
        ``joint_position_min``) followed by the extra dims.
      * ``"ee_position"``: command = end-effector x, y, z target (clamped into the
        workspace box) followed by the extra dims (e.g. orientation, gripper).

    Empty tuples mean "not configured".  Joint mode requires joint position limits;
    every dim of the command always has bounds, so the layer never forwards an
    unbounded value.
    """

    command_mode: str = "joint_position"
    control_rate_hz: float = 10.0

    joint_position_min: tuple[float, ...] = ()
    joint_position_max: tuple[float, ...] = ()
    # Max joint speed (rad/s); limits each command's step to joint_velocity_max / rate.
    joint_velocity_max: tuple[float, ...] = ()

    workspace_min: tuple[float, float, float] = (-0.5, -0.5, 0.0)
    workspace_max: tuple[float, float, float] = (0.5, 0.5, 0.6)
    # Max end-effector target speed per axis (m/s) in ee_position mode; 0 disables.
    ee_speed_max: float = 0.25

    # Bounds for dims after the joints / xyz (gripper, orientation, ...).
    extra_min: tuple[float, ...] = ()
    extra_max: tuple[float, ...] = ()

    # Max change of each command dim per control period; one value broadcasts to all
    # dims, empty disables (joint velocity / ee speed limits still apply).
    max_delta_per_period: tuple[float, ...] = ()

    # Sensor watchdog: sensor name -> max age (s) of its newest stamp.
    sensor_max_age_s: dict[str, float] = field(default_factory=dict)
    # Stamps further in the future than this mean the clocks disagree: treated as a fault.
    future_stamp_tolerance_s: float = 0.01

    def __post_init__(self) -> None:
        # YAML gives lists; store tuples so a config cannot be mutated after validation.
        for name in (
            "joint_position_min",
            "joint_position_max",
            "joint_velocity_max",
            "workspace_min",
            "workspace_max",
            "extra_min",
            "extra_max",
            "max_delta_per_period",
        ):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                value = (value,)
            setattr(self, name, tuple(float(v) for v in value))
        self.sensor_max_age_s = {str(k): float(v) for k, v in dict(self.sensor_max_age_s).items()}

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def primary_dim(self) -> int:
        return 3 if self.command_mode == "ee_position" else len(self.joint_position_min)

    @property
    def command_dim(self) -> int:
        return self.primary_dim + len(self.extra_min)

    def validate(self) -> None:
        """Raise ``ValueError`` listing every problem with this configuration."""
        errs: list[str] = []

        def finite(name: str, values: Sequence[float]) -> None:
            if not all(math.isfinite(v) for v in values):
                errs.append(f"{name} must be finite, got {tuple(values)}")

        def bounds(lo_name: str, hi_name: str, n: int | None = None) -> None:
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if len(lo) != len(hi):
                errs.append(f"{lo_name} has {len(lo)} entries but {hi_name} has {len(hi)}")
                return
            if n is not None and len(lo) != n:
                errs.append(f"{lo_name}/{hi_name} need {n} entries, got {len(lo)}")
            finite(lo_name, lo)
            finite(hi_name, hi)
            bad = [i for i, (a, b) in enumerate(zip(lo, hi)) if not a <= b]
            if bad:
                errs.append(f"{lo_name} must be <= {hi_name}; violated at index {bad}")

        if self.command_mode not in ("joint_position", "ee_position"):
            errs.append(f"command_mode must be 'joint_position' or 'ee_position', got {self.command_mode!r}")
        if not (math.isfinite(self.control_rate_hz) and self.control_rate_hz > 0):
            errs.append(f"control_rate_hz must be finite and > 0, got {self.control_rate_hz}")
        if self.command_mode == "joint_position":
            if not self.joint_position_min:
                errs.append("joint_position mode needs joint_position_min/joint_position_max (one per joint)")
            bounds("joint_position_min", "joint_position_max")
            if self.joint_velocity_max:
                if len(self.joint_velocity_max) != len(self.joint_position_min):
                    errs.append(
                        f"joint_velocity_max has {len(self.joint_velocity_max)} entries, expected "
                        f"{len(self.joint_position_min)} (one per joint)"
                    )
                if not all(v > 0 and not math.isnan(v) for v in self.joint_velocity_max):
                    errs.append(f"joint_velocity_max entries must be > 0, got {self.joint_velocity_max}")
        else:
            bounds("workspace_min", "workspace_max", 3)
            if not (self.ee_speed_max >= 0 and not math.isnan(self.ee_speed_max)):
                errs.append(f"ee_speed_max must be >= 0 (0 disables), got {self.ee_speed_max}")
        bounds("extra_min", "extra_max")
        if self.max_delta_per_period:
            n = len(self.max_delta_per_period)
            if n not in (1, self.command_dim):
                errs.append(f"max_delta_per_period needs 1 or {self.command_dim} (command dim) entries, got {n}")
            if not all(d > 0 and not math.isnan(d) for d in self.max_delta_per_period):
                errs.append(f"max_delta_per_period entries must be > 0, got {self.max_delta_per_period}")
        for name, age in self.sensor_max_age_s.items():
            if not (age > 0 and math.isfinite(age)):
                errs.append(f"sensor_max_age_s['{name}'] must be finite and > 0, got {age}")
        if not (self.future_stamp_tolerance_s >= 0):
            errs.append(f"future_stamp_tolerance_s must be >= 0, got {self.future_stamp_tolerance_s}")
        if errs:
            raise ValueError("invalid SafetyConfig:\n  - " + "\n  - ".join(errs))


# --------------------------------------------------------------------------- inputs/outputs


@dataclass
class RobotState:
    """What the layer needs to know about the robot at this control tick.

    ``joint_positions`` (joint mode) / ``ee_position`` (ee mode) and
    ``extra_positions`` (measured gripper etc.) give the hold target when no command
    has been sent yet.  ``observations`` (optional) are checked for NaN/Inf: a
    non-finite policy input means the command computed from it is not trusted either.
    """

    sensor_stamps: Mapping[str, float] = field(default_factory=dict)
    joint_positions: Any = None
    ee_position: Any = None
    extra_positions: Any = None
    observations: Mapping[str, Any] | None = None
    estop_pressed: bool = False


@dataclass
class SafetyReport:
    mode: SafetyMode
    forwarded: bool = False  # a policy command was forwarded (possibly clamped)
    held: bool = False  # the output is the hold target
    clamps: list[str] = field(default_factory=list)  # which clamps changed the command
    clamped_dims: dict[str, list[int]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)  # why a command was not trusted
    stale_sensors: list[str] = field(default_factory=list)
    transition: tuple[SafetyMode, SafetyMode] | None = None  # mode change made by this call

    @property
    def clean(self) -> bool:
        """Forwarded unchanged: no clamp fired and no fault."""
        return self.forwarded and not self.clamps and not self.faults


# --------------------------------------------------------------------------- state machine


class SafetyStateMachine:
    """IDLE/HOLD/POLICY/ESTOP with a validated transition table and a history."""

    def __init__(self, history: int = 256):
        self._mode = SafetyMode.IDLE
        self.history: deque[tuple[SafetyMode, SafetyMode, str]] = deque(maxlen=history)

    @property
    def mode(self) -> SafetyMode:
        return self._mode

    def can_transition(self, target: SafetyMode) -> bool:
        return target == self._mode or target in TRANSITIONS[self._mode]

    def transition(self, target: SafetyMode, reason: str = "") -> bool:
        """Move to ``target``; returns False for a no-op self-transition."""
        target = SafetyMode(target)
        if target == self._mode:
            return False
        if target not in TRANSITIONS[self._mode]:
            allowed = sorted(m.value for m in TRANSITIONS[self._mode])
            hint = " (ESTOP is left only through reset_estop())" if self._mode == SafetyMode.ESTOP else ""
            raise IllegalTransitionError(
                f"illegal safety transition {self._mode.value} -> {target.value}; "
                f"allowed from {self._mode.value}: {allowed}{hint}"
            )
        self.history.append((self._mode, target, reason))
        self._mode = target
        return True

    def reset_estop(self, reason: str = "reset") -> None:
        if self._mode != SafetyMode.ESTOP:
            raise IllegalTransitionError(f"reset_estop() called in mode {self._mode.value}; only ESTOP can be reset")
        self.history.append((self._mode, SafetyMode.IDLE, reason))
        self._mode = SafetyMode.IDLE


# --------------------------------------------------------------------------- layer


class SafetyLayer:
    """Filters policy commands; see the module docstring for the guarantees."""

    def __init__(self, config: SafetyConfig):
        config.validate()
        self.config = config
        self._sm = SafetyStateMachine()
        self._lock = threading.RLock()  # estop() may come from another thread (ROS callback)
        n_primary, n_extra = config.primary_dim, len(config.extra_min)
        self.command_dim = n_primary + n_extra
        dt = config.period_s

        if config.command_mode == "joint_position":
            self._bounds_name = "joint_position_limit"
            lo_p, hi_p = config.joint_position_min, config.joint_position_max
        else:
            self._bounds_name = "workspace"
            lo_p, hi_p = config.workspace_min, config.workspace_max
        self._lo = np.array([*lo_p, *config.extra_min], dtype=np.float64)
        self._hi = np.array([*hi_p, *config.extra_max], dtype=np.float64)
        self._n_primary = n_primary

        # Step limits as (report name, per-dim max step; inf = unlimited).
        self._steps: list[tuple[str, np.ndarray]] = []
        if config.max_delta_per_period:
            d = np.broadcast_to(np.array(config.max_delta_per_period, dtype=np.float64), (self.command_dim,))
            self._steps.append(("action_rate", d.copy()))
        if config.command_mode == "joint_position" and config.joint_velocity_max:
            v = np.full(self.command_dim, np.inf)
            v[:n_primary] = np.array(config.joint_velocity_max) * dt
            self._steps.append(("joint_velocity", v))
        if config.command_mode == "ee_position" and config.ee_speed_max > 0:
            v = np.full(self.command_dim, np.inf)
            v[:3] = config.ee_speed_max * dt
            self._steps.append(("ee_speed", v))

        self._last_output: np.ndarray | None = None  # last command returned (rate-limit reference)
        self._hold: np.ndarray | None = None  # current hold target
        self._last_faults: list[str] = []
        self._estop_input = False

    # ------------------------------------------------------------------ transitions

    @property
    def mode(self) -> SafetyMode:
        return self._sm.mode

    @property
    def history(self) -> list[tuple[SafetyMode, SafetyMode, str]]:
        return list(self._sm.history)

    def request(self, target: SafetyMode | str, reason: str = "requested") -> None:
        """Generic validated transition (ESTOP is reachable from anywhere)."""
        target = SafetyMode(target)
        with self._lock:
            if target == SafetyMode.POLICY and self._sm.mode != SafetyMode.POLICY:
                if self._last_faults:
                    raise IllegalTransitionError(
                        f"cannot engage the policy while faults are active: {self._last_faults}"
                    )
            before = self._sm.mode
            if not self._sm.transition(target, reason):
                return
            if target == SafetyMode.HOLD and before == SafetyMode.IDLE:
                # The robot may have been moved while we were not commanding it (hand
                # guiding, another controller): hold where it is now, not where we last were.
                self._last_output = None
                self._hold = None
            elif target in (SafetyMode.HOLD, SafetyMode.ESTOP):
                self._hold = None if self._last_output is None else self._last_output.copy()
            elif target == SafetyMode.IDLE:
                self._last_output = None
                self._hold = None

    def activate(self) -> None:
        """IDLE -> HOLD: start commanding, holding the current position."""
        self.request(SafetyMode.HOLD, "activate")

    def engage(self) -> None:
        """HOLD -> POLICY: start forwarding policy commands (refused while faults are active)."""
        self.request(SafetyMode.POLICY, "engage")

    def disengage(self, reason: str = "disengage") -> None:
        """POLICY -> HOLD."""
        self.request(SafetyMode.HOLD, reason)

    def deactivate(self) -> None:
        """HOLD -> IDLE: stop commanding."""
        self.request(SafetyMode.IDLE, "deactivate")

    def estop(self, reason: str = "estop") -> None:
        """Latch the emergency stop from any mode."""
        self.request(SafetyMode.ESTOP, reason)

    def reset_estop(self, reason: str = "reset_estop") -> None:
        """ESTOP -> IDLE.  Refused while the e-stop input is still asserted."""
        with self._lock:
            if self._estop_input:
                raise IllegalTransitionError("cannot reset the e-stop while the e-stop input is still pressed")
            self._sm.reset_estop(reason)
            self._last_output = None
            self._hold = None

    # ------------------------------------------------------------------ checks

    def _measured(self, state: RobotState) -> np.ndarray | None:
        primary = state.joint_positions if self.config.command_mode == "joint_position" else state.ee_position
        if primary is None:
            return None
        parts = [np.asarray(primary, dtype=np.float64).reshape(-1)]
        if len(self.config.extra_min):
            if state.extra_positions is None:
                return None
            parts.append(np.asarray(state.extra_positions, dtype=np.float64).reshape(-1))
        m = np.concatenate(parts)
        return m if m.shape == (self.command_dim,) else None

    def _faults(self, command: Any, now: float, state: RobotState, report: SafetyReport) -> np.ndarray | None:
        """Collect every reason not to trust this tick; return the command as float64 if usable."""
        faults = report.faults
        cmd: np.ndarray | None = None
        try:
            cmd = np.asarray(command, dtype=np.float64).reshape(-1) if command is not None else None
        except (TypeError, ValueError):
            faults.append(f"invalid_command (not numeric: {type(command).__name__})")
        if command is None:
            faults.append("no_command")
        elif cmd is not None and cmd.shape != (self.command_dim,):
            faults.append(f"bad_command_shape (got {cmd.size} values, expected {self.command_dim})")
            cmd = None
        elif cmd is not None and not np.isfinite(cmd).all():
            faults.append(f"nonfinite_command (dims {np.flatnonzero(~np.isfinite(cmd)).tolist()})")
            cmd = None

        for label, value in (
            ("joint_positions", state.joint_positions),
            ("ee_position", state.ee_position),
            ("extra_positions", state.extra_positions),
        ):
            if value is not None:
                try:
                    ok = bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    faults.append(f"nonfinite_state ({label})")
        if state.observations:
            for name, value in state.observations.items():
                arr = np.asarray(value)
                if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                    faults.append(f"nonfinite_observation ({name})")
                elif arr.dtype.kind not in "fcuib":
                    faults.append(f"invalid_observation ({name}: dtype {arr.dtype})")

        if not (isinstance(now, (int, float, np.floating, np.integer)) and math.isfinite(now)):
            faults.append(f"invalid_time (now={now!r})")
            report.stale_sensors.extend(self.config.sensor_max_age_s)
            return cmd
        tol = self.config.future_stamp_tolerance_s
        for sensor, max_age in self.config.sensor_max_age_s.items():
            stamp = state.sensor_stamps.get(sensor)
            if stamp is None:
                faults.append(f"stale_sensor ({sensor}: never received)")
            elif not math.isfinite(stamp):
                faults.append(f"stale_sensor ({sensor}: non-finite stamp {stamp})")
            elif now - stamp > max_age:
                faults.append(f"stale_sensor ({sensor}: age {now - stamp:.3f} s > {max_age:.3f} s)")
            elif stamp - now > tol:
                faults.append(f"stale_sensor ({sensor}: stamp {stamp - now:.3f} s in the future; clocks disagree)")
            else:
                continue
            report.stale_sensors.append(sensor)
        return cmd

    def _clamp(self, cmd: np.ndarray, ref: np.ndarray, report: SafetyReport) -> np.ndarray:
        out = np.clip(cmd, self._lo, self._hi)
        changed = np.flatnonzero(out != cmd)
        if changed.size:
            primary = changed[changed < self._n_primary]
            extra = changed[changed >= self._n_primary]
            if primary.size:
                report.clamps.append(self._bounds_name)
                report.clamped_dims[self._bounds_name] = primary.tolist()
            if extra.size:
                report.clamps.append("extra_limit")
                report.clamped_dims["extra_limit"] = extra.tolist()
        for name, step in self._steps:
            limited = np.clip(out, ref - step, ref + step)
            changed = np.flatnonzero(limited != out)
            if changed.size:
                report.clamps.append(name)
                report.clamped_dims[name] = changed.tolist()
            out = limited
        return out

    def _hold_target(self, state: RobotState, report: SafetyReport) -> np.ndarray | None:
        if self._hold is None:
            if self._last_output is not None:
                self._hold = self._last_output.copy()
            else:
                measured = self._measured(state)
                if measured is None or not np.isfinite(measured).all():
                    report.faults.append("no_hold_reference (no previous command and no finite measured position)")
                    return None
                # Clamp into bounds: if the robot sits marginally outside a soft limit,
                # command the nearest allowed point rather than an out-of-bounds value.
                self._hold = np.clip(measured, self._lo, self._hi)
                if not np.array_equal(self._hold, measured):
                    report.clamps.append(f"{self._bounds_name}(hold)")
        return self._hold.copy()

    # ------------------------------------------------------------------ filter

    def filter(self, command: Any, now: float, state: RobotState) -> tuple[np.ndarray | None, SafetyReport]:
        """Return ``(safe_command, report)``.

        ``safe_command`` is a float64 array of ``command_dim`` values inside all limits,
        or ``None`` in IDLE (not commanding) or when holding has no reference yet
        (nothing has been commanded and no finite measured position was given) -- the
        caller must then not publish a command.
        """
        with self._lock:
            before = self._sm.mode
            report = SafetyReport(mode=before)
            self._estop_input = bool(state.estop_pressed)
            if self._estop_input and self._sm.mode != SafetyMode.ESTOP:
                self.request(SafetyMode.ESTOP, "e-stop input")
            if self._estop_input:
                report.faults.append("estop_input")

            cmd = self._faults(command, now, state, report)
            # In IDLE/HOLD/ESTOP a missing command is normal, not a fault.
            if self._sm.mode != SafetyMode.POLICY and "no_command" in report.faults:
                report.faults.remove("no_command")
            self._last_faults = list(report.faults)

            out: np.ndarray | None = None
            if self._sm.mode == SafetyMode.POLICY:
                ref = self._last_output
                if ref is None and cmd is not None and not report.faults:
                    measured = self._measured(state)
                    if measured is not None and np.isfinite(measured).all():
                        ref = np.clip(measured, self._lo, self._hi)
                    else:
                        report.faults.append("no_rate_reference (no previous command and no finite measured position)")
                if report.faults or cmd is None or ref is None:
                    self.request(SafetyMode.HOLD, "; ".join(report.faults) or "fault")
                else:
                    out = self._clamp(cmd, ref, report)
                    report.forwarded = True

            if self._sm.mode in (SafetyMode.HOLD, SafetyMode.ESTOP):
                out = self._hold_target(state, report)
                report.held = out is not None

            if out is not None:
                self._last_output = out.copy()
            report.mode = self._sm.mode
            if report.mode != before:
                report.transition = (before, report.mode)
            return out, report
