"""The MuJoCo stand-in as a ROS 2 process.

It hosts the same JointDriverNode, CameraNode and TactileNode classes that run against real
hardware, composed in one process (as a ROS 2 component container would) because they share
one physics state. Downstream nodes see the same topics and messages as on a real robot, plus
``/clock``, ``/sim/object_pose``, ``/sim/fixtures/<name>`` (the pose of each fixture a task
added, ``Task.scene``) and the ``/scene/reset`` service (a teleport: arm home, cube
at a random pose).

``sim.rehearsal`` (the hardware dress rehearsal, docs/rehearsal.md): the stand-in offers only
what a real robot offers: nothing under ``/sim/`` and no ``/scene/reset`` (the reset node moves
the arm). It hosts the simulated operator (robot_rl/ros/operator_node.py), which reads this
process's world directly and acts only through the joy device topic.

Pacing (``sim.rate``): ``lockstep`` advances one control period per arm command (or after
``sim.lockstep_timeout`` without one), so the sim runs as fast as its consumer; ``realtime``
follows the wall clock scaled by ``sim.real_time_factor``; ``max`` free-runs.
"""
from __future__ import annotations

import json
import threading
import time
from functools import partial

from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from robot_rl.robot.adapter import SimArmAdapter
from robot_rl.ros import messages as m
from robot_rl.ros.camera_node import CameraNode
from robot_rl.ros.joint_driver_node import JointDriverNode
from robot_rl.diagnostics import HealthTracker
from robot_rl.ros.command_guard import CommandGuard
from robot_rl.ros.diagnostics_topic import Diagnostics
from robot_rl.ros.node_utils import declare_config, run_nodes
from robot_rl.ros.tactile_node import TactileNode
from robot_rl.sim.world import SimWorld

RESET_TIMEOUT = 10.0


