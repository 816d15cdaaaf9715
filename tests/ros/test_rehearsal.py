"""The hardware dress rehearsal over real DDS (sim.rehearsal: the MuJoCo stand-in behaves like a
robot; its simulated operator acts only through the joy pad topic).

One graph (`robot-rl up --profile demos` in rehearsal: mujoco_sim + operator, intervention node
reading /joy, reset node): a reset the actor's way (/scene/reset) moves the arm home along a
continuous path (no teleport), the operator re-arranges the cube when the reset node awaits
confirmation and confirms through the pad; then `robot-rl record-demos --device joy` records
the operator's demonstrations into the learner's demo format."""
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy._rclpy_pybind11 import NodeNameNonExistentError
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.hil.reset import home_pose
from robot_rl.launcher import NodeGraph
from robot_rl.ros import messages as m

from .rehearsal_settings import REHEARSAL
from .status_watch import wait_until

SETTINGS = {**REHEARSAL, "sim.operator": "demonstrate", "task.observations": ["state"],
            "cameras": [], "tactile": [], "hil.reset.confirm_timeout": 30.0}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearsal")
    cfg = load_config(None, SETTINGS)
    path = tmp / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path), "demos"), log_dir=tmp / "logs").start()
    yield cfg, path, tmp
    nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())


class Watcher:
    """The test's eyes on the graph: joint states, reset states, the operator's diagnostics."""

    def __init__(self):
        self.node = rclpy.create_node("rehearsal_watcher")
        self.lock = threading.Lock()
        self.joints: list[tuple[float, np.ndarray]] = []
        self.states: list[str] = []
        self.operator: dict[str, str] = {}
        self.node.create_subscription(JointState, m.JOINT_STATES, self._on_joints, m.SENSOR_QOS)
        self.node.create_subscription(String, m.RESET_STATE, self._on_state, m.RESET_STATE_LISTEN_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.reset = self.node.create_client(Trigger, m.SCENE_RESET)
        self.target = self.node.create_publisher(m.PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.gripper = self.node.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_joints(self, msg):
        with self.lock:
            self.joints.append((m.from_time(msg.header.stamp), np.array(msg.position[:7])))

    def _on_state(self, msg):
        with self.lock:
            self.states.append(json.loads(msg.data)["state"])

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.endswith("sim_operator"):
                with self.lock:
                    self.operator = {kv.key: kv.value for kv in status.values}

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()


def test_reset_moves_home_without_teleport_and_waits_for_the_operator(rehearsal, ros_context):
    cfg, _, _ = rehearsal
    w = Watcher()
    try:
        assert w.reset.wait_for_service(timeout_sec=60.0), "the reset node serves no /scene/reset"
        assert wait_until(lambda: w.joints and w.states, 30.0)
        assert w.states[-1] == "idle"
        # The reset node serves it; the stand-in serves and publishes nothing of its own.
        # (Discovery reports a process's endpoints one by one, and its node name on its own
        # channel: wait for the sim's /clock and the reset node's service by node.)
        def endpoints(query, node_name):
            try:
                return [name for name, _ in query(node_name, "/")]
            except NodeNameNonExistentError:  # not discovered yet
                return []

        def published():
            return endpoints(w.node.get_publisher_names_and_types_by_node, "mujoco_sim")

        def served(node_name):
            return endpoints(w.node.get_service_names_and_types_by_node, node_name)

        assert wait_until(lambda: "/clock" in published(), 30.0), published()
        assert not any(t.startswith("/sim/") for t in published()), published()
        assert wait_until(lambda: m.SCENE_RESET in served("reset"), 30.0), served("reset")
        assert m.SCENE_RESET not in served("mujoco_sim"), served("mujoco_sim")
        # Move the arm away from home first (each command advances the lockstep sim).
        home_pos, home_quat = home_pose(cfg)
        away = home_pos + [0.08, 0.1, -0.12]
        for _ in range(60):
            w.target.publish(m.pose_msg(away, home_quat, 0.0, cfg.robot.base_frame))
            time.sleep(0.02)
        with w.lock:
            start_q = w.joints[-1][1]
            w.joints.clear()
            w.states.clear()
        assert np.abs(start_q - cfg.robot.home).max() > 0.1, "the arm never left home"
        future = w.reset.call_async(Trigger.Request())
        assert wait_until(future.done, 60.0), "/scene/reset did not answer"
        result = future.result()
        assert result.success, result.message
        assert "human confirmed" in result.message
        with w.lock:
            states, joints = list(w.states), list(w.joints)
        assert states[:3] == ["moving", "awaiting_confirmation", "idle"], states
        # No teleport: the joints travelled from where they were to home in many small steps
        # (a teleport is one step of the whole way; a loaded machine may drop a joint sample,
        # so a step is bounded by a fraction of the way, not by one period's motion).
        path = np.array([start_q] + [q for _, q in joints])
        steps = np.abs(np.diff(path, axis=0)).max(axis=1)
        travel = np.abs(path[0] - path[-1]).max()
        assert travel > 0.1  # it did travel
        assert steps.max() < 0.25 * travel, \
            f"a joint jumped {steps.max():.3f} rad in one period of a {travel:.3f} rad way"
        assert wait_until(lambda: int(w.operator.get("placements", 0)) >= 1, 10.0), \
            "the operator never re-arranged the cube"
    finally:
        w.close()


def test_record_demos_with_the_operator_on_the_joy_pad(rehearsal):
    from robot_rl.learning.replay import ReplayBuffer, count_transitions

    cfg, path, tmp = rehearsal
    out = tmp / "demos"
    proc = subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", "record-demos", "--device", "joy", "--config",
         str(path), "--out", str(out), "--episodes", "2", "--max-attempts", "4"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wrote 2 demonstrations" in proc.stdout
    buffer = ReplayBuffer.load(str(out), resume=False, verbose=False)
    n = count_transitions(str(out))
    assert n == len(buffer) > 10
    ends = np.flatnonzero(buffer.terminated[:n])
    assert len(ends) == 2, "every kept episode ends in success (terminated)"
    assert np.all(buffer.reward[ends] == 1.0) and buffer.reward[:n].sum() == 2.0
    # The demonstrations moved the arm: the person's (operator's) actions, not zeros.
    assert np.abs(buffer.action[:n, :3]).max() > 0.5
