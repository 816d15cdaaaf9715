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

from robot_rl import topics as T
from robot_rl.config import Config, load_config, save_config
from robot_rl.demo_graph_task import TaskGraphMixin
from robot_rl.demo_rehearsal import RehearsalMixin
from robot_rl.parsing import InputError, parse_episode_event, parse_status
from robot_rl.paths import atomic_write_text
from robot_rl.report import EpisodeLog, EpisodeRecord, plot_training, speed_vs_demos, write_summary
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
        # atomic: an interrupt never leaves a half-written state
        atomic_write_text(self.path, json.dumps({"done": self.done, "numbers": self.numbers}, indent=2))

    @property
    def elapsed(self) -> float:
        return sum(self.done.values())


def demo_config(args) -> Config:
    """The demo's defaults on top of the user's file: state + tactile observations (or images),
    and, without image observations, cameras published at a low rate only for monitoring."""
    from robot_rl.cli import parse_sets
    run_dir = Path(args.run_dir).resolve()
    # The demonstrations' recipe (2 critics, UTD 4, a behaviour-cloning term; the RLPD paper's
    # 10 critics at UTD 8 cost ~0.3 s per env step on 2 cores) and 50-step episodes (the
    # expert needs ~27), which doubles the resets per env step.
    overrides = {"agent.preset": "demos",
                 "task.max_episode_steps": 50, "actor.max_lead": 50,
                 "task.observations": ["state", "images", "tactile"] if args.images
                 else ["state", "object", "tactile"],
                 "learner.run_dir": str(run_dir / "train"),
                 "learner.demos": str(run_dir / "demos")}
    if args.images:
        # A CPU learner on images manages ~2 updates/s: weights every 25 updates come >10 s
        # apart, longer than the actor's default pacing timeout, and the actor ran ahead (a
        # measured run reached a real UTD of 0.2 instead of 4). Keep it paced.
        overrides["actor.learner_timeout"] = 60.0
    cfg = load_config(args.config or None, {**overrides, **parse_sets(args.set)})
    if not args.images:
        for cam in cfg.cameras:
            cam.fps = 1
    return cfg


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/demo")
    parser.add_argument("--config", default="")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true",
                        help="exercise every stage in a few minutes (CI)")
    parser.add_argument("--task", default="",
                        help="a task other than the pick (e.g. peg_insert): its stages run in "
                             "one process on the MuJoCo env (robot_rl/demo_inprocess.py), or "
                             "with --graph as the ROS 2 node graph")
    parser.add_argument("--graph", action="store_true",
                        help="with --task: the pick demo's node graph (actor, learner, simulated "
                             "human over DDS) instead of one process (robot_rl/demo_graph_task.py)")
    parser.add_argument("--images", action="store_true",
                        help="learn from two 128x128 cameras (+ tactile) instead of state")
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="discard an earlier run in run-dir")
    parser.add_argument("--record", action="store_true",
                        help="record every stage's topics to <run-dir>/recordings/*.mcap")
    parser.add_argument("--rehearsal", action="store_true",
                        help="hardware dress rehearsal: the stand-in behaves like a robot, a "
                             "simulated operator demonstrates and corrects through the joy pad, "
                             "rewards come from a classifier trained in the run "
                             "(robot_rl/demo_rehearsal.py)")
    return parser


def _run_config(args, run_dir: Path) -> tuple[Config, Path]:
    """The run's configuration, saved in ``run_dir`` (a resumed run keeps the one it started
    with); raises ConfigError."""
    if args.graph and not args.task:
        raise ConfigError("--graph goes with --task NAME (the pick demo is always a graph)")
    if args.task and args.graph:
        from robot_rl.demo_graph_task import task_graph_config
        cfg = task_graph_config(args)
    elif args.task:
        from robot_rl.demo_inprocess import task_demo_config
        cfg = task_demo_config(args)
    elif args.rehearsal:
        from robot_rl.demo_rehearsal import rehearsal_config
        cfg = rehearsal_config(args)
        # Every process of the graph (reward node and classifier included) on one torch
        # thread: they share 2 cores (see agent.num_threads in rehearsal_config).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    else:
        cfg = demo_config(args)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        save_config(cfg, config_file)
    else:
        cfg = load_config(config_file)
    return cfg, config_file


