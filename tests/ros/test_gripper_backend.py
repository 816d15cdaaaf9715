"""Gripper backends over real DDS.

franka_msgs cannot be installed here (it is built with franka_ros2), so the action-client path
runs against real rclpy action servers of a stand-in type, test_msgs/action/Fibonacci, through a
codec that packs the franka goal into its ``order`` field. What this verifies: action names under
the namespace, server discovery, goal send / accept / result, no resend of a running goal,
failure and missing-server statuses, finger joints from ``<namespace>/joint_states``. What it
does not: the franka_msgs field layout on the wire (checked against the .action definitions
with a structural stand-in module instead, below) and the real franka_gripper's behaviour.
"""
from __future__ import annotations

import sys
import threading
import time
import types

import pytest
import rclpy
import rclpy.executors
from rclpy.action import ActionServer
from sensor_msgs.msg import JointState

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.robot.gripper import GripperGoal
from robot_rl.ros import messages as m
from robot_rl.ros.gripper_backend import (FrankaGripperActions, FrankaMsgsCodec,
                                          GripperBackendError)

test_msgs = pytest.importorskip("test_msgs.action")  # pip: ros-jazzy-test-msgs (test extra)
Fibonacci = test_msgs.Fibonacci

KINDS = ("move", "grasp", "homing")


class FibonacciCodec:
    """Stand-in: goal.order = kind index * 10^6 + width in µm; success = non-empty sequence."""

    def action_type(self, kind):
        return Fibonacci

    def goal(self, goal: GripperGoal):
        return Fibonacci.Goal(order=KINDS.index(goal.kind) * 10**6 + round(goal.width * 1e6))

    def outcome(self, result):
        return bool(result.sequence), "" if result.sequence else "stand-in gripper failed"


