"""``robot-rl demo --task NAME --graph``: the pick demo's stages (robot_rl/demo.py) for another
task, as the same ROS 2 node graph of separate processes on the MuJoCo stand-in:

  demos   the task's scripted expert (``Task.expert``) over the robot contract (RosRobotEnv)
  train   HIL-SERL: learner, actor, the simulated human correcting with the task's expert
          (``Task.human_view`` says when), rewards from the task's success test
  export  ONNX with the parity check; the torch policy's in-process success
  deploy  the controller node drives the stand-in over DDS (``evaluate_deployed_ros``)
  report  Markdown summary, plots, takeovers

A task that reads simulator state other than the object's (the peg's hole: ``Snapshot.fixtures``)
gets it from ``/sim/fixtures/<name>``; the demos stage records which fixtures the graph carried.
Without ``--graph``, ``--task`` runs the in-process stages (robot_rl/demo_inprocess.py).
"""
from __future__ import annotations

import re
from pathlib import Path

from robot_rl.config import Config
from robot_rl.schema import ConfigError


def task_graph_config(args) -> Config:
    """The in-process recipe (``task_demo_config``: the task's own config file, the agent
    sized for 2 cores) plus what the graph needs, under the user's ``--set``; refuses a task
    the simulated human cannot watch or correct when ``hil.device`` is ``sim_human``."""
    from robot_rl.demo_inprocess import task_demo_config

    run_dir = Path(args.run_dir).resolve()
    graph_defaults = [f"learner.run_dir={run_dir / 'train'}", f"learner.demos={run_dir / 'demos'}",
                      "actor.max_lead=50"]
    user_sets = list(args.set)
    args.set = graph_defaults + user_sets
    try:
        cfg = task_demo_config(args)
    finally:
        args.set = user_sets
    if not any(s.startswith("cameras") for s in user_sets):
        for cam in cfg.cameras:  # monitoring only (no image observations): a frame a second
            cam.fps = 1
    if cfg.hil.device == "sim_human":
        from robot_rl.hil.sim_human import SimHuman
        SimHuman.from_config(cfg)  # ConfigError now, not from a node process minutes later
    elif cfg.hil.device not in ("none",):
        raise ConfigError(f"--graph trains with hil.device sim_human or none (nobody holds a "
                          f"device in the demo); got {cfg.hil.device!r}")
    return cfg


class TaskGraphMixin:
    """What ``--task NAME --graph`` adds to the pick demo's stages (see the module docstring);
    robot_rl/demo.py combines it with ``Stages`` (as the rehearsal's mixin), so imports flow
    one way."""

    def demos(self) -> None:
        super().demos()
        self.state.numbers["graph_fixtures"] = self.graph_fixtures
        print(f"[demo] fixture poses on the graph: {self.graph_fixtures or 'none'}")

    def train(self) -> None:
        super().train()
        log = self.run_dir / "logs" / "train" / "intervention.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        self.state.numbers["train_takeovers"] = len(re.findall(r"sim human takes over", text))
        self.state.numbers["train_releases"] = len(re.findall(r"sim human releases", text))
        print(f"[demo] simulated human: {self.state.numbers['train_takeovers']} takeovers, "
              f"{self.state.numbers['train_releases']} releases")

    def report(self) -> None:
        self.state.numbers["task"] = self.cfg.task.name
        super().report()
