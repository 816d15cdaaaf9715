"""``robot-rl``: the command-line entry point.

    robot-rl up [--config F] [--set key=value ...]     start the node graph (Ctrl-C stops it)
    robot-rl expert [--episodes N]                      the sim graph driven by the scripted expert
    robot-rl config show|check [--config F]             print or validate a configuration
    robot-rl check-backend [--config F] [--duration S]  check a running backend's topic contract
    robot-rl keys init|add-actor|show|sros2 DIR         keystores: signed learning traffic, SROS2
    robot-rl call SERVICE [--keystore DIR]              call a Trigger service (signed if restricted)
    robot-rl record [--output F.mcap] [--duration S]    record the running graph's topics (MCAP)
    robot-rl replay BAG [--rate R]                      play a recording back, with /clock
    robot-rl train-gym ... | export ... | calibrate ...  (see each command's --help)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import yaml

from robot_rl.config import config_to_yaml, load_config, save_config
from robot_rl.data.mcap_io import RecordingError
from robot_rl.schema import ConfigError
from robot_rl.security import SecurityError


def parse_sets(items: list[str]) -> dict:
    """``--set sim.rate=max`` -> {"sim.rate": "max"}; values are parsed as YAML scalars."""
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. sim.rate=max")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", help="YAML configuration (default: built-in)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set sim.rate=realtime")


def resolved_config_file(args, run_dir: str) -> tuple[str, object]:
    """Write the effective configuration (file + --set) to one file every node reads."""
    cfg = load_config(args.config or None, parse_sets(args.set))
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.abspath(os.path.join(run_dir, "config.yaml"))
    save_config(cfg, path)
    return path, cfg


def secure_run(config_file: str, cfg, run_dir: str, actor_ids) -> object:
    """``security.auto`` with no keystore: create (or extend) ``<run_dir>/keys`` with a key per
    actor (and the operator key, which restricted commands need), and write it into the run's
    config file, so every node signs and checks."""
    from robot_rl.security import ensure_keystore
    actor_ids = list(actor_ids)
    if cfg.security.keystore or not cfg.security.auto \
            or not (actor_ids or cfg.security.restrict_commands):
        return cfg
    keystore = os.path.abspath(os.path.join(run_dir, "keys"))
    ensure_keystore(keystore, actor_ids)
    cfg.security.keystore = keystore
    save_config(cfg, config_file)
    print(f"[robot_rl] run keystore {keystore} (signed learning traffic, operator key for "
          f"restricted commands: docs/security.md)")
    return cfg


def actor_ids(specs) -> list[int]:
    return [int(s.parameters["actor.actor_id"]) for s in specs if "actor.actor_id" in s.parameters]


def local_ros_defaults() -> None:
    # Keep DDS discovery on this machine unless the user configured otherwise.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def recording_output(record: str, run_dir: str, cfg=None) -> str:
    """Where a recording goes: the given path, else recording.path, else a timestamped name in
    the run folder."""
    from robot_rl.data.mcap_io import default_recording_name
    path = record or (cfg.recording.path if cfg is not None else "")
    return os.path.abspath(path or os.path.join(run_dir, default_recording_name()))


def cmd_up(args) -> int:
    from robot_rl.graph import graph, recorder_node
    from robot_rl.launcher import NodeGraph
    local_ros_defaults()
    config_file, cfg = resolved_config_file(args, args.run_dir)
    specs = graph(cfg, config_file, args.profile)
    if args.record is not None:
        specs.append(recorder_node(config_file, recording_output(args.record, args.run_dir, cfg)))
    secure_run(config_file, cfg, args.run_dir, actor_ids(specs))
    print(f"[robot_rl] starting {[s.name for s in specs]} (config {config_file}); Ctrl-C or "
          f"SIGTERM stops")
    with NodeGraph(specs) as nodes:
        return nodes.wait()


def cmd_expert(args) -> int:
    """The sim graph as separate processes, driven over DDS by the scripted expert."""
    import numpy as np

    from robot_rl.envs.ros_env import RosRobotEnv
    from robot_rl.graph import graph
    from robot_rl.launcher import NodeGraph
    local_ros_defaults()
    config_file, cfg = resolved_config_file(args, args.run_dir)
    if cfg.driver.adapter != "sim":
        raise ConfigError("robot-rl expert needs the MuJoCo stand-in (driver.adapter: sim): the "
                          "scripted expert reads the simulator's object pose")
    with NodeGraph(graph(cfg, config_file), log_dir=os.path.join(args.run_dir, "logs")):
        env = RosRobotEnv(cfg, timeout=10.0, startup_timeout=60.0)
        expert = env.task.expert(noise=0.05, rng=np.random.default_rng(args.seed))
        if expert is None:
            env.close()
            raise ConfigError(f"robot-rl expert: task {cfg.task.name!r} has no scripted expert "
                              f"(Task.expert returns None); record demonstrations with a device "
                              f"instead (robot-rl record-demos --device ...)")
        successes, steps, start = 0, 0, time.perf_counter()
        try:
            for episode in range(args.episodes):
                env.reset(seed=args.seed + episode)
                expert.reset()
                done = False
                while not done:
                    action = expert.act(env.snapshot)
                    _, reward, terminated, truncated, info = env.step(action)
                    steps += 1
                    done = terminated or truncated
                successes += int(info["success"])
                print(f"episode {episode + 1}/{args.episodes}: "
                      f"{'success' if info['success'] else 'failure'} after {env._steps} steps")
        finally:
            env.close()
        elapsed = time.perf_counter() - start
        print(f"[robot_rl] expert over ROS 2: {successes}/{args.episodes} successes, "
              f"{steps / elapsed:.1f} control steps/s ({steps / elapsed / cfg.control_rate_hz:.1f}x "
              f"real time at {cfg.control_rate_hz:g} Hz)")
    return 0 if successes > 0 else 1


def cmd_record(args) -> int:
    """Record the contract topics of whatever graph runs on this ROS domain."""
    from robot_rl.data.mcap_io import open_recording, recover
    if args.recover:
        out, count = recover(args.recover)
        print(f"[robot_rl] recovered {count} messages from {args.recover} into {out}")
        return 0
    from robot_rl.graph import recorder_node
    from robot_rl.launcher import NodeGraph
    local_ros_defaults()
    config_file, cfg = resolved_config_file(args, args.run_dir)
    output = recording_output(args.output, args.run_dir, cfg)
    recorder = NodeGraph([recorder_node(config_file, output)]).start()
    try:
        ready, deadline = False, None
        while deadline is None or time.monotonic() < deadline:
            if recorder.failed():
                code = recorder.failed()["recorder"]
                print(f"robot-rl: error: the recorder exited with code {code}", file=sys.stderr)
                return code or 1
            if not ready and os.path.exists(output + ".partial"):  # subscribed, file open
                ready = True
                print(f"[robot_rl] recording to {output} ("
                      f"{'for %g s' % args.duration if args.duration else 'Ctrl-C stops'})",
                      flush=True)
                deadline = time.monotonic() + args.duration if args.duration else None
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        recorder.stop(timeout=30.0)  # SIGINT: the recorder finishes the file and renames it
    with open_recording(output) as rec:
        counts = ", ".join(f"{t} {c.count}" for t, c in sorted(rec.channels.items()) if c.count)
        print(f"[robot_rl] {output}: {rec.message_count} messages, "
              f"{os.path.getsize(output) / 1e6:.2f} MB, {(rec.end_ns - rec.start_ns) / 1e9:.1f} s "
              f"({counts})")
    return 0


def cmd_replay(args) -> int:
    from robot_rl.data.mcap_io import open_recording
    from robot_rl.launcher import _param
    with open_recording(args.bag) as rec:  # a clear error before any ROS start-up
        if args.info:
            print(f"{args.bag}: {rec.message_count} messages, "
                  f"{(rec.end_ns - rec.start_ns) / 1e9:.1f} s")
            for topic, channel in sorted(rec.channels.items()):
                print(f"  {topic:40s} {channel.type:40s} {channel.count}")
            return 0
    local_ros_defaults()
    from robot_rl.ros.replay_node import main as replay_main
    params = {"bag": os.path.abspath(args.bag), "rate": float(args.rate),
              "start_delay_s": float(args.start_delay), "clock": not args.no_clock}
    if args.topics:
        params["topics"] = args.topics
    argv = ["replay", "--ros-args"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={_param(value)}"]
    return replay_main(argv)


def cmd_config(args) -> int:
    cfg = load_config(args.config or None, parse_sets(args.set))
    if args.action == "show":
        print(config_to_yaml(cfg), end="")
    else:
        print(f"{args.config or 'built-in defaults'}: OK")
    return 0


def cmd_check_backend(args) -> int:
    """Conformance of a live backend with the topic contract; non-zero exit on a violation."""
    from robot_rl.check_backend import FAIL, check_arguments, markdown_table, render_table
    from robot_rl.ros.backend_probe import run
    local_ros_defaults()
    check_arguments(args)
    cfg = load_config(args.config or None, parse_sets(args.set))
    results, _ = run(cfg, args)
    failed = sum(r.status == FAIL for r in results)
    title = (f"check-backend: driver.adapter={cfg.driver.adapter}, "
             f"{len(results) - failed}/{len(results)} checks without a violation")
    print(render_table(results, title), end="")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(markdown_table(results) + "\n")
    print(f"[robot_rl] check-backend: {failed} violation(s)" if failed
          else "[robot_rl] check-backend: the backend honours the contract")
    return 1 if failed else 0
def cmd_keys(args) -> int:
    from robot_rl import security
    try:
        if args.action == "sros2":
            from robot_rl import sros2
            written = sros2.create_keystore(args.dir)
            print(f"SROS2 keystore {os.path.abspath(args.dir)}: enclaves {', '.join(written)}\n"
                  f"run a node with ROS_SECURITY_KEYSTORE={os.path.abspath(args.dir)} "
                  f"ROS_SECURITY_ENABLE=true ROS_SECURITY_STRATEGY=Enforce and --ros-args "
                  f"--enclave /robot_rl/<node> (apt ROS only: docs/security.md)")
            return 0
        if args.action == "init":
            security.init_keystore(args.dir, actors=args.actors)
        elif args.action == "add-actor":
            if args.actor_id is None:
                raise security.SecurityError("add-actor needs --actor-id N")
            security.add_key(args.dir, "actor", args.actor_id)
        print(security.describe(args.dir))
    except security.SecurityError as exc:
        print(f"robot-rl keys: error: {exc}", file=sys.stderr)
        return 2
    if args.action != "show":
        print(f"use it with --set security.keystore={os.path.abspath(args.dir)}; copy "
              f"keyring.json to every machine and each private/<name>.pem only to the node "
              f"that signs with it")
    return 0


def cmd_call(args) -> int:
    """Call a std_srvs/Trigger service; with --keystore, announce it first with a token signed
    by the operator key (security.restrict_commands), retrying once if the call overtook it."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_rl import security
    local_ros_defaults()
    signer = security.Signer.load(args.keystore, args.key) if args.keystore else None
    rclpy.init()
    node = rclpy.create_node("robot_rl_call")
    try:
        client = node.create_client(Trigger, args.service)
        tokens = node.create_publisher(String, security.COMMAND_TOKEN_TOPIC,
                                       QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
        if not client.wait_for_service(timeout_sec=args.timeout):
            print(f"robot-rl call: {args.service} is not available", file=sys.stderr)
            return 1
        deadline = time.monotonic() + args.timeout
        while signer is not None and tokens.get_subscription_count() < 1 \
                and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)  # let the service's token reader match
        result = None
        for attempt in range(2):
            if signer is not None:
                tokens.publish(String(data=security.command_token(signer, args.service)))
                time.sleep(0.05 * (attempt + 1))  # a token and a call travel on separate writers
            future = client.call_async(Trigger.Request())
            rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
            result = future.result()
            if result is None or result.success or signer is None \
                    or "security.restrict_commands" not in result.message:
                break
        if result is None:
            print(f"robot-rl call: {args.service} did not answer in {args.timeout} s",
                  file=sys.stderr)
            return 1
        print(f"{args.service}: success={result.success} {result.message}")
        return 0 if result.success else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def cmd_reward_collect(argv: list[str]) -> int:
    """``robot-rl reward-classifier collect``: the ROS side of the ROS-free classifier CLI."""
    parser = argparse.ArgumentParser(
        prog="robot-rl reward-classifier collect",
        description="record frames of the running graph's cameras, labelled by the operator's "
                    "success button (Joy buttons[2] on hil.topic), until Ctrl-C, --frames or "
                    "--duration; what was recorded is saved however it stops")
    _common(parser)
    parser.add_argument("--out", required=True, help="folder for frames_<time>.npz")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0: no limit)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after S seconds (0: no limit)")
    args = parser.parse_args(argv)
    from robot_rl.ros.reward_node import collect_frames
    path = collect_frames(args.config or None, parse_sets(args.set), args.out, args.frames,
                          args.duration)
    return 0 if path is not None else 1


