"""The learner's (and the actor's) input handling, in process (real rclpy nodes, not spun):
what arrives is checked, counted when refused, and kept on disk at shutdown."""
import json
import threading
import time

import numpy as np
import pytest
import rclpy

from robot_rl import transport
from robot_rl.config import load_config, save_config
from robot_rl.learning.replay import ReplayBuffer

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8,
         "learner.min_online": 10**6, "learner.tensorboard": False, "learner.flush_every": 1000}


@pytest.fixture
def learner(tmp_path):
    from robot_rl.ros.learner_node import LearnerNode

    cfg = load_config(None, {**SMALL, "learner.run_dir": str(tmp_path / "run")})
    save_config(cfg, tmp_path / "config.yaml")
    rclpy.init(args=["--ros-args", "-p", f"config_file:={tmp_path / 'config.yaml'}"])
    node = LearnerNode()
    yield node
    node.close()
    node.destroy_node()
    rclpy.try_shutdown()


def _steps(n, action=0.5):
    return [transport.StepRecord(
        action=np.full(4, action, np.float32), reward=0.0, terminated=False, truncated=k == n - 1,
        next_obs={"state": np.full(8, k + 1, np.float32), "object": np.zeros(6, np.float32)},
        step=k, obs={"state": np.zeros(8, np.float32), "object": np.zeros(6, np.float32)} if k == 0 else None)
        for k in range(n)]


def _raw(node, steps, first_step=0):
    return transport.encode_transitions(steps, 0, 0, first_step, node.obs_spec)


def test_refused_inputs_are_counted_by_reason(learner):
    core = learner.core
    assert "outside" in core.receive(_raw(learner, _steps(2, action=5.0)))  # beyond the [-1, 1] box
    for data in ('{"event": "success", "length": "abc"}', '{"event": "timeout", "return": NaN}',
                 "[" * 100_000):
        assert core.episode_event(data) is not None
    assert core.episode_event(json.dumps({"event": "success", "return": 1.0, "length": 3})) is None
    assert core.rejected == {"out_of_range": 1, "bad_event": 3}
    assert core.episode_events == 1 and core.queued == 0


def test_transitions_received_during_the_last_update_are_saved_at_shutdown(learner, tmp_path):
    learner.stop_training()  # the training thread ends; what arrives now is only queued
    assert learner.core.receive(_raw(learner, _steps(5))) is None
    assert learner.core.queued == 1
    learner.close()
    stored = ReplayBuffer.load(str(tmp_path / "run" / "replay"), resume=False, verbose=False)
    assert len(stored) == 5
    assert stored.get([4])["next_obs"]["state"][0, 0].item() == 5.0


def test_a_dead_training_thread_stops_the_node(learner):
    learner.train_error = RuntimeError("disk full")
    assert not learner.status()["training"]
    with pytest.raises(RuntimeError, match="disk full"):
        learner.report()


@pytest.mark.parametrize("observation_timeout", [0.3, 5.0])
def test_actor_waiting_for_a_robot_stops_at_once_and_leaves_nothing_running(tmp_path,
                                                                          observation_timeout):
    from robot_rl.ros.actor_node import ActorNode

    cfg = load_config(None, {**SMALL, "actor.observation_timeout": observation_timeout})
    save_config(cfg, tmp_path / "config.yaml")
    rclpy.init(args=["--ros-args", "-p", f"config_file:={tmp_path / 'config.yaml'}"])
    before = set(threading.enumerate())
    node = ActorNode()
    try:
        # With the short timeout the actor gives up waiting several times; each attempt used to
        # leave a node and its spinning thread behind. With the long one, close() used to wait
        # for the timeout and give up on the acting thread after 3 s.
        time.sleep(1.2)
        assert node.state == "waiting_for_robot"
        start = time.monotonic()
        node.close()
        assert time.monotonic() - start < 2.5  # the bug waited >= 3 s
        leftover = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        assert leftover == []
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


def test_actor_ignores_and_counts_intervention_commands_with_nan_axes(tmp_path):
    from robot_rl.ros.actor_node import ActorNode

    cfg = load_config(None, SMALL)
    save_config(cfg, tmp_path / "config.yaml")
    rclpy.init(args=["--ros-args", "-p", f"config_file:={tmp_path / 'config.yaml'}"])
    node = ActorNode()  # no robot: its acting thread only waits for one
    try:
        core = node.core
        assert "NaN" in core.intervention([0.1, float("nan"), 0.0, 0.0], True, 0.0)
        assert core.joy is None and core.rejected == {"intervention_non_finite": 1}
        assert core.intervention([0.1, 0.2, 0.0, 0.0], True, 0.0) is None
        assert core.joy[1] and np.allclose(core.joy[2], [0.1, 0.2, 0.0, 0.0])
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
