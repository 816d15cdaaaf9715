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
from std_msgs.msg import Float64MultiArray

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.ros import messages as m


@pytest.fixture()
def driver(tmp_path, ros_context):
    cfg = load_config(None, {"driver.adapter": "ros2_control", "cameras": [], "tactile": [],
                             "driver.hardware_state_topic": "/hw/joint_states",
                             "driver.effort_command_topic": "/hw/effort_commands",
                             "driver.gripper_command_topic": "/hw/gripper_commands",
                             "driver.loop_rate_hz": 200.0})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)), log_dir=tmp_path / "logs").start()
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
