"""Real processes over DDS: sim + learner + actor; interventions, rejections, resume."""
import json

import numpy as np
from sensor_msgs.msg import Joy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import transport
from robot_rl.config import load_config, save_config
from robot_rl.graph import NodeSpec, graph
from robot_rl.launcher import NodeGraph
from robot_rl.ros.messages import (ACTOR_STATUS, EPISODE_EVENT, INTERVENTION,
                                   LEARNER_STATUS, TRANSITIONS, TRANSITIONS_QOS)
from tests.ros.status_watch import StatusWatch, node_logs

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "task.max_episode_steps": 40, "agent.hidden_dims": [64, 64], "agent.num_critics": 2,
         "agent.batch_size": 32, "agent.utd_ratio": 1, "learner.min_online": 20,
         "learner.publish_every": 5, "learner.checkpoint_every": 50, "learner.log_every": 0.5,
         "learner.flush_every": 10, "actor.send_every": 2}


class Probe(StatusWatch):
    """The statuses, every episode event, and publishers for interventions and raw frames."""

    def __init__(self):
        super().__init__("test_probe")
        self.events = []
        self.node.create_subscription(String, EPISODE_EVENT,
                                      lambda m: self.events.append(json.loads(m.data)), 50)
        self.joy = self.node.create_publisher(Joy, INTERVENTION, 10)
        self.raw = self.node.create_publisher(UInt8MultiArray, TRANSITIONS, TRANSITIONS_QOS)


def test_actor_learner_over_dds(tmp_path, ros_context):
    from robot_rl.learning.record_demos import record
    cfg = load_config(None, {**SMALL, "learner.run_dir": str(tmp_path / "run"),
                             "learner.demos": str(tmp_path / "demos")})
    rec = record(cfg, str(tmp_path / "demos"), 1, verbose=False)
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    learner = NodeSpec("learner", "learner", "robot_rl.ros.learner_node",
                       {"config_file": str(path)})
    actor = NodeSpec("actor", "actor", "robot_rl.ros.actor_node",
                     {"config_file": str(path), "actor.actor_id": 3})
    robot = NodeGraph(graph(cfg, str(path)) + [actor], log_dir=tmp_path / "logs").start()
    learn = NodeGraph([learner], log_dir=tmp_path / "logs").start()

    def logs():
        return node_logs(tmp_path / "logs")

    probe = Probe()
    try:
        # transitions arrive, the learner trains and publishes, the actor applies newer weights
        st = probe.wait(LEARNER_STATUS, lambda s: s["updates"] >= 10 and s["weights_version"] >= 3,
                        60, "learner updates", robot, logs)
        assert st["demos_loaded"] == rec["transitions"] > 0
        assert st["rejected"] == 0 and st["real_utd"] > 0
        probe.wait(ACTOR_STATUS, lambda s: s["weights_version"] >= 2 and s["actor_id"] == 3,
                   30, "actor applying newer weights", robot, logs)

        # human intervention: dead-man pressed -> intervened steps land in both buffers
        before = probe.latest[LEARNER_STATUS]
        for _ in range(40):
            msg = Joy(axes=[0.0, 0.0, 1.0, -1.0], buttons=[1])
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            probe.joy.publish(msg)
            probe.spin(0.05)
        st = probe.wait(LEARNER_STATUS, lambda s: s["intervened_steps"] > 0, 20,
                        "intervened transitions", robot, logs)
        assert st["demo"] == st["demos_loaded"] + st["intervened_steps"]
        assert st["demo"] > before["demo"]

        # malformed messages are rejected and counted, by reason
        good = transport.encode_transitions(
            [transport.StepRecord(np.zeros(4, np.float32), 0.0,
                                  {"state": np.zeros(8, np.float32),
                                   "object": np.zeros(6, np.float32)}, False, False)],
            99, 0, 0, {"state": {"shape": [8], "dtype": "float32"}})  # lacks 'object'
        bad_crc = bytearray(good)
        bad_crc[-3] ^= 0xFF
        for data in (b"garbage", b"XXXX" + good[4:], bytes(bad_crc), good):
            probe.raw.publish(transport.to_msg(bytes(data)))
        st = probe.wait(LEARNER_STATUS, lambda s: s["rejected"] >= 4, 20, "rejections", robot,
                        logs)
        assert {"truncated", "bad_magic", "crc_mismatch", "unknown_keys"} <= set(st["rejections"])

        # every episode is announced (resetting -> running) before it ends, so episode
        # watchers such as the simulated human start each episode afresh
        by_episode = {}
        for ev in probe.events:
            by_episode.setdefault(ev["episode"], []).append(ev["event"])
        ended = [e for e, names in by_episode.items() if names[-1] in ("success", "failure", "timeout")]
        assert ended, probe.events
        assert all(by_episode[e][:2] == ["resetting", "running"] for e in ended if e > min(by_episode))

        # stop the learner (SIGINT), restart with resume: same buffers, counters continue
        learn.stop()
        assert learn.processes["learner"].returncode == 0, logs()
        doc = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
        saved = doc["tree"]["extra"]
        assert saved["online_count"] > 0 and saved["updates"] > 0
        def resumed_learner(**params):
            return NodeGraph([NodeSpec("learner", "learner", "robot_rl.ros.learner_node",
                                       {"config_file": str(path), "learner.resume": True, **params})],
                             log_dir=tmp_path / "logs").start()

        # no checkpoint after this one: a crash later resumes from the versions saved above
        learn = resumed_learner(**{"learner.checkpoint_every": 10**6})
        probe.latest.pop(LEARNER_STATUS, None)
        st = probe.wait(LEARNER_STATUS, lambda s: s["resumed"], 60, "resumed learner", learn,
                        logs)
        assert st["resumed_digest"] == saved["online_digest"]
        assert st["resumed_digest"].split(":")[0] == str(saved["online_count"])
        assert st["demo"] >= saved["demo_count"] and st["updates"] >= saved["updates"]
        assert st["weights_version"] > saved["version"]
        st = probe.wait(LEARNER_STATUS, lambda s: s["updates"] > saved["updates"] + 5, 60,
                        "training after resume", learn, logs)
        assert st["online"] > saved["online_count"]

        # killed between checkpoints, the next learner still counts versions on from the highest
        # it ever published (issue 19: it used to restart from the checkpoint's, below what the
        # actor held, and the actor took the lower version): the actor follows it
        first_id = st["learner_id"]
        act = probe.wait(ACTOR_STATUS, lambda s: s["weights_learner"] == first_id
                         and s["weights_version"] >= saved["version"] + 3, 60,
                         "actor on the resumed learner's weights", robot, logs)
        learn.processes["learner"].kill()
        learn.stop()
        learn = resumed_learner(**{"learner.publish_every": 10**6})  # publishes only at start
        probe.latest.pop(LEARNER_STATUS, None)
        st = probe.wait(LEARNER_STATUS, lambda s: s["resumed"], 60, "learner after a crash", learn,
                        logs)
        assert st["learner_id"] != first_id and st["weights_version"] > act["weights_version"]
        probe.wait(ACTOR_STATUS, lambda s: s["weights_learner"] == st["learner_id"]
                   and s["weights_version"] == st["weights_version"],
                   30, "actor taking the restarted learner's next version", robot, logs)
    finally:
        probe.close()
        learn.stop()
        robot.stop()
    assert all(p.returncode is not None for p in learn.processes.values())
    assert all(p.returncode is not None for p in robot.processes.values())
    assert learn.processes["learner"].returncode == 0, logs()
