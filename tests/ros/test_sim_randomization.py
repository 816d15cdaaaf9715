"""The sim node applies sim.randomization at every /scene/reset and logs each episode's values
(the JSON-lines log and its ROS log), so an episode of a ROS run can be replayed in-process."""
import time

import numpy as np
import rclpy
from std_srvs.srv import Trigger

from robot_rl.ros import messages as m
from robot_rl.sim.randomization import read_log
from robot_rl.sim.world import SimWorld

from .conftest import start_sim


def call_reset(node, timeout=60.0):
    client = node.create_client(Trigger, m.SCENE_RESET)
    assert client.wait_for_service(timeout_sec=timeout), f"{m.SCENE_RESET} not available"
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    assert future.done(), f"{m.SCENE_RESET} did not answer within {timeout} s"
    return future.result()


def test_sim_node_randomises_and_logs_every_reset(tmp_path, ros_context):
    log = tmp_path / "episodes.jsonl"
    cfg, nodes = start_sim(tmp_path, {
        "cameras": [], "task.observations": ["state", "tactile"],
        "sim.randomization.enabled": True, "sim.randomization.log_file": str(log),
        "sim.randomization.friction_scale": [0.5, 1.5],
        "sim.randomization.object_mass_scale": [0.5, 2.0]})
    node = rclpy.create_node("test_randomization_client")
    try:
        for _ in range(2):
            response = call_reset(node)
            assert response.success, response.message
        deadline = time.monotonic() + 10.0
        while len(read_log(log) if log.exists() else []) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the reply may overtake the line's flush by a moment
        records = read_log(log)
    finally:
        node.destroy_node()
        nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())
    assert len(records) == 3  # start-up + two resets
    frictions = [r["values"]["friction_scale"] for r in records]
    assert len(set(frictions)) == 3 and all(0.5 <= f <= 1.5 for f in frictions)
    sim_log = "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*"))
    assert "episode randomisation" in sim_log
    # The last ROS episode replayed in-process: the same model.
    world = SimWorld(cfg)
    try:
        world.replay(records[-1])
        cube = world._cube_body
        nominal = world.randomizer().nominal["body_mass"][cube]
        assert world.model.body_mass[cube] == np.float64(
            nominal * records[-1]["values"]["object_mass_scale"])
        assert np.allclose(world.object_pose()[0][:2], records[-1]["object_pose"][:2])
    finally:
        world.close()