def _delegate(module: str, argv: list[str]) -> int:
    import importlib
    return importlib.import_module(module).main(argv) or 0


DELEGATED = {
    "demo": ("robot_rl.demo", "teach the simulated robot, deploy the policy, write a report"),
    "record-demos": ("robot_rl.ros.demo_recorder",
                     "record demonstrations: scripted expert, or a person's device over ROS 2"),
    "audit-graph": ("robot_rl.ros.graph_audit",
                    "list the running graph's links to simulator-only topics and services"),
    "reward-classifier": ("robot_rl.hil.reward_classifier",
                          "collect labelled frames, train and evaluate the success "
                          "classifier"),
    "train-gym": ("robot_rl.learning.train_gym", "train the agent on a Gymnasium environment"),
    "export": ("robot_rl.deploy.export", "export a trained policy to ONNX with its metadata"),
    "calibrate": ("robot_rl.calibration.cli", "camera intrinsics, hand-eye, tactile baselines"),
    "dataset": ("robot_rl.data.dataset_cli", "export/import LeRobot v3.0 datasets (and MCAP demos)"),
    "view": ("robot_rl.ros.view_node", "live 3D/image view of a running graph in the browser (Rerun)"),
    "sim-scene": ("robot_rl.sim.scene_cli", "write the MuJoCo / Gazebo / Isaac Sim scene files "
                                            "generated from the scene description"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the node graph as processes")
    _common(up)
    up.add_argument("--profile", default="robot", help="robot | train | deploy | teleop | demos")
    up.add_argument("--run-dir", default="runs/up")
    up.set_defaults(func=cmd_up)
    expert = sub.add_parser("expert", help="drive the sim graph with the scripted expert")
    _common(expert)
    expert.add_argument("--episodes", type=int, default=5)
    expert.add_argument("--seed", type=int, default=0)
    expert.add_argument("--run-dir", default="runs/expert")
    expert.set_defaults(func=cmd_expert)
    up.add_argument("--record", nargs="?", const="", default=None, metavar="FILE.mcap",
                    help="also record the contract topics to MCAP (default: recording.path, "
                         "else <run-dir>/recording_<time>.mcap)")
    record = sub.add_parser("record", help="record the running graph's topics to MCAP")
    _common(record)
    record.add_argument("--output", default="", metavar="FILE.mcap")
    record.add_argument("--duration", type=float, default=0.0, help="seconds (0: until Ctrl-C)")
    record.add_argument("--run-dir", default="runs/record")
    record.add_argument("--recover", default="", metavar="FILE.mcap.partial",
                        help="rewrite the complete chunks of a killed recording into a "
                             "readable FILE.recovered.mcap")
    record.set_defaults(func=cmd_record)
    replay = sub.add_parser("replay", help="play an MCAP recording back into the graph")
    replay.add_argument("bag", metavar="BAG.mcap")
    replay.add_argument("--rate", type=float, default=1.0, help="1: as recorded; 0: flat out")
    replay.add_argument("--topics", nargs="+", default=[])
    replay.add_argument("--start-delay", type=float, default=1.0,
                        help="seconds for subscribers to connect before the first message")
    replay.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    replay.add_argument("--info", action="store_true", help="list the channels and stop")
    replay.set_defaults(func=cmd_replay)
    config = sub.add_parser("config", help="print or validate a configuration")
    config.add_argument("action", choices=["show", "check"])
    _common(config)
    config.set_defaults(func=cmd_config)
    check = sub.add_parser("check-backend",
                           help="check a running backend against the topic contract")
    _common(check)
    from robot_rl.check_backend import add_arguments
    add_arguments(check)
    check.set_defaults(func=cmd_check_backend)
    keys = sub.add_parser("keys", help="create or show the run keystore (signed learning "
                                       "traffic, docs/security.md)")
    keys.add_argument("action", choices=["init", "add-actor", "show", "sros2"],
                      help="sros2: DDS-security keystore and per-node enclaves for apt ROS")
    keys.add_argument("dir", help="keystore folder, e.g. runs/train/keys")
    keys.add_argument("--actors", type=int, default=1, help="init: actor keys 0..N-1")
    keys.add_argument("--actor-id", type=int, default=None, help="add-actor: its actor id")
    keys.set_defaults(func=cmd_keys)
    call = sub.add_parser("call", help="call a Trigger service (/controller/engage, "
                                       "/scene/reset...), signed when restricted")
    call.add_argument("service")
    call.add_argument("--keystore", default="", help="sign with this keystore's operator key")
    call.add_argument("--key", default="operator", help="private key name in the keystore")
    call.add_argument("--timeout", type=float, default=10.0)
    call.set_defaults(func=cmd_call)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from robot_rl.shutdown import stop_on_signals
    stop_on_signals()  # SIGTERM stops every command like Ctrl-C: cleanly, children included
    argv = list(sys.argv[1:] if argv is None else argv)
    from robot_rl.shutdown import exit_code
    try:
        if argv[:2] == ["reward-classifier", "collect"]:
            return cmd_reward_collect(argv[2:])
        if argv and argv[0] in DELEGATED:
            return _delegate(DELEGATED[argv[0]][0], argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (ConfigError, SecurityError, FileNotFoundError, RecordingError) as exc:
        print(f"robot-rl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM before a command's own handling
        print(f"robot-rl: stopped ({str(exc) or 'SIGINT'})", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    raise SystemExit(main())
