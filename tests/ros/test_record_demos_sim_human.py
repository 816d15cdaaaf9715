"""record-demos --device sim-human over real DDS (its own graph: no other stand-in may run on
the domain meanwhile)."""
import numpy as np

from robot_rl.config import load_config, save_config
from robot_rl.graph import graph
from robot_rl.launcher import NodeGraph
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.ros.demo_recorder import record_teleop

SETTINGS = {"task.observations": ["state"], "cameras": [], "tactile": []}


def test_sim_human_records_on_the_plain_stand_in(tmp_path):
    """--device sim-human (tests, the plain stand-in): the simulated human takes over after it
    sees no progress, and its correction is a kept demonstration."""
    settings = {**SETTINGS, "hil.device": "sim_human", "task.max_episode_steps": 60,
                "sim.lockstep_timeout": 0.1, "hil.sim_human.no_progress_steps": 5}
    cfg = load_config(None, settings)
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path), "demos"), log_dir=tmp_path / "logs").start()
    try:
        res = record_teleop(cfg, str(tmp_path / "demos"), 1, "sim-human", verbose=False,
                            device_timeout=30.0)
    finally:
        nodes.stop()
    assert res["episodes"] == 1
    kept = ReplayBuffer.load(str(tmp_path / "demos"), resume=False, verbose=False)
    n = len(kept)
    assert kept.terminated[n - 1] and kept.reward[n - 1] == 1.0
    assert np.abs(kept.action[:n, :3]).max() > 0.5  # the human's correction moved the arm
