"""Intervention node: reads the configured teleoperation device (or runs the simulated human)
and publishes ``/intervention/action`` (sensor_msgs/Joy, ``hil.topic``).

Joy contract: ``header.stamp``; ``axes[:action_dim]`` = the action in the policy's action frame
in [-1, 1] (pick task: dx, dy, dz[, dyaw], gripper; gripper >= 0.5 close, <= -0.5 open, else
keep); ``buttons[0]`` = 1 while the human holds the intervention (dead-man), else 0;
``buttons[1]`` = confirm (the reset node's "scene is ready"); ``buttons[2]`` = success mark
(labelling frames for the reward classifier); ``buttons[3]`` = failure mark (the human reward
source's "this episode failed"; ``record-demos``: discard). Published at ``hil.rate_hz`` (0:
twice the control rate); the ``joy`` device is also relayed as each Joy arrives, so a command
reaches the robot within the control period it was given in. While the device is missing or
failing the node keeps publishing ``buttons[0] = 0``, logs the error with what to check (also
in its ``/diagnostics`` status), and retries every ``hil.reopen_s``.

``hil.device: sim_human`` (MuJoCo stand-in): the simulated human watches ``/robot/ee_pose``,
``/sim/object_pose``, ``/joint_states``, the task's ``/sim/fixtures/<name>`` and (with the
``tactile`` observation group) the taxels; it steps once per new control period (sim time), and
resets its per-episode state on ``/episode/event`` (and when it sees the scene reset).
"""
from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import String

from robot_rl.config import Config
from robot_rl.hil.devices import DeviceError, device_mapping, open_device
from robot_rl.hil.mapping import ActionMapper, InterventionCommand
from robot_rl.hil.sim_human import SimHuman
from robot_rl.parsing import InputError, parse_episode_event
from robot_rl.ros import messages as m


def joy_msg(cmd: InterventionCommand, stamp: float) -> Joy:
    msg = Joy()
    msg.header.stamp = m.to_time(stamp)
    msg.axes = [float(v) for v in cmd.action]
    msg.buttons = [int(cmd.active), int(cmd.confirm), int(cmd.success),
                   int(getattr(cmd, "failure", False))]
    return msg


