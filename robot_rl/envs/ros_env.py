"""Gymnasium facade over the ROS 2 robot contract.

``step`` sends the command (gripper opening, then the TCP target) and waits for the next
synchronized observation: every subscribed stream carrying a stamp at least half a control
period newer than the previous snapshot. The same code drives the MuJoCo stand-in or a real
robot; only the privileged ``/sim/object_pose`` (scripted reward, 'object' observation) is
sim-specific and optional.

A stream whose stamp goes back (a restarted simulator or driver: its clock starts again) marks
a new clock epoch: cached messages are dropped, ``clock_jumps`` counts it, a step waiting in
or started after it raises ``ClockJumpedBack`` (the episode is broken), and the next ``reset``
accepts the new clock's stamps.
"""
from __future__ import annotations

import os
import threading
import time

import gymnasium as gym
import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.envs.task import PickCubeTask, Snapshot
from robot_rl.ros import messages as m


class ObservationTimeout(TimeoutError):
    """The robot did not deliver a synchronized observation in time."""


class ClockJumpedBack(ObservationTimeout):
    """The robot's clock went back (its simulator or driver restarted) during an episode."""


CLOCK_JUMP_TOLERANCE = 1e-6  # s; stamps of one stream never decrease, even by rounding


class RosRobotEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, cfg: Config, node_name: str = "robot_env", use_object_pose: bool = True,
                 timeout: float = 5.0, startup_timeout: float | None = None,
                 stop: threading.Event | None = None):
        """``timeout``: per step/reset; ``startup_timeout``: for the very first observation
        (node processes that were just started need several seconds), default ``timeout``;
        ``stop``: once set, a wait for observations ends at once with ObservationTimeout (a
        node shutting down does not wait out the timeout)."""
        self.cfg = cfg
        self._stop = stop
        self.timeout = startup_timeout if startup_timeout is not None else timeout
        self.period = 1.0 / cfg.control_rate_hz
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.node = Node(node_name)
        # security.restrict_commands: each reset is announced by a token this actor signs
        from robot_rl.ros.command_guard import CommandCaller
        self._commands = CommandCaller(self.node, cfg, f"actor_{cfg.actor.actor_id}")
        self._cv = threading.Condition()
        self._latest: dict[str, tuple[float, object]] = {}
        self._epoch = 0  # clock epochs seen (see the module docstring)
        self.clock_jumps = 0
        groups = cfg.task.observations
        self._streams = ["joint_states", "ee_pose", "ee_twist"]
        if "tactile" in groups:
            self._streams += [f"tactile_{t.name}" for t in cfg.tactile]
        if "images" in groups:
            self._streams += [f"image_{c.name}" for c in cfg.cameras]
        self.use_object = use_object_pose or "object" in groups
        if self.use_object:
            self._streams.append("object")
        for name in self._streams:
            msg_type, topic = m.input_topic(name)
            self.node.create_subscription(msg_type, topic, lambda msg, k=name: self._store(k, msg),
                                          m.SENSOR_QOS)
        self.pub_target = self.node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.node.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.reset_client = self.node.create_client(Trigger, m.SCENE_RESET)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True)
        self._spin.start()

        try:
            first = self._wait_for(-np.inf, new_clock_ok=True)
        except BaseException:
            self.close()  # a caller that retries must not pile up nodes and spinning threads
            raise
        self.timeout = timeout
        self.task = PickCubeTask(cfg, first.ee_quat)
        self.action_space = self.task.action_space
        self.observation_space = self.task.observation_space
        self._snap, self._snap_epoch = first, self._epoch
        self._steps = 0
        self._last_width: float | None = None

    # -- message cache ------------------------------------------------------------------------
    def _store(self, key: str, msg) -> None:
        stamp = m.from_time(msg.header.stamp)
        with self._cv:
            last = self._latest.get(key)
            if last is not None and stamp < last[0] - CLOCK_JUMP_TOLERANCE:
                self._latest.clear()  # the old clock's messages can never be matched again
                self._epoch += 1
                self.clock_jumps += 1
            self._latest[key] = (stamp, msg)
            self._cv.notify_all()

    def _wait_for(self, newer_than: float, new_clock_ok: bool = False) -> Snapshot:
        """The next snapshot with every stream newer than ``newer_than``; after a clock jump
        ``ClockJumpedBack``, or with ``new_clock_ok`` the first snapshot of the new clock."""
        deadline = time.monotonic() + self.timeout
        with self._cv:
            epoch = self._snap_epoch if hasattr(self, "_snap_epoch") else self._epoch
            while True:
                if self._epoch != epoch:
                    if not new_clock_ok:
                        raise ClockJumpedBack(f"stamps went back (clock jump {self.clock_jumps}): "
                                              f"the simulator or driver restarted")
                    epoch, newer_than = self._epoch, -np.inf
                ready = [k for k in self._streams
                         if k in self._latest and self._latest[k][0] > newer_than]
                if len(ready) == len(self._streams):
                    return self._snapshot()
                remaining = deadline - time.monotonic()
                if self._stop is not None and self._stop.is_set():
                    raise ObservationTimeout(f"stopped while waiting for {self._missing(ready)}")
                if remaining <= 0:
                    missing = self._missing(ready)
                    raise ObservationTimeout(
                        f"no fresh data within {self.timeout} s on {missing}; is the robot "
                        f"(or `robot-rl sim`) running on ROS_DOMAIN_ID "
                        f"{os.environ.get('ROS_DOMAIN_ID', '0')}?")
                self._cv.wait(remaining if self._stop is None else min(remaining, 0.05))

    def _check_stop(self, what: str) -> None:
        if self._stop is not None and self._stop.is_set():
            raise ObservationTimeout(f"stopped while waiting for {what}")

    def _missing(self, ready: list[str]) -> list[str]:
        return sorted(set(self._streams) - set(ready))

    def _snapshot(self) -> Snapshot:
        self._snap_epoch = self._epoch
        gripper = self.cfg.robot.gripper_joints
        values = {k: m.decode_input(k, msg, gripper, check_dtype=False) for k, (_, msg) in self._latest.items()}
        return m.snapshot_from_inputs(values, self._latest["ee_pose"][0])

    # -- gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        deadline = time.monotonic() + self.timeout
        # Waits in slices: a node shutting down (``stop``) must not sit out the timeout.
        while not self.reset_client.wait_for_service(timeout_sec=0.1):
            self._check_stop("the reset service")
            if time.monotonic() > deadline:
                raise ObservationTimeout(f"reset service {m.SCENE_RESET} is not available")
        self._commands.announce(m.SCENE_RESET)
        future = self.reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + self.timeout
        while not future.done():
            self._check_stop(f"the answer of {m.SCENE_RESET}")
            if time.monotonic() > deadline:
                raise ObservationTimeout(f"{m.SCENE_RESET} did not answer in {self.timeout} s")
            time.sleep(0.001)
        result = future.result()
        if not result.success:
            raise RuntimeError(f"scene reset failed: {result.message}")
        self.task.reset()
        self._last_width = None
        self._steps = 0
        self._snap = self._wait_for(self._snap.stamp, new_clock_ok=True)
        return self.task.observe(self._snap), {"success": False, "reset": result.message}

    def step(self, action):
        target, quat, width = self.task.command(action, self._snap)
        if width != self._last_width:
            self.pub_gripper.publish(Float64(data=float(width)))
            self._last_width = width
        self.pub_target.publish(m.pose_msg(target, quat, self._snap.stamp,
                                           self.cfg.robot.base_frame))
        self._snap = self._wait_for(self._snap.stamp + 0.5 * self.period)
        self._steps += 1
        success = self.task.success(self._snap)
        truncated = not success and self._steps >= self.cfg.task.max_episode_steps
        return (self.task.observe(self._snap), self.task.reward(self._snap), success, truncated,
                {"success": success, "stamp": self._snap.stamp})

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def close(self):
        self._executor.shutdown(timeout_sec=1.0)
        self._spin.join(timeout=2.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()
