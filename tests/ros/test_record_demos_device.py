"""record-demos --device over real DDS when things go wrong: no intervention node, a device that
is not there, a recording without a single success (kept on disk, never lost). The test plays
the ROS joy node (raw sensor_msgs/Joy on /joy) for the plain MuJoCo stand-in's demos graph."""
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Joy

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.learning.record_demos import RecordingError
from robot_rl.ros.demo_recorder import record_teleop
from robot_rl.learning.replay import ReplayBuffer

SETTINGS = {"hil.device": "joy", "task.observations": ["state"], "cameras": [], "tactile": [],
            "task.max_episode_steps": 6}


@pytest.fixture(scope="module")
def demos_graph(tmp_path_factory, ros_context):
    tmp = tmp_path_factory.mktemp("demos_graph")
    cfg = load_config(None, SETTINGS)
    path = tmp / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path), "demos"), log_dir=tmp / "logs").start()
    yield cfg, tmp
    nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())


class JoyNode:
    """A person's pad through the ROS joy node: publishes ``buttons`` at 20 Hz while on."""

    def __init__(self, topic: str):
        self.node = rclpy.create_node("test_joy_node")
        self.pub = self.node.create_publisher(Joy, topic, 10)
        self.buttons = [0] * 11
        self.on = False
        self.node.create_timer(0.05, self._tick)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _tick(self):
        if self.on:
            self.pub.publish(Joy(axes=[0.0] * 8, buttons=list(self.buttons)))

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()


def test_no_intervention_node_is_a_clear_error(demos_graph):
    cfg, tmp = demos_graph
    cfg = load_config(None, {**SETTINGS, "hil.topic": "/nobody/intervention"})
    t0 = time.monotonic()
    with pytest.raises(RecordingError, match=r"no /nobody/intervention .* within 2 s for "
                                             r"--device joy: start it with `robot-rl up "
                                             r"--profile demos"):
        record_teleop(cfg, str(tmp / "none"), 1, "joy", device_timeout=2.0, verbose=False)
    assert time.monotonic() - t0 < 40.0
    assert not (tmp / "none").exists()


def test_a_pad_that_is_not_there_names_the_device(demos_graph):
    cfg, tmp = demos_graph
    # The intervention node runs but no joy node publishes /joy: it says so in its status.
    with pytest.raises(RecordingError, match=r"dead-man was not held within 3 s.*"
                                             r"intervention node reports: joy: Joy topic /joy: no message for ever"):
        record_teleop(cfg, str(tmp / "absent"), 1, "joy", start_timeout=3.0,
                      device_timeout=5.0, verbose=False)


def test_no_successful_episode_keeps_the_recording(demos_graph):
    cfg, tmp = demos_graph
    pad = JoyNode(cfg.hil.joy.topic)
    pad.buttons[cfg.hil.joy.mapping.deadman_button] = 1  # held, sticks at rest: no success
    pad.on = True
    out = tmp / "failed"
    try:
        with pytest.raises(RuntimeError, match=r"only 0/1 successful episodes after 2 attempts.*"
                                               r"2 unsuccessful episode\(s\) are kept in "):
            record_teleop(cfg, str(out), 1, "joy", max_attempts=2, verbose=False)
    finally:
        pad.close()
    assert not out.exists()
    kept = ReplayBuffer.load(str(out) + ".rejected", resume=False, verbose=False)
    assert len(kept) == 2 * cfg.task.max_episode_steps
    assert not np.any(kept.action[:len(kept), :3])  # what the person did: nothing
