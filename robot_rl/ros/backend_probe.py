"""The ROS side of ``robot-rl check-backend``: listens to a live backend and pokes its commands.

It starts nothing: the backend (``robot-rl up``, ``ros2 launch robot_rl real_panda.launch.py``,
a Gazebo or Isaac Sim bridge) must already run. The verdicts are ``robot_rl.check_backend``'s.

Motion probes (skipped with ``--no-motion``): a Cartesian target 1 m past the workspace box (the
arm starts toward the clamped face and is sent back to where it was at once), a joint target
whose TCP leaves the box, NaN targets, gripper openings outside [0, max], then ``/scene/reset``.
"""
from __future__ import annotations

import threading
import time

import numpy as np
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

TYPES = {cb.JOINT_STATE: JointState, cb.POSE: PoseStamped, cb.TWIST: TwistStamped,
         cb.IMAGE: Image, cb.CAMERA_INFO: CameraInfo, cb.CLOCK: Clock}
BOX_FACE = ("workspace_min.", "workspace_max.")
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


def motion_checks(probe: BackendProbe, cfg: Config) -> list[cb.Result]:
    from robot_rl.robot.controller import ImpedanceController
    from robot_rl.robot.kinematics import ArmKinematics

    results = []
    pose, joints = probe.newest(m.EE_POSE), probe.newest(m.JOINT_STATES)
    if pose is None or joints is None:
        return [cb.Result("commands", "motion probes", cb.FAIL, "no ee_pose / joint_states",
                          "state before commanding")]
    position, quat = m.pose_from_msg(pose)
    hold = m.pose_msg(position, quat, 0.0, cfg.robot.base_frame)  # where the arm was
    box_min, box_max = np.array(cfg.controller.workspace_min), np.array(cfg.controller.workspace_max)
    excursion = [0.0]

    def watch():
        """Tracks how far the TCP got outside the box."""
        pose = probe.newest(m.EE_POSE)
        if pose is not None:
            distance = cb.outside_box(m.pose_from_msg(pose)[0], box_min, box_max)
            excursion[0] = max(excursion[0], distance)

    def pump():
        """Keeps a lockstep sim stepping (one period per command) with harmless hold targets."""
        probe.pub_ee.publish(hold)
        watch()

    def answer_to(send, prefixes, must_contain, also=()):
        """The status line answering a command; then back to holding at once, so the arm moves
        no further toward a clamped target than the answer took."""
        line = probe.expect_status(send, prefixes, must_contain, also, watch=watch)
        pump()
        return line

    def row(check, subject, line, expected):
        results.append(cb.Result(check, subject, cb.PASS if line else cb.FAIL,
                                 line or "no matching status", expected))

    clamped_or_refused = ("CLAMPED:", "REJECTED:")
    far = m.pose_msg(position + [box_max[0] + 1.0 - position[0], 0.0, 0.0], quat, 0.0,
                     cfg.robot.base_frame)
    line = answer_to(lambda: probe.pub_ee.publish(far), clamped_or_refused,
                     "ee_target", BOX_FACE + ("workspace box",))
    row("command", "ee_target 1 m past the box", line, "CLAMPED:/REJECTED: naming the box face")
    nan_pose = PoseStamped()
    nan_pose.header.frame_id = cfg.robot.base_frame
    nan_pose.pose.position.x = float("nan")
    line = answer_to(lambda: probe.pub_ee.publish(nan_pose), ("REJECTED:",),
                     "ee_target")
    row("command", "ee_target NaN", line, "REJECTED:")

    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    limits = ImpedanceController(kin, cfg.controller, np.array(cfg.robot.home))
    q_now = m.joint_positions_by_name(joints, cfg.robot.arm_joints)
    q_out, face = cb.outside_box_joint_target(kin, q_now, box_min, box_max, limits.q_min,
                                              limits.q_max)
    target = m.joint_state_msg(cfg.robot.arm_joints, q_out, [], [], 0.0)
    line = answer_to(lambda: probe.pub_joint.publish(target), clamped_or_refused,
                     "joint_target", BOX_FACE)
    row("command", f"joint_target with TCP past {face}", line,
        "CLAMPED:/REJECTED: naming the box face")
    nan_q = m.joint_state_msg(cfg.robot.arm_joints, [float("nan")] * len(q_now), [], [], 0.0)
    line = answer_to(lambda: probe.pub_joint.publish(nan_q), ("REJECTED:",),
                     "joint_target")
    row("command", "joint_target NaN", line, "REJECTED:")
    for _ in range(int(1.0 / probe.spec.control_period)):  # back to Cartesian hold
        pump()
        time.sleep(probe.spec.control_period)

    width_max = cfg.robot.gripper_max_width
    for value, prefix in ((width_max + 0.02, "CLAMPED:"), (-0.01, "CLAMPED:"),
                          (float("nan"), "REJECTED:")):
        line = answer_to(lambda v=value: probe.pub_gripper.publish(Float64(data=v)),
                         (prefix,), "gripper_target")
        row("command", f"gripper_target {value:g} m", line, prefix)
    results.append(gripper_range(probe, cfg, pump))
    results.append(cb.Result("command", "TCP outside the box during the probes",
                             cb.PASS if excursion[0] <= 0.005 else cb.FAIL,
                             f"{excursion[0] * 1e3:.1f} mm", "≤ 5 mm"))
    results.append(reset_check(probe, cfg))
    return results


