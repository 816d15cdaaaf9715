"""``robot-rl demo --rehearsal``: the hardware dress rehearsal, end to end.

The MuJoCo stand-in runs in its rehearsal mode (``sim.rehearsal``): it behaves like a real robot
(nothing published under ``/sim/``, no teleport reset) and hosts a simulated operator who holds
the joy pad and puts the cube back. The stack learns only from what a real robot gives it:

  demos       the operator demonstrates through the joy pad (``sim.operator: demonstrate``,
              ``robot-rl record-demos --device joy``); the reward node records the camera
              frames labelled by the operator's success button at the same time
  classifier  the reward classifier is trained on those frames
  train       HIL-SERL from cameras + proprioception (+ tactile); reward and termination come
              from the classifier (``hil.reward.source: classifier``); the operator corrects
              (``sim.operator: correct``); the graph is audited for links to simulator-only
              names while it trains
  export      ONNX with the parity check
  deploy      the controller node runs the exported policy; ground truth (``/sim/object_pose``
              of the plain stand-in) is read only by the scorer, and the classifier's false
              positives are counted on the deployed frames against it
  report      report.md / report.json with the rehearsal's figures

Each stage runs with its own configuration file in the run folder (``config_<stage>.yaml``),
so what every graph ran with can be read afterwards. Resumable like ``robot-rl demo``.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from robot_rl.config import Config, load_config, save_config

REHEARSAL_STAGES = ("demos", "classifier", "train", "export", "deploy", "report")
CAMERA_SIZE = 64  # px, both cameras (docs/benchmarks.md, "Issue 17 — rehearsal")
DEMO_SUCCESS_HOLD = 6  # control periods the operator holds success before a demo ends
REHEARSAL_TRAIN_STEPS = 8_000
DEMO_MISS_EVERY = 3  # every 3rd demos-stage episode the operator misses on purpose


def train_steps(args) -> int:
    """The training stage's env steps: ``--train-steps``, else 200 with ``--quick``."""
    return getattr(args, "train_steps", None) or (
        200 if getattr(args, "quick", False) else REHEARSAL_TRAIN_STEPS)


