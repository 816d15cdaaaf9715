"""Arm adapter for robots run by ros2_control.

Reads ``joint_state_broadcaster`` output, runs the impedance controller on its own thread at
``driver.loop_rate_hz`` and sends torques to a ``forward_command_controller`` (effort interface,
``std_msgs/Float64MultiArray`` in the order of ``robot.arm_joints``). The gripper backend is
``driver.gripper_backend`` (``robot_rl.ros.gripper_backend``): a forward position controller, or
franka_gripper's action servers (whose finger joints then come from the gripper's own
JointState, not the arm's; until it arrives the commanded opening stands in for them).

If the hardware state stops arriving for ``driver.state_timeout`` the loop stops commanding and
reports it: the robot's own communication watchdog then brakes the arm, which is safer than
sending torques computed from stale positions. A state's age counts from when DDS received it,
not from when this process got round to its callback, so a state that waited out a stall of the
process is stale. After such a stall the loop drops the ticks it missed instead of sending them
back to back.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy._rclpy_pybind11 import RCLError
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from robot_rl.config import Config
from robot_rl.deploy.control_loop import RateLoop
from robot_rl.robot.adapter import JointReading
from robot_rl.robot.controller import ImpedanceController
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.ros import messages as m
from robot_rl.ros.gripper_backend import make_gripper_backend


class Ros2ControlAdapter:
    def __init__(self, cfg: Config, node):
        if cfg.driver.adapter != "ros2_control":
            raise ValueError(f"driver.adapter is {cfg.driver.adapter!r}; the joint_driver "
                             f"executable drives real arms ('ros2_control'); the MuJoCo stand-in "
                             f"runs its own driver inside the mujoco_sim process")
        self.cfg = cfg
        self.node = node
        self.kinematics = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
        self.controller = ImpedanceController(
            self.kinematics, cfg.controller, np.array(cfg.robot.home),
            period_s=1.0 / cfg.driver.loop_rate_hz,
            hardware_compensates_gravity=cfg.robot.hardware_compensates_gravity,
            effort_limits=cfg.robot.effort_limits)
        self.lock = threading.Lock()
        self.names = list(cfg.robot.arm_joints) + list(cfg.robot.gripper_joints)
        self.gripper = make_gripper_backend(cfg, node, getattr(node, "report_status", None))
        # Joints the hardware JointState must carry.
        self.state_names = (self.names if self.gripper.fingers_in_hardware_state
                            else list(cfg.robot.arm_joints))
        self._reading: JointReading | None = None
        self._stamp = 0.0
        self._received_ns = 0  # system clock (as DDS stamps receptions) of the last state
        self._holding = False
        self._pub_effort = node.create_publisher(Float64MultiArray,
                                                 cfg.driver.effort_command_topic, 1)
        node.create_subscription(JointState, cfg.driver.hardware_state_topic, self._on_state,
                                 m.SENSOR_QOS)
        self._width = cfg.robot.gripper_max_width
        # No busy-wait before deadlines: this loop shares the machine with the rest of the stack.
        self.loop = RateLoop(cfg.driver.loop_rate_hz, spin_s=0.0)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._control_loop, daemon=True),
                         threading.Thread(target=self._publish_loop, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _on_state(self, msg: JointState, info: dict) -> None:
        try:
            index = {n: i for i, n in enumerate(msg.name)}
            missing = [n for n in self.state_names if n not in index]
            if missing:
                raise ValueError(f"hardware JointState lacks {missing}")
            pick = [index[n] for n in self.state_names]
            position = np.array(msg.position)[pick]
            velocity = np.array(msg.velocity)[pick] if msg.velocity else np.zeros(len(pick))
            effort = np.array(msg.effort)[pick] if msg.effort else np.zeros(len(pick))
            if len(pick) < len(self.names):  # fingers from the gripper backend
                fingers = self.gripper.finger_positions()
                if fingers is None:
                    n_f = len(self.names) - len(pick)
                    fingers = np.full(n_f, self._width / n_f)
                position = np.concatenate([position, fingers])
                velocity = np.concatenate([velocity, np.zeros(len(fingers))])
                effort = np.concatenate([effort, np.zeros(len(fingers))])
        except (ValueError, IndexError) as exc:
            self.node.get_logger().error(f"{self.cfg.driver.hardware_state_topic}: {exc}",
                                         throttle_duration_sec=1.0)
            return
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(velocity))):
            self.node.get_logger().error("hardware JointState holds NaN/Inf; ignored",
                                         throttle_duration_sec=1.0)
            return
        first = self._reading is None
        self._reading = JointReading(self.names, position, velocity, effort)
        self._stamp = m.from_time(msg.header.stamp)
        self._received_ns = info.get("received_timestamp") or time.time_ns()
        if first:
            with self.lock:
                self.controller.hold(position[:len(self.cfg.robot.arm_joints)])

    def _control_loop(self) -> None:
        try:
            self._run_control()
        except RCLError:
            if self.node.context.ok():
                raise  # shut down under us on Ctrl-C is expected; anything else is not

    def _run_control(self) -> None:
        n = len(self.cfg.robot.arm_joints)
        timeout_ns = self.cfg.driver.state_timeout * 1e9
        while not self._stop.is_set():
            self.loop.wait()
            reading = self._reading
            # A clock step backwards makes the age negative: treated as stale too (until the
            # next state), the safe side.
            age_ns = time.time_ns() - self._received_ns
            stale = reading is None or not 0 <= age_ns <= timeout_ns
            if stale:
                if reading is not None and not self._holding:
                    self.node.get_logger().error(
                        f"no hardware state for > {self.cfg.driver.state_timeout} s: "
                        f"stopped commanding torques")
                self._holding = True
            else:
                if self._holding:
                    with self.lock:
                        self.controller.hold(reading.position[:n])
                    self._holding = False
                with self.lock:
                    tau = self.controller.compute(reading.position[:n], reading.velocity[:n])
                self._pub_effort.publish(Float64MultiArray(data=[float(v) for v in tau]))

    def _publish_loop(self) -> None:
        # Absolute deadlines: sleeping a period after each publish drifted to ~53 Hz of 100 when
        # each publish waited for the GIL behind the control thread (18b's check-backend).
        loop = RateLoop(self.cfg.driver.publish_rate_hz, spin_s=0.0)
        try:
            while not self._stop.is_set():
                loop.wait()
                if self._reading is not None and not self._stop.is_set():
                    self.node.publish_state()
        except RCLError:
            if self.node.context.ok():
                raise

    def read(self):
        if self._reading is None:
            raise RuntimeError(f"no JointState received yet on "
                               f"{self.cfg.driver.hardware_state_topic}")
        return self._reading, self._stamp

    def set_gripper(self, width: float) -> float:
        self._width = self.gripper.command(width)
        return self._width

    def gripper_width(self) -> float:
        if self._reading is None:
            return self._width
        return float(np.sum(self._reading.position[len(self.cfg.robot.arm_joints):]))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        # The loop's own timing over its last 10,000 ticks (bench/driver_jitter.py reads it).
        self.node.get_logger().info(f"control loop at {self.loop.rate_hz:g} Hz: "
                                    f"{self.loop.stats.format()}")
