"""The ROS 2 side of the Isaac Sim app (sim/isaac/app.py), run inside Isaac Sim's Python with
the rclpy its ROS 2 bridge provides: the arm's hardware topics (as ros2_control would give them
to robot_rl's joint driver), the contact-based tactile images and the object pose for scoring.

The Isaac objects (articulation, rigid cube, contact sensors) are passed in; this module calls
only their documented methods (get_joint_positions / get_joint_velocities /
get_measured_joint_efforts, set_joint_positions / set_joint_velocities (the brake before the first
command), set_joint_efforts, set_joint_position_targets, get_world_pose, get_current_frame) and imports no Isaac module itself.
"""
from __future__ import annotations

import threading

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

from robot_rl.config import Config
from robot_rl.ros import messages as m
from robot_rl.sim.contact_taxels import taxel_image, to_link_frame


class IsaacRosIO(Node):
    def __init__(self, cfg: Config, spec: dict, desc, robot, cube, contact_sensors: dict,
                 link_pose=None, now=None):
        if not rclpy.ok():
            rclpy.init()
        super().__init__("isaac_sim")
        self.cfg, self.spec, self.desc = cfg, spec, desc
        self.robot, self.cube, self.sensors = robot, cube, contact_sensors
        # link name -> (position, rotation world <- link); the app passes the articulation's
        # link poses (RigidPrim.get_world_pose of each pad link).
        self.link_pose = link_pose
        names = list(robot.dof_names)
        missing = [j for j in cfg.robot.arm_joints + cfg.robot.gripper_joints if j not in names]
        if missing:
            raise ValueError(f"joints {missing} are not in the imported articulation {names}")
        self.arm_idx = np.array([names.index(j) for j in cfg.robot.arm_joints])
        self.grip_idx = np.array([names.index(j) for j in cfg.robot.gripper_joints])
        self.names = cfg.robot.arm_joints + cfg.robot.gripper_joints
        self._lock = threading.Lock()
        # Effort commands taken in so far; a lockstep host (a test, a slowed app) waits on
        # ``effort_arrived`` for the next one before it steps the physics.
        self.efforts_received = 0
        self.effort_arrived = threading.Condition(self._lock)
        self._effort = np.zeros(len(self.arm_idx))
        self._grip = np.full(len(self.grip_idx), spec["robot"]["gripper_open"])
        self.sim_time = 0.0
        # The simulation time /clock carries (the app: World.current_time); without it, the sum
        # of the physics steps.
        self._now = now
        # Braked at home until the driver's first effort command, as a real arm is before its
        # controller starts (an effort-driven articulation would otherwise fold under gravity).
        self._commanded = False
        self._home = np.asarray(cfg.robot.home, dtype=float)
        ros = spec["ros"]
        self.pub_joints = self.create_publisher(m.JointState, ros["joint_states"], m.SENSOR_QOS)
        self.pub_object = self.create_publisher(m.PoseStamped, ros["object_pose"], m.SENSOR_QOS)
        self.pub_tactile = {p["name"]: self.create_publisher(m.Image, p["topic"], m.SENSOR_QOS)
                            for p in spec["tactile"]}
        self.create_subscription(Float64MultiArray, ros["effort_commands"], self._on_effort, 10)
        self.create_subscription(Float64MultiArray, ros["gripper_commands"], self._on_gripper, 10)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_effort(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, dtype=float)
        if values.shape != self._effort.shape or not np.all(np.isfinite(values)):
            self.get_logger().error(f"effort command {list(values)} refused: expected "
                                    f"{len(self._effort)} finite values ({self.cfg.robot.arm_joints})")
            return
        with self._lock:
            self._effort = values
            self._commanded = True
            self.efforts_received += 1
            self.effort_arrived.notify_all()

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, dtype=float)
        if values.shape != self._grip.shape or not np.all(np.isfinite(values)):
            self.get_logger().error(f"gripper command {list(values)} refused: expected "
                                    f"{len(self._grip)} finite positions")
            return
        with self._lock:
            self._grip = values

    def on_physics_step(self, step_size: float) -> None:
        """Every physics step: the joint state out and the newest commands in, as a
        ros2_control loop at the physics rate would (the joint driver closes the impedance loop
        on it; rendering runs at the control rate, far too slow for that)."""
        self.sim_time = self._now() if self._now is not None else self.sim_time + step_size
        q = self.robot.get_joint_positions()
        v = self.robot.get_joint_velocities()
        e = self.robot.get_measured_joint_efforts()
        idx = np.concatenate([self.arm_idx, self.grip_idx])
        self.pub_joints.publish(m.joint_state_msg(self.names, q[idx], v[idx], e[idx], self.sim_time))
        with self._lock:
            effort, grip, commanded = self._effort.copy(), self._grip.copy(), self._commanded
        if not commanded:
            self.robot.set_joint_positions(self._home, joint_indices=self.arm_idx)
            self.robot.set_joint_velocities(np.zeros_like(self._home), joint_indices=self.arm_idx)
        self.robot.set_joint_efforts(effort, joint_indices=self.arm_idx)
        self.robot.set_joint_position_targets(grip, joint_indices=self.grip_idx)

    def publish_frame(self, sim_time: float) -> None:
        """Every rendered frame: the object pose (scoring) and the tactile images."""
        pos, quat_wxyz = self.cube.get_world_pose()
        w, x, y, z = quat_wxyz
        self.pub_object.publish(m.pose_msg(pos, [x, y, z, w], sim_time, "world"))
        for pad in self.desc.pads:
            frame = self.sensors[pad.name].get_current_frame()
            contacts = frame.get("contacts", [])
            link_pos, link_rot = self.link_pose(pad.link)
            points = np.array([c["position"] for c in contacts]).reshape(-1, 3)
            # Raw contact data reports impulses: force = impulse / physics step.
            forces = np.array([np.asarray(c["impulse"]) / self.spec["physics_dt"]
                               for c in contacts]).reshape(-1, 3)
            image = taxel_image(pad, to_link_frame(points, link_pos, link_rot), forces @ link_rot)
            self.pub_tactile[pad.name].publish(
                m.image_to_msg(image, sim_time, f"{pad.name}_tactile_frame", "32FC1"))

    def close(self) -> None:
        self._executor.shutdown()
        self.destroy_node()
