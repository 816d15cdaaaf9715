"""``robot-rl view``: subscribes to the topic contract and feeds ``robot_rl.view.LiveView``.

    robot-rl view [--config F] [--set view.web_port=9091] [--open]

Prints the viewer's URL (``http://127.0.0.1:9090/?url=...``) and serves until Ctrl-C. The node
only reads: it never publishes, so it cannot disturb the graph it watches. Images, tactile
frames and robot poses are thinned to ``view.camera_rate_hz`` / ``view.robot_rate_hz``
(wall clock) so a fast graph does not flood the browser.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from robot_rl.ros.messages import camera_image_topic, from_time, msg_to_image, pose_from_msg, tactile_topic
from robot_rl.hil.config import simulator_state_available
from robot_rl.topics import CONTROLLER_STATUS, EE_POSE, EE_TARGET, EPISODE_EVENT, JOINT_STATES, OBJECT_POSE


class Throttle:
    """True at most ``rate_hz`` times per second per key (0: always)."""

    def __init__(self, rate_hz: float):
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._last: dict[str, float] = {}

    def __call__(self, key: str) -> bool:
        now = time.monotonic()
        if self.period and now - self._last.get(key, -1e18) < self.period:
            return False
        self._last[key] = now
        return True


class ViewNode(Node):
    def __init__(self, cfg, view):
        super().__init__("live_view")
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import Image, JointState, Joy
        from std_msgs.msg import String

        self.view = view
        self.errors = 0
        sensors, robot = Throttle(cfg.view.camera_rate_hz), Throttle(cfg.view.robot_rate_hz)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)

        def sub(msg_type, topic: str, handle: Callable, qos=qos_profile_sensor_data, gate=None):
            def callback(msg):
                if gate is not None and not gate(topic):
                    return
                try:
                    handle(msg)
                except (ValueError, KeyError, TypeError) as exc:  # one bad message: count, keep going
                    self.errors += 1
                    self.get_logger().warning(f"{topic}: {exc}", throttle_duration_sec=5.0)
            self.create_subscription(msg_type, topic, callback, qos)

        stamp = lambda msg: from_time(msg.header.stamp)  # noqa: E731
        sub(JointState, JOINT_STATES, lambda m: view.joints(stamp(m), list(m.name), list(m.position)), gate=robot)
        sub(PoseStamped, EE_POSE, lambda m: view.ee_pose(stamp(m), *pose_from_msg(m)), gate=robot)
        sub(PoseStamped, EE_TARGET, lambda m: view.ee_target(stamp(m), *pose_from_msg(m)), reliable)
        if simulator_state_available(cfg):  # a robot (or the rehearsal) has no object pose
            sub(PoseStamped, OBJECT_POSE, lambda m: view.object_pose(stamp(m), *pose_from_msg(m)), gate=robot)
        for name in view.camera_names:
            sub(Image, camera_image_topic(name),
                lambda m, n=name: view.camera(stamp(m), n, msg_to_image(m)), gate=sensors)
        for name in view.tactile_names:
            sub(Image, tactile_topic(name),
                lambda m, n=name: view.tactile(stamp(m), n, msg_to_image(m)), gate=sensors)
        sub(Joy, cfg.hil.topic,
            lambda m: view.intervention(stamp(m), bool(m.buttons) and m.buttons[0] != 0), reliable)
        sub(String, EPISODE_EVENT, lambda m: view.episode_event(self._now(), json.loads(m.data)), reliable)
        sub(String, CONTROLLER_STATUS, lambda m: view.controller_status(self._now(), json.loads(m.data)),
            reliable)

    def _now(self) -> float:
        """Stamp for stamp-less JSON messages: the newest stamp of the stamped streams, so they
        share one time axis with them (sim time on the stand-in, the robot's clock on hardware);
        the node's clock before any stamped message arrived."""
        if self.view.last_stamp is not None:
            return self.view.last_stamp
        return self.get_clock().now().nanoseconds * 1e-9


def main(argv: Optional[Sequence[str]] = None) -> int:
    from robot_rl.cli import parse_sets
    from robot_rl.config import load_config
    from robot_rl.ros.node_utils import run_nodes
    from robot_rl.schema import ConfigError
    from robot_rl.view import LiveView

    parser = argparse.ArgumentParser(prog="robot-rl view", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="", help="YAML configuration (default: built-in)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config or None, parse_sets(args.set))
    except ConfigError as exc:
        print(f"[view] error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    view = LiveView(cfg)

    def make_nodes():
        url = view.serve(open_browser=args.open)
        print(f"[view] live view at {url}", flush=True)
        return [ViewNode(cfg, view)]

    return run_nodes(make_nodes, args=[], threads=1, on_shutdown=view.close)


if __name__ == "__main__":
    raise SystemExit(main())