class InterventionNode(Node):
    def __init__(self, cfg: Config | None = None, name: str = "intervention"):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        self.cfg = cfg
        hil = cfg.hil
        self.action_dim = 5 if cfg.task.action_space == "xyz_yaw_gripper" else 4
        self.period = 1.0 / cfg.control_rate_hz
        self.rate = hil.rate_hz or 2.0 * cfg.control_rate_hz
        self.pub = self.create_publisher(Joy, hil.topic, 10)
        self.published = 0
        self.rejected_events = 0
        self.device = None
        self.device_error = ""  # the device's last read failure, while it lasts
        self.sim_human: SimHuman | None = None
        self._last_cmd = InterventionCommand(np.zeros(self.action_dim, np.float32), False)
        self._lock = threading.Lock()
        self._next_open = 0.0
        self._ee_quat = None
        self.create_subscription(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        if hil.device == "sim_human":
            self.sim_human = SimHuman.from_config(cfg)
            self._last_step_stamp = -np.inf
            # What the human watches besides the TCP: the object, the task's fixtures and,
            # for a task that feels (its expert reads taxels), the tactile pads.
            self._watched = ["object", *m.fixture_inputs(cfg, self.sim_human.task)]
            if "tactile" in cfg.task.observations:
                self._watched += [f"tactile_{t.name}" for t in cfg.tactile]
            self._values: dict = {"joint_states": cfg.robot.gripper_max_width}
            for name in ["joint_states", *self._watched]:
                msg_type, topic = m.input_topic(name)
                self.create_subscription(msg_type, topic, lambda msg, n=name: self._on_input(n, msg),
                                         m.SENSOR_QOS)
            self.create_subscription(String, m.EPISODE_EVENT, self._on_event, 10)
        elif hil.device != "none":
            self.mapper = ActionMapper(device_mapping(hil), hil.deadzone, self.action_dim,
                                       hil.device_rpy, hil.frame)
            self._try_open()
        self.create_timer(1.0 / self.rate, self._tick)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker(alive=("published",))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"published": self.published},
            [("WARN", f"{hil.device} not open (retrying)")]
            if hil.device not in ("sim_human", "none") and self.device is None
            else [("WARN", f"{hil.device}: {self.device_error}")] if self.device_error else [],
            values={"device": hil.device, "intervening": bool(self._last_cmd.active)}))
        self.get_logger().info(f"intervention device {hil.device} -> {hil.topic} at "
                               f"{self.rate:g} Hz (action dim {self.action_dim})")

    # -- devices -----------------------------------------------------------------------------
    def _try_open(self) -> None:
        self._next_open = time.monotonic() + self.cfg.hil.reopen_s
        try:
            self.device = open_device(self.cfg.hil, self)
            self.get_logger().info(f"opened {self.cfg.hil.device}: "
                                   f"{getattr(self.device, 'product', '') or self.device.name}")
            if self.cfg.hil.device == "joy":
                self.device.on_message = self._tick
        except DeviceError as exc:
            self.device = None
            self.get_logger().error(f"{exc} (retrying every {self.cfg.hil.reopen_s:g} s; "
                                    f"publishing no intervention meanwhile)")

    def _read_device(self) -> InterventionCommand:
        if self.device is None:
            if time.monotonic() >= self._next_open:
                self._try_open()
            if self.device is None:
                return InterventionCommand(np.zeros(self.action_dim, np.float32), False)
        try:
            state = self.device.read()
            self.device_error = ""
        except DeviceError as exc:
            self.device_error = str(exc)
            self.get_logger().error(str(exc), throttle_duration_sec=2.0)
            if self.cfg.hil.device != "joy":  # the Joy topic may come back by itself
                self.device.close()
                self.device = None
                self._next_open = time.monotonic() + self.cfg.hil.reopen_s
            return InterventionCommand(np.zeros(self.action_dim, np.float32), False)
        try:
            return self.mapper.map(state, self._ee_quat)
        except ValueError as exc:  # hil.frame: ee before the first TCP pose
            self.get_logger().warning(str(exc), throttle_duration_sec=2.0)
            return InterventionCommand(np.zeros(self.action_dim, np.float32), False)

    def _stamp(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        if self.sim_human is not None:
            with self._lock:
                cmd, stamp = self._last_cmd, self._last_cmd.stamp
        else:
            cmd = self._read_device() if self.cfg.hil.device != "none" else self._last_cmd
            stamp = self._stamp()
        self.pub.publish(joy_msg(cmd, stamp))
        self.published += 1

    # -- simulated human ----------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        pos, quat = m.decode_input("ee_pose", msg, ())
        self._ee_quat = quat
        if self.sim_human is None or any(k not in self._values for k in self._watched):
            return
        stamp = m.from_time(msg.header.stamp)
        if stamp < self._last_step_stamp + 0.5 * self.period:
            return  # one decision per control period (sim time)
        self._last_step_stamp = stamp
        snap = m.snapshot_from_inputs({**self._values, "ee_pose": (pos, quat)}, stamp)
        with self._lock:
            was_active = self._last_cmd.active
            cmd = self.sim_human.step(snap)
            self._last_cmd = cmd
        if cmd.active != was_active:
            self.get_logger().info(f"sim human {'takes over' if cmd.active else 'releases'}: "
                                   f"{self.sim_human.reason}")
        self.pub.publish(joy_msg(cmd, stamp))  # right away, so the actor sees it this period
        self.published += 1

    def _on_input(self, name: str, msg) -> None:
        try:
            self._values[name] = m.decode_input(name, msg, self.cfg.robot.gripper_joints)
        except ValueError as exc:  # a malformed message: keep the last good value
            self.get_logger().warning(f"ignored {name}: {exc}", throttle_duration_sec=2.0)

    def _on_event(self, msg: String) -> None:
        try:
            event = parse_episode_event(msg.data)
        except InputError as exc:  # anyone on the domain can publish here: log, count, go on
            self.rejected_events += 1
            self.get_logger().warning(f"{m.EPISODE_EVENT}: ignored ({exc}); "
                                      f"{self.rejected_events} ignored so far",
                                      throttle_duration_sec=2.0)
            return
        if event.event in ("resetting", "running"):
            with self._lock:
                if event.event == "resetting" or event.episode != self.sim_human.episode:
                    self.sim_human.reset(event.episode)
                    self._last_cmd = InterventionCommand(
                        np.zeros(self.sim_human.action_dim, np.float32), False,
                        stamp=self._last_cmd.stamp)

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    return run_nodes(lambda: [InterventionNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
