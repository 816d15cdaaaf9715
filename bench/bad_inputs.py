"""Bad inputs against a running, signed training graph: what was tried per topic/service, and
how many nodes crashed (target 0).

    PYTHONPATH=. python bench/bad_inputs.py [--repeat 3] [--out bad_inputs.json]

Graph: the MuJoCo stand-in, a learner, an actor and the simulated human (intervention node),
each its own process on this machine's DDS, with a run keystore (signed learning traffic) and
security.restrict_commands on, plus the demo's episode recorder in this process. An ordinary
rclpy node then publishes malformed, hostile or forged messages on every input those nodes
read (String/JSON, UInt8MultiArray frames, Joy) and calls the reset service without a token.
Afterwards every node must still be running with no traceback in its log, the recorder's spin
thread alive, and the learner and actor still reporting status. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

STRING_INPUTS = [
    "", "[]", "null", "42", "not json", "{", '{"event": NaN}', '{"event": Infinity}',
    "[" * 100_000, "x" * 200_000, '{"a":' * 60 + "1" + "}" * 60,
    '{"n": ' + "9" * 5000 + "}",
    '{"event": "success", "length": -5}', '{"event": "success", "return": 1e999}',
    '{"event": "success", "length": "abc", "actor_id": {}}',
    '{"actor_id": 2147483648, "event": "success"}', '{"event": "success", "interventions": 9, '
    '"length": 3}', '{"event": "resetting", "episode": -1}', '{"event": "won"}',
    '{"event": ["success"]}', '{"updates_per_s": 1e999}', '{"service": "/scene/reset"}',
]


def frame_inputs(cfg, keys: Path) -> list[bytes]:
    from robot_rl import security, transport
    from robot_rl.learning.rlpd import RLPDAgent
    from robot_rl.deploy.agent_export import task_spaces

    obs_space, act_space, _ = task_spaces(cfg)
    spec = transport.obs_spec_of(obs_space)
    rng = np.random.default_rng(0)
    obs = {k: np.zeros(v["shape"], np.float32) for k, v in spec.items()}
    steps = [transport.StepRecord(action=np.zeros(act_space.shape[0], np.float32), reward=1e6,
                                  next_obs=obs, terminated=True, truncated=False, intervened=True,
                                  obs=obs)]
    state = RLPDAgent(obs_space, act_space, cfg.agent).actor_state_dict()
    huge = {p: {k: v * 1e30 if v.is_floating_point() else v for k, v in d.items()}
            for p, d in state.items()}
    stranger = security.Signer.generate()
    actor1 = security.Signer.load(keys, "actor_1")
    good_tr = transport.encode_transitions(steps, 0, 0, 0, spec, signer=security.Signer.load(
        keys, "actor_0"))
    return [
        b"", b"RRLT", rng.bytes(1000), transport.MAGIC + b"\xff" * 40,
        good_tr[:100], good_tr[:-1] + bytes([good_tr[-1] ^ 1]),
        transport.encode_transitions(steps, 0, 0, 0, spec),  # unsigned, reward 1e6, intervened
        transport.encode_transitions(steps, 0, 0, 0, spec, signer=stranger),
        transport.encode_transitions(steps, 0, 0, 0, spec, signer=actor1),  # claims actor 0
        good_tr,  # genuine key, reward outside the task's range
        transport.encode_weights(huge, 10**6, 0, "L", "R"),  # unsigned x1e30 weights
        transport.encode_weights(huge, 10**6, 0, "L", "R", signer=stranger),
        transport.encode_weights(huge, 10**6, 0, "L", "R", signer=security.Signer.load(
            keys, "learner")),  # genuine key, weights that make a NaN policy
        transport.pack(transport.KIND_ACK, {"learner": "x", "run": "y", "acks": {"0": 10**9}},
                       {}),  # unsigned ack claiming everything is durable
        transport.pack(transport.KIND_ACK, {"acks": "all"}, {}, stranger),
    ]


def joy_inputs():
    from sensor_msgs.msg import Joy
    out = []
    for axes, buttons in [([float("nan")] * 4, [1]), ([float("inf")] * 4, [1]), ([], [1]),
                          ([1e30] * 4, [1]), ([0.0] * 1000, [1] * 1000), ([0.5] * 4, []),
                          ([], [])]:
        msg = Joy()
        msg.axes, msg.buttons = axes, buttons
        out.append(msg)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="times each input is sent")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    result = run(args.repeat)
    print(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0 if result["crashes"] == 0 else 1


def run(repeat: int = 3, workdir: str | None = None) -> dict:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Joy
    from std_msgs.msg import String, UInt8MultiArray
    from std_srvs.srv import Trigger

    from robot_rl import security
    from robot_rl.config import load_config, save_config
    from robot_rl.demo import EventRecorder
    from robot_rl.graph import graph
    from robot_rl.launcher import NodeGraph
    from robot_rl.parsing import InputError, parse_status
    from robot_rl.report import EpisodeLog
    from robot_rl.ros import messages as L

    work = Path(workdir or tempfile.mkdtemp(prefix="bad_inputs_"))
    keys = work / "keys"
    security.init_keystore(keys, actors=2)
    cfg = load_config(None, {"cameras": [], "task.observations": ["state", "object", "tactile"],
                             "agent.num_critics": 2, "agent.hidden_dims": [64, 64],
                             "learner.run_dir": str(work / "train"), "learner.log_every": 0.5,
                             "security.keystore": str(keys),
                             "security.restrict_commands": True})
    config = work / "config.yaml"
    save_config(cfg, config)
    nodes = NodeGraph(graph(cfg, str(config), "train"), log_dir=work / "logs").start()
    rclpy.init()
    recorder = EventRecorder(EpisodeLog(work / "episodes.csv"), "train", 0.0)
    node = rclpy.create_node("bad_input_source")
    status: dict = {"learner": {}, "actor": {}}

    def keep(which: str):
        def on_status(msg) -> None:  # this watcher reads the topics it floods: parse defensively
            try:
                parsed = parse_status(msg.data)
            except InputError:
                return
            if which == "actor" or "learner_id" in parsed:  # not one of our own forgeries
                status[which].update(parsed)
        return on_status

    node.create_subscription(String, L.LEARNER_STATUS, keep("learner"), L.STATUS_QOS)
    node.create_subscription(String, L.ACTOR_STATUS, keep("actor"), L.STATUS_QOS)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    targets = [  # (input, message type, qos, consumers, payloads)
        (L.EPISODE_EVENT, String, L.EVENT_QOS, "learner, intervention, demo recorder",
         [String(data=s) for s in STRING_INPUTS]),
        (L.LEARNER_STATUS, String, L.STATUS_QOS, "demo recorder",
         [String(data=s) for s in STRING_INPUTS]),
        (security.COMMAND_TOKEN_TOPIC, String, reliable, "mujoco_sim (command gate)",
         [String(data=s) for s in STRING_INPUTS]),
        (L.TRANSITIONS, UInt8MultiArray, L.TRANSITIONS_QOS, "learner",
         [UInt8MultiArray(data=b) for b in frame_inputs(cfg, keys)]),
        (L.ACTOR_WEIGHTS, UInt8MultiArray, L.WEIGHTS_QOS, "actor",
         [UInt8MultiArray(data=b) for b in frame_inputs(cfg, keys)]),
        (L.TRANSITION_ACKS, UInt8MultiArray, L.STATUS_QOS, "actor",
         [UInt8MultiArray(data=b) for b in frame_inputs(cfg, keys)]),
        (L.INTERVENTION, Joy, reliable, "actor", joy_inputs()),
    ]
    rows = []
    try:
        deadline = time.monotonic() + 180
        while not (status["learner"].get("authenticated") and status["actor"].get("state")
                   in ("running", "resetting")):
            rclpy.spin_once(node, timeout_sec=0.1)
            if nodes.failed() or time.monotonic() > deadline:
                raise RuntimeError(f"graph did not come up: {nodes.failed()}; logs in {work}")
        before = {k: dict(v.get("rejections", {})) for k, v in status.items()}
        for topic, mtype, qos, consumers, payloads in targets:
            pub = node.create_publisher(mtype, topic, qos)
            t_end = time.monotonic() + 10
            while pub.get_subscription_count() < 1 and time.monotonic() < t_end:
                rclpy.spin_once(node, timeout_sec=0.05)
            # A depth-1 topic keeps only the newest message on both sides: each one has to be
            # taken by the consumer before the next is sent, or it is overwritten unread.
            pace = 0.5 if qos.depth == 1 else 0.01
            for _ in range(repeat):
                for msg in payloads:
                    pub.publish(msg)
                    t_next = time.monotonic() + pace
                    while time.monotonic() < t_next:
                        rclpy.spin_once(node, timeout_sec=0.01)
            rows.append({"input": topic, "consumers": consumers,
                         "tried": len(payloads) * repeat, "kinds": len(payloads)})
        client = node.create_client(Trigger, "/scene/reset")
        client.wait_for_service(timeout_sec=10)
        futures = [client.call_async(Trigger.Request()) for _ in range(10 * repeat)]
        t_end = time.monotonic() + 30
        while not all(f.done() for f in futures) and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.05)
        refused = sum(1 for f in futures if f.done() and not f.result().success)
        rows.append({"input": "/scene/reset (no token)", "consumers": "mujoco_sim",
                     "tried": len(futures), "kinds": 1, "refused": refused,
                     "answered": sum(1 for f in futures if f.done())})
        t_end = time.monotonic() + 5  # let everything be processed and reported
        while time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)
        failed = nodes.failed()
        tracebacks = sorted(p.stem for p in (work / "logs").glob("*.log")
                            if "Traceback" in p.read_text(errors="replace"))
        recorder_alive = recorder.thread.is_alive()
        crashed = set(failed) | set(tracebacks) | (set() if recorder_alive else {"demo recorder"})
        for row in rows:
            row["crashes"] = sum(1 for c in crashed if c in row["consumers"]
                                 or c.replace("_0", "") in row["consumers"])
        after = {k: dict(v.get("rejections", {})) for k, v in status.items()}
        return {"rows": rows, "crashes": len(crashed), "crashed": sorted(crashed),
                "exited": failed, "rejections_before": before, "rejections_after": after,
                "recorder_ignored": recorder.rejected, "workdir": str(work)}
    finally:
        recorder.close()
        node.destroy_node()
        rclpy.try_shutdown()
        nodes.stop()


def table(result: dict) -> str:
    lines = ["| input | read by | bad inputs tried (kinds) | crashes |", "|---|---|---|---|"]
    for r in result["rows"]:
        extra = (f", {r['answered']} answered, {r['refused']} refused" if "refused" in r
                 else "")
        lines.append(f"| `{r['input']}` | {r['consumers']} | {r['tried']} ({r['kinds']}"
                     f"{extra}) | {r['crashes']} |")
    lines.append(f"\nnodes crashed: {result['crashes']} {result['crashed'] or ''}; "
                 f"refusals counted by the learner {result['rejections_after']['learner']}, "
                 f"by the actor {result['rejections_after']['actor']}; the demo recorder "
                 f"ignored {result['recorder_ignored']} messages")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
