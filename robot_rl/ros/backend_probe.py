"""The ROS side of ``robot-rl check-backend``: listens to a live backend and pokes its commands.

It starts nothing: the backend (``robot-rl up``, ``ros2 launch robot_rl real_panda.launch.py``,
a Gazebo or Isaac Sim bridge) must already run. The verdicts are ``robot_rl.check_backend``'s.

The motion probes (skipped with ``--no-motion``) are ``robot_rl.ros.backend_motion``.
"""
from __future__ import annotations

import threading
import time

import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl import check_backend as cb
from robot_rl.config import Config
from robot_rl.ros import messages as m
from robot_rl.ros.backend_motion import motion_checks

TYPES = {cb.JOINT_STATE: JointState, cb.POSE: PoseStamped, cb.TWIST: TwistStamped,
         cb.IMAGE: Image, cb.CAMERA_INFO: CameraInfo, cb.CLOCK: Clock}
MIN_SAMPLES = 10


class BackendProbe(Node):
    def __init__(self, spec: cb.Contract, cfg: Config, context):
        super().__init__("check_backend", context=context)
        self.spec, self.cfg = spec, cfg
        self.recording = False
        self.samples = {s.topic: cb.Samples() for s in spec.streams}
        self.latest: dict[str, object] = {}
        self.statuses: list[str] = []
        self.lock = threading.Lock()
        for stream in spec.streams:
            self.create_subscription(TYPES[stream.type], stream.topic,
                                     lambda msg, info, t=stream.topic: self._record(t, msg, info),
                                     m.SENSOR_QOS)
        self.create_subscription(String, spec.status_topic,
                                 lambda msg: self.statuses.append(msg.data), m.COMMAND_QOS)
        self.pub_ee = self.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_joint = self.create_publisher(JointState, m.JOINT_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.reset_client = self.create_client(Trigger, spec.reset_service)

    def _record(self, topic: str, msg, info) -> None:
        wall = time.time()
        stamp = m.from_time(msg.clock if isinstance(msg, Clock) else msg.header.stamp)
        with self.lock:
            self.latest[topic] = (wall, msg)
            if not self.recording:
                return
            samples = self.samples[topic]
            samples.stamps.append(stamp)
            samples.wall.append(wall)
            source, received = info.get("source_timestamp"), info.get("received_timestamp")
            if source and received:
                samples.latency.append((received - source) * 1e-9)

    # -- graph -----------------------------------------------------------------------------------
    def endpoints(self) -> tuple[dict, dict]:
        published, subscribed = {}, {}
        own = self.get_name()
        topics = [s.topic for s in self.spec.streams] + [self.spec.status_topic]
        for topic in topics:
            types = {i.topic_type for i in self.get_publishers_info_by_topic(topic)
                     if i.node_name != own}
            if types:
                published[topic] = sorted(types)
        for topic in self.spec.commands:
            types = {i.topic_type for i in self.get_subscriptions_info_by_topic(topic)
                     if i.node_name != own}
            if types:
                subscribed[topic] = sorted(types)
        return published, subscribed

    def wait_for_graph(self, timeout: float) -> tuple[dict, dict]:
        deadline = time.monotonic() + timeout
        while True:
            published, subscribed = self.endpoints()
            complete = (all(s.topic in published for s in self.spec.streams)
                        and set(subscribed) == set(self.spec.commands))
            if complete or time.monotonic() > deadline:
                return published, subscribed
            time.sleep(0.2)

    # -- helpers for the motion probes ------------------------------------------------------------
    def newest(self, topic: str, after: float = 0.0):
        with self.lock:
            item = self.latest.get(topic)
        return item[1] if item and item[0] > after else None

    def wait_newest(self, topic: str, after: float, timeout: float, pump=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.newest(topic, after)
            if msg is not None:
                return msg
            if pump:
                pump()
            time.sleep(self.spec.control_period / 2)
        return None

    def expect_status(self, send, prefixes, must_contain, also=(), timeout=5.0, watch=None):
        """Send a command until a status line answers it. Sent again every 50 ms: a driver
        that judges only the newest target at its tick may never see one sent once (another
        target can land in the same tick), and a lockstep sim steps one period per command."""
        self.statuses.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            send()
            if watch:
                watch()
            time.sleep(0.05)
            for line in list(self.statuses):
                if (line.startswith(prefixes) and must_contain in line
                        and (not also or any(a in line for a in also))):
                    return line
        return None


def run(cfg: Config, args) -> tuple[list[cb.Result], cb.Contract]:
    spec = cb.contract(cfg, sim_clock=getattr(args, "sim_clock", False))
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = BackendProbe(spec, cfg, context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        published, subscribed = probe.wait_for_graph(args.discovery_timeout)
        results = cb.check_presence(spec, published, subscribed)
        # A publisher in the graph is not yet a matched one: wait for data from every stream
        # that has a publisher before the measurement starts (a loaded machine takes seconds).
        deadline = time.monotonic() + args.discovery_timeout
        while time.monotonic() < deadline and any(
                s.topic in published and probe.newest(s.topic) is None for s in spec.streams):
            time.sleep(0.1)
        probe.recording = True
        time.sleep(args.duration)
        # A slow stream (a lockstep sim with no consumer steps every sim.lockstep_timeout)
        # gets up to twice as long again to deliver enough samples for a rate.
        deadline = time.monotonic() + 2 * args.duration
        while time.monotonic() < deadline and any(
                0 < len(probe.samples[s.topic].stamps) < MIN_SAMPLES for s in spec.streams):
            time.sleep(0.1)
        probe.recording = False
        clock = probe.samples.get(m.CLOCK)
        clock = clock if clock and clock.stamps else None
        limit = args.latency_limit or spec.control_period
        for stream in spec.streams:
            results.append(cb.check_rate(stream, probe.samples[stream.topic],
                                         args.rate_tolerance, wall_time=clock is None))
        results += cb.check_alignment(spec, probe.samples, m.JOINT_STATES)
        results.append(cb.check_clock(spec, probe.samples, clock, m.JOINT_STATES))
        for stream in spec.streams:
            if stream.sensor:
                results.append(cb.check_latency(stream, probe.samples[stream.topic], limit))
        if not args.no_motion:
            results += motion_checks(probe, cfg)
        return results, spec
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=2.0)
