"""The joint driver against ros2_control's topic interface, over real DDS.

The test plays the hardware side (joint_state_broadcaster output in, forward_command_controller
efforts out), which is exactly what the driver sees on a real arm."""
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
        self.efforts, self.gripper = [], []
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
            executor.spin_once(timeout_sec=0.005)

    def wait_efforts(self, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while len(self.efforts) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.efforts

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

        # Hardware state stops: the driver stops commanding within the state timeout.
        hw.publishing = False
        time.sleep(0.3)
        count = len(hw.efforts)
        time.sleep(0.5)
        assert len(hw.efforts) == count
        log = (tmp / "logs" / "joint_driver.log").read_text()
        assert "stopped commanding torques" in log
    finally:
        hw.close()
