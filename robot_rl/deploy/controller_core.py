"""The deployment controller's tick without ROS: observation -> policy -> task command -> safety.

:class:`ControllerCore` is what ``robot_rl.ros.controller_node`` runs at every control period
and what :func:`robot_rl.deploy.evaluation.evaluate_deployed` runs against the in-process
MuJoCo world, so the node and the evaluation share one code path. Nothing here imports ROS.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from robot_rl.config import Config
from robot_rl.deploy.errors import IllegalTransitionError
from robot_rl.deploy.safety import RobotState, SafetyConfig, SafetyLayer, SafetyMode, SafetyReport
from robot_rl.envs.task import Snapshot, make_task

__all__ = ["ControllerCore", "StepResult", "sensor_names", "home_quat", "safety_config_for",
           "reset_to_idle", "load_policy"]


def sensor_names(cfg: Config) -> list[str]:
    """Inputs the controller reads for ``cfg.task.observations`` (watchdog names)."""
    groups = cfg.task.observations
    names = ["joint_states", "ee_pose"]
    if "state" in groups:
        names.append("ee_twist")
    if "tactile" in groups:
        names += [f"tactile_{t.name}" for t in cfg.tactile]
    if "images" in groups:
        names += [f"image_{c.name}" for c in cfg.cameras]
    if "object" in groups:
        names.append("object")
    return names


def home_quat(cfg: Config) -> np.ndarray:
    """TCP orientation (x, y, z, w) at ``cfg.robot.home``: the orientation the task holds."""
    from robot_rl.robot.controller import matrix_to_quat_xyzw
    from robot_rl.robot.kinematics import ArmKinematics

    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    return matrix_to_quat_xyzw(kin.forward(np.asarray(cfg.robot.home, dtype=float)).rotation)


def safety_config_for(cfg: Config, rate_hz: float, sensors: list[str]) -> SafetyConfig:
    """``cfg.safety`` at the loop rate, with a max age for every input the controller reads."""
    base = cfg.safety
    if base.command_mode != "ee_position" or len(base.extra_min) != 1:
        raise ValueError(
            "the controller node commands a TCP position plus the gripper opening: safety."
            f"command_mode must be 'ee_position' with one extra dim (gripper); got "
            f"{base.command_mode!r} with {len(base.extra_min)} extra dim(s)")
    ages = {s: float(base.sensor_max_age_s.get(s, cfg.deploy.default_sensor_max_age_s)) for s in sensors}
    unknown = sorted(set(base.sensor_max_age_s) - set(sensors))
    if unknown:
        raise ValueError(f"safety.sensor_max_age_s names {unknown}, which the controller does not "
                         f"read; its inputs are {sensors}")
    # The driver clamps TCP targets to controller.workspace_*: the node's own box lies inside
    # it, so every clamp is the safety layer's (counted in /controller/status), none silent.
    lo = tuple(max(a, b) for a, b in zip(base.workspace_min, cfg.controller.workspace_min))
    hi = tuple(min(a, b) for a, b in zip(base.workspace_max, cfg.controller.workspace_max))
    if any(a >= b for a, b in zip(lo, hi)):
        raise ValueError(f"safety.workspace_* {list(base.workspace_min)}..{list(base.workspace_max)} "
                         f"and controller.workspace_* {cfg.controller.workspace_min}.."
                         f"{cfg.controller.workspace_max} do not overlap")
    return replace(base, control_rate_hz=float(rate_hz), sensor_max_age_s=ages,
                   workspace_min=lo, workspace_max=hi)


@dataclass
class StepResult:
    target: np.ndarray | None      # TCP position to command (None: publish nothing)
    quat: np.ndarray | None        # TCP orientation x, y, z, w
    width: float | None            # gripper opening, m
    report: SafetyReport
    action: np.ndarray | None = None  # raw policy output (POLICY ticks only)


class ControllerCore:
    """One control tick, without ROS: observation -> policy -> task command -> safety filter.

    ``policy`` is an ``OnnxPolicy`` or any callable ``obs dict -> action``. Used by the ROS
    node and by :func:`evaluate_deployed` (in-process MuJoCo), so both run the same code.
    """

    def __init__(self, cfg: Config, policy: Callable[[dict], np.ndarray], rate_hz: float | None = None,
                 quat_home: np.ndarray | None = None):
        self.cfg = cfg
        self.policy = policy
        self.rate_hz = float(rate_hz if rate_hz is not None else cfg.control_rate_hz)
        self.task = make_task(cfg, quat_home if quat_home is not None else home_quat(cfg))
        self.sensors = sensor_names(cfg)
        self.safety = SafetyLayer(safety_config_for(cfg, self.rate_hz, self.sensors))
        self._hold_quat: np.ndarray | None = None
        self._prev_mode = SafetyMode.IDLE
        self.ticks = 0
        self.last_obs: dict[str, np.ndarray] | None = None  # the last observation the policy ran on
        self.forwarded = 0
        self.held = 0
        self.clamp_counts: Counter[str] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.last_report: SafetyReport | None = None
        self.input_errors: dict[str, str] = {}  # set by the node (e.g. joint names missing)

    # -- transitions (thread-safe: SafetyLayer holds its own lock) ---------------------------
    def engage(self) -> str:
        """IDLE/HOLD -> POLICY (activating HOLD first from IDLE). Raises IllegalTransitionError."""
        if self.input_errors:
            raise IllegalTransitionError(f"cannot engage with input errors: {list(self.input_errors.values())}")
        if self.safety.mode == SafetyMode.IDLE:
            self.safety.activate()
        self.safety.engage()
        return self.safety.mode.value

    def disengage(self) -> str:
        if self.safety.mode == SafetyMode.POLICY:
            self.safety.disengage()
        elif self.safety.mode != SafetyMode.HOLD:
            raise IllegalTransitionError(f"disengage: not engaged (mode {self.safety.mode.value})")
        return self.safety.mode.value

    def deactivate(self) -> str:
        """POLICY/HOLD -> IDLE (stop commanding)."""
        if self.safety.mode == SafetyMode.POLICY:
            self.safety.disengage()
        self.safety.deactivate()
        return self.safety.mode.value

    def estop(self, source: str = "estop") -> str:
        """Latch the e-stop (from any mode); ``source`` goes into the transition history."""
        self.safety.estop(source)
        return self.safety.mode.value

    def reset_estop(self, source: str = "reset_estop") -> str:
        """ESTOP -> IDLE. Raises IllegalTransitionError when not e-stopped."""
        self.safety.reset_estop(source)
        return self.safety.mode.value

    # -- the tick ------------------------------------------------------------------------------
    def step(self, snap: Snapshot | None, now: float, stamps: dict[str, float]) -> StepResult:
        mode = self.safety.mode
        if mode == SafetyMode.IDLE:
            self._hold_quat = None
        elif self._prev_mode == SafetyMode.IDLE:
            # A new activation starts a new episode: gripper latch open, and with
            # task.relative_frame this tick's snapshot becomes the start frame.
            self.task.reset(snap)
        obs = None
        errors = list(self.input_errors.values())
        if snap is not None:
            try:
                obs = self.task.observe(snap)
            except (KeyError, ValueError, TypeError) as exc:
                errors.append(f"observation: {exc}")
        command = quat_cmd = action = None
        if errors and mode == SafetyMode.POLICY:
            self.safety.disengage("; ".join(errors))  # an undecodable input is a fault too
            mode = self.safety.mode
        if mode == SafetyMode.POLICY and obs is not None and all(
                np.isfinite(v).all() for v in obs.values() if v.dtype.kind == "f"):
            action = np.asarray(self.policy(obs))
            self.last_obs = obs
            if np.isfinite(action).all():
                target, quat_cmd, width = self.task.command(action, snap)
                command = np.array([*target, width])
            else:
                command = np.full(4, np.nan)  # non-finite policy output: the layer faults and holds
        state = RobotState(
            sensor_stamps=stamps,
            ee_position=None if snap is None else snap.ee_pos,
            extra_positions=None if snap is None else np.array([snap.gripper_width]),
            observations=obs,
        )
        out, report = self.safety.filter(command, now, state)
        report.faults.extend(errors)
        self.ticks += 1
        for c in report.clamps:
            self.clamp_counts[c] += 1
        for f in report.faults:
            self.fault_counts[f.split(" ", 1)[0]] += 1
        self.last_report = report
        self._prev_mode = self.safety.mode
        if out is None:
            return StepResult(None, None, None, report, action)
        if report.forwarded:
            self.forwarded += 1
            self._hold_quat = np.asarray(quat_cmd, dtype=float)
        else:
            self.held += 1
            if self._hold_quat is None:
                measured = None if snap is None else np.asarray(snap.ee_quat, dtype=float)
                ok = measured is not None and np.isfinite(measured).all() and np.linalg.norm(measured) > 0.5
                self._hold_quat = measured / np.linalg.norm(measured) if ok else self.task_home_quat
        return StepResult(out[:3].copy(), self._hold_quat, float(out[3]), report, action)

    # -- rehearsal -----------------------------------------------------------------------------
    def twin(self) -> "ControllerCore":
        """A core that shares only the policy (its own task, safety state and counters), to be
        :meth:`rehearse`-d on: the node runs a whole tick on it before each deadline."""
        return ControllerCore(self.cfg, self.policy, self.rate_hz, self.task_home_quat)

    def rehearse(self, snap: Snapshot, now: float, stamps: dict[str, float]) -> StepResult:
        """Step as if engaged, re-engaging whenever the layer allows: the full POLICY path
        (observation, policy, command mapping, safety filter) runs on every call. Only for a
        :meth:`twin`, never for the core that drives the robot."""
        if self.safety.mode != SafetyMode.POLICY:
            self.step(snap, now, stamps)  # evaluates the faults the engage check reads
            try:
                self.engage()
            except IllegalTransitionError:
                pass
        return self.step(snap, now, stamps)

    @property
    def task_home_quat(self) -> np.ndarray:
        from robot_rl.robot.controller import matrix_to_quat_xyzw

        return matrix_to_quat_xyzw(self.task.home_rot)

    def status(self) -> dict[str, Any]:
        r = self.last_report
        return {
            "mode": self.safety.mode.value,
            "ticks": self.ticks,
            "forwarded": self.forwarded,
            "held": self.held,
            "clamps": [] if r is None else list(r.clamps),
            "clamped_dims": {} if r is None else dict(r.clamped_dims),
            "clamp_counts": dict(self.clamp_counts),
            "faults": [] if r is None else list(r.faults),
            "stale_sensors": [] if r is None else list(r.stale_sensors),
            "fault_counts": dict(self.fault_counts),
            "history": [f"{a.value}->{b.value}: {why}" for a, b, why in self.safety.history[-5:]],
        }




def reset_to_idle(core: ControllerCore) -> None:
    """Leave any mode for IDLE (an e-stop is reset): the start of an evaluation episode."""
    mode = core.safety.mode
    if mode == SafetyMode.ESTOP:
        core.safety.reset_estop()
    elif mode != SafetyMode.IDLE:
        core.deactivate()


def load_policy(cfg: Config, rate_hz: float, policy: Callable | None = None) -> Callable:
    """The policy the controller runs: ``policy``, or the ONNX model ``cfg.deploy.model_file()``
    names (FileNotFoundError lists where it looked). A policy with metadata is checked against
    the robot configuration at ``rate_hz`` (ModelMismatchError names every mismatch) and
    warmed up."""
    if policy is None:
        from robot_rl.deploy.onnx_policy import OnnxPolicy

        policy = OnnxPolicy(cfg.deploy.model_file(), providers=cfg.deploy.providers,
                            intra_op_threads=cfg.deploy.intra_op_threads)
    meta = getattr(policy, "metadata", None)
    if meta is not None:
        from robot_rl.deploy.agent_export import robot_spec

        meta.check_against(robot_spec(cfg, rate_hz))
    if hasattr(policy, "warmup"):
        policy.warmup()
    return policy
