"""Issue 19, crash safety and recovery, with real processes over DDS and kill -9: nothing an
actor produced is lost across a learner crash, weights never go backwards, an actor rides
through a simulator restart, and an actor that cannot go on exits non-zero."""

import pytest
import rclpy
from rclpy.qos import QoSProfile
from std_msgs.msg import UInt8MultiArray

from robot_rl import transport
from robot_rl.config import load_config, save_config
from robot_rl.graph import NodeSpec, graph
from robot_rl.launcher import NodeGraph
from robot_rl.learning.outbox import Outbox
from robot_rl.learning.replay import read_origins
from robot_rl.ros.messages import (ACTOR_STATUS, ACTOR_WEIGHTS, LEARNER_STATUS,
                                   WEIGHTS_QOS)
from tests.ros.status_watch import StatusWatch, node_logs

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "task.max_episode_steps": 30, "agent.hidden_dims": [32, 32], "agent.num_critics": 2,
         "agent.batch_size": 16, "agent.utd_ratio": 1, "learner.min_online": 20,
         "learner.publish_every": 5, "learner.checkpoint_every": 10**6,
         "learner.checkpoint_period": 10**6, "learner.log_every": 0.3,
         "learner.flush_every": 25, "learner.tensorboard": False, "actor.resend_after": 1.0,
         "hil.device": "none"}


class Watch(StatusWatch):
    """The statuses and every weights message (version, updates, learner, run)."""

    def __init__(self):
        super().__init__("crash_probe")
        self.weights = []
        qos = QoSProfile(depth=100, reliability=WEIGHTS_QOS.reliability,
                         durability=WEIGHTS_QOS.durability)  # keep every version, not the last
        self.node.create_subscription(UInt8MultiArray, ACTOR_WEIGHTS, self._on_weights, qos)

    def _on_weights(self, msg):
        _, meta, _ = transport.unpack(transport.from_msg(msg))
        self.weights.append((meta["version"], meta["updates"], meta["learner"], meta["run"]))


def _setup(tmp_path, extra=None):
    cfg = load_config(None, {**SMALL, "learner.run_dir": str(tmp_path / "run"), **(extra or {})})
    path = tmp_path / "config.yaml"
    save_config(cfg, path)

    return cfg, str(path), lambda: node_logs(tmp_path / "logs", 2500)


def _node(name, module, path, **params):
    return NodeSpec(name, name, module, {"config_file": path, **params})


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def test_actor_refuses_a_lower_weight_version_of_its_run(tmp_path):
    from robot_rl.ros.actor_node import ActorNode

    cfg, path, _ = _setup(tmp_path)  # runs first: rclpy is not initialised yet
    rclpy.init(args=["--ros-args", "-p", f"config_file:={path}"])
    actor = ActorNode()  # no robot: the acting thread only waits for one
    try:
        core = actor.core
        sd = core.agent.actor_state_dict()

        def offer(version, run):
            core.offer_weights(transport.encode_weights(sd, version, 1, "L", run))
            return core.newest_version, core.weights_run
        assert offer(5, "runA") == (5, "runA")
        assert offer(3, "runA") == (5, "runA") and core.rejected["stale_version"] == 1
        assert offer(5, "runA") == (5, "runA") and core.rejected["stale_version"] == 1  # repeat
        assert offer(2, "runB") == (2, "runB")  # another run starts afresh
        core.apply_weights()
        assert core.weights_version == 2
    finally:
        actor.close()
        actor.destroy_node()
        rclpy.try_shutdown()


