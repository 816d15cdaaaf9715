"""Deployment controller node: the exported ONNX policy at a fixed rate, behind the safety layer.

Data path, per control tick (its own thread, :class:`RateLoop` absolute deadlines)::

    cached latest sensor messages --snapshot--> PickCubeTask.observe --> OnnxPolicy
        --> PickCubeTask.command (TCP target + gripper opening) --> SafetyLayer.filter
        --> /robot/gripper_target, /robot/ee_target

Inputs are not delivered by executor callbacks: at each tick the control thread takes the
newest sample of every input straight from its DDS reader (keep-last 1, on a helper node that
no executor spins), decodes it (joints by name) and caches it; the loop never waits for data.
A 1 kHz robot driver sends ~3,000 joint/pose/twist messages a second, and a Python callback
for each one competed with the tick for the interpreter (docs/deployment.md has the figures).
Latency and sensor age count from the DDS receipt time. Exactly the observation dict and
action -> command mapping of ``PickCubeTask`` are used (the same class the Gymnasium
environments use), so the policy sees what it was trained on.

Safety (``robot_rl.deploy.safety.SafetyLayer``, configured by ``Config.safety`` in
``ee_position`` mode, extra dim = gripper opening): workspace box, ee speed / action-rate
limits, NaN/Inf guard on observations, commands and measured state, per-sensor stale watchdog
(age = time since a message with a *new* stamp was received by DDS), and a
latched e-stop. Any fault in POLICY holds position (the last command) and is reported on
``/controller/status`` with the sensor or reason.

State machine: IDLE (not commanding) -> HOLD (commanding the hold target) -> POLICY -> HOLD;
ESTOP (latched, holds) from anywhere, left only through ``/controller/reset_estop`` (-> IDLE).

Services (std_srvs/Trigger): ``/controller/engage`` (IDLE/HOLD -> POLICY; from IDLE it first
activates HOLD; refused while faults are active), ``/controller/disengage`` (POLICY -> HOLD),
``/controller/deactivate`` (HOLD -> IDLE), ``/controller/estop``, ``/controller/reset_estop``.
Status: ``/controller/status`` (std_msgs/String, JSON).

The node refuses (exit code 2, message naming every mismatch) a model whose metadata does not
match the robot configuration: observation names/shapes/dtypes, joint names, control rate,
robot description.
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from robot_rl.config import Config
from robot_rl.deploy.control_loop import LatencyStats, PhaseLock, RateLoop, SampleBuffer, Tick
from robot_rl.deploy.errors import DeployError, IllegalTransitionError
from robot_rl.deploy.safety import RobotState, SafetyConfig, SafetyLayer, SafetyMode, SafetyReport
from robot_rl.envs.task import PickCubeTask, Snapshot

__all__ = [
    "ControllerCore",
    "StepResult",
    "sensor_names",
    "home_quat",
    "ControllerNode",
    "evaluate_deployed",
    "evaluate_deployed_ros",
    "main",
    "ENGAGE",
    "DISENGAGE",
    "DEACTIVATE",
    "ESTOP",
    "RESET_ESTOP",
    "STATUS",
]

ENGAGE = "/controller/engage"
DISENGAGE = "/controller/disengage"
DEACTIVATE = "/controller/deactivate"
ESTOP = "/controller/estop"
RESET_ESTOP = "/controller/reset_estop"
STATUS = "/controller/status"


# --------------------------------------------------------------------------- ROS-free core


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
        self.rate_hz = float(rate_hz if rate_hz is not None else cfg.deploy.rate_hz)
        self.task = PickCubeTask(cfg, quat_home if quat_home is not None else home_quat(cfg))
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

    # -- the tick ------------------------------------------------------------------------------
    def step(self, snap: Snapshot | None, now: float, stamps: dict[str, float]) -> StepResult:
        mode = self.safety.mode
        if mode == SafetyMode.IDLE:
            self._hold_quat = None
        elif self._prev_mode == SafetyMode.IDLE:
            self.task.reset()  # a new activation starts a new episode (gripper latch open)
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


# --------------------------------------------------------------------------- in-process evaluation


def _reset_to_idle(core: ControllerCore) -> None:
    mode = core.safety.mode
    if mode == SafetyMode.ESTOP:
        core.safety.reset_estop()
    elif mode != SafetyMode.IDLE:
        core.deactivate()


def evaluate_deployed(cfg: Config, model_path, episodes: int, seed: int = 0, providers: str = "cpu",
                      policy: Callable | None = None, trace: list | None = None) -> float:
    """Success rate of the exported model over ``episodes`` in-process MuJoCo episodes.

    Runs the controller's tick (:class:`ControllerCore`: same observation, policy, command
    mapping and safety layer as the node) against ``PickCubeEnv``'s world at
    ``cfg.control_rate_hz``; episode ``i`` uses seed ``seed + i`` as ``PickCubeEnv.reset``.
    ``trace`` (a list) receives ``(episode, observation, StepResult)`` for every tick.
    """
    from robot_rl.deploy.agent_export import robot_spec
    from robot_rl.deploy.onnx_policy import OnnxPolicy
    from robot_rl.envs.pick_cube import PickCubeEnv, snapshot_from_world

    if policy is None:
        policy = OnnxPolicy(model_path, providers=providers, intra_op_threads=cfg.deploy.intra_op_threads)
        policy.check_against(robot_spec(cfg, cfg.control_rate_hz))
    env = PickCubeEnv(cfg)
    images = "images" in cfg.task.observations
    try:
        core = ControllerCore(cfg, policy, rate_hz=cfg.control_rate_hz, quat_home=env.world.ee_pose()[1])
        successes = 0
        for ep in range(episodes):
            env.reset(seed=seed + ep)
            snap = env._snap
            _reset_to_idle(core)
            stamps = {s: snap.stamp for s in core.sensors}
            core.step(snap, snap.stamp, stamps)  # IDLE tick: evaluates faults before engaging
            core.engage()
            for _ in range(cfg.task.max_episode_steps):
                stamps = {s: snap.stamp for s in core.sensors}
                if trace is not None:
                    trace.append((ep, core.task.observe(snap), None))
                res = core.step(snap, snap.stamp, stamps)
                if trace is not None:
                    trace[-1] = (ep, trace[-1][1], res)
                if res.target is not None:
                    env.world.controller.set_cartesian_target(res.target, res.quat)
                    env.world.set_gripper(res.width)
                env.world.step_physics()
                snap = snapshot_from_world(env.world, cfg, images)
                if core.task.success(snap):
                    successes += 1
                    break
        return successes / max(episodes, 1)
    finally:
        env.close()


# --------------------------------------------------------------------------- ROS node

try:  # the ROS-free core above stays importable without rclpy
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.node import Node
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64, String
    from std_srvs.srv import Trigger

    from robot_rl.ros import messages as m
    # Only the newest sample of an input matters to the tick; the reader keeps nothing older.
    POLLED_QOS = copy.copy(m.SENSOR_QOS)
    POLLED_QOS.depth = 1
    _HAVE_ROS = True
except ImportError:  # pragma: no cover - exercised only without ROS
    _HAVE_ROS = False
    Node = object  # type: ignore[misc,assignment]


class _Input:
    __slots__ = ("value", "stamp", "fresh_s", "recv_ns")

    def __init__(self, value, stamp: float, fresh_s: float, recv_ns: int):
        self.value, self.stamp, self.fresh_s, self.recv_ns = value, stamp, fresh_s, recv_ns


class ControllerNode(Node):
    """See the module docstring. ``cfg``/``policy`` default to the node's ROS parameters
    (``config_file`` + dotted overrides such as ``deploy.rate_hz``) and ``deploy.model``."""

    def __init__(self, cfg: Config | None = None, policy=None, name: str = "controller", start: bool = True):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config

            cfg = declare_config(self)
        self.cfg = cfg
        rate = float(cfg.deploy.rate_hz)
        self.log = self.get_logger()
        if policy is None:
            from robot_rl.deploy.onnx_policy import OnnxPolicy

            policy = OnnxPolicy(cfg.deploy.model, providers=cfg.deploy.providers,
                                intra_op_threads=cfg.deploy.intra_op_threads)
        meta = getattr(policy, "metadata", None)
        if meta is not None:
            from robot_rl.deploy.agent_export import robot_spec

            meta.check_against(robot_spec(cfg, rate))  # ModelMismatchError names every mismatch
        self.policy = policy
        self.provider = getattr(policy, "provider", "python")
        if hasattr(policy, "warmup"):
            policy.warmup()
        self.core = ControllerCore(cfg, policy, rate_hz=rate)
        self._rehearsal: ControllerCore | None = self.core.twin()  # see _warm
        self._rehearsal_overruns = 0
        self._figures: dict[str, Any] | None = None  # see _loop_figures
        self._figures_at = 0.0
        self.log.info(
            f"policy {cfg.deploy.model} (run {getattr(meta, 'training_run_id', '?')} "
            f"v{getattr(meta, 'policy_version', '?')}) on {self.provider} "
            f"({cfg.deploy.intra_op_threads} intra-op thread(s)); {rate:g} Hz; inputs {self.core.sensors}; "
            f"watchdog max ages {self.core.safety.config.sensor_max_age_s}")

        self._lock = threading.Lock()
        self._inputs: dict[str, _Input] = {}
        self._gripper_idx: dict[str, int] | None = None
        groups = cfg.task.observations
        self._input_node = rclpy.create_node(f"{name}_inputs", context=self.context)
        self._recv_ns = 0
        self._polled: list[Any] = []  # subscriptions taken from by poll_inputs
        self._sync = cfg.deploy.sync_input
        if self._sync and self._sync not in self.core.sensors:
            raise ValueError(f"deploy.sync_input {self._sync!r} is not an input of this controller; "
                             f"expected one of {self.core.sensors} or '' (no phase lock)")
        self._sync_sub = None

        def sub(msg_type, topic, handler, input_name):
            self._polled.append(self._input_node.create_subscription(msg_type, topic, handler,
                                                                     POLLED_QOS))
            if input_name == self._sync:
                self._sync_sub = self._polled[-1]

        sub(JointState, m.JOINT_STATES, self._on_joints, "joint_states")
        sub(PoseStamped, m.EE_POSE, self._on_pose, "ee_pose")
        if "ee_twist" in self.core.sensors:
            sub(TwistStamped, m.EE_TWIST, self._on_twist, "ee_twist")
        if "tactile" in groups:
            for t in cfg.tactile:
                name_t = f"tactile_{t.name}"
                sub(Image, m.tactile_topic(t.name), self._image_cb(name_t, np.float32), name_t)
        if "images" in groups:
            for c in cfg.cameras:
                name_c = f"image_{c.name}"
                sub(Image, m.camera_image_topic(c.name), self._image_cb(name_c, np.uint8), name_c)
        if "object" in groups:
            sub(PoseStamped, m.OBJECT_POSE, self._on_object, "object")

        self.pub_target = self.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.pub_status = self.create_publisher(String, STATUS, m.COMMAND_QOS)
        from robot_rl.ros.node_utils import CommandGuard
        guard = CommandGuard(self, cfg)  # security.restrict_commands; stopping is never restricted
        self.create_service(Trigger, ENGAGE, guard.wrap(ENGAGE, self._srv(self.core.engage)))
        self.create_service(Trigger, DISENGAGE, guard.wrap(DISENGAGE, self._srv(self.core.disengage)))
        self.create_service(Trigger, DEACTIVATE, guard.wrap(DEACTIVATE, self._srv(self.core.deactivate)))
        self.create_service(Trigger, ESTOP, self._srv(self._estop))
        self.create_service(Trigger, RESET_ESTOP, guard.wrap(RESET_ESTOP, self._srv(self._reset_estop)))

        self.stats = LatencyStats()
        self.compute = SampleBuffer()  # tick start -> command published
        self.loop = RateLoop(rate, spin_s=cfg.deploy.spin_s, stats=self.stats)
        self._phase_lock = PhaseLock(cfg.deploy.sync_age_s)
        self._sync_seq: int | None = None  # DDS publication sequence number of the sync sample
        self._last_width: float | None = None
        self._stop = threading.Event()
        self._mode_seen = SafetyMode.IDLE
        self._thread = threading.Thread(target=self._run, name="control_loop", daemon=True)
        self._next_log = time.monotonic() + cfg.deploy.stats_log_period_s
        # Status is published by the control thread right after a tick's command, not by an
        # executor timer: a timer callback holds the interpreter while the loop may need it.
        self._next_status = time.monotonic()
        # /diagnostics likewise, once a second, from the control thread's slack.
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.node_utils import Diagnostics
        self._health = HealthTracker(warn=("clamps", "deadline_misses"), error=("faults",))
        self.diagnostics = Diagnostics(self, self.health, timer=False)
        self._next_diagnostics = time.monotonic() + 1.0
        if start:
            self._thread.start()

    # -- inputs (control thread): take, decode and cache the newest message ----------------------
    def poll_inputs(self) -> None:
        """Take the newest sample of every input from DDS and cache it. The readers keep only
        the last sample (depth 1), so one take per reader gets the newest or nothing."""
        for sub in self._polled:
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
            if taken is not None:
                msg, info = taken
                if sub is self._sync_sub:
                    self._sync_seq = info.get("publication_sequence_number")
                # DDS stamps the receipt on the system clock, the loop measures on perf_counter;
                # an rmw that gives no receipt time (0) counts the take as the receipt.
                age_ns = time.time_ns() - int(info.get("received_timestamp") or 0)
                self._recv_ns = time.perf_counter_ns() - (age_ns if 0 <= age_ns < 10**9 else 0)
                sub.callback(msg)

    def _store(self, name: str, value, stamp: float) -> None:
        now_ns = self._recv_ns
        with self._lock:
            prev = self._inputs.get(name)
            if not math.isfinite(stamp):
                # A non-finite stamp never counts as fresh data (but the value is kept, so a
                # NaN payload still reaches the NaN guard).
                fresh, stamp = (float("nan"), stamp) if prev is None else (prev.fresh_s, prev.stamp)
            elif prev is not None and stamp == prev.stamp:
                fresh = prev.fresh_s  # a repeated stamp is not new data: the input ages out
            else:
                fresh = now_ns * 1e-9
            self._inputs[name] = _Input(value, stamp, fresh, now_ns)

    def _on_joints(self, msg) -> None:
        try:
            if self._gripper_idx is None or len(msg.name) != self._n_joint_names or \
                    any(msg.name[i] != n for n, i in self._gripper_idx.items()):
                index = {n: i for i, n in enumerate(msg.name)}
                needed = [*self.cfg.robot.arm_joints, *self.cfg.robot.gripper_joints]
                missing = [n for n in needed if n not in index]
                if missing:
                    raise ValueError(f"/joint_states lacks joints {missing}; it has {list(msg.name)}")
                self._gripper_idx = {n: index[n] for n in self.cfg.robot.gripper_joints}
                self._n_joint_names = len(msg.name)
            if len(msg.position) != len(msg.name):
                raise ValueError(f"/joint_states has {len(msg.name)} names but {len(msg.position)} positions")
            width = float(sum(msg.position[i] for i in self._gripper_idx.values()))
        except ValueError as exc:
            self.core.input_errors["joint_states"] = str(exc)
            self.log.error(str(exc), throttle_duration_sec=2.0)
            return
        self.core.input_errors.pop("joint_states", None)
        self._store("joint_states", width, m.from_time(msg.header.stamp))

    def _on_pose(self, msg) -> None:
        self._store("ee_pose", m.pose_from_msg(msg), m.from_time(msg.header.stamp))

    def _on_twist(self, msg) -> None:
        self._store("ee_twist", m.twist_from_msg(msg), m.from_time(msg.header.stamp))

    def _on_object(self, msg) -> None:
        self._store("object", m.pose_from_msg(msg)[0], m.from_time(msg.header.stamp))

    def _image_cb(self, name: str, dtype):
        def cb(msg) -> None:
            try:
                img = m.msg_to_image(msg)
                if img.dtype != dtype:
                    raise ValueError(f"{name}: encoding {msg.encoding} gives {img.dtype}, expected {np.dtype(dtype)}")
            except ValueError as exc:
                self.core.input_errors[name] = str(exc)
                self.log.error(str(exc), throttle_duration_sec=2.0)
                return
            self.core.input_errors.pop(name, None)
            self._store(name, img, m.from_time(msg.header.stamp))
        return cb

    def snapshot(self) -> tuple[Snapshot | None, dict[str, float], int, float]:
        """(snapshot or None if an input is missing, freshness per sensor, newest receipt ns, pose stamp)."""
        with self._lock:
            inputs = dict(self._inputs)
        stamps = {k: v.fresh_s for k, v in inputs.items()}
        newest = max((v.recv_ns for v in inputs.values()), default=0)
        if any(s not in inputs for s in self.core.sensors):
            return None, stamps, newest, 0.0
        pos, quat = inputs["ee_pose"].value
        twist = inputs["ee_twist"].value if "ee_twist" in inputs else np.zeros(6)
        snap = Snapshot(stamp=inputs["ee_pose"].stamp, ee_pos=pos, ee_quat=quat, ee_vel=twist,
                        gripper_width=inputs["joint_states"].value)
        for k, v in inputs.items():
            if k.startswith("tactile_"):
                snap.tactile[k[len("tactile_"):]] = v.value
            elif k.startswith("image_"):
                snap.images[k[len("image_"):]] = v.value
        if "object" in inputs:
            snap.object_pos = inputs["object"].value
        return snap, stamps, newest, snap.stamp

    # -- services ------------------------------------------------------------------------------
    def _srv(self, fn: Callable[[], str]):
        def cb(request, response):
            try:
                mode = fn()
                response.success, response.message = True, f"mode {mode}"
            except IllegalTransitionError as exc:
                response.success, response.message = False, f"{exc} (mode {self.core.safety.mode.value})"
            self.log.info(f"{fn.__name__}: {response.message}")
            self.publish_status()
            return response
        cb.__name__ = fn.__name__
        return cb

    def _estop(self) -> str:
        self.core.safety.estop("/controller/estop")
        return self.core.safety.mode.value

    def _reset_estop(self) -> str:
        self.core.safety.reset_estop("/controller/reset_estop")
        return self.core.safety.mode.value

    # -- the control loop ------------------------------------------------------------------------
    def _run(self) -> None:
        frame = self.cfg.robot.base_frame
        prio = self.cfg.deploy.rt_priority
        if prio > 0:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))  # this thread only
                self.log.info(f"control loop thread: SCHED_FIFO priority {prio}")
            except (OSError, AttributeError) as exc:
                self.log.warning(f"could not set SCHED_FIFO priority {prio} for the control loop: {exc}")
        try:
            while not self._stop.is_set():
                tick = self.loop.wait(self._warm, self.cfg.deploy.warm_s)
                self.poll_inputs()
                self._lock_phase(tick)
                snap, stamps, newest_ns, stamp = self.snapshot()
                res = self.core.step(snap, time.perf_counter(), stamps)
                if res.target is not None:
                    if res.width != self._last_width:
                        self.pub_gripper.publish(Float64(data=res.width))
                        self._last_width = res.width
                    self.pub_target.publish(m.pose_msg(res.target, res.quat, stamp, frame))
                    done = time.perf_counter_ns()
                    if newest_ns:
                        self.stats.record_latency(newest_ns, done)
                    self.compute.add(done - tick.start_ns)
                else:
                    self._last_width = None  # re-send the gripper after re-activation
                mode = self.core.safety.mode
                if mode != self._mode_seen:
                    self.log.warning(f"mode {self._mode_seen.value} -> {mode.value}"
                                     + (f": {'; '.join(res.report.faults)}" if res.report.faults else ""))
                    self._mode_seen = mode
                now = time.monotonic()
                # In the tick's slack only (>= 1 ms to the next deadline), unless a second late.
                if now >= self._next_status and (self.loop.slack_ns() > 1_000_000 or now > self._next_status + 1.0):
                    self._next_status = max(self._next_status + 1.0 / self.cfg.deploy.status_rate_hz, now)
                    self.publish_status()
                if now >= self._next_diagnostics and self.loop.slack_ns() > 1_000_000:
                    self._next_diagnostics = now + self.diagnostics.period_s
                    self.diagnostics.publish()
                if now >= self._next_log:
                    self._next_log += self.cfg.deploy.stats_log_period_s
                    self.log.info(self.stats_line())
        except Exception as exc:  # noqa: BLE001 - never die silently: hold is the driver's job then
            self.log.fatal(f"control loop stopped: {exc!r}")
            raise

    def _lock_phase(self, tick: Tick) -> None:
        """Nudge the tick grid towards ``deploy.sync_age_s`` after the sync input's arrivals
        while that stream is faster than the loop (:meth:`PhaseLock.track`); a stream at the
        loop's rate or slower, a stopped one, or an rmw without sequence numbers leaves the
        grid free-running."""
        sample = self._inputs.get(self._sync) if self._sync else None
        if sample is not None:
            self.loop.shift(self._phase_lock.track(self._sync_seq, tick.start_ns - sample.recv_ns,
                                                   self.loop.period_ns, tick.index))

    def _warm(self) -> None:
        """The rehearsal before a deadline (deploy.warm_s): take what has arrived and run a whole
        tick -- observation, policy, command mapping, safety filter, serialising the command --
        on a twin core that shares only the policy and publishes nothing. On a busy 2-core
        machine a tick's code and data are out of cache again within a few ms (the core step:
        156 us back to back, 304 us 2 ms after the previous one, 688 us after 10 ms), so the
        real tick runs warm; docs/deployment.md has the latency figures."""
        t0 = time.perf_counter()
        self.poll_inputs()
        if self._rehearsal is None:  # switched off: the input taking is all that is left
            return
        snap, stamps, _, stamp = self.snapshot()
        if snap is None:
            return
        res = self._rehearsal.rehearse(snap, time.perf_counter(), stamps)
        if res.target is not None:
            serialize_message(m.pose_msg(res.target, res.quat, stamp, self.cfg.robot.base_frame))
        # A rehearsal that does not fit before the deadline delays every tick: after three in a
        # row (a heavy policy, a slow machine), keep only the input taking.
        took = time.perf_counter() - t0
        self._rehearsal_overruns = self._rehearsal_overruns + 1 if took > self.cfg.deploy.warm_s else 0
        if self._rehearsal_overruns >= 3:
            self._rehearsal = None
            self.log.warning(f"tick rehearsal took {took * 1e3:.2f} ms, more than deploy.warm_s "
                             f"{self.cfg.deploy.warm_s * 1e3:g} ms, three times in a row: rehearsal off "
                             "(raise deploy.warm_s to keep it, or set 0)")

    def stats_line(self) -> str:
        c = self.compute.summary_ms()
        return (f"{self.loop.rate_hz:g} Hz on {self.provider}: {self.stats.format()} | compute p50 "
                f"{c['p50']:.3f} p99 {c['p99']:.3f} ms | mode {self.core.safety.mode.value}, "
                f"ticks {self.core.ticks}, clamps {dict(self.core.clamp_counts)}")

    def status_dict(self) -> dict[str, Any]:
        d = self.core.status()
        d.update(self._loop_figures())
        d.update({"provider": self.provider, "rate_hz": self.loop.rate_hz,
                  "phase_locked": self._phase_lock.locked,
                  "rehearsal_ticks": None if self._rehearsal is None else self._rehearsal.ticks})
        return d

    def _loop_figures(self) -> dict[str, Any]:
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

    def health(self):
        """OK / WARN / ERROR for /diagnostics, from the status the controller publishes."""
        from robot_rl.diagnostics import controller_conditions
        status = self.status_dict()
        counters = {"ticks": status["ticks"], "forwarded": status["forwarded"],
                    "held": status["held"], "clamps": sum(status["clamp_counts"].values()),
                    "faults": sum(status["fault_counts"].values()),
                    "deadline_misses": status["deadline_misses"]}
        return self._health.assess(
            counters, controller_conditions(status, 1.0 / self.loop.rate_hz),
            values={k: status[k] for k in ("mode", "clamp_counts", "fault_counts", "latency_ms",
                                           "jitter_ms", "provider")})

    def publish_status(self) -> None:
        def clean(x):  # JSON has no NaN
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x
        self.pub_status.publish(String(data=json.dumps(clean(self.status_dict()))))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.log.info("final: " + self.stats_line())
        self._input_node.destroy_node()


def main(args=None) -> int:
    """``python -m robot_rl.ros.controller_node --ros-args -p config_file:=... -p deploy.model:=...``

    Exit codes: 0 clean shutdown, 2 refused to start (model/config mismatch, missing model, bad config).
    """
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from robot_rl.schema import ConfigError

    # Short GIL switch interval: the control thread must not wait 5 ms (the default) for the
    # executor thread to let go of the interpreter.
    sys.setswitchinterval(2e-4)
    rclpy.init(args=args if args is not None else sys.argv)
    node: ControllerNode | None = None
    code = 0
    try:
        node = ControllerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (DeployError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"[robot_rl] controller: refusing to start: {exc}", file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


# --------------------------------------------------------------------------- evaluation over ROS


def evaluate_deployed_ros(cfg: Config, model_path, episodes: int, work_dir=None, sim_rate: str = "realtime",
                          episode_timeout_s: float | None = None, record: str | None = None) -> float:
    """Success rate of the exported model driving the MuJoCo sim process over DDS.

    Starts the sim graph (``robot_rl.graph``) as processes and a :class:`ControllerNode` in
    this process at ``cfg.control_rate_hz``; per episode: deactivate, ``/scene/reset``,
    engage, run until the task succeeds (cube pose from ``/sim/object_pose``) or
    ``task.max_episode_steps`` control periods pass. Needs ROS_DOMAIN_ID set by the caller.
    ``record``: an .mcap path; the graph then also runs the recorder (``cfg.recording``).
    """
    import tempfile
    from pathlib import Path

    from rclpy.executors import SingleThreadedExecutor

    from robot_rl.config import save_config
    from robot_rl.graph import graph, recorder_node
    from robot_rl.launcher import NodeGraph

    cfg = replace(cfg, sim=replace(cfg.sim, rate=sim_rate),
                  deploy=replace(cfg.deploy, model=str(model_path), rate_hz=float(cfg.control_rate_hz)))
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="robot_rl_eval_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.yaml"
    save_config(cfg, cfg_path)
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    specs = graph(cfg, str(cfg_path)) + ([recorder_node(str(cfg_path), str(record))] if record else [])
    sim = NodeGraph(specs, log_dir=work / "logs").start()
    node = helper = executor = spin = None
    try:
        node = ControllerNode(cfg, name="controller_eval")
        helper = rclpy.create_node("controller_eval_helper")
        obj: dict[str, np.ndarray] = {}
        helper.create_subscription(PoseStamped, m.OBJECT_POSE,
                                   lambda msg: obj.__setitem__("pos", m.pose_from_msg(msg)[0]), m.SENSOR_QOS)
        reset = helper.create_client(Trigger, m.SCENE_RESET)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(helper)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        if not reset.wait_for_service(timeout_sec=60.0):
            raise TimeoutError(f"{m.SCENE_RESET} not available; sim log: {work / 'logs'}")
        period = 1.0 / cfg.control_rate_hz
        timeout = episode_timeout_s or cfg.task.max_episode_steps * period
        successes = 0
        for episode in range(episodes):
            _reset_to_idle(node.core)
            fut = reset.call_async(Trigger.Request())
            deadline = time.monotonic() + 30.0
            while not fut.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not fut.done() or not fut.result().success:
                raise RuntimeError("scene reset failed")
            time.sleep(5 * period)  # fresh sensor data after the reset
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    node.core.engage()
                    break
                except IllegalTransitionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(period)
            # The episode limit is counted in robot (sim) time, as in training: a sim that falls
            # behind the wall clock on a loaded machine must not cut episodes short.
            start = elapsed = None
            wall_end = time.monotonic() + 3 * timeout + 10.0  # a stalled sim must not hang this
            outcome = "timeout"
            while time.monotonic() < wall_end:
                snap, *_ = node.snapshot()
                if snap is not None and "pos" in obj:
                    snap.object_pos = obj["pos"]
                    start = snap.stamp if start is None else start
                    elapsed = snap.stamp - start
                    if node.core.task.success(snap):
                        successes += 1
                        outcome = "success"
                        break
                    if elapsed >= timeout:
                        break
                time.sleep(period / 2)
            node.log.info(f"evaluation episode {episode + 1}/{episodes}: {outcome} after "
                          f"{elapsed if elapsed is not None else float('nan'):.1f} s robot time "
                          f"(cube at {np.round(obj.get('pos', np.full(3, np.nan)), 3).tolist()})")
        _reset_to_idle(node.core)
        return successes / max(episodes, 1)
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if spin is not None:
            spin.join(timeout=2.0)
        if node is not None:
            node.close()
            node.destroy_node()
        if helper is not None:
            helper.destroy_node()
        sim.stop()
        if owns:
            rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
