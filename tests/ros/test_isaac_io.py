"""The Isaac Sim app's ROS 2 side (robot_rl/ros/isaac_io.py) drives robot_rl's joint driver over
real DDS, as it will inside Isaac Sim. Isaac Sim cannot run here, so the articulation, cube and
contact sensors it is handed are a MuJoCo world behind the methods of Isaac Sim's
SingleArticulation / rigid prim / ContactSensor that isaac_io calls (the physics is real; the
Isaac objects are stood in for). Alone in its module: it publishes the hardware topics."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import mujoco
import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.ros import messages as m
from tests.ros.status_watch import wait_until

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


class MujocoArticulation:
    """Isaac Sim's SingleArticulation methods that isaac_io uses, on a MuJoCo arm: efforts go
    straight to the joint torque actuators (no controller in between), finger position targets
    to the gripper servo."""

    def __init__(self, world):
        self.world, model = world, world.model
        self.dof_names = list(world.joint_names)
        self._qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in self.dof_names])
        self._dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in self.dof_names])
        self._act = {i: model.actuator(f"{j}_torque").id
                     for i, j in enumerate(self.dof_names) if j in world.cfg.robot.arm_joints}

    def get_joint_positions(self):
        return self.world.data.qpos[self._qpos].copy()

    def get_joint_velocities(self):
        return self.world.data.qvel[self._dof].copy()

    def get_measured_joint_efforts(self):
        return self.world.data.qfrc_actuator[self._dof].copy()

    def set_joint_positions(self, positions, joint_indices):
        self.world.data.qpos[self._qpos[np.asarray(joint_indices)]] = positions

    def set_joint_velocities(self, velocities, joint_indices):
        self.world.data.qvel[self._dof[np.asarray(joint_indices)]] = velocities

    def set_joint_efforts(self, efforts, joint_indices):
        for value, i in zip(efforts, joint_indices):
            self.world.data.ctrl[self._act[int(i)]] = value

    def set_joint_position_targets(self, positions, joint_indices):
        self.world.set_gripper(float(np.sum(positions)))


class MujocoRigidPrim:
    def __init__(self, world, body):
        self.world, self.body = world, world.model.body(body).id

    def get_world_pose(self):
        return self.world.data.xpos[self.body].copy(), self.world.data.xquat[self.body].copy()


class MujocoContactSensor:
    """ContactSensor.get_current_frame() with raw contact data: world-frame positions and
    impulses (force × step) of the contacts on the link."""

    def __init__(self, world, link):
        self.world, self.body = world, world.model.body(link).id

    def get_current_frame(self):
        m_, d = self.world.model, self.world.data
        contacts = []
        for i in range(d.ncon):
            c = d.contact[i]
            if self.body not in (m_.geom_bodyid[c.geom1], m_.geom_bodyid[c.geom2]):
                continue
            wrench = np.zeros(6)
            mujoco.mj_contactForce(m_, d, i, wrench)
            force = c.frame.reshape(3, 3)[0] * wrench[0]
            contacts.append({"position": c.pos.copy(), "impulse": force * m_.opt.timestep})
        return {"contacts": contacts}


def test_isaac_io_speaks_the_ros2_control_topics_the_joint_driver_drives(tmp_path):
    from robot_rl.ros.isaac_io import IsaacRosIO
    from robot_rl.sim.isaac.scene_spec import isaac_scene_spec
    from robot_rl.sim.scene_description import scene_description
    from robot_rl.sim.world import SimWorld
    # Rates a loaded 2-core machine sustains in Python (as tests/ros/test_check_backend_ros2_control.py).
    cfg = load_config(str(ROOT / "config" / "isaac.yaml"), {
        "driver.loop_rate_hz": 250.0, "driver.publish_rate_hz": 50.0, "sim.physics_dt": 0.004,
        "driver.state_timeout": 0.5, "cameras": []})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    world = SimWorld(cfg)
    desc = scene_description(cfg)
    spec = isaac_scene_spec(cfg, desc)
    sensors = {p.name: MujocoContactSensor(world, p.link) for p in desc.pads}

    def link_pose(link):
        body = world.model.body(link).id
        return world.data.xpos[body].copy(), world.data.xmat[body].reshape(3, 3).copy()

    rclpy.init()
    io = IsaacRosIO(cfg, spec, desc, MujocoArticulation(world), MujocoRigidPrim(world, "cube"),
                    sensors, link_pose)
    stop = threading.Event()
    frames_every = round(1.0 / cfg.control_rate_hz / cfg.sim.physics_dt)

    def physics():  # Isaac Sim's physics callback + step + render cadence, at most real time
        step, start, seen = 0, time.monotonic(), 0
        while not stop.is_set():
            io.on_physics_step(cfg.sim.physics_dt)
            mujoco.mj_step(world.model, world.data)
            step += 1
            if step % frames_every == 0:
                io.publish_frame(io.sim_time)
            # Lockstep with the driver: the next step waits (at most 0.25 s of wall time, under
            # the driver's 0.5 s state timeout) until isaac_io itself has taken in a new effort.
            # A loaded 2-core machine cannot close a torque loop over DDS in Python in real
            # time, and an arm stepped on stale efforts falls (fresh-clone CI: 0.3 m below the
            # goal). Counting the efforts a separate probe received was not enough: under the
            # suite's load the probe heard them while isaac_io's own executor had not.
            with io.effort_arrived:
                io.effort_arrived.wait_for(lambda: io.efforts_received > seen or stop.is_set(),
                                           timeout=0.25)
                seen = io.efforts_received
            lag = start + step * cfg.sim.physics_dt - time.monotonic()
            if lag > 0:
                time.sleep(lag)

    received = {"pose": None, "tactile": None, "object": None}
    probe = rclpy.create_node("isaac_io_probe")
    probe.create_subscription(PoseStamped, m.EE_POSE, lambda msg: received.__setitem__("pose", msg), 10)
    probe.create_subscription(Image, m.tactile_topic(desc.pads[0].name),
                              lambda msg: received.__setitem__("tactile", msg), m.SENSOR_QOS)
    probe.create_subscription(PoseStamped, m.OBJECT_POSE,
                              lambda msg: received.__setitem__("object", msg), m.SENSOR_QOS)
    target_pub = probe.create_publisher(PoseStamped, m.EE_TARGET, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    thread = threading.Thread(target=physics, daemon=True)
    thread.start()
    spinner.start()
    try:
        with NodeGraph(graph(cfg, str(path)), log_dir=tmp_path / "logs") as nodes:
            assert [spec.name for spec in nodes.specs] == ["joint_driver"]
            home = world.ee_pose()[0]

            def at_home():  # the driver's TCP from the state isaac_io published
                return (received["pose"] is not None
                        and np.linalg.norm(m.pose_from_msg(received["pose"])[0] - home) < 0.01)
            assert wait_until(at_home, 60), f"no TCP pose near home {home} from the driver"
            start, quat = m.pose_from_msg(received["pose"])
            goal = start + np.array([0.0, 0.05, 0.05])
            pose = m.pose_msg(goal, quat, 0.0, cfg.robot.base_frame)

            def reached():
                target_pub.publish(pose)
                return np.linalg.norm(m.pose_from_msg(received["pose"])[0] - goal) < 0.01
            assert wait_until(reached, 60, step=0.1), (
                f"the arm did not reach {goal}: at {m.pose_from_msg(received['pose'])[0]}")
            # The efforts the driver sent moved the MuJoCo arm: the pose is the world's.
            np.testing.assert_allclose(world.ee_pose()[0], goal, atol=0.015)
            assert not nodes.failed(), nodes.failed()
        tactile = m.msg_to_image(received["tactile"])
        assert tactile.shape == (desc.pads[0].rows, desc.pads[0].cols) and tactile.dtype == np.float32
        np.testing.assert_allclose(m.pose_from_msg(received["object"])[0], world.object_pose()[0], atol=0.01)
    finally:
        stop.set()
        thread.join(timeout=5)
        executor.shutdown()
        probe.destroy_node()
        io.close()
        rclpy.try_shutdown()
        world.close()
