"""``robot-rl``: the command-line entry point.

    robot-rl up [--config F] [--set key=value ...]     start the node graph (Ctrl-C stops it)
    robot-rl expert [--episodes N]                      the sim graph driven by the scripted expert
    robot-rl config show|check [--config F]             print or validate a configuration
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
    print(f"[robot_rl] starting {[s.name for s in specs]} (config {config_file}); Ctrl-C stops")
    return NodeGraph(specs).start().wait()


def cmd_expert(args) -> int:
    """The sim graph as separate processes, driven over DDS by the scripted expert."""
    import numpy as np

    from robot_rl.envs.expert import PickExpert
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
        expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height, noise=0.05,
                            rng=np.random.default_rng(args.seed))
        successes, steps, start = 0, 0, time.perf_counter()
        try:
            for episode in range(args.episodes):
                env.reset(seed=args.seed + episode)
                expert.reset()
                done = False
                while not done:
                    action = expert.act(env.snapshot, env.action_space.shape[0])
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


def _delegate(module: str, argv: list[str]) -> int:
    import importlib
    return importlib.import_module(module).main(argv) or 0


DELEGATED = {
    "demo": ("robot_rl.demo", "teach the simulated robot, deploy the policy, write a report"),
    "record-demos": ("robot_rl.learning.record_demos",
                     "record successful scripted-expert demonstrations"),
    "reward-classifier": ("robot_rl.hil.reward_classifier",
                          "render sim frames, train and evaluate the success classifier"),
    "train-gym": ("robot_rl.learning.train_gym", "train the agent on a Gymnasium environment"),
    "export": ("robot_rl.deploy.export", "export a trained policy to ONNX with its metadata"),
    "calibrate": ("robot_rl.calibration.cli", "camera intrinsics, hand-eye, tactile baselines"),
    "dataset": ("robot_rl.data.dataset_cli", "export/import LeRobot v3.0 datasets (and MCAP demos)"),
    "view": ("robot_rl.view", "live 3D/image view of a running graph in the browser (Rerun)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the node graph as processes")
    _common(up)
    up.add_argument("--profile", default="robot", help="robot | train | deploy")
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
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(DELEGATED[argv[0]][0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, RecordingError) as exc:
        print(f"robot-rl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
