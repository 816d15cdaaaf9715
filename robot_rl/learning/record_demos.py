"""Record successful scripted-expert demonstrations in the replay on-disk format.

``robot-rl record-demos --out demos/pick --episodes 20`` runs the scripted pick expert in the
in-process ``PickCubeEnv`` (default) or over ROS 2 through ``RosRobotEnv`` (``--ros``, needs a
running sim: the expert reads ``/sim/object_pose``), keeps only successful episodes, and writes
them with ``ReplayBuffer(persist_dir=...)`` so the learner (``learner.demos``) and
``train-gym --demos`` read them directly. Failed episodes are discarded, never written.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np

from robot_rl.config import Config, load_config
from robot_rl.envs.expert import PickExpert


class ExpertPolicy:
    """The scripted pick expert as a policy callable: it plans from the env's ``snapshot``
    (simulator state, so recording with it needs the MuJoCo stand-in)."""

    def __init__(self, expert: PickExpert, env, action_dim: int):
        self.expert, self.env, self.action_dim = expert, env, action_dim

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs) -> np.ndarray:
        return self.expert.act(self.env.snapshot, self.action_dim)


def record(cfg: Config, out: str, episodes: int, env=None, seed: int = 0, noise: float = 0.05,
           max_attempts: Optional[int] = None, verbose: bool = True) -> Dict[str, Any]:
    """Write ``episodes`` successful expert episodes to ``out``; returns a summary."""
    from robot_rl.learning.demos import record_episodes

    if episodes <= 0:  # would write nothing and "succeed"; the learner would fail much later
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    own_env = env is None
    if env is None:
        from robot_rl.envs.pick_cube import PickCubeEnv

        env = PickCubeEnv(cfg)
    expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height, noise=noise,
                        rng=np.random.default_rng(seed))
    try:
        rec = record_episodes(env, ExpertPolicy(expert, env, int(env.action_space.shape[0])),
                              episodes, out=out, seed=seed, max_attempts=max_attempts,
                              verbose=verbose)
    finally:
        if own_env:
            env.close()
    return {"out": out, "episodes": len(rec.episode_lengths), "attempts": rec.attempts,
            "transitions": rec.transitions, "wall_s": rec.wall_s}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from robot_rl.cli import parse_sets
    from robot_rl.schema import ConfigError

    p = argparse.ArgumentParser(prog="robot-rl record-demos",
                                description="Record successful scripted-expert demonstrations.")
    p.add_argument("--out", required=True, help="new replay directory to write")
    p.add_argument("--episodes", type=int, default=20, help="successful episodes to keep")
    p.add_argument("--config", default="", help="YAML configuration (default: built-in)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--ros", action="store_true",
                   help="drive a running robot/sim over ROS 2 (RosRobotEnv) instead of in-process")
    p.add_argument("--noise", type=float, default=0.05, help="expert action noise (diversity)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.episodes <= 0:  # would write no demonstrations yet exit 0
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    try:
        cfg = load_config(args.config or None, parse_sets(args.set))
        env = None
        if args.ros:
            os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
            from robot_rl.envs.ros_env import RosRobotEnv

            env = RosRobotEnv(cfg, node_name="record_demos", timeout=10.0, startup_timeout=30.0)
        try:
            res = record(cfg, args.out, args.episodes, env=env, seed=args.seed, noise=args.noise)
        finally:
            if env is not None:
                env.close()
    except (ConfigError, FileExistsError, RuntimeError) as exc:
        print(f"[record-demos] error: {exc}", file=sys.stderr)
        return 2
    print(f"[record-demos] wrote {res['episodes']} demonstrations ({res['transitions']} "
          f"transitions, {res['attempts']} attempts, {res['wall_s']:.1f} s) to {res['out']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
