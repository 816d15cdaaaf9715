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
from dataclasses import fields, replace
from pathlib import Path

from robot_rl.config import Config, load_config, save_config

REHEARSAL_STAGES = ("demos", "classifier", "train", "export", "deploy", "report")
CAMERA_SIZE = 64  # px, both cameras (docs/benchmarks.md, "Issue 17 — rehearsal")


def _has_key(section: type, name: str) -> bool:
    return any(f.name == name for f in fields(section))


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
        "task.observations": ["state", "images", "tactile"], "cameras": cams,
        "task.max_episode_steps": 50,
        # A frozen conv trunk (its features computed without gradients once per batch and
        # shared by actor and critics), no DrQ shifts, 2 critics, UTD 1, batch 128, bf16 where
        # native: measured in bench/rehearsal_learning.py.
        "agent.num_critics": 2, "agent.utd_ratio": 1, "agent.batch_size": 128,
        "agent.bc_weight": 2.0, "agent.encoder.freeze_image_encoder": True,
        "agent.encoder.augment": False,
        "agent.precision": "bf16" if has_native_bf16(torch.device("cpu")) else "fp32",
        "actor.max_lead": 50, "actor.learner_timeout": 60.0,
        "learner.run_dir": str(run_dir / "train"), "learner.demos": str(run_dir / "demos"),
    }
    from robot_rl.hil.config import RewardConfig
    if _has_key(RewardConfig, "consecutive"):
        overrides["hil.reward.consecutive"] = 2  # one false positive frame does not end an episode
    cfg = load_config(args.config or None, {**overrides, **parse_sets(args.set)})
    return cfg


def stage_config(cfg: Config, stage: str, run_dir: Path) -> Config:
    """The training configuration adapted to one stage."""
    if stage == "demos":
        # The operator demonstrates every episode; success is the operator's button (the
        # classifier does not exist yet); the reward node records the labelled frames.
        reward = replace(cfg.hil.reward, source="human", record_dir=str(run_dir / "frames"))
        return replace(cfg, sim=replace(cfg.sim, operator="demonstrate"),
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


class GraphAuditor:
    """Audits the live graph every ``period`` s from a thread (``privileged_links`` of
    robot_rl/ros/graph_audit.py) and keeps every link to a simulator-only name it saw."""

    def __init__(self, node, period: float = 10.0):
        from robot_rl.ros.graph_audit import privileged_links
        self._audit, self.node, self.period = privileged_links, node, period
        self.links: set[str] = set()
        self.audits = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def audit_now(self) -> None:
        found = self._audit(self.node)
        with self._lock:
            self.links.update(found)
            self.audits += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.audit_now()
            except Exception as exc:  # the context went down (a signal): the stage reports it
                print(f"[demo] graph audit failed: {exc!r}", file=sys.stderr)
                return

    def close(self) -> list[str]:
        self._stop.set()
        self.thread.join(timeout=self.period + 5.0)
        with self._lock:
            return sorted(self.links)


def rehearsal_stages(base_cls):
    """The rehearsal's stages on top of the main demo's (``robot_rl.demo.Stages``)."""

    class RehearsalStages(base_cls):
        names = REHEARSAL_STAGES

        def __init__(self, cfg, config_file, run_dir, args, state):
            super().__init__(cfg, config_file, run_dir, args, state)
            self.train_steps = args.train_steps or (200 if args.quick else 5_000)

        # -- demos: the operator through the joy pad; labelled frames alongside -------------
        def demos(self) -> None:
            import shutil
            import subprocess

            from robot_rl.graph import NodeSpec, graph
            from robot_rl.launcher import NodeGraph
            out = Path(self.cfg.learner.demos)
            if out.exists():
                shutil.rmtree(out)  # an interrupted recording restarts cleanly
            frames = self.run_dir / "frames"
            if frames.exists():
                shutil.rmtree(frames)
            path = write_stage_config(self.cfg, "demos", self.run_dir)
            cfg = load_config(path)
            specs = graph(cfg, path, "demos") + [
                NodeSpec("reward", "reward", "robot_rl.ros.reward_node", {"config_file": path})]
            cmd = [sys.executable, "-m", "robot_rl.cli", "record-demos", "--device", "joy",
                   "--config", path, "--out", str(out), "--episodes", str(self.demo_count)]
            log_dir = self.run_dir / "logs/demos"
            with NodeGraph(specs, log_dir=log_dir):
                with open(log_dir / "record_demos.log", "ab") as log:
                    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise RuntimeError(f"record-demos exited with {proc.returncode}; see "
                                   f"{log_dir / 'record_demos.log'}")
            from robot_rl.learning.replay import stored_counts
            episodes, transitions = stored_counts(str(out))
            saved = sorted(frames.glob("frames_*.npz"))
            if not saved:
                raise RuntimeError(f"the reward node saved no labelled frames in {frames}; see "
                                   f"{log_dir / 'reward.log'}")
            self.state.numbers["demonstrations"] = episodes
            self.state.numbers["demonstration_transitions"] = transitions
            print(f"[demo] recorded {episodes} demonstrations through the joy pad "
                  f"({transitions} transitions) and labelled frames {[p.name for p in saved]}")

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

        # -- train: HIL-SERL on classifier rewards, audited ---------------------------------
        def train(self) -> None:
            import rclpy
            if not rclpy.ok():
                rclpy.init()
            audit_node = rclpy.create_node("demo_graph_audit")
            auditor = GraphAuditor(audit_node)
            try:
                super().train()
                auditor.audit_now()  # the graph is down by now; the thread's audits count
            finally:
                links = auditor.close()
                audit_node.destroy_node()
            if auditor.audits < 2:
                raise RuntimeError(f"the graph was audited {auditor.audits} time(s) while "
                                   f"training; expected at least 2")
            self.state.numbers["privileged_subscriptions"] = len(links)
            self.state.numbers["privileged_links"] = links
            self.state.numbers["graph_audits"] = auditor.audits
            print(f"[demo] graph audit during training ({auditor.audits} audits): "
                  f"{len(links)} link(s) to simulator-only names {links}")

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

    return RehearsalStages


def rehearsal_figures(numbers: dict, elapsed_s: float) -> dict:
    """The issue's four figures from the stages' numbers."""
    counts = numbers.get("classifier_confusion") or {}
    negatives = counts.get("false_positive", 0) + counts.get("true_negative", 0)
    fp_rate = counts.get("false_positive", 0) / negatives if negatives else float("nan")
    return {"rehearsal_deployed_success_rate": numbers.get("deployed_success_rate"),
            "rehearsal_wall_clock_min": round(elapsed_s / 60, 1),
            "classifier_false_positive_rate": fp_rate,
            "privileged_subscriptions": numbers.get("privileged_subscriptions")}
