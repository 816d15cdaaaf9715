"""The simulated operator of the dress rehearsal as a node in the MuJoCo stand-in's process.

It is part of the world, not of the robot stack: it reads the MuJoCo state in-process (through
the world the sim node hands it) and has no DDS link to anything under ``/sim/``. Its only
outputs are what a person's gamepad gives: a raw ``sensor_msgs/Joy`` on ``hil.joy.topic`` in the
joy device's layout, sent right after each control period (so the intervention node relays it
before the period's observation is complete) and repeated at ``hil.rate_hz`` (as the ROS joy
node's autorepeat does). Its only input over DDS is the reset node's ``/scene/reset_state``.
Logic: robot_rl/sim/operator.py.
"""
from __future__ import annotations

import json
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import String

from robot_rl.envs.task import Snapshot, make_task
from robot_rl.ros import messages as m
from robot_rl.sim.operator import JoyLayout, OperatorAction, SimulatedOperator


class OperatorNode(Node):
    def __init__(self, cfg, world, lock: threading.Lock, wake=None, name: str = "sim_operator"):
        """``wake()``: ask the physics thread for a control period now (a lockstep sim that no
        one commands would otherwise wait ``sim.lockstep_timeout`` before the operator acts)."""
        super().__init__(name)
        self.cfg, self.world, self.lock, self.wake = cfg, world, lock, wake
        with lock:
            _, home_quat = world.ee_pose()
        self.operator = SimulatedOperator(cfg, make_task(cfg, home_quat), cfg.sim.operator,
                                          seed=cfg.sim.seed + 1)
        self.layout = JoyLayout.from_config(cfg)
        self.pub = self.create_publisher(Joy, cfg.hil.joy.topic, 10)
        self.create_subscription(String, m.RESET_STATE, self._on_reset_state, m.RESET_STATE_LISTEN_QOS)
        self._joy = self._encode(OperatorAction(np.zeros(self.layout.action_dim, np.float32)),
                                 None)
        self._joy_lock = threading.Lock()
        self.published = 0
        rate = cfg.hil.rate_hz or 2.0 * cfg.control_rate_hz
        self.create_timer(1.0 / rate, self._repeat)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker(alive=("published",))
        op = self.operator
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"published": self.published, "placements": op.placements,
             "successes_seen": op.successes_seen, "retries": op.retries,
             "misses": op.misses},
            values={"mode": op.mode, "reset_state": op.reset_state or "unknown"}))
        self.get_logger().info(f"simulated operator ({cfg.sim.operator}) on {cfg.hil.joy.topic}")

    def _on_reset_state(self, msg: String) -> None:
        try:
            state = json.loads(msg.data)["state"]
        except (ValueError, KeyError, TypeError):
            self.get_logger().warning(f"{m.RESET_STATE}: ignored {msg.data[:80]!r}",
                                      throttle_duration_sec=5.0)
            return
        with self._joy_lock:
            changed = str(state) != self.operator.reset_state
            self.operator.on_reset_state(str(state))
        if changed and self.wake is not None:
            self.wake()  # the operator's turn (or the episode's start) comes at once

    def snapshot(self) -> Snapshot:
        """The world as the operator's eyes see it (call with the world's lock held)."""
        pos, quat = self.world.ee_pose()
        obj, _ = self.world.object_pose()
        return Snapshot(stamp=self.world.time, ee_pos=pos, ee_quat=quat,
                        ee_vel=np.zeros(6), gripper_width=self.world.gripper_width(),
                        object_pos=obj)

    def _encode(self, act: OperatorAction, ee_quat) -> Joy:
        axes, buttons = self.layout.encode(act.action, act.active, act.confirm, act.success,
                                           act.failure, ee_quat=ee_quat)
        msg = Joy()
        msg.axes, msg.buttons = axes, buttons
        return msg

    def on_period(self) -> None:
        """Called by the physics thread after every control period, before its publication."""
        with self.lock:
            snap = self.snapshot()
            with self._joy_lock:
                act = self.operator.step(snap)
            if act.place is not None:
                self.world.place_object(*act.place)
        msg = self._encode(act, snap.ee_quat)
        with self._joy_lock:
            self._joy = msg
        self._publish(msg)

    def _repeat(self) -> None:
        with self._joy_lock:
            msg = self._joy
        self._publish(msg)

    def _publish(self, msg: Joy) -> None:
        out = Joy(axes=msg.axes, buttons=msg.buttons)  # two threads publish: stamp a copy
        out.header.stamp = self.get_clock().now().to_msg()
        self.pub.publish(out)
        self.published += 1