def gripper_range(probe: BackendProbe, cfg: Config, pump) -> cb.Result:
    """Command half the range: the measured opening must get there and stay in [0, max]."""
    goal = cfg.robot.gripper_max_width / 2
    fingers = cfg.robot.gripper_joints
    probe.pub_gripper.publish(Float64(data=goal))
    seen, deadline = [], time.monotonic() + 5.0
    while time.monotonic() < deadline:
        pump()
        time.sleep(probe.spec.control_period)
        msg = probe.newest(m.JOINT_STATES)
        if msg is not None:
            seen.append(float(np.sum(m.joint_positions_by_name(msg, fingers))))
            if abs(seen[-1] - goal) <= 0.005:
                break
    probe.pub_gripper.publish(Float64(data=cfg.robot.gripper_max_width))  # open again
    if not seen:
        return cb.Result("gripper", "opening", cb.FAIL, "no joint_states", f"{goal:.3f} m")
    inside = min(seen) >= -0.001 and max(seen) <= cfg.robot.gripper_max_width + 0.001
    reached = abs(seen[-1] - goal) <= 0.005
    return cb.Result("gripper", "opening", cb.PASS if inside and reached else cb.FAIL,
                     f"reached {seen[-1]:.4f} m, range seen {min(seen):.4f}..{max(seen):.4f} m",
                     f"{goal:.3f} ± 0.005 m within 5 s, always in [0, {cfg.robot.gripper_max_width}]")


def reset_check(probe: BackendProbe, cfg: Config) -> cb.Result:
    service = probe.spec.reset_service
    if not probe.reset_client.wait_for_service(timeout_sec=2.0):
        return cb.Result("reset", service, cb.SKIP, "no service",
                         "real robots: the reset node (train profile) serves it")
    future = probe.reset_client.call_async(Trigger.Request())
    deadline = time.monotonic() + cfg.hil.reset.timeout + 5.0
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not future.done() or not future.result().success:
        why = future.result().message if future.done() else "no answer"
        return cb.Result("reset", service, cb.FAIL, why, "success, arm near home")
    answered = time.time()
    msg = probe.wait_newest(m.JOINT_STATES, answered, timeout=5.0)
    if msg is None:
        return cb.Result("reset", service, cb.FAIL, "no joint_states after the reset",
                         "arm near home")
    q = m.joint_positions_by_name(msg, cfg.robot.arm_joints)
    error = float(np.max(np.abs(q - np.array(cfg.robot.home))))
    return cb.Result("reset", service, cb.PASS if error <= 0.05 else cb.FAIL,
                     f"success, max |q - home| {error:.4f} rad", "success, ≤ 0.05 rad from home")


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