class StandinFrankaGripper:
    """Action servers at <ns>/move|grasp|homing and finger joints on <ns>/joint_states."""

    def __init__(self, ns, fingers, opening=0.08):
        self.node = rclpy.create_node("standin_franka_gripper")
        self.goals, self.fail_grasps = [], False
        self.servers = [ActionServer(self.node, Fibonacci, f"{ns}/{kind}",
                                     lambda handle, kind=kind: self._execute(kind, handle))
                        for kind in KINDS]
        self.pub = self.node.create_publisher(JointState, f"{ns}/joint_states", m.SENSOR_QOS)
        self.fingers, self.opening = fingers, opening
        self.node.create_timer(0.02, self._publish)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _execute(self, kind, handle):
        order = handle.request.order
        width = (order % 10**6) / 1e6
        self.goals.append((kind, KINDS[order // 10**6], width))
        ok = not (kind == "grasp" and self.fail_grasps)
        if ok:
            self.opening = 0.08 if kind == "homing" else width  # homing ends fully open
            handle.succeed()
        else:
            handle.abort()
        return Fibonacci.Result(sequence=[1] if ok else [])

    def _publish(self):
        half = self.opening / 2
        self.pub.publish(JointState(name=self.fingers, position=[half, half]))

    def close(self):
        self.executor.shutdown()
        self.thread.join(timeout=2)
        self.node.destroy_node()


@pytest.fixture()
def client_node(ros_context):
    node = rclpy.create_node("gripper_backend_test")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    thread.join(timeout=2)
    node.destroy_node()


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_franka_gripper_actions_against_standin_servers(client_node):
    cfg = load_config(None, {"driver.gripper_backend": "franka_gripper",
                             "driver.franka_gripper_namespace": "/fg_test/franka_gripper/"})
    reports = []
    backend = FrankaGripperActions(cfg, client_node,
                                   lambda text, error: reports.append((text, error)),
                                   codec=FibonacciCodec())
    # No server yet: one REJECTED report naming the action, not one per command.
    assert backend.command(0.0) == 0.0 and backend.command(0.0) == 0.0
    assert reports == [(reports[0][0], True)]
    assert "'/fg_test/franka_gripper/grasp' is not available" in reports[0][0]
    server = StandinFrankaGripper("/fg_test/franka_gripper", cfg.robot.gripper_joints)
    try:
        assert wait_for(lambda: backend.finger_positions() is not None
                        and all(c.server_is_ready() for c in backend.clients.values()))
        assert backend.command(0.0) == 0.0                      # closing: a grasp
        assert wait_for(lambda: len(backend.outcomes) == 1)
        goal, _, success, _ = backend.outcomes[-1]
        assert success and goal.kind == "grasp" and goal.force == cfg.robot.gripper_force
        assert server.goals == [("grasp", "grasp", 0.0)]       # arrived on the grasp server
        assert wait_for(lambda: sum(backend.finger_positions()) < 1e-6)
        for _ in range(5):                                      # "close" every period: no resend
            backend.command(0.0)
        assert backend.command(0.5) == cfg.robot.gripper_max_width  # clamped; opening: a move
        assert wait_for(lambda: len(backend.outcomes) == 2)
        assert server.goals[1:] == [("move", "move", 0.08)]
        backend.home()
        assert wait_for(lambda: len(server.goals) == 3) and server.goals[2][0] == "homing"
        server.fail_grasps = True
        reports.clear()
        backend.command(0.01)
        assert wait_for(lambda: reports)
        text, is_error = reports[0]
        assert is_error
        assert "franka_gripper grasp to 0.0100 m failed: stand-in gripper failed" in text
    finally:
        server.close()


def test_franka_msgs_missing_is_a_clear_error():
    if "franka_msgs" in sys.modules or _importable("franka_msgs"):
        pytest.skip("franka_msgs is installed here: the guard cannot be exercised")
    with pytest.raises(GripperBackendError, match="franka_msgs is not importable.*"
                                                  "gripper_backend: position_controller"):
        FrankaMsgsCodec()


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def test_codec_fills_the_franka_msgs_fields(monkeypatch):
    """Structural stand-in of franka_msgs with the fields of Move/Grasp/Homing.action and
    GraspEpsilon.msg (franka_ros2): the codec sets exactly those."""
    def message(*fields):
        class Message:
            def __init__(self, **kwargs):
                assert set(kwargs) <= set(fields), f"unknown field(s) {set(kwargs) - set(fields)}"
                for f in fields:
                    setattr(self, f, kwargs.get(f, 0.0))
        return Message

    def action(goal_fields):
        return types.SimpleNamespace(Goal=message(*goal_fields),
                                     Result=message("success", "error"))

    pkg = types.ModuleType("franka_msgs")
    pkg.action = types.ModuleType("franka_msgs.action")
    pkg.msg = types.ModuleType("franka_msgs.msg")
    pkg.action.Move = action(("width", "speed"))
    pkg.action.Grasp = action(("width", "epsilon", "speed", "force"))
    pkg.action.Homing = action(())
    pkg.msg.GraspEpsilon = message("inner", "outer")
    for name, module in (("franka_msgs", pkg), ("franka_msgs.action", pkg.action),
                         ("franka_msgs.msg", pkg.msg)):
        monkeypatch.setitem(sys.modules, name, module)
    codec = FrankaMsgsCodec()
    grasp = codec.goal(GripperGoal("grasp", 0.01, 0.1, 40.0, 0.005, 0.08))
    assert (grasp.width, grasp.speed, grasp.force) == (0.01, 0.1, 40.0)
    assert (grasp.epsilon.inner, grasp.epsilon.outer) == (0.005, 0.08)
    move = codec.goal(GripperGoal("move", 0.07, 0.1))
    assert (move.width, move.speed) == (0.07, 0.1)
    codec.goal(GripperGoal("homing"))
    assert codec.outcome(pkg.action.Grasp.Result(success=False, error="x")) == (False, "x")


def test_driver_with_franka_backend_but_no_franka_msgs_exits_naming_it(tmp_path):
    if _importable("franka_msgs"):
        pytest.skip("franka_msgs is installed here")
    cfg = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                             "cameras": [], "tactile": [],
                             "driver.gripper_backend": "franka_gripper"})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)), log_dir=tmp_path / "logs").start()
    try:
        process = nodes.processes["joint_driver"]
        assert wait_for(lambda: process.poll() is not None, timeout=30.0)
        assert process.returncode != 0
        log = (tmp_path / "logs" / "joint_driver.log").read_text()
        assert "franka_msgs is not importable" in log and "position_controller" in log, log
    finally:
        nodes.stop()
