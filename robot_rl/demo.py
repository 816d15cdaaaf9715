"""``robot-rl demo``: teach the simulated robot to pick and lift, deploy it, report.

Stages, each a real ROS 2 node graph of separate processes on the MuJoCo stand-in:
  demos   scripted-expert demonstrations recorded to disk (over the robot contract)
  train   HIL-SERL online learning: learner, actor, simulated human, resets, rewards
  export  the trained policy to ONNX, with the torch/ONNX parity check
  deploy  the controller node runs the exported policy for the evaluation episodes
  report  Markdown summary, PNG plots, final numbers

Resumable: finished stages are recorded in ``<run-dir>/state.json`` and skipped on a rerun; an
interrupted training stage resumes from the learner's checkpoint. Exits non-zero if a stage fails.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from robot_rl.config import Config, load_config, save_config
from robot_rl.report import EpisodeLog, EpisodeRecord, plot_training, write_summary
from robot_rl.schema import ConfigError

STAGES = ("demos", "train", "export", "deploy", "report")


class StageFailed(RuntimeError):
    pass


@dataclass
class RunState:
    path: Path
    done: dict[str, float] = field(default_factory=dict)  # stage -> seconds it took
    numbers: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "RunState":
        if path.exists():
            data = json.loads(path.read_text())
            return cls(path, data.get("done", {}), data.get("numbers", {}))
        return cls(path)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": self.done, "numbers": self.numbers}, indent=2))
        tmp.replace(self.path)  # atomic: an interrupt never leaves a half-written state

    @property
    def elapsed(self) -> float:
        return sum(self.done.values())


def demo_config(args) -> Config:
    """The demo's defaults on top of the user's file: state + tactile observations (or images),
    and, without image observations, cameras published at a low rate only for monitoring."""
    from robot_rl.cli import parse_sets
    overrides = {"task.observations": ["state", "images", "tactile"] if args.images
                 else ["state", "tactile"]}
    cfg = load_config(args.config or None, {**overrides, **parse_sets(args.set)})
    if not args.images:
        for cam in cfg.cameras:
            cam.fps = 1
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robot-rl demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/demo")
    parser.add_argument("--config", default="")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true",
                        help="exercise every stage in a few minutes (CI)")
    parser.add_argument("--images", action="store_true",
                        help="learn from two 128x128 cameras (+ tactile) instead of state")
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="discard an earlier run in run-dir")
    args = parser.parse_args(argv)
    from robot_rl.cli import local_ros_defaults
    local_ros_defaults()
    run_dir = Path(args.run_dir).resolve()
    if args.fresh and run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        cfg = demo_config(args)
    except ConfigError as exc:
        print(f"robot-rl demo: error: {exc}", file=sys.stderr)
        return 2
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        save_config(cfg, config_file)
    else:
        cfg = load_config(config_file)  # a resumed run keeps the settings it started with
    state = RunState.load(run_dir / "state.json")
    stages = Stages(cfg, str(config_file), run_dir, args, state)
    for name in STAGES:
        if name in state.done:
            print(f"[demo] {name}: done earlier ({state.done[name]:.0f} s), skipped")
            continue
        print(f"[demo] === {name} ===", flush=True)
        start = time.perf_counter()
        try:
            getattr(stages, name)()
        except KeyboardInterrupt:
            print(f"\n[demo] interrupted during {name}; rerun the same command to continue")
            return 130
        except Exception as exc:  # report which stage failed and how, then fail the run
            print(f"[demo] stage {name} FAILED: {exc!r}", file=sys.stderr)
            return 1
        state.done[name] = time.perf_counter() - start
        state.save()
    total = state.elapsed
    print(f"[demo] all stages done in {total / 60:.1f} min; report: {run_dir / 'report.md'}")
    final = state.numbers.get("deployed_success_rate")
    if final is not None:
        print(f"[demo] deployed ONNX policy: {final:.0%} success over "
              f"{state.numbers.get('eval_episodes')} episodes")
    return 0


class EventRecorder:
    """Subscribes to /episode/event and appends every finished episode to the run's CSV."""

    def __init__(self, log: EpisodeLog, phase: str, clock_offset: float):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String
        if not rclpy.ok():
            rclpy.init()
        self.log, self.phase = log, phase
        self.offset, self.start = clock_offset, time.perf_counter()
        self.episodes: list[dict] = []
        self.node = rclpy.create_node(f"demo_events_{phase}")
        self.node.create_subscription(String, "/episode/event", self._on_event, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_event(self, msg) -> None:
        event = json.loads(msg.data)
        if event.get("event") not in ("success", "failure", "timeout"):
            return
        rec = EpisodeRecord(
            phase=self.phase, wall_s=self.offset + time.perf_counter() - self.start,
            env_steps=int(event.get("env_steps", 0)), actor_id=int(event.get("actor_id", 0)),
            episode=int(event.get("episode", 0)), event=event["event"],
            success=event["event"] == "success", ret=float(event.get("return", 0.0)),
            length=int(event.get("length", 0)), interventions=int(event.get("interventions", 0)),
            intervention_rate=float(event.get("intervention_rate", 0.0)))
        self.log.append(rec)
        self.episodes.append(event)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()


class Stages:
    def __init__(self, cfg: Config, config_file: str, run_dir: Path, args, state: RunState):
        self.cfg, self.config_file, self.run_dir = cfg, config_file, run_dir
        self.args, self.state = args, state
        self.log = EpisodeLog(run_dir / "episodes.csv")
        quick = args.quick
        self.demo_count = 3 if quick else args.demos
        self.train_steps = args.train_steps or (300 if quick else (20_000 if args.images
                                                                    else 5_000))
        self.eval_episodes = args.eval_episodes or (5 if quick else 50)

    def _graph(self, profile: str, overrides: dict | None = None, logs: str = "logs"):
        from robot_rl.graph import graph
        from robot_rl.launcher import NodeGraph
        return NodeGraph(graph(self.cfg, self.config_file, profile), overrides=overrides,
                         log_dir=self.run_dir / logs)
