"""Gazebo adapter: what Gazebo and ros_gz_bridge cannot give the contract by themselves.

* Tactile: each pad's Gazebo contact sensor (bridged as ros_gz_interfaces/msg/Contacts on
  ``/sim/gazebo/contacts/<pad>``) becomes the taxel image on ``/tactile/<pad>/image`` (32FC1,
  with the ``zero`` service), binned on the scene description's pad grid
  (robot_rl/sim/contact_taxels.py) with the finger's pose from the hardware joint states.
* Scene reset: when the reset node (driver.adapter ros2_control, as on a real arm) awaits the
  human, this node plays the human: it puts the object at a random pose within
  ``sim.object_*_range`` through Gazebo's ``/world/<world>/set_pose`` service (gz-transport) and
  calls ``/scene/confirm``.

Needs ros_gz_interfaces (apt: ros-jazzy-ros-gz-interfaces) and the gz-transport / gz-msgs Python
bindings (apt: python3-gz-transport13, python3-gz-msgs10, from packages.osrfoundation.org).
"""
from __future__ import annotations

import json
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.ros import messages as m
from robot_rl.sim import gazebo
from robot_rl.sim.contact_taxels import LinkPoser
from robot_rl.sim.placement import random_object_pose
from robot_rl.sim.scene_description import scene_description


def _require(module: str, package: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the Gazebo adapter needs {module} ({package}); it is not importable "
                          f"here ({exc}). Install it on the machine that runs Gazebo "
                          f"(docs/simulators.md).") from None


class GazeboAdapterNode(Node):
    def __init__(self, cfg: Config | None = None):
        super().__init__("gazebo_adapter")
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        gazebo.check_gazebo_config(cfg)
        contacts_msgs = _require("ros_gz_interfaces.msg", "apt: ros-jazzy-ros-gz-interfaces")
        self.cfg, self.desc = cfg, scene_description(cfg)
        self.poser = LinkPoser(cfg.robot.urdf, self.desc.robot_base)
        self._joints: dict[str, float] = {}
        self._lock = threading.Lock()
        self._zero: dict[str, np.ndarray] = {}
        self._last: dict[str, np.ndarray] = {}
        from robot_rl.ros.tactile_node import TactileNode
        sensors = {t.name: t for t in cfg.tactile if t.backend == "sim"}
        self.tactile = {pad.name: TactileNode(sensors[pad.name], name=f"tactile_{pad.name}",
                                              zero=lambda n=pad.name: self._zero_pad(n))
                        for pad in self.desc.pads}
        self.create_subscription(JointState, cfg.driver.hardware_state_topic, self._on_joints,
                                 m.SENSOR_QOS)
        for pad in self.desc.pads:
            self.create_subscription(contacts_msgs.Contacts, gazebo.contacts_topic(pad.name),
                                     lambda msg, p=pad: self._on_contacts(p, msg), m.SENSOR_QOS)
        transport = _require("gz.transport13", "apt: python3-gz-transport13")
        self._pose_msg = _require("gz.msgs10.pose_pb2", "apt: python3-gz-msgs10").Pose
        self._bool_msg = _require("gz.msgs10.boolean_pb2", "apt: python3-gz-msgs10").Boolean
        self._gz = transport.Node()
        self.rng = np.random.default_rng(cfg.sim.seed)
        self._confirm = self.create_client(Trigger, cfg.hil.reset.confirm_service)
        self._placed_for = -1
        self.create_subscription(String, m.RESET_STATE, self._on_reset_state, m.RESET_STATE_LISTEN_QOS)
        # Gazebo's contact sensor is silent while nothing touches the pad; the contract's tactile
        # image comes every control period (as from the MuJoCo stand-in), so a timer on Gazebo's
        # clock publishes the newest binning, or no contact when none came since the last tick.
        self._pending: dict[str, tuple[np.ndarray, int]] = {}
        self.create_timer(1.0 / cfg.control_rate_hz, self._publish_tactile)

    def nodes(self) -> list[Node]:
        return [self, *self.tactile.values()]

    # -- tactile ---------------------------------------------------------------------------------
    def _on_joints(self, msg: JointState) -> None:
        with self._lock:
            self._joints.update(zip(msg.name, msg.position))

    def _on_contacts(self, pad, msg) -> None:
        with self._lock:
            joints = dict(self._joints)
        if not joints:
            return  # no finger pose yet: nothing can be placed on the pad
        pos, rot = self.poser.pose(pad.link, joints)
        image = gazebo.contacts_image(pad, msg.contacts, pos, rot)
        with self._lock:
            total, count = self._pending.get(pad.name, (0.0, 0))
            self._pending[pad.name] = (total + image, count + 1)

    def _publish_tactile(self) -> None:
        stamp = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            pending, self._pending = self._pending, {}
        for pad in self.desc.pads:
            # Several contact updates in one period: their mean; none: no contact.
            total, count = pending.get(pad.name, (np.zeros((pad.rows, pad.cols), np.float32), 1))
            image = total / count
            self._last[pad.name] = image
            reading = image - self._zero.get(pad.name, 0.0)
            self.tactile[pad.name].publish_reading(np.asarray(reading, np.float32), stamp)

    def _zero_pad(self, name: str) -> None:
        pad = self.desc.pad(name)
        self._zero[name] = self._last.get(name, np.zeros((pad.rows, pad.cols), np.float32)).copy()

    # -- scene reset -----------------------------------------------------------------------------
    def _on_reset_state(self, msg: String) -> None:
        state = json.loads(msg.data)
        if state.get("state") != "awaiting_confirmation" or state.get("resets") == self._placed_for:
            return
        self._placed_for = state.get("resets")
        if self.place_object() and self._confirm.service_is_ready():
            self._confirm.call_async(Trigger.Request())

    def place_object(self) -> bool:
        (x, y, z), (qw, qx, qy, qz) = random_object_pose(self.rng, self.cfg, self.desc)
        request = self._pose_msg()
        request.name = self.desc.object.name
        request.position.x, request.position.y, request.position.z = float(x), float(y), float(z)
        request.orientation.w, request.orientation.x = float(qw), float(qx)
        request.orientation.y, request.orientation.z = float(qy), float(qz)
        ok, reply = self._gz.request(gazebo.set_pose_service(self.desc), request, self._pose_msg,
                                     self._bool_msg, 2000)
        if not (ok and reply.data):
            self.get_logger().error(f"Gazebo refused to move {request.name} "
                                    f"({gazebo.set_pose_service(self.desc)})")
            return False
        return True


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    return run_nodes(lambda: GazeboAdapterNode().nodes(), args)