class MujocoSimNode(Node):
    def __init__(self, name: str = "mujoco_sim"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        self.world = SimWorld(cfg)
        self.lock = threading.Lock()
        self.driver = JointDriverNode(SimArmAdapter(self.world, self.lock), cfg)
        self.driver.on_command = self._on_command
        self.cameras = [CameraNode(c) for c in cfg.cameras if c.backend == "sim"]
        self.tactile = [TactileNode(t, zero=partial(self._zero_tactile, t.name))
                        for t in cfg.tactile if t.backend == "sim"]
        self._command = threading.Event()
        self.pub_clock = self.create_publisher(Clock, m.CLOCK, 10)
        self.pub_object = None
        self.pub_fixtures: dict = {}
        self.operator = None
        if cfg.sim.rehearsal:  # with operator "off" too: it still re-arranges and confirms
            from robot_rl.ros.operator_node import OperatorNode
            self.operator = OperatorNode(cfg, self.world, self.lock, wake=self._command.set)
        else:
            self.pub_object = self.create_publisher(PoseStamped, m.OBJECT_POSE, m.SENSOR_QOS)
            self.pub_fixtures = {name: self.create_publisher(PoseStamped, m.fixture_topic(name),
                                                             m.SENSOR_QOS)
                                 for name in self.world.fixture_names}
            guard = CommandGuard(self, cfg)  # security.restrict_commands: operator tokens only
            self.create_service(Trigger, m.SCENE_RESET,
                                guard.wrap(m.SCENE_RESET, self._on_reset))
        self._reset_request = threading.Event()
        self._reset_done = threading.Event()
        self._stop = threading.Event()
        self.periods = 0
        self._render_every = {c.name: max(1, round(cfg.control_rate_hz / c.fps))
                              for c in cfg.cameras}
        self.physics_error: str | None = None
        tracker = HealthTracker(alive=("periods",))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"periods": self.periods, "sim_time_s": self.world.time},
            [("ERROR", f"physics thread stopped: {self.physics_error}")] if self.physics_error
            else []))
        self._thread = threading.Thread(target=self._run, name="physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"MuJoCo stand-in up: scene {cfg.sim.scene}, robot {cfg.robot.urdf}, "
            f"{cfg.control_rate_hz} Hz control, {self.world.substeps} physics steps per period, "
            f"rate={cfg.sim.rate}, cameras {[c.name for c in cfg.cameras]}, "
            f"tactile {[t.name for t in cfg.tactile]}"
            + (f"; REHEARSAL: no /sim/ topics, no {m.SCENE_RESET}, operator "
               f"{cfg.sim.operator}" if cfg.sim.rehearsal else ""))

    def nodes(self) -> list[Node]:
        return [self, self.driver, *self.cameras, *self.tactile,
                *([self.operator] if self.operator is not None else [])]

    def _on_command(self) -> None:
        self._command.set()

    def _zero_tactile(self, name: str) -> None:
        with self.lock:
            self.world.zero_tactile(name)

    def _on_reset(self, request, response):
        self._reset_done.clear()
        self._reset_request.set()
        self._command.set()  # wake a lockstep wait
        deadline = time.monotonic() + RESET_TIMEOUT
        while not self._reset_done.wait(0.1):  # in slices: a stopping node must not hang here
            if self._stop.is_set() or time.monotonic() > deadline:
                response.success = False
                response.message = ("the simulator is shutting down" if self._stop.is_set()
                                     else f"sim did not reset within {RESET_TIMEOUT} s")
                return response
        x, y, yaw = self._last_reset
        response.success = True
        response.message = f"object at x={x:.3f} y={y:.3f} yaw={yaw:.3f}"
        return response

    # -- the physics thread -------------------------------------------------------------------
    def _publish(self) -> None:
        world = self.world
        stamp = world.time
        self.pub_clock.publish(Clock(clock=m.to_time(stamp)))
        self.driver.publish_state()
        for node in self.tactile:
            node.publish_reading(world.tactile(node.sensor.name), stamp)
        if self.pub_object is not None:
            pos, quat = world.object_pose()
            self.pub_object.publish(m.pose_msg(pos, quat, stamp, self.cfg.robot.base_frame))
        for name, pub in self.pub_fixtures.items():
            pose = world.fixture_pose(name)
            pub.publish(m.pose_msg(pose[:3], pose[3:], stamp, self.cfg.robot.base_frame))
        for node in self.cameras:
            cam = node.camera
            if self.periods % self._render_every[cam.name] == 0:
                image, K = world.camera_frame(cam)
                node.publish_frame(image, stamp, K)

    def _run(self) -> None:
        sim = self.cfg.sim
        period = self.world.substeps * sim.physics_dt
        try:
            if self.operator is not None:
                self.operator.on_period()
            self._publish()
            next_wall = time.perf_counter()
            while not self._stop.is_set():
                if self._reset_request.is_set():
                    self._reset_request.clear()
                    with self.lock:
                        self._last_reset = self.world.reset()
                    if self.world.episode_randomization is not None:  # replayable from the log
                        self.get_logger().info("episode randomisation: " + json.dumps(
                            self.world.episode_randomization))
                    self._command.clear()
                    self._publish()
                    self._reset_done.set()
                    next_wall = time.perf_counter()
                    continue
                if sim.rate == "lockstep":
                    self._command.wait(sim.lockstep_timeout)
                    self._command.clear()
                    if self._reset_request.is_set() or self._stop.is_set():
                        continue
                with self.lock:
                    self.world.step_physics()
                self.periods += 1
                if self.operator is not None:  # before the period's state goes out (see there)
                    self.operator.on_period()
                self._publish()
                if sim.rate == "realtime":
                    next_wall += period / sim.real_time_factor
                    delay = next_wall - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                    else:
                        next_wall = time.perf_counter()  # fell behind: do not try to catch up
        except Exception as exc:  # surface physics/render failures instead of a silent thread
            if not rclpy.ok():  # a signal shut the context down under a publish: a stop
                self._stop.set()
                return
            self.physics_error = repr(exc)
            self.get_logger().fatal(f"physics thread stopped: {exc!r}")
            raise
        finally:
            self.world.close()  # GL contexts belong to this thread

    def close(self) -> None:
        self._stop.set()
        self._command.set()
        self._thread.join(timeout=5.0)


def main(args=None) -> int:
    sim: list[MujocoSimNode] = []

    def make():
        sim.append(MujocoSimNode())
        return sim[0].nodes()

    return run_nodes(make, args, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