def rehearsal_config(args) -> Config:
    """The training stage's configuration: the stand-in as hardware, joy pad, move-then-human
    resets, cameras + proprioception (+ tactile), classifier rewards, and the learning recipe
    that fits 2 CPU cores (bench/rehearsal_learning.py)."""
    from robot_rl.cli import parse_sets
    from robot_rl.learning.rlpd import has_native_bf16

    import torch

    run_dir = Path(args.run_dir).resolve()
    cams = [{"name": name, "width": CAMERA_SIZE, "height": CAMERA_SIZE, "fps": 10}
            for name in ("front", "wrist")]
    overrides = {
        "sim.rehearsal": True, "sim.operator": "correct",
        "hil.device": "joy", "hil.reset.mode": "move_then_human",
        "hil.reward.source": "classifier", "hil.reward.model": str(run_dir / "classifier"),
        # Success only when the classifier is sure, 3 frames in a row: at 0.5 and 2 frames it
        # fired early (4.3 % false positives in the loop, deployed 0.36); at 0.8, once the
        # policy lifted often, 2.1-2.6 % of the loop's frames near the lift were false
        # positives; at 0.9, 0.8 % (docs/benchmarks.md, "Issue 17 — rehearsal").
        "hil.reward.threshold": 0.9, "hil.reward.consecutive": 3,
        "task.observations": ["state", "images", "tactile"], "cameras": cams,
        "task.max_episode_steps": 50,
        # A frozen conv trunk whose features of each frame are computed once, no DrQ shifts,
        # 2 critics, UTD 1, batch 128, bf16 where native: measured in
        # bench/rehearsal_learning.py (docs/benchmarks.md, "Issue 17 — rehearsal").
        "agent.preset": "demos", "agent.utd_ratio": 1, "agent.batch_size": 128,
        "agent.encoder.freeze_image_encoder": True,
        "agent.encoder.augment": False, "agent.encoder.cache_image_features": True,
        "agent.precision": "bf16" if has_native_bf16(torch.device("cpu")) else "fp32",
        # One torch thread per process: learner, actor and sim share 2 cores, and two intra-op
        # threads on a busy core wait for each other at every op (0.5 vs 14 updates/s measured).
        "agent.num_threads": 1,
        # The frozen trunk first learns what the task looks at by cloning the demonstrations
        # from their frames (agent.encoder.pretrain_steps); the actor waits for those weights.
        # In process, from 20 scripted demos: 90 % before any RL step, against 0-10 % after
        # 6,000 RL steps on the random trunk (docs/benchmarks.md, "Issue 17, session 15").
        "agent.encoder.pretrain_steps": 50 if getattr(args, "quick", False) else 1000,
        "actor.weights_timeout": 600.0,
        "actor.max_lead": 50, "actor.learner_timeout": 60.0,
        # Four evaluation rounds, the last at the end of training; the export deploys the best
        # (docs/benchmarks.md, "Issue 17 — rehearsal": the final weights alone varied 0.58-0.82)
        "actor.evaluate_every": max(1, train_steps(args) // (2 if getattr(args, "quick", False) else 4)),
        "actor.evaluate_episodes": 1 if getattr(args, "quick", False) else 10,
        "learner.run_dir": str(run_dir / "train"), "learner.demos": str(run_dir / "demos"),
    }
    return load_config(args.config or None, {**overrides, **parse_sets(args.set)})


def stage_config(cfg: Config, stage: str, run_dir: Path) -> Config:
    """The training configuration adapted to one stage."""
    if stage == "demos":
        # The operator demonstrates every episode; success is the operator's button (the
        # classifier does not exist yet); the reward node records the labelled frames.
        # The operator keeps the lifted cube in view, success held, for DEMO_SUCCESS_HOLD
        # periods before a demonstration ends: ~6 labelled success frames per demonstration
        # instead of ~1 (21-27 in all gave a classifier whose false-positive rate varied
        # 1-4 % between runs; docs/benchmarks.md, "Issue 17 — rehearsal").
        reward = replace(cfg.hil.reward, source="human", record_dir=str(run_dir / "frames"),
                         consecutive=max(cfg.hil.reward.consecutive, DEMO_SUCCESS_HOLD))
        # Every third episode a deliberate miss (closes beside the cube, lifts air, presses
        # failure): the recorder discards it; its frames are the classifier's hard negatives.
        return replace(cfg, sim=replace(cfg.sim, operator="demonstrate",
                                        operator_miss_every=DEMO_MISS_EVERY),
                       hil=replace(cfg.hil, reward=reward))
    if stage == "deploy":
        # Scoring needs the simulator's truth: the plain stand-in publishes /sim/object_pose
        # and serves the teleport reset, read and called only by the scorer; the controller
        # node running the policy has no link to either.
        return replace(cfg, sim=replace(cfg.sim, rehearsal=False))
    return cfg


def write_stage_config(cfg: Config, stage: str, run_dir: Path) -> str:
    path = run_dir / f"config_{stage}.yaml"
    if not path.exists():
        save_config(stage_config(cfg, stage, run_dir), path)
    return str(path)


class ClassifierScorer:
    """The classifier's verdict on each frame of the training loop (``/task/success``) against
    the ground truth the simulated operator signals with its success button (pressed exactly
    while the world shows the task's success, and only while the reset node is idle).

    A frame is scored only when the truth has been steady for ``settle_s`` (a frame and the
    button press of the same control period may arrive in either order) and the reset node
    has been idle as long (during a reset the operator's hands are off the pad, whatever the
    world shows). ROS-free: the watcher node feeds it."""

    def __init__(self, settle_s: float = 0.5):
        self.settle_s = settle_s
        self.truth, self.truth_since = False, None
        self.idle, self.idle_since = False, None
        self.counts = {"true_positive": 0, "false_positive": 0, "false_negative": 0,
                       "true_negative": 0}
        self.unscored = 0

    def on_operator(self, success: bool, now: float) -> None:
        if success != self.truth or self.truth_since is None:
            self.truth, self.truth_since = success, now

    def on_reset_state(self, state: str, now: float) -> None:
        idle = state == "idle"
        if idle != self.idle or self.idle_since is None:
            self.idle, self.idle_since = idle, now

    def on_verdict(self, success: bool, now: float) -> None:
        steady = (self.idle and self.truth_since is not None and self.idle_since is not None
                  and now - max(self.truth_since, self.idle_since) >= self.settle_s)
        if not steady:
            self.unscored += 1
            return
        key = ("true_" if success == self.truth else "false_") + ("positive" if success else "negative")
        self.counts[key] += 1

    @property
    def false_positive_rate(self) -> float:
        negatives = self.counts["false_positive"] + self.counts["true_negative"]
        return self.counts["false_positive"] / negatives if negatives else float("nan")


class TrainingWatcher:
    """A node of the demo's own while the training graph runs: scores the classifier
    (:class:`ClassifierScorer`) and audits the live graph every ``period`` s for links to
    simulator-only names (``privileged_links`` of robot_rl/ros/graph_audit.py; this node is
    audited too: it subscribes only to the classifier, the operator's pad and the reset state)."""

    def __init__(self, cfg: Config, period: float = 10.0):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Joy
        from std_msgs.msg import Bool, String

        from robot_rl.ros import messages as m
        from robot_rl.ros.graph_audit import privileged_links
        if not rclpy.ok():
            rclpy.init()
        self._audit, self.period = privileged_links, period
        self.scorer = ClassifierScorer()
        self.links: set[str] = set()
        self.audits = 0
        self._lock = threading.Lock()
        self.node = node = rclpy.create_node("demo_rehearsal_watch")
        clock = time.monotonic

        def locked(fn):
            def run(msg):
                with self._lock:
                    fn(msg, clock())
            return run

        node.create_subscription(Bool, cfg.hil.reward.success_topic,
                                 locked(lambda msg, t: self.scorer.on_verdict(bool(msg.data), t)), 50)
        node.create_subscription(
            Joy, cfg.hil.topic,
            locked(lambda msg, t: self.scorer.on_operator(len(msg.buttons) > 2 and bool(msg.buttons[2]), t)), 50)
        node.create_subscription(String, m.RESET_STATE, locked(self._on_reset_state), m.RESET_STATE_LISTEN_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._spin, daemon=True),
                        threading.Thread(target=self._audit_loop, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _on_reset_state(self, msg, now: float) -> None:
        from robot_rl.parsing import InputError, parse_status
        try:
            state = parse_status(msg.data, "reset state").get("state", "")
        except InputError:
            return
        self.scorer.on_reset_state(str(state), now)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, KeyboardInterrupt):
            pass

    def audit_now(self) -> None:
        found = self._audit(self.node, exclude_self=False)
        with self._lock:
            self.links.update(found)
            self.audits += 1

    def _audit_loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.audit_now()
            except Exception as exc:  # the context went down (a signal): the stage reports it
                print(f"[demo] graph audit failed: {exc!r}", file=sys.stderr)
                return

    def close(self) -> None:
        self._stop.set()
        for thread in self.threads[1:]:
            thread.join(timeout=self.period + 5.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.threads[0].join(timeout=2.0)
            self.node.destroy_node()
        except Exception:  # the context is already down (a signal): nothing to release
            pass


class RehearsalMixin:
    """The rehearsal's stages on top of the main demo's: ``robot_rl.demo`` composes
    ``class RehearsalStages(RehearsalMixin, Stages)`` (so this module does not import the demo)."""
    names = REHEARSAL_STAGES

    def __init__(self, cfg, config_file, run_dir, args, state):
        super().__init__(cfg, config_file, run_dir, args, state)
        # 8,000 env steps: at 5,000 the deployed rate was 0.72-0.84 over four runs (13-22 min
        # of the 60 allowed); docs/benchmarks.md, "Issue 17 — rehearsal".
        self.train_steps = train_steps(args)

    # -- demos: the operator through the joy pad; labelled frames alongside -------------
    def demos(self) -> None:
        import shutil

        from robot_rl.graph import NodeSpec, graph
        from robot_rl.launcher import NodeGraph
        from robot_rl.ros.demo_recorder import record_teleop
        out = Path(self.cfg.learner.demos)
        for folder in (out, Path(f"{out}.rejected"), self.run_dir / "frames"):
            if folder.exists():
                shutil.rmtree(folder)  # an interrupted recording restarts cleanly
        path = write_stage_config(self.cfg, "demos", self.run_dir)
        cfg = load_config(path)
        specs = graph(cfg, path, "demos") + [
            NodeSpec("reward", "reward", "robot_rl.ros.reward_node", {"config_file": path})]
        log_dir = self.run_dir / "logs/demos"
        # robot-rl record-demos --device joy, in this process, while the graph runs.
        with NodeGraph(specs, log_dir=log_dir):
            summary = record_teleop(cfg, str(out), self.demo_count, device="joy",
                                    verbose=False)
        saved = sorted((self.run_dir / "frames").glob("frames_*.npz"))
        if not saved:
            raise RuntimeError(f"the reward node saved no labelled frames in "
                               f"{self.run_dir / 'frames'}; see {log_dir / 'reward.log'}")
        self.state.numbers["demonstrations"] = summary["episodes"]
        self.state.numbers["demonstration_transitions"] = summary["transitions"]
        self.state.numbers["demonstrations_discarded"] = summary["discarded"]
        print(f"[demo] recorded {summary['episodes']} demonstrations through the joy pad "
              f"({summary['transitions']} transitions, {summary['discarded']} discarded) "
              f"and labelled frames {[p.name for p in saved]}")

    # -- classifier: trained on this run's frames --------------------------------------
    def classifier(self) -> None:
        from robot_rl.hil import reward_classifier as rc
        data = rc.load_frames(sorted((self.run_dir / "frames").glob("frames_*.npz")))
        positives = int(data["labels"].sum())
        if positives == 0:
            raise RuntimeError(f"no frame of {self.run_dir / 'frames'} is labelled success: "
                               f"the operator never pressed the success button")
        clf = rc.train(data, [c.name for c in self.cfg.cameras], steps=600,
                       negative_weight=4.0, threshold=self.cfg.hil.reward.threshold,
                       log=lambda line: print(f"[classifier] {line}", flush=True))
        clf.save(self.cfg.hil.reward.model)
        train_metrics = clf.meta["train"]
        self.state.numbers["classifier_frames"] = int(len(data["labels"]))
        self.state.numbers["classifier_positive_frames"] = positives
        self.state.numbers["classifier_train_false_positive_rate"] = train_metrics[
            "false_positive_rate"]
        print(f"[demo] classifier: {len(data['labels'])} frames, {positives} success; on "
              f"its training frames false-positive rate "
              f"{train_metrics['false_positive_rate']:.3f}")

    # -- train: HIL-SERL on classifier rewards; audited, the classifier scored ----------
    def train(self) -> None:
        watcher = TrainingWatcher(self.cfg)
        try:
            super().train()
        finally:
            watcher.close()
        if watcher.audits < 2:
            raise RuntimeError(f"the graph was audited {watcher.audits} time(s) while "
                               f"training; expected at least 2")
        links = sorted(watcher.links)
        scorer = watcher.scorer
        numbers = self.state.numbers
        numbers["privileged_subscriptions"] = len(links)
        numbers["privileged_links"] = links
        numbers["graph_audits"] = watcher.audits
        numbers["classifier_training_loop_confusion"] = dict(scorer.counts)
        numbers["classifier_training_loop_unscored_frames"] = scorer.unscored
        numbers["classifier_false_positive_rate"] = scorer.false_positive_rate
        print(f"[demo] graph audit during training ({watcher.audits} audits): {len(links)} "
              f"link(s) to simulator-only names {links}; classifier in the loop "
              f"{scorer.counts} ({scorer.unscored} frames unscored)")

    # -- deploy: the controller node; the scorer alone reads the simulator's truth -------
    def deploy(self) -> None:
        path = write_stage_config(self.cfg, "deploy", self.run_dir)
        cfg, self.cfg = self.cfg, load_config(path)
        try:
            super().deploy()
        finally:
            self.cfg = cfg

    def report(self) -> None:
        path = write_stage_config(self.cfg, "deploy", self.run_dir)
        train_cfg, self.cfg = self.cfg, load_config(path)  # media from the deploy recording
        try:
            super().report()
        finally:
            self.cfg = train_cfg

    def _deployment_media(self) -> list:
        media = super()._deployment_media()  # the classifier's confusion on deployed frames
        self.state.numbers.update(rehearsal_figures(self.state.numbers, self.state.elapsed))
        return media


def rehearsal_figures(numbers: dict, elapsed_s: float) -> dict:
    """The issue's four figures from the stages' numbers; the classifier's false-positive rate
    also on the deployed frames (``classifier_confusion``, against the recorded cube pose)."""
    counts = numbers.get("classifier_confusion") or {}
    negatives = counts.get("false_positive", 0) + counts.get("true_negative", 0)
    return {"rehearsal_deployed_success_rate": numbers.get("deployed_success_rate"),
            "rehearsal_wall_clock_min": round(elapsed_s / 60, 1),
            "classifier_false_positive_rate": numbers.get("classifier_false_positive_rate"),
            "classifier_false_positive_rate_deployed":
                counts.get("false_positive", 0) / negatives if negatives else float("nan"),
            "privileged_subscriptions": numbers.get("privileged_subscriptions")}
