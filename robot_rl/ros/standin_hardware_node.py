"""``standin_hardware``: a MuJoCo arm speaking ros2_control's topics, for the joint driver.

Plays what ``ros2_control_node`` with an arm's hardware interface exposes to robot_rl's
``joint_driver`` (``driver.adapter: ros2_control``): it publishes the ``joint_state_broadcaster``
JointState on ``driver.hardware_state_topic`` every hardware tick (``sim.physics_dt``, wall
clock) and takes ``std_msgs/Float64MultiArray`` torques on ``driver.effort_command_topic`` and
finger positions on ``driver.gripper_command_topic``. The physics and the Franka-like behaviour
(brakes without commands, gravity compensation by config, torque-rate accounting) live in
``robot_rl.sim.standin_hardware``.

``/standin_hardware/status`` (String, JSON, 1 Hz): the hardware's counters and tick timing.

    python -m robot_rl.ros.standin_hardware_node --ros-args -p config_file:=my.yaml
"""
from __future__ import annotations

import json
import threading
import time

from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from robot_rl import topics as T
from robot_rl.deploy.control_loop import RateLoop
from robot_rl.ros import messages as m
from robot_rl.ros.node_utils import declare_config, run_nodes
from robot_rl.sim.standin_hardware import StandinArmHardware

STATUS_TOPIC = T.STANDIN_STATUS


class StandinHardwareNode(Node):
    def __init__(self, name: str = "standin_hardware"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        compensates = self.declare_parameter(
            "compensates_gravity",
            bool(getattr(cfg.robot, "hardware_compensates_gravity", False))).value
        timeout = self.declare_parameter("command_timeout", 0.02).value
        self.hardware = StandinArmHardware(cfg, compensates_gravity=compensates,
                                           command_timeout=timeout)
        self.lock = threading.Lock()
        self.pub_state = self.create_publisher(JointState, cfg.driver.hardware_state_topic,
                                               m.SENSOR_QOS)
        self.pub_status = self.create_publisher(String, STATUS_TOPIC, 10)
        self.create_subscription(Float64MultiArray, cfg.driver.effort_command_topic,
                                 self._on_effort, 1)
        self.create_subscription(Float64MultiArray, cfg.driver.gripper_command_topic,
                                 self._on_gripper, 1)
        self.create_timer(1.0, self._publish_status)
        self.loop = RateLoop(1.0 / self.hardware.dt, spin_s=0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hardware", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"stand-in hardware up: {1.0 / self.hardware.dt:g} Hz, state on "
            f"{cfg.driver.hardware_state_topic}, efforts from {cfg.driver.effort_command_topic}, "
            f"gripper from {cfg.driver.gripper_command_topic}, "
            f"gravity compensated by the hardware: {compensates}")

    def _on_effort(self, msg: Float64MultiArray) -> None:
        with self.lock:
            problem = self.hardware.command_efforts(msg.data, time.monotonic())
        if problem:
            self.get_logger().error(f"{self.cfg.driver.effort_command_topic}: {problem}",
                                    throttle_duration_sec=1.0)

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        with self.lock:
            problem = self.hardware.command_gripper(msg.data)
        if problem:
            self.get_logger().error(f"{self.cfg.driver.gripper_command_topic}: {problem}",
                                    throttle_duration_sec=1.0)

    def _run(self) -> None:
        names = self.hardware.names
        while not self._stop.is_set():
            self.loop.wait()
            with self.lock:
                self.hardware.step(time.monotonic())
                reading = self.hardware.reading()
            stamp = self.get_clock().now().nanoseconds * 1e-9
            try:
                self.pub_state.publish(m.joint_state_msg(names, reading.position,
                                                         reading.velocity, reading.effort, stamp))
            except RCLError:
                if self.context.ok():
                    raise
                return  # Ctrl-C shut the context down before close() stopped this thread

    def status(self) -> dict:
        with self.lock:
            counters = self.hardware.counters.as_dict()
            braked = self.hardware.braked(time.monotonic())
        stats = self.loop.stats
        period = stats.period.summary_ms()
        return {**counters, "braked": braked, "rate_hz": 1.0 / self.hardware.dt,
                "deadline_misses": stats.deadline_misses, "skipped_ticks": stats.skipped_ticks,
                "period_p50_ms": round(period["p50"], 4), "period_p99_ms": round(period["p99"], 4)}

    def _publish_status(self) -> None:
        self.pub_status.publish(String(data=json.dumps(self.status())))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def main(args=None) -> int:
    return run_nodes(lambda: [StandinHardwareNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
