"""``robot-rl demo --task NAME``: the demo's stages for a task other than the pick, in one
process on the in-process MuJoCo env (``SimTaskEnv``) instead of a ROS 2 node graph.

  demos   the task's scripted expert (``Task.expert``): ``--demos`` successful episodes
  train   RLPD from the demonstrations (``train-gym``'s loop), the agent checkpointed
  export  ONNX with the torch/ONNX parity check; the torch policy's in-process success
  deploy  the exported model through the deployed controller's tick (``evaluate_deployed``:
          observation, policy, command mapping and safety layer of the controller node)
  report  Markdown summary with the figures

The configuration starts from ``config/<NAME>.yaml`` when the project has one (the task's own
settings, e.g. ``config/peg_insert.yaml``), then ``--config`` and ``--set``. What this path does
not do (yet): the ROS 2 graph (actor, learner, simulated human over DDS), which the pick demo
runs; the task's simulator state (hole pose) is not on the ROS 2 contract.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from robot_rl.config import Config, load_config
from robot_rl.paths import shared_file
from robot_rl.schema import ConfigError


def task_demo_config(args) -> Config:
    """``config/<task>.yaml`` if the project ships one, under ``--config`` and ``--set``."""
    from robot_rl.cli import parse_sets
    from robot_rl.envs.task import task_class

    task_class(args.task)  # an unknown task is refused here, naming what was tried
    if args.images or args.rehearsal:
        raise ConfigError("--task runs the in-process stages, which have no --images or "
                          "--rehearsal form; for images use --set "
                          "'task.observations=[state, images, tactile]'")
    base = args.config or None
    if base is None:
        own = shared_file("config", f"{args.task}.yaml")
        base = str(own) if own.is_file() else None
    overrides = {"task.name": args.task, **parse_sets(args.set)}
    # The recipe of bench/tactile_ablation.py, sized for 2 cores; smaller still with --quick.
    size = 64 if args.quick else 128
    cfg = load_config(base, {"agent.preset": "demos", "agent.utd_ratio": 2, "agent.num_threads": 1,
                             "agent.hidden_dims": [size, size], "agent.batch_size": size,
                             **overrides})
    if cfg.task.name != args.task:
        raise ConfigError(f"--task {args.task!r} but the configuration sets task.name "
                          f"{cfg.task.name!r}; expected one task")
    return cfg


class ExpertPolicy:
    """A task's scripted expert as a ``record_episodes`` policy: it acts on the env's
    snapshot (the expert may read simulator state) and restarts with every episode."""

    def __init__(self, env, expert):
        self.env, self.expert = env, expert

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs) -> np.ndarray:
        return self.expert.act(self.env.snapshot)


class InProcessStages:
    """The five demo stages for ``--task`` (see the module docstring)."""

    names = ("demos", "train", "export", "deploy", "report")

    def __init__(self, cfg: Config, config_file: str, run_dir: Path, args, state):
        self.cfg, self.config_file, self.run_dir = cfg, config_file, run_dir
        self.args, self.state = args, state
        quick = args.quick
        self.demo_count = 3 if quick else args.demos
        self.train_steps = args.train_steps or (300 if quick else 5_000)
        self.eval_episodes = args.eval_episodes or (3 if quick else 50)
        self.demo_dir = run_dir / "demos"
        self.checkpoint = run_dir / "train" / "checkpoint"
        self.model = run_dir / "policy.onnx"

    def _env(self):
        from robot_rl.envs.pick_cube import SimTaskEnv
        return SimTaskEnv(self.cfg)

    def demos(self) -> None:
        from robot_rl.learning.demos import record_episodes

        if self.demo_dir.exists():
            shutil.rmtree(self.demo_dir)  # an interrupted recording restarts cleanly
        env = self._env()
        try:
            expert = env.task.expert(noise=0.1, rng=np.random.default_rng(self.cfg.sim.seed))
            if expert is None:
                raise ConfigError(f"task {self.cfg.task.name!r} has no scripted expert "
                                  f"(Task.expert returns None); record demonstrations with a "
                                  f"device instead (robot-rl record-demos --device ...)")
            demos = record_episodes(env, ExpertPolicy(env, expert), self.demo_count,
                                    out=str(self.demo_dir), seed=1_000)
        finally:
            env.close()
        numbers = self.state.numbers
        numbers["demonstrations"] = len(demos.episode_lengths)
        numbers["demonstration_transitions"] = demos.transitions
        numbers["expert_success_rate"] = len(demos.episode_lengths) / demos.attempts
        numbers["expert_mean_steps"] = float(np.mean(demos.episode_lengths))
        print(f"[demo] {len(demos.episode_lengths)} demonstrations in {demos.attempts} attempts "
              f"({demos.transitions} transitions, {demos.wall_s:.0f} s) to {self.demo_dir}")

    def train(self) -> None:
        from robot_rl.learning.checkpoint import save_agent
        from robot_rl.learning.train_gym import TrainGymConfig, train

        env = self._env()
        try:
            # The online buffer holds the whole run: allocating train-gym's default million
            # transitions failed for camera observations (MemoryError, 1M x 128 x 128 x 3).
            capacity = min(self.cfg.learner.capacity, self.train_steps + 1_000)
            result = train(env, TrainGymConfig(agent=self.cfg.agent, learning_starts=0,
                                               verbose=False, seed=self.cfg.sim.seed,
                                               buffer_capacity=capacity),
                           self.train_steps, demos=str(self.demo_dir))
        finally:
            env.close()
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        save_agent(str(self.checkpoint), result["agent"])
        successes = result["episode_successes"]
        last = successes[-20:]
        numbers = self.state.numbers
        numbers["train_env_steps"] = int(result["steps"])
        numbers["train_episodes"] = int(result["episodes"])
        numbers["train_success_rate_last20"] = float(np.mean(last)) if last else 0.0
        (self.run_dir / "train" / "episodes.json").write_text(json.dumps(
            {"successes": [bool(s) for s in successes],
             "lengths": [int(n) for n in result["episode_lengths"]]}))
        print(f"[demo] trained {result['steps']} env steps ({result['episodes']} episodes, "
              f"{result['wall_s']:.0f} s); success over the last {len(last)}: "
              f"{numbers['train_success_rate_last20']:.0%}")

    def export(self) -> None:
        from robot_rl.deploy.agent_export import export_agent, load_agent_checkpoint
        from robot_rl.learning.train_gym import evaluate_policy

        agent = load_agent_checkpoint(self.checkpoint, self.cfg)
        result = export_agent(agent, self.cfg, self.model, run_id=self.run_dir.name)
        env = self._env()
        try:
            torch_rate = evaluate_policy(agent, env, self.eval_episodes, seed=100_000)["success_rate"]
        finally:
            env.close()
        self.state.numbers["onnx_parity_max_abs_diff"] = float(result.max_abs_diff)
        self.state.numbers["torch_success_rate"] = torch_rate
        print(f"[demo] exported {self.model} (parity {result.max_abs_diff:.1e}); torch policy "
              f"{torch_rate:.0%} in-process")

    def deploy(self) -> None:
        from robot_rl.deploy.evaluation import evaluate_deployed

        rate = evaluate_deployed(self.cfg, self.model, self.eval_episodes, seed=200_000)
        self.state.numbers["deployed_success_rate"] = rate
        self.state.numbers["eval_episodes"] = self.eval_episodes
        print(f"[demo] deployed ONNX policy through the controller's tick: {rate:.0%} success "
              f"over {self.eval_episodes} episodes")

    def report(self) -> None:
        from robot_rl.report import write_summary

        numbers = dict(self.state.numbers)
        numbers["wall_clock_min_all_stages"] = round(self.state.elapsed / 60, 1)
        numbers.update({f"stage_{k}_s": round(v, 1) for k, v in self.state.done.items()})
        notes = [f"task: {self.cfg.task.name}; observations: "
                 f"{', '.join(self.cfg.task.observations)}; control "
                 f"{self.cfg.control_rate_hz:g} Hz",
                 "in-process stages (robot_rl/demo_inprocess.py): no ROS 2 graph",
                 f"demonstrations: {self.demo_dir}; checkpoint: {self.checkpoint}"]
        write_summary(self.run_dir / "report.md", f"robot-rl demo report: {self.cfg.task.name}",
                      numbers, [], notes)
        print((self.run_dir / "report.md").read_text())
