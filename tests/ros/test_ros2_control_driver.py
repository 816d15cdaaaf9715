"""The joint driver against ros2_control's topic interface, over real DDS.

The test plays the hardware side (joint_state_broadcaster output in, forward_command_controller
efforts out), which is exactly what the driver sees on a real arm."""
import os
import signal
import threading
import time

import numpy as np
import pytest
import rclpy
import rclpy.executors
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.ros import messages as m


def start_driver(tmp_path, overrides=None):
    cfg = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                             "cameras": [], "tactile": [],
                             "driver.hardware_state_topic": "/hw/joint_states",
                             "driver.effort_command_topic": "/hw/effort_commands",
                             "driver.gripper_command_topic": "/hw/gripper_commands",
                             "driver.loop_rate_hz": 200.0, **(overrides or {})})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    return cfg, NodeGraph(graph(cfg, str(path)), log_dir=tmp_path / "logs").start()


@pytest.fixture()
def driver(tmp_path, ros_context):
    cfg, nodes = start_driver(tmp_path)
    yield cfg, nodes, tmp_path
    nodes.stop()


class Hardware:
    def __init__(self, cfg):
        self.node = rclpy.create_node("fake_hardware_side")
        self.names = cfg.robot.arm_joints + cfg.robot.gripper_joints
        self.q = np.array(cfg.robot.home + [0.04, 0.04])
        self.efforts, self.gripper, self.published = [], [], []
        self.pub = self.node.create_publisher(JointState, "/hw/joint_states", m.SENSOR_QOS)
        self.node.create_subscription(Float64MultiArray, "/hw/effort_commands",
                                      lambda msg: self.efforts.append((time.monotonic(), msg.data)), 10)
        self.node.create_subscription(Float64MultiArray, "/hw/gripper_commands",
                                      lambda msg: self.gripper.append(msg.data), 10)
        self.publishing = True
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(self.node)
        while not self.stop.is_set():
            if self.publishing:
                # Shuffled order: the driver must match joints by name.
                order = np.random.permutation(len(self.names))
                self.pub.publish(JointState(name=[self.names[i] for i in order],
                                            position=[float(self.q[i]) for i in order],
                                            velocity=[0.0] * len(order)))
                self.published.append(time.monotonic())
            executor.spin_once(timeout_sec=0.005)

    def wait_efforts(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while len(self.efforts) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.efforts

    def wait_quiet(self, quiet, timeout):
        """True once no effort has arrived for ``quiet`` seconds (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.efforts[-1][0] if self.efforts else 0.0
            if time.monotonic() - last >= quiet:
                return True
            time.sleep(0.02)
        return False

    def published_after(self, t):
        return sum(1 for p in self.published if p > t)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)
        self.node.destroy_node()


def test_driver_sends_gravity_torques_holds_and_stops_on_stale_state(driver):
    cfg, nodes, tmp = driver
    hw = Hardware(cfg)
    try:
        efforts = hw.wait_efforts(50)
        assert len(efforts) >= 50, (tmp / "logs" / "joint_driver.log").read_text()
        # At rest on its hold target the arm only needs gravity compensation.
        kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
        _, _, gravity = kin.state(np.array(cfg.robot.home), np.zeros(7))
        np.testing.assert_allclose(efforts[-1][1], gravity, atol=0.5)

        # A Cartesian target 10 cm lower: the commanded torques change toward it.
        pub = hw.node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        pose = kin.forward(np.array(cfg.robot.home))
        _, jac, _ = kin.state(np.array(cfg.robot.home), np.zeros(7))

        def measured_force():
            return np.linalg.lstsq(jac.T, np.array(hw.efforts[-1][1]) - gravity, rcond=None)[0]

        target = m.pose_msg(pose.translation - [0, 0, 0.1], [0, 0, 0, 0], 0.0,
                            cfg.robot.base_frame)
        deadline = time.monotonic() + 10.0  # resend until discovery has connected us
        while measured_force()[2] > -5.0 and time.monotonic() < deadline:
            pub.publish(target)
            time.sleep(0.1)
        force = measured_force()
        assert force[2] < -5.0  # pushes down, bounded by reference limiting
        assert np.linalg.norm(force[:3]) <= cfg.controller.stiffness_pos * cfg.controller.max_pos_error + 1

        # Hardware state stops: the driver stops commanding within the state timeout. After a
        # stall of its process it used to send the missed ticks back to back (125 commands from
        # stale states); now at most one state timeout's worth follows, plus what was in flight.
        hw.publishing = False
        stopped = time.monotonic()
        assert hw.wait_quiet(0.5, timeout=5.0), "efforts kept arriving after the state stopped"
        late = [round(t - stopped, 3) for t, _ in hw.efforts if t > stopped]
        in_flight = 10  # the test's subscription depth
        assert len(late) <= cfg.driver.state_timeout * cfg.driver.loop_rate_hz + in_flight, (
            f"{len(late)} efforts after the hardware state stopped (s after the stop): {late}; "
            f"states published after the stop: {hw.published_after(stopped)}")
        log = (tmp / "logs" / "joint_driver.log").read_text()
        assert "stopped commanding torques" in log
    finally:
        hw.close()


def test_driver_after_a_stall_drops_missed_ticks_instead_of_bursting(driver):
    cfg, nodes, _ = driver
    hw = Hardware(cfg)
    try:
        assert len(hw.wait_efforts(50)) >= 50
        pid = nodes.processes["joint_driver"].pid
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.4)  # 80 ticks at 200 Hz
        os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        before = len(hw.efforts)
        assert len(hw.wait_efforts(before + 20, timeout=10.0)) >= before + 20  # commanding again
        burst = [t for t, _ in hw.efforts if resumed <= t < resumed + 0.1]
        # 0.1 s at 200 Hz is 20 ticks; firing the missed ones back to back would add up to 80.
        assert len(burst) <= 0.1 * cfg.driver.loop_rate_hz + 5, len(burst)
    finally:
        os.kill(nodes.processes["joint_driver"].pid, signal.SIGCONT)  # even if a wait failed
        hw.close()


def _statuses(node):
    received = []
    node.create_subscription(String, m.DRIVER_STATUS, lambda msg: received.append(msg.data),
                             m.COMMAND_QOS)
    return received


def _publish_until(node, pub, msg, done, timeout=15.0):
    """Resend until ``done()`` (discovery may not have connected the first ones)."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        pub.publish(msg)
        time.sleep(0.2)
    return done()


def test_joint_targets_leaving_the_box_get_a_status_naming_joint_and_face(driver):
    """An ordinary rclpy publisher on /robot/joint_target, as in the issue: a target inside the
    joint limits whose path leaves the box is scaled back with a CLAMPED status; a NaN target
    and one with no admissible motion are REJECTED."""
    cfg, nodes, tmp = driver
    hw = Hardware(cfg)
    try:
        statuses = _statuses(hw.node)
        assert len(hw.wait_efforts(20)) >= 20
        pub = hw.node.create_publisher(JointState, m.JOINT_TARGET, m.COMMAND_QOS)
        names = cfg.robot.arm_joints
        upward = np.array(cfg.robot.home) + [0, 0, 0, 0.65, 0, 0, 0]  # inside the limits
        msg = JointState(name=names, position=[float(v) for v in upward])
        assert _publish_until(hw.node, pub, msg, lambda: any("joint_target" in t for t in statuses)), \
            (tmp / "logs" / "joint_driver.log").read_text()
        text = next(t for t in statuses if "joint_target" in t)
        assert text.startswith("CLAMPED: joint_target: TCP would leave the workspace box at "
                               "z > 0.55 (workspace_max.z), driven by panda_joint4"), text
        statuses.clear()
        bad = JointState(name=names, position=[float("nan")] + [0.0] * 6)
        assert _publish_until(hw.node, pub, bad, lambda: any("not finite" in t for t in statuses))
        assert any(t.startswith("REJECTED: joint_target: joint target is not finite")
                   for t in statuses), statuses
    finally:
        hw.close()


def test_franka_convention_sends_no_gravity_and_ramps_torque(tmp_path, ros_context):
    """robot.hardware_compensates_gravity: at rest the driver sends ~0 (the arm adds g(q));
    a Cartesian target step ramps the torques no faster than controller.max_torque_rate."""
    cfg, nodes = start_driver(tmp_path, {"robot.hardware_compensates_gravity": True,
                                         "controller.max_torque_rate": 200.0})
    hw = Hardware(cfg)
    try:
        efforts = hw.wait_efforts(30)
        assert len(efforts) >= 30, (tmp_path / "logs" / "joint_driver.log").read_text()
        np.testing.assert_allclose(efforts[-1][1], 0.0, atol=1e-6)
        kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
        pose = kin.forward(np.array(cfg.robot.home))
        pub = hw.node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        target = m.pose_msg(pose.translation - [0, 0, 0.1], [0, 0, 0, 0], 0.0, cfg.robot.base_frame)
        start = len(hw.efforts)
        assert _publish_until(hw.node, pub, target,
                              lambda: np.max(np.abs(hw.efforts[-1][1])) > 5.0)
        received = hw.efforts[start - 1:]
        stamps = np.array([t for t, _ in received])
        sent = np.array([e for _, e in received])
        per_tick = cfg.controller.max_torque_rate / cfg.driver.loop_rate_hz
        # A loaded machine may drop or bunch commands: allow the ticks that elapsed between two
        # receptions, plus one. Without the limiter the first step alone is > 5 N m.
        ticks = np.maximum(1, np.round(np.diff(stamps) * cfg.driver.loop_rate_hz)) + 1
        jumps = np.max(np.abs(np.diff(sent, axis=0)), axis=1)
        assert np.all(jumps <= ticks * per_tick + 1e-9), (jumps, ticks)
        assert np.max(jumps) > 0.5 * per_tick  # it did ramp
    finally:
        hw.close()
        nodes.stop()