def _run_stages(stages, state: "RunState") -> int:
    from robot_rl.shutdown import exit_code
    for name in stages.names:
        if name in state.done:
            print(f"[demo] {name}: done earlier ({state.done[name]:.0f} s), skipped")
            continue
        print(f"[demo] === {name} ===", flush=True)
        start = time.perf_counter()
        try:
            getattr(stages, name)()
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through robot_rl.shutdown
            print(f"\n[demo] stopped ({str(exc) or 'SIGINT'}) during {name}; rerun the same command "
                  f"to continue", flush=True)
            return exit_code(exc)
        except Exception as exc:  # report which stage failed and how, then fail the run
            print(f"[demo] stage {name} FAILED: {exc!r}", file=sys.stderr)
            return 1
        state.done[name] = time.perf_counter() - start
        state.save()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from robot_rl.cli import actor_ids, local_ros_defaults, secure_run
    from robot_rl.shutdown import stop_on_signals
    stop_on_signals()  # SIGTERM (kill, a service manager) stops the demo like Ctrl-C
    local_ros_defaults()
    run_dir = Path(args.run_dir).resolve()
    if args.fresh and run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        cfg, config_file = _run_config(args, run_dir)
    except ConfigError as exc:
        print(f"robot-rl demo: error: {exc}", file=sys.stderr)
        return 2
    state = RunState.load(run_dir / "state.json")
    if args.task and not args.graph:  # no node graph: nothing to secure
        from robot_rl.demo_inprocess import InProcessStages
        return _finish(_run_stages(InProcessStages(cfg, str(config_file), run_dir, args, state),
                                   state), state, run_dir)
    from robot_rl.graph import graph
    cfg = secure_run(str(config_file), cfg, str(run_dir),
                     actor_ids(graph(cfg, str(config_file), "train")))
    if args.task:
        stages = TaskGraphStages(cfg, str(config_file), run_dir, args, state)
    elif args.rehearsal:
        stages = RehearsalStages(cfg, str(config_file), run_dir, args, state)
    else:
        stages = Stages(cfg, str(config_file), run_dir, args, state)
    return _finish(_run_stages(stages, state), state, run_dir)


def _finish(code: int, state: RunState, run_dir: Path) -> int:
    if code:
        return code
    print(f"[demo] all stages done in {state.elapsed / 60:.1f} min; report: {run_dir / 'report.md'}")
    final = state.numbers.get("deployed_success_rate")
    if final is not None:
        print(f"[demo] deployed ONNX policy: {final:.0%} success over "
              f"{state.numbers.get('eval_episodes')} episodes")
    return 0


