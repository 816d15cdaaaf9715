"""A task's fixture poses over real DDS (``/sim/fixtures/<name>``, robot_rl/ros/sim_node.py):
the plain stand-in publishes them with the other streams and RosRobotEnv puts them in its
snapshot for a task that reads them; the rehearsal stand-in publishes none."""
import time

import numpy as np
import pytest
import rclpy

from robot_rl.topics import FIXTURES_PREFIX, SIM_ONLY_PREFIX, fixture_topic

from .conftest import start_sim

LIGHT = {"task.observations": ["state"], "cameras": [], "tactile": []}
PLATE = "tests.fixtures.user_task:PlateReachTask"  # reads the plate's pose: privileged


@pytest.mark.usefixtures("ros_context")
def test_the_plate_the_sim_moves_shows_in_the_env_snapshot(tmp_path):
    from robot_rl.envs.ros_env import RosRobotEnv

    cfg, nodes = start_sim(tmp_path, {**LIGHT, "task.name": PLATE})
    env = None
    try:
        env = RosRobotEnv(cfg, node_name="fixture_env", timeout=20.0, startup_timeout=60.0)
        assert "fixture_plate" in env._streams
        poses = []
        for seed in range(3):
            env.reset(seed=seed)
            snap = env.snapshot
            assert sorted(snap.fixtures) == ["plate"]
            poses.append(np.asarray(snap.fixtures["plate"]))
            obs, *_ = env.step(np.zeros(3, np.float32))  # the task reads it each step
            assert np.allclose(env.snapshot.fixtures["plate"], poses[-1])  # static in an episode
            assert np.all(np.isfinite(obs["goal_offset"]))
        for pose in poses:  # where PlateReachTask.place_scene draws it, yaw about z only
            assert 0.4 <= pose[0] <= 0.6 and -0.15 <= pose[1] <= 0.15 and pose[2] == 0.0
            assert np.isclose(np.linalg.norm(pose[3:]), 1.0) and np.allclose(pose[3:5], 0.0)
        # Every reset moved it: the snapshot follows the simulator, not a first message.
        assert all(np.linalg.norm(a[:2] - b[:2]) > 1e-4 for a, b in zip(poses, poses[1:]))
    finally:
        if env is not None:
            env.close()
        nodes.stop()


def _sim_topics(node, want: str, timeout: float = 60.0) -> list[str]:
    """The graph's topic names once ``want`` is among them (or ``timeout``), then a moment more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [n for n, _ in node.get_topic_names_and_types()]
        if want in names:
            time.sleep(1.0)  # the same process's other endpoints
            return [n for n, _ in node.get_topic_names_and_types()]
        time.sleep(0.2)
    raise AssertionError(f"{want} did not appear within {timeout} s")


@pytest.mark.usefixtures("ros_context")
def test_the_rehearsal_stand_in_publishes_no_fixture_pose(tmp_path):
    # The same plate scene, with a task that does not read it (a rehearsal refuses one that does).
    scenery = {**LIGHT, "task.name": "tests.fixtures.user_task:PlateBesideReachTask"}
    node = rclpy.create_node("fixture_topics_probe")
    for folder in ("plain", "rehearsal"):
        (tmp_path / folder).mkdir()
    try:
        cfg, nodes = start_sim(tmp_path / "plain", scenery)
        try:
            plain = _sim_topics(node, "/robot/ee_pose")
        finally:
            nodes.stop()
        assert fixture_topic("plate") in plain  # the plain stand-in: every fixture, privileged
        cfg, nodes = start_sim(tmp_path / "rehearsal", {
            **scenery, "sim.rehearsal": True, "sim.operator": "off", "hil.device": "joy",
            "hil.reset.mode": "move_then_human", "hil.reward.source": "topic"})
        try:
            rehearsal = _sim_topics(node, "/robot/ee_pose")
        finally:
            nodes.stop()
    finally:
        node.destroy_node()
    assert not [n for n in rehearsal if n.startswith(SIM_ONLY_PREFIX)], rehearsal
    assert not [n for n in rehearsal if n.startswith(FIXTURES_PREFIX)]
