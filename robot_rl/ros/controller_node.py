"""Deployment controller node: the exported ONNX policy at a fixed rate, behind the safety layer.

Data path, per control tick (its own thread, :class:`RateLoop` absolute deadlines)::

    cached latest sensor messages --snapshot--> task.observe --> OnnxPolicy
        --> task.command (TCP target + gripper opening) --> SafetyLayer.filter
        --> /robot/gripper_target, /robot/ee_target

Inputs are taken from DDS by the control thread at each tick, not delivered by executor
callbacks (``robot_rl.ros.polled_inputs``); latency and sensor age count from the DDS receipt
time. The tick itself is ``robot_rl.deploy.controller_core.ControllerCore``. Exactly the observation dict and
action -> command mapping of the configured task (``make_task``) are used (the same object the
Gymnasium environments use), so the policy sees what it was trained on.

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

import json
import sys
import threading
import time
from typing import Any, Callable

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.serialization import serialize_message
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.deploy.control_loop import PhaseLock, RateLoop, Tick
from robot_rl.deploy.controller_core import ControllerCore, load_policy
from robot_rl.deploy.controller_report import (LoopFigures, Rehearsal, controller_health, json_safe,
                                               set_fifo_priority)
from robot_rl.deploy.errors import DeployError, IllegalTransitionError
from robot_rl.deploy.safety import SafetyMode
from robot_rl.envs.task import Snapshot
from robot_rl.ros import messages as m
from robot_rl.ros.polled_inputs import PolledInputs
from robot_rl.topics import CONTROLLER_STATUS, DEACTIVATE, DISENGAGE, ENGAGE, ESTOP, RESET_ESTOP

__all__ = ["ControllerNode", "main", "ENGAGE", "DISENGAGE", "DEACTIVATE", "ESTOP", "RESET_ESTOP", "STATUS"]

STATUS = CONTROLLER_STATUS


class ControllerNode(Node):
    """See the module docstring. ``cfg``/``policy`` default to the node's ROS parameters
    (``config_file`` + dotted overrides such as ``control_rate_hz``) and ``deploy.model``."""

    def __init__(self, cfg: Config | None = None, policy=None, name: str = "controller", start: bool = True):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config

            cfg = declare_config(self)
        self.cfg = cfg
        rate = float(cfg.control_rate_hz)
        self.log = self.get_logger()
        self.policy = policy = load_policy(cfg, rate, policy)
        meta = getattr(policy, "metadata", None)
        self.provider = getattr(policy, "provider", "python")
        self.core = ControllerCore(cfg, policy, rate_hz=rate)
        self.rehearsal = Rehearsal(self.core, cfg.deploy.warm_s)  # see _warm
        self.log.info(
            f"policy {cfg.deploy.model} (run {getattr(meta, 'training_run_id', '?')} "
            f"v{getattr(meta, 'policy_version', '?')}) on {self.provider} "
            f"({cfg.deploy.intra_op_threads} intra-op thread(s)); {rate:g} Hz; inputs {self.core.sensors}; "
            f"watchdog max ages {self.core.safety.config.sensor_max_age_s}")

        # The simulator's fixture poses the task reads (the peg's hole), beside the watched
        # sensors: observation and success need them; a robot has none (make_task refuses).
        inputs = self.core.sensors + m.fixture_inputs(cfg, self.core.task)
        self.inputs = PolledInputs(self.context, f"{name}_inputs", inputs, cfg.robot.gripper_joints,
                                   self.core.input_errors, self.log, sync=cfg.deploy.sync_input)

        self.pub_target = self.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.pub_status = self.create_publisher(String, STATUS, m.COMMAND_QOS)
        from robot_rl.ros.command_guard import CommandGuard
        guard = CommandGuard(self, cfg)  # security.restrict_commands; stopping is never restricted
        self.create_service(Trigger, ENGAGE, guard.wrap(ENGAGE, self._srv(self.core.engage)))
        self.create_service(Trigger, DISENGAGE, guard.wrap(DISENGAGE, self._srv(self.core.disengage)))
        self.create_service(Trigger, DEACTIVATE, guard.wrap(DEACTIVATE, self._srv(self.core.deactivate)))
        self.create_service(Trigger, ESTOP, self._srv(lambda: self.core.estop(ESTOP), "estop"))
        self.create_service(Trigger, RESET_ESTOP, guard.wrap(RESET_ESTOP, self._srv(
            lambda: self.core.reset_estop(RESET_ESTOP), "reset_estop")))

        self.figures = LoopFigures()
        self.loop = RateLoop(rate, spin_s=cfg.deploy.spin_s, stats=self.figures.stats)
        self._phase_lock = PhaseLock(cfg.deploy.sync_age_s, equal_rate=cfg.deploy.sync_equal_rate)
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
        from robot_rl.ros.diagnostics_topic import Diagnostics
        self._health = HealthTracker(warn=("clamps", "deadline_misses"), error=("faults",))
        self.diagnostics = Diagnostics(self, self.health, timer=False)
        self._next_diagnostics = time.monotonic() + 1.0
        if start:
            self._thread.start()

    def poll_inputs(self) -> None:
        self.inputs.poll()

    def snapshot(self) -> tuple[Snapshot | None, dict[str, float], int, float]:
        """(snapshot or None if an input is missing, freshness per sensor, newest receipt ns, pose stamp)."""
        return self.inputs.snapshot()

    # -- services ------------------------------------------------------------------------------
    def _srv(self, fn: Callable[[], str], name: str = ""):
        name = name or fn.__name__

        def cb(request, response):
            try:
                mode = fn()
                response.success, response.message = True, f"mode {mode}"
            except IllegalTransitionError as exc:
                response.success, response.message = False, f"{exc} (mode {self.core.safety.mode.value})"
            self.log.info(f"{name}: {response.message}")
            self.publish_status()
            return response
        cb.__name__ = name
        return cb

    # -- the control loop ------------------------------------------------------------------------
    def _run(self) -> None:
        frame = self.cfg.robot.base_frame
        if self.cfg.deploy.rt_priority > 0:
            done, what = set_fifo_priority(self.cfg.deploy.rt_priority)
            (self.log.info if done else self.log.warning)(what)
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
                    self.figures.record(tick.start_ns, newest_ns, time.perf_counter_ns())
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
        while that stream is faster than the loop, or as fast with ``deploy.sync_equal_rate``
        (:meth:`PhaseLock.track`); a slower stream, a stopped one, or an rmw without sequence
        numbers leaves the grid free-running."""
        sync = self.cfg.deploy.sync_input
        sample = self.inputs.get(sync) if sync else None
        if sample is not None:
            self.loop.shift(self._phase_lock.track(self.inputs.sync_seq, tick.start_ns - sample.recv_ns,
                                                   self.loop.period_ns, tick.index))

    def _warm(self) -> None:
        """Before each deadline (deploy.warm_s): take what has arrived and, while the rehearsal
        is on, run a whole tick on its twin core and serialise the command it would publish
        (``robot_rl.deploy.controller_report.Rehearsal`` says why)."""
        t0 = time.perf_counter()
        self.poll_inputs()
        if not self.rehearsal.on:  # switched off: the input taking is all that is left
            return
        snap, stamps, _, stamp = self.snapshot()
        if snap is None:
            return
        res = self.rehearsal.rehearse(snap, stamps)
        if res.target is not None:
            serialize_message(m.pose_msg(res.target, res.quat, stamp, self.cfg.robot.base_frame))
        why_off = self.rehearsal.took(time.perf_counter() - t0)
        if why_off:
            self.log.warning(why_off)

    def stats_line(self) -> str:
        return self.figures.line(self.loop.rate_hz, self.provider, self.core)

    def status_dict(self) -> dict[str, Any]:
        d = self.core.status()
        d.update(self.figures.figures())
        d.update({"provider": self.provider, "rate_hz": self.loop.rate_hz,
                  "phase_locked": self._phase_lock.locked,
                  "rehearsal_ticks": self.rehearsal.ticks if self.rehearsal.on else None,
                  "rehearsed_ticks": self.rehearsal.ticks})
        return d

    def health(self):
        """OK / WARN / ERROR for /diagnostics, from the status the controller publishes."""
        return controller_health(self._health, self.status_dict(), 1.0 / self.loop.rate_hz)

    def publish_status(self) -> None:
        self.pub_status.publish(String(data=json.dumps(json_safe(self.status_dict()))))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.log.info("final: " + self.stats_line())
        self.inputs.destroy()


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


if __name__ == "__main__":
    raise SystemExit(main())
