"""Gymnasium facade over the ROS 2 robot contract.

``step`` sends the command (gripper opening, then the TCP target) and waits for the next
synchronized observation: every subscribed stream carrying a stamp at least half a control
period newer than the previous snapshot. The same code drives the MuJoCo stand-in or a real
robot; only the privileged ``/sim/object_pose`` and ``/sim/fixtures/<name>`` are sim-specific,
and they are subscribed only when needed: the task reads simulator state (``task.privileged``:
``object_pos``, ``fixtures``) or success comes from it (``hil.reward.source: sim_state``).

Success (and so the reward, ``Task.reward_from_success``) comes from ``hil.reward.source``
(``robot_rl.hil.reward_sources``): ``sim_state``: the task's test on the snapshot;
``classifier`` / ``topic``: ``hil.reward.consecutive`` True messages in a row on
``hil.reward.success_topic`` (std_msgs/Bool, reliable) received during the episode;
``human``: a press of Joy ``buttons[2]`` (success) or ``buttons[3]`` (failure) on
``hil.topic``. A step reports what the source had said when its observation arrived (a
classifier's answer to the newest frame may land later), or with ``hil.reward.wait_s`` after
waiting that long for a message received after its command. The episode terminates on
success and on a human's failure label; ``info`` carries ``success`` and ``failure``.

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
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool, Float64
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.envs.task import Snapshot, make_task
from robot_rl.hil.reward_sources import ConsecutiveSuccess, HumanLabels, make_source
from robot_rl.ros import messages as m


class ObservationTimeout(TimeoutError):
    """The robot did not deliver a synchronized observation in time."""


class ClockJumpedBack(ObservationTimeout):
    """The robot's clock went back (its simulator or driver restarted) during an episode."""


CLOCK_JUMP_TOLERANCE = 1e-6  # s; stamps of one stream never decrease, even by rounding
SUCCESS_QOS = m.COMMAND_QOS   # reliable, depth 10: the reward node's /task/success


class RosRobotEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, cfg: Config, node_name: str = "robot_env",
                 use_object_pose: bool | None = None, timeout: float = 5.0,
                 startup_timeout: float | None = None, stop: threading.Event | None = None):
        """``use_object_pose``: subscribe ``/sim/object_pose``; None: only where the task or
        the reward source needs it; ``timeout``: per step/reset; ``startup_timeout``: for the
        very first observation (node processes that were just started need several seconds),
        default ``timeout``; ``stop``: once set, a wait for observations ends at once with
        ObservationTimeout (a node shutting down does not wait out the timeout)."""
        self.cfg = cfg
        self._stop = stop
        rc = cfg.hil.reward
        # Only to learn what the task reads (make_task refuses simulator state where there is
        # none); the real one needs the robot's first orientation.
        probe = make_task(cfg, np.array([0.0, 0.0, 0.0, 1.0]))
        privileged = probe.privileged
        if rc.source == "classifier" and rc.model:
            from robot_rl.hil.reward_classifier import check_against_config, read_meta
            check_against_config(read_meta(rc.model), cfg, rc.model)
        self.reward_source = make_source(rc)
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
        if use_object_pose is None:
            use_object_pose = rc.source == "sim_state" or "object_pos" in privileged
        self.use_object = use_object_pose or "object" in groups
        if self.use_object:
            self._streams.append("object")
        self._streams += m.fixture_inputs(cfg, probe)  # /sim/fixtures/*: the task reads them
        for name in self._streams:
            msg_type, topic = m.input_topic(name)
            self.node.create_subscription(msg_type, topic, lambda msg, k=name: self._store(k, msg),
                                          m.SENSOR_QOS)
        self._source_topic = ""
        if isinstance(self.reward_source, ConsecutiveSuccess):
            self._source_topic = rc.success_topic
            self.node.create_subscription(Bool, rc.success_topic, self._on_success_msg,
                                          SUCCESS_QOS)
        elif isinstance(self.reward_source, HumanLabels):
            self._source_topic = cfg.hil.topic
            self.node.create_subscription(Joy, cfg.hil.topic, self._on_label_msg,
                                          m.INTERVENTION_QOS)
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
        self.task = make_task(cfg, first.ee_quat)
        self.action_space = self.task.action_space
        self.observation_space = self.task.observation_space
        self._snap, self._snap_epoch = first, self._epoch
        self._steps = 0
        self._last_width: float | None = None

    # -- reward source ------------------------------------------------------------------------
    def _on_success_msg(self, msg: Bool) -> None:
        self.reward_source.on_message(bool(msg.data))

    def _on_label_msg(self, msg: Joy) -> None:
        self.reward_source.on_buttons(msg.buttons)

    def _outcome(self) -> tuple[bool, bool, float]:
        """(success, failure, reward) of the step that just ended."""
        if self.reward_source is None:
            return self.task.success(self._snap), False, self.task.reward(self._snap)
        outcome = self.reward_source.outcome()
        return outcome.success, outcome.failure, self.task.reward_from_success(outcome.success)

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
        self._last_width = None
        had_steps, self._steps = self._steps, 0
        self._snap = self._wait_for(self._snap.stamp, new_clock_ok=True)
        self.task.reset(self._snap, self.np_random)
        if isinstance(self.reward_source, ConsecutiveSuccess):
            if had_steps and not self.reward_source.messages:
                self.node.get_logger().warning(
                    f"no message on {self._source_topic} during the last episode "
                    f"(hil.reward.source {self.cfg.hil.reward.source}): is the reward node "
                    f"(or your success publisher, reliable QoS) running?",
                    throttle_duration_sec=30.0)
        if self.reward_source is not None:
            # What was said until the new scene is observed belongs to the previous episode.
            self.reward_source.reset()
        return self.task.observe(self._snap), {"success": False, "failure": False,
                                               "reset": result.message}

    def step(self, action):
        target, quat, width = self.task.command(action, self._snap)
        answers = self.reward_source.received if isinstance(self.reward_source,
                                                            ConsecutiveSuccess) else 0
        if width != self._last_width:
            self.pub_gripper.publish(Float64(data=float(width)))
            self._last_width = width
        self.pub_target.publish(m.pose_msg(target, quat, self._snap.stamp,
                                           self.cfg.robot.base_frame))
        self._snap = self._wait_for(self._snap.stamp + 0.5 * self.period)
        self._steps += 1
        wait = self.cfg.hil.reward.wait_s
        if wait > 0 and isinstance(self.reward_source, ConsecutiveSuccess):
            self.reward_source.wait_after(answers, wait)
        success, failure, reward = self._outcome()
        terminated = self.task.terminated(self._snap, success) or failure
        truncated = not terminated and self._steps >= self.task.max_episode_steps
        return (self.task.observe(self._snap), reward, terminated, truncated,
                {"success": success, "failure": failure, "stamp": self._snap.stamp})

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    def close(self):
        self._executor.shutdown(timeout_sec=1.0)
        self._spin.join(timeout=2.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()