def test_unacked_transitions_reach_a_restarted_learner_once_and_weights_never_go_back(tmp_path, ros):
    cfg, path, logs = _setup(tmp_path)
    actor = _node("actor", "robot_rl.ros.actor_node", path, **{"actor.actor_id": 4})
    learner = _node("learner", "robot_rl.ros.learner_node", path)
    robot = NodeGraph(graph(cfg, path) + [actor], log_dir=tmp_path / "logs").start()
    learn = NodeGraph([learner], log_dir=tmp_path / "logs").start()
    watch = Watch()
    try:
        st = watch.wait(LEARNER_STATUS, lambda s: s["updates"] >= 10 and s["online"] >= 40, 90,
                        "first learner training", [robot, learn], logs)
        first_id, run_id = st["learner_id"], st["run_id"]
        learn.processes["learner"].kill()  # kill -9: no checkpoint was ever written
        learn.stop()
        outage = watch.wait(ACTOR_STATUS, lambda s: s["unacked_steps"] >= 30, 60,
                            "steps produced while the learner is down", [robot], logs)
        learn = NodeGraph([_node("learner", "robot_rl.ros.learner_node", path,
                                 **{"learner.resume": True})], log_dir=tmp_path / "logs").start()
        st = watch.wait(LEARNER_STATUS, lambda s: s["learner_id"] != first_id
                        and s["actors"].get("4", {}).get("acked", 0) >= outage["sent"], 90,
                        "the outage's steps acknowledged by the restarted learner",
                        [robot, learn], logs)
        assert st["run_id"] == run_id
        robot.processes["mujoco_sim"].send_signal(2)  # no more steps: let the actor catch up
        robot.processes["mujoco_sim"].wait(30)
        watch.latest.pop(ACTOR_STATUS, None)
        watch.wait(ACTOR_STATUS, lambda s: s["state"] != "running" and s["unacked_steps"] == 0,
                   60, "every step the actor produced acknowledged", [learn], logs)
        robot.processes["actor"].send_signal(2)
        robot.processes["actor"].wait(30)
        produced = Outbox(str(tmp_path / "run" / "actors" / "actor_4")).next_step
        st = watch.wait(LEARNER_STATUS, lambda s: s["actors"]["4"]["acked"] == produced, 30,
                        "the learner's acknowledgement of all of it", [learn], logs)
        assert st["lost_steps"] == 0
    finally:
        watch.close()
        learn.stop()
        robot.stop()
    assert learn.processes["learner"].returncode == 0, logs()
    origins = read_origins(str(tmp_path / "run" / "replay"))
    keys = list(zip(origins["actor_id"].tolist(), origins["episode"].tolist(),
                    origins["step"].tolist()))
    assert len(keys) == len(set(keys)) == produced, "each (actor, episode, step) exactly once"
    assert sorted(origins["actor_step"].tolist()) == list(range(produced))
    # the resumed learner had no checkpoint: its first weights come after training, and no
    # version of the run ever goes backwards
    later = [w for w in watch.weights if w[2] != first_id]
    assert later and later[0][1] >= cfg.learner.publish_every, watch.weights
    versions = [w[0] for w in watch.weights]
    assert versions == sorted(versions) and {w[3] for w in watch.weights} == {run_id}


def test_actor_rides_through_a_simulator_restart(tmp_path, ros):
    # A long observation timeout: the step in flight is still waiting when the new simulator's
    # clock (back at 0) arrives, which must end that episode and start a new one.
    cfg, path, logs = _setup(tmp_path, {"actor.observation_timeout": 60.0,
                                        "actor.reset_timeout": 60.0})
    robot = NodeGraph(graph(cfg, path), log_dir=tmp_path / "logs").start()
    acting = NodeGraph([_node("actor", "robot_rl.ros.actor_node", path)],
                       log_dir=tmp_path / "logs").start()
    watch = Watch()
    try:
        before = watch.wait(ACTOR_STATUS, lambda s: s["state"] == "running" and s["steps"] >= 20,
                            90, "actor running", [robot, acting], logs)
        robot.processes["mujoco_sim"].kill()
        robot.stop()
        robot = NodeGraph(graph(cfg, path), log_dir=tmp_path / "logs").start()
        after = watch.wait(ACTOR_STATUS, lambda s: s["clock_jumps"] >= 1
                           and s["state"] == "running" and s["steps"] >= before["steps"] + 20,
                           120, "actor acting on the restarted simulator", [robot, acting], logs)
        assert after["episode"] > before["episode"]
        # The kill lands mid-episode (that episode is broken) or, on a loaded machine, between
        # two (nothing to break: the reset accepts the new clock); tests/learning/
        # test_actor_faults.py breaks an episode deterministically.
        assert after["broken_episodes"] <= after["clock_jumps"]
    finally:
        watch.close()
        acting.stop()
        robot.stop()
    assert acting.processes["actor"].returncode == 0, logs()


def test_an_actor_that_cannot_go_on_exits_non_zero(tmp_path, ros):
    cfg, path, logs = _setup(tmp_path, {"actor.observation_timeout": 1.0,
                                        "actor.reset_timeout": 1.0, "actor.max_reset_failures": 1})
    robot = NodeGraph(graph(cfg, path), log_dir=tmp_path / "logs").start()
    acting = NodeGraph([_node("actor", "robot_rl.ros.actor_node", path)],
                       log_dir=tmp_path / "logs").start()
    watch = Watch()
    try:
        watch.wait(ACTOR_STATUS, lambda s: s["state"] == "running" and s["steps"] >= 5, 90,
                   "actor running", [robot, acting], logs)
        robot.processes["mujoco_sim"].kill()  # and it never comes back
        code = acting.processes["actor"].wait(60)
    finally:
        watch.close()
        acting.stop()
        robot.stop()
    assert code == 1, logs()
    assert acting.failed() == {"actor": 1}
    assert "giving up after 1 failed resets" in (tmp_path / "logs" / "actor.log").read_text()
