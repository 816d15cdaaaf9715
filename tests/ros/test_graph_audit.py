"""The graph audit on live graphs over real DDS: the rehearsal's train graph has no link to a
simulator-only topic or service; the plain sim's train graph has (so the audit can fail)."""
import json
import time

import pytest
import rclpy
from std_msgs.msg import String

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.ros.messages import EPISODE_EVENT
from robot_rl.ros.graph_audit import privileged_links, wait_for_nodes

from .rehearsal_settings import REHEARSAL

LIGHT = {"task.observations": ["state", "tactile"], "cameras": [], "learner.tensorboard": False}


def _audit(tmp_path, overrides, expect_nodes, ready, events=None, until=lambda: True, timeout=60.0):
    """privileged_links of the live train graph, once ``ready(node)`` and ``until()`` hold
    (within ``timeout`` s); ``events`` (a list) collects the /episode/event names meanwhile."""
    cfg = load_config(None, {**LIGHT, "learner.run_dir": str(tmp_path / "run"), **overrides})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path), "train"), log_dir=tmp_path / "logs").start()
    node = rclpy.create_node("audit_test")
    if events is not None:
        node.create_subscription(String, EPISODE_EVENT,
                                 lambda msg: events.append(json.loads(msg.data)["event"]), 100)
    try:
        assert wait_for_nodes(node, expect_nodes, timeout=60.0) == [], nodes.failed()
        # Discovery of each node's endpoints trails the node itself: wait until the actor's
        # environment subscribes to the TCP pose (it does so before its first observation).
        deadline = time.monotonic() + timeout
        while not (ready(node) and until()):
            assert time.monotonic() < deadline, f"not ready in time (events {events})"
            assert not nodes.failed(), nodes.failed()
            rclpy.spin_once(node, timeout_sec=0.2)
        time.sleep(1.0)  # the last endpoints of the same nodes
        return privileged_links(node)
    finally:
        node.destroy_node()
        nodes.stop()


def _env_subscribed(node) -> bool:
    try:
        # The actor's environment node carries the actor's name (the process's __node remap
        # renames every node in it); the graph reports both nodes' endpoints under it.
        subs = node.get_subscriber_names_and_types_by_node("actor_0", "/")
    except Exception:
        return False
    return any(topic == "/robot/ee_pose" for topic, _ in subs)


@pytest.mark.usefixtures("ros_context")
def test_rehearsal_train_graph_has_no_simulator_links(tmp_path):
    events: list[str] = []

    def confirmed_episode() -> bool:
        """resetting, the human's turn, then running: the actor shows the operator's part of
        the episode. Events are volatile, so under load this listener can miss the first
        episode's start; then the next episode shows it."""
        for i, name in enumerate(events):
            if name == "awaiting_confirmation" and i and events[i - 1] == "resetting":
                return "running" in events[i:]
        return False

    links = _audit(tmp_path, REHEARSAL,
                   ["mujoco_sim", "sim_operator", "learner", "actor_0", "intervention", "reset"],
                   _env_subscribed, events, confirmed_episode, timeout=180.0)
    assert links == []  # and the operator's turn was shown (_audit waits for it or fails)


@pytest.mark.usefixtures("ros_context")
def test_plain_sim_train_graph_is_found_out(tmp_path):
    links = _audit(tmp_path, {}, ["mujoco_sim", "learner", "actor_0", "intervention"],
                   _env_subscribed)
    assert "/mujoco_sim: publishes /sim/object_pose" in links
    assert "/intervention: subscribes /sim/object_pose" in links  # the simulated human
    assert "/actor_0: subscribes /sim/object_pose" in links  # the scripted reward
    assert "/actor_0: calls /scene/reset" in links  # the teleport reset


def test_the_operator_is_not_exempt_by_name():
    import inspect

    from robot_rl.ros import graph_audit
    assert "operator" not in inspect.getsource(graph_audit.privileged_links)
