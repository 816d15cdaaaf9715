"""Isaac Sim adapter: the scene reset through the ROS 2 simulation interfaces.

When the reset node (driver.adapter ros2_control, as on a real arm) awaits the human, this node
plays the human: it puts the object at a random pose within ``sim.object_*_range``
(robot_rl/sim/placement.py) with ``simulation_interfaces/srv/SetEntityState``, served by Isaac
Sim's isaacsim.ros2.sim_control extension (sim/isaac/app.py enables it), and calls
``/scene/confirm``. Everything else of the contract the app publishes itself.

Needs simulation_interfaces (apt: ros-jazzy-simulation-interfaces).
"""
from __future__ import annotations

import importlib
import json

import numpy as np
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.ros import messages as m
from robot_rl.sim.isaac.scene_spec import SET_ENTITY_STATE, isaac_scene_spec
from robot_rl.sim.placement import random_object_pose
from robot_rl.sim.scene_description import scene_description


def _simulation_interfaces():
    try:
        return importlib.import_module("simulation_interfaces.srv")
    except ImportError as exc:
        raise ImportError(f"the Isaac Sim adapter needs simulation_interfaces ({exc}): sudo apt "
                          f"install ros-jazzy-simulation-interfaces (docs/simulators.md)") from None


class IsaacAdapterNode(Node):
    def __init__(self, cfg: Config | None = None):
        super().__init__("isaac_adapter")
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        self.srv = _simulation_interfaces()
        self.cfg, self.desc = cfg, scene_description(cfg)
        self.entity = isaac_scene_spec(cfg, self.desc)["object"]["prim_path"]
        self.rng = np.random.default_rng(cfg.sim.seed)
        self._set_state = self.create_client(self.srv.SetEntityState, SET_ENTITY_STATE)
        self._confirm = self.create_client(Trigger, cfg.hil.reset.confirm_service)
        self._placed_for = None
        self.create_subscription(String, m.RESET_STATE, self._on_reset_state, m.RESET_STATE_LISTEN_QOS)

    def _on_reset_state(self, msg: String) -> None:
        state = json.loads(msg.data)
        if state.get("state") != "awaiting_confirmation" or state.get("resets") == self._placed_for:
            return
        self._placed_for = state.get("resets")
        if not self._set_state.service_is_ready():
            self.get_logger().error(f"{SET_ENTITY_STATE} is not served: is isaacsim.ros2.sim_control "
                                    f"enabled in the Isaac Sim app?")
            return
        (x, y, z), (qw, qx, qy, qz) = random_object_pose(self.rng, self.cfg, self.desc)
        request = self.srv.SetEntityState.Request()
        request.entity = self.entity
        pose = request.state.pose
        pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
        pose.orientation.w, pose.orientation.x = float(qw), float(qx)
        pose.orientation.y, pose.orientation.z = float(qy), float(qz)
        self._set_state.call_async(request).add_done_callback(self._placed)

    def _placed(self, future) -> None:
        result = future.result().result
        if result.result != result.RESULT_OK:
            self.get_logger().error(f"Isaac Sim refused to move {self.entity}: {result.error_message}")
            return
        if self._confirm.service_is_ready():
            self._confirm.call_async(Trigger.Request())


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    return run_nodes(lambda: [IsaacAdapterNode()], args)