class EventRecorder:
    """Watches a stage: appends every finished episode (/episode/event) to the run's CSV and
    keeps the learner's latest status (/rl/learner_status)."""

    def __init__(self, log: EpisodeLog, phase: str, clock_offset: float):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String
        if not rclpy.ok():
            rclpy.init()
        self.log, self.phase = log, phase
        self.offset, self.start = clock_offset, time.perf_counter()
        self.episodes: list = []  # parsed EpisodeEvents of finished episodes
        # Environment steps of this phase, continued across resumes from the episodes logged.
        self.env_steps = sum(row["length"] for row in log.read(phase))
        self.status: dict = {}
        self.rejected = 0  # String inputs that did not parse (logged, counted, skipped)
        self.node = rclpy.create_node(f"demo_events_{phase}")
        self.node.create_subscription(String, T.EPISODE_EVENT, self._on_event, 50)
        self.node.create_subscription(String, T.LEARNER_STATUS, self._on_status, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass  # the context went down under us (Ctrl-C, SIGTERM): nothing left to record

    def _ignored(self, what: str, exc: Exception) -> None:
        self.rejected += 1
        self.node.get_logger().warning(f"ignored a {what} ({exc}); {self.rejected} so far",
                                       throttle_duration_sec=2.0)

    def _on_status(self, msg) -> None:
        try:
            self.status.update(parse_status(msg.data, "learner status"))
        except InputError as exc:
            self._ignored("learner status", exc)

    def _on_event(self, msg) -> None:
        try:
            event = parse_episode_event(msg.data)
        except InputError as exc:
            self._ignored("episode event", exc)
            return
        if not event.ended:
            return
        self.env_steps += event.length
        rec = EpisodeRecord(
            phase=self.phase, wall_s=self.offset + time.perf_counter() - self.start,
            env_steps=self.env_steps, actor_id=event.actor_id, episode=event.episode,
            event=event.event, success=event.success, ret=event.ret, length=event.length,
            interventions=event.interventions, intervention_rate=event.intervention_rate)
        self.log.append(rec)
        self.episodes.append(event)

    def close(self) -> None:
        from robot_rl.shutdown import signals_deferred
        with signals_deferred():
            try:
                self.executor.shutdown(timeout_sec=1.0)
                self.thread.join(timeout=2.0)
                self.node.destroy_node()
            except Exception:  # the context is already down (a signal): nothing to release
                pass


class Stages:
    names = STAGES

    def __init__(self, cfg: Config, config_file: str, run_dir: Path, args, state: RunState):
        self.cfg, self.config_file, self.run_dir = cfg, config_file, run_dir
        self.args, self.state = args, state
        self.log = EpisodeLog(run_dir / "episodes.csv")
        quick = args.quick
        self.demo_count = 3 if quick else args.demos
        self.train_steps = args.train_steps or (200 if quick else (20_000 if args.images
                                                                    else 5_000))
        self.eval_episodes = args.eval_episodes or (3 if quick else 50)

    def _graph(self, profile: str, overrides: dict | None = None, logs: str = "logs"):
        from robot_rl.graph import graph, recorder_node
        from robot_rl.launcher import NodeGraph
        specs = graph(self.cfg, self.config_file, profile)
        if self.args.record:
            specs.append(recorder_node(self.config_file, str(self._recording(logs.split("/")[-1]))))
        return NodeGraph(specs, overrides=overrides, log_dir=self.run_dir / logs)

    def _recording(self, stage: str) -> Path:
        # A resumed stage records into a new file; earlier ones stay as they were.
        folder = self.run_dir / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{stage}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.mcap"

    # -- stage 1-2: the stand-in, and scripted demonstrations over the robot contract --------
    def demos(self) -> None:
        import shutil

        from robot_rl.envs.ros_env import RosRobotEnv
        from robot_rl.learning.record_demos import record
        out = Path(self.cfg.learner.demos)
        if out.exists():
            shutil.rmtree(out)  # an interrupted recording restarts cleanly
        with self._graph("robot", logs="logs/demos"):
            env = RosRobotEnv(self.cfg, timeout=10.0, startup_timeout=60.0)
            try:
                summary = record(self.cfg, str(out), self.demo_count, env=env, verbose=False)
                self.graph_fixtures = sorted(env.snapshot.fixtures)  # what the graph carried
            finally:
                env.close()
        self.state.numbers["demonstrations"] = summary["episodes"]
        # Only successful episodes are kept, so this is the demonstrations' steps to success.
        self.state.numbers["demonstration_mean_steps"] = round(summary["transitions"] / summary["episodes"], 2)
        self.state.numbers["demonstration_transitions"] = summary["transitions"]
        print(f"[demo] recorded {summary['episodes']} demonstrations "
              f"({summary['transitions']} transitions) to {out}")

    # -- stage 3: HIL-SERL online training ---------------------------------------------------
    def train(self) -> None:
        resume = Path(self.cfg.learner.run_dir, "checkpoint").exists()
        recorder = EventRecorder(self.log, "train", self.state.elapsed)
        status = recorder.status
        graph = self._graph("train", {"learner.resume": resume}, logs="logs/train")
        try:
            graph.start()
            last_print = 0.0
            while not self._training_done(status):
                failed = graph.failed()
                if failed:
                    name = next(iter(failed))
                    raise StageFailed(f"node {name} exited with {failed[name]}; see "
                                      f"{self.run_dir / 'logs/train' / (name + '.log')}")
                if time.perf_counter() - last_print > 5.0:
                    last_print = time.perf_counter()
                    print(self._progress_line(status), flush=True)
                time.sleep(0.2)
            print(self._progress_line(status), flush=True)
        finally:
            graph.stop(timeout=30.0)  # SIGINT: the learner writes its checkpoint and replay
            recorder.close()
        rows = self.log.read("train")
        self.state.numbers["train_env_steps"] = int(status.get("env_steps", 0))
        self.state.numbers["train_episodes"] = len(rows)
        self.state.numbers["train_updates"] = int(status.get("updates", 0))
        last = rows[-20:]
        if last:
            self.state.numbers["train_success_rate_last20"] = sum(r["success"] for r in last) / len(last)
            self.state.numbers["train_intervention_rate_last20"] = (
                sum(r["intervention_rate"] for r in last) / len(last))

    def _training_done(self, status: dict) -> bool:
        """``train_steps`` env steps, then (with ``actor.evaluate_every``) the evaluation round
        that judges the weights at the end, so the export can choose among every stage of the
        training. A round starts at the first episode end past ``train_steps``; a restarted
        actor, which counts its steps afresh, is not waited for beyond that."""
        steps = status.get("env_steps", 0)
        if steps < self.train_steps:
            return False
        ac = self.cfg.actor
        latest = self.train_steps + ac.evaluate_every + (
            ac.evaluate_episodes + 1) * self.cfg.task.max_episode_steps
        if not ac.evaluate_every or steps >= latest:
            return True
        from robot_rl.learning.evaluation_rounds import read_rounds
        return any(r["started_at_step"] >= self.train_steps
                   for r in read_rounds(self.cfg.learner.run_dir))

    def _progress_line(self, status: dict) -> str:
        episodes = self.log.read("train")
        rows = episodes[-10:]
        success = sum(r["success"] for r in rows) / len(rows) if rows else 0.0
        interv = sum(r["intervention_rate"] for r in rows) / len(rows) if rows else 0.0
        return (f"[train] env steps {status.get('env_steps', 0):>6}/{self.train_steps} | "
                f"episodes {len(episodes):>4} | success (last 10) {success:4.0%} | "
                f"intervention rate (last 10) {interv:4.0%} | "
                f"updates/s {status.get('updates_per_s', 0.0):5.1f} | "
                f"buffers online {status.get('online', 0)} demo {status.get('demo', 0)}")

    # -- stage 4: export with the parity check -----------------------------------------------
    def export(self) -> None:
        from robot_rl.deploy.agent_export import (export_agent, load_agent_checkpoint,
                                                  use_best_policy)
        from robot_rl.envs.pick_cube import PickCubeEnv
        agent = load_agent_checkpoint(Path(self.cfg.learner.run_dir, "checkpoint"), self.cfg)
        if self.cfg.actor.evaluate_every:
            best = use_best_policy(agent, self.cfg.learner.run_dir)
            if best is not None:
                self.state.numbers["exported_evaluation_round"] = best
                print(f"[demo] exporting the best evaluation round's policy: "
                      f"{best['successes']}/{best['episodes']} without help at env step "
                      f"{best['started_at_step']}")
        model = self.run_dir / "policy.onnx"
        result = export_agent(agent, self.cfg, model, run_id=self.run_dir.name)
        self.state.numbers["onnx_parity_max_abs_diff"] = float(result.max_abs_diff)
        # The torch policy's own success rate: the reference the deployed model must match.
        env = PickCubeEnv(self.cfg)
        successes, steps_to_success = 0, []
        try:
            for episode in range(self.eval_episodes):
                obs, _ = env.reset(seed=100_000 + episode)
                done, steps = False, 0
                while not done:
                    obs, _, terminated, truncated, info = env.step(
                        agent.act(obs, deterministic=True))
                    done, steps = terminated or truncated, steps + 1
                successes += int(info["success"])
                if info["success"]:
                    steps_to_success.append(steps)
        finally:
            env.close()
        self.state.numbers["torch_success_rate"] = successes / self.eval_episodes
        self.state.numbers.update(speed_vs_demos("torch", steps_to_success,
                                                 self.state.numbers.get("demonstration_mean_steps")))
        print(f"[demo] exported {model} (parity {result.max_abs_diff:.1e}); torch policy "
              f"{successes}/{self.eval_episodes} in-process")

    # -- stage 5: the controller node runs the exported policy on the stand-in ---------------
    def deploy(self) -> None:
        from dataclasses import replace

        from robot_rl.ros.controller_eval import evaluate_deployed_ros
        # Always recorded, for the report's GIF (and the classifier's confusion matrix): the
        # cameras at the control rate, the controller's status and the poses; --record keeps
        # every topic of the contract.
        cameras = [replace(c, fps=max(c.fps, int(self.cfg.control_rate_hz)))
                   for c in self.cfg.cameras]
        topics = [] if self.args.record else (
            [T.camera_image_topic(c.name) for c in cameras]
            + [T.CONTROLLER_STATUS, T.OBJECT_POSE, T.EE_POSE])
        cfg = replace(self.cfg, cameras=cameras,
                      recording=replace(self.cfg.recording, topics=topics, cameras=True))
        recording = self._recording("deploy")
        episodes: list = []
        figures: list = []
        load_before = os.getloadavg()[0]
        rate = evaluate_deployed_ros(cfg, self.run_dir / "policy.onnx", self.eval_episodes,
                                     work_dir=self.run_dir / "deploy", record=str(recording),
                                     episode_log=episodes, figures=figures)
        # The stand-in is paced by the wall clock here: on a machine loaded by other work it
        # falls behind and the controller acts on older frames (bench/deploy_timing.py: the same
        # policy 0.84 in lockstep, 0.54 paced at load 14), so the figure carries its load.
        self.state.numbers["deploy_load_average"] = round(max(load_before, os.getloadavg()[0]), 1)
        if figures:
            self.state.numbers["deploy_controller_figures"] = figures[0]
        # Robot time in control periods: the deployed policy's steps, comparable to the demos'.
        self.state.numbers.update(speed_vs_demos(
            "deployed", [max(1.0, s * cfg.control_rate_hz) for outcome, s in episodes if outcome == "success"],
            self.state.numbers.get("demonstration_mean_steps")))
        self.state.numbers["deploy_recording"] = str(recording.relative_to(self.run_dir))
        self.state.numbers["deployed_success_rate"] = rate
        self.state.numbers["eval_episodes"] = self.eval_episodes
        print(f"[demo] deployed ONNX policy through the controller node: {rate:.0%} success "
              f"over {self.eval_episodes} episodes (load average "
              f"{self.state.numbers['deploy_load_average']} on {os.cpu_count()} cores)")

    def _deployment_media(self) -> list[Path]:
        """GIF of the first deployed episodes (front camera) and, when a reward classifier was
        configured, its confusion matrix on the deployed frames."""
        from robot_rl.report import (classifier_confusion, deployed_frames, plot_confusion_matrix,
                                     write_gif)
        name = self.state.numbers.get("deploy_recording")
        if not name or not (self.run_dir / name).exists():
            return []
        recording, out = self.run_dir / name, []
        camera = self.cfg.cameras[0].name
        frames = deployed_frames(recording, camera, episodes=3)
        if frames:
            out.append(write_gif(frames, self.run_dir / f"deployed_{camera}.gif",
                                 fps=self.cfg.control_rate_hz))
        rc = self.cfg.hil.reward
        if rc.source == "classifier" and rc.model:
            from robot_rl.hil.reward_classifier import RewardClassifier
            counts = classifier_confusion(recording, RewardClassifier.load(rc.model),
                                          self.cfg.task.lift_height)
            self.state.numbers["classifier_confusion"] = counts
            out.append(plot_confusion_matrix(counts, self.run_dir / "classifier_confusion.png"))
        return out

    # -- stage 6: report -----------------------------------------------------------------------
    def report(self) -> None:
        rows = self.log.read("train")
        plots = plot_training(rows, self.run_dir)
        plots += self._deployment_media()
        numbers = dict(self.state.numbers)
        numbers["wall_clock_min_all_stages"] = round(self.state.elapsed / 60, 1)
        numbers.update({f"stage_{k}_s": round(v, 1) for k, v in self.state.done.items()})
        notes = [f"observations: {', '.join(self.cfg.task.observations)}; reward: "
                 f"{self.cfg.task.reward}; control {self.cfg.control_rate_hz:g} Hz",
                 f"TensorBoard: tensorboard --logdir {Path(self.cfg.learner.run_dir, 'tb')}",
                 "episodes.csv holds every training episode (success, interventions, time)"]
        if self.args.record:
            notes.append("recordings/*.mcap: every stage's topics (open with Foxglove, rosbags, "
                         "or `robot-rl replay`)")
        write_summary(self.run_dir / "report.md", "robot-rl demo report", numbers, plots, notes)
        print((self.run_dir / "report.md").read_text())


class RehearsalStages(RehearsalMixin, Stages):
    """``robot-rl demo --rehearsal``: the stages of robot_rl/demo_rehearsal.py."""


class TaskGraphStages(TaskGraphMixin, Stages):
    """``robot-rl demo --task NAME --graph``: the stages of robot_rl/demo_graph_task.py."""
