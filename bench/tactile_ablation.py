"""Issue 23: does touch help the peg insertion? Success vs env steps with and without the
tactile observation (and, with --shifted, trained with/without domain randomisation and
evaluated on the shifted sim).

Each run: 20 scripted demonstrations (the task's expert, same seed for both arms), RLPD from
them on the in-process MuJoCo env (``train-gym``'s loop), a deterministic evaluation every
``--eval-every`` env steps on a separate env. Arms differ only in ``task.observations``.

    nice -n 10 python bench/tactile_ablation.py --steps 2000 --seeds 0 1
    nice -n 10 python bench/tactile_ablation.py --shifted --steps 2000 --seeds 0 1

Prints one line per evaluation and a table at the end; ``--json`` writes every figure.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

ARMS = {"state+tactile": ["state", "tactile"], "state": ["state"]}


def run(observations: list[str], seed: int, steps: int, eval_every: int, eval_episodes: int,
        demos: int, randomized: bool = False, eval_config: str | None = None) -> dict:
    import torch

    from robot_rl.config import load_config
    from robot_rl.demo_inprocess import ExpertPolicy
    from robot_rl.envs.pick_cube import SimTaskEnv
    from robot_rl.learning.demos import record_episodes
    from robot_rl.learning.rlpd import RLPDConfig
    from robot_rl.learning.train_gym import TrainGymConfig, evaluate_policy, train
    from robot_rl.paths import shared_file

    torch.set_num_threads(1)
    base = str(shared_file("config", "peg_insert.yaml"))
    overrides = {"task.observations": observations, "sim.seed": seed}
    cfg = load_config(base, overrides)
    if randomized:
        cfg = load_config(base, {**overrides, **_randomization(seed)})
    env = SimTaskEnv(cfg)
    eval_cfg = load_config(base, overrides) if eval_config is None else load_config(
        base, {**overrides, **_shifted()})
    eval_env = SimTaskEnv(eval_cfg)
    curve = []
    t0 = time.perf_counter()
    try:
        expert = env.task.expert(noise=0.1, rng=np.random.default_rng(seed))
        recording = record_episodes(env, ExpertPolicy(env, expert), demos, seed=1_000 + 100 * seed)
        agent_cfg = RLPDConfig(num_critics=2, utd_ratio=2, batch_size=128, hidden_dims=[128, 128],
                               bc_weight=2.0, seed=seed, num_threads=1)

        def on_progress(progress):
            if progress.get("event") == "eval":
                curve.append((int(progress["step"]), float(progress["success_rate"])))
                print(f"  {'+'.join(observations):14s} seed {seed}: step {progress['step']:5d} "
                      f"success {progress['success_rate']:.0%} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)

        untrained = None
        result = train(env, TrainGymConfig(agent=agent_cfg, learning_starts=0, verbose=False,
                                           seed=seed, eval_every=eval_every,
                                           eval_episodes=eval_episodes, keep_best=False),
                       steps, demos=recording, eval_env=eval_env, callback=on_progress)
        final = evaluate_policy(result["agent"], eval_env, eval_episodes, seed=50_000)
        if not curve or curve[-1][0] != result["steps"]:
            curve.append((int(result["steps"]), float(result["eval_success_rate"])))
    finally:
        env.close()
        eval_env.close()
    return {"observations": observations, "seed": seed, "randomized": randomized,
            "evaluated_on": "shifted" if eval_config else "nominal",
            "expert_success": len(recording.episode_lengths) / recording.attempts,
            "curve": curve, "final_success": final["success_rate"], "untrained": untrained,
            "wall_s": time.perf_counter() - t0}


def _shifted() -> dict:
    """config/sim_shifted.yaml's sim section, as overrides on the peg configuration (it keeps
    the peg task's own contact stiffness: the shifted file's solver settings replace it)."""
    import yaml

    from robot_rl.paths import shared_file
    data = yaml.safe_load(shared_file("config", "sim_shifted.yaml").read_text())
    return {"sim": data.get("sim", {})}


def _randomization(seed: int) -> dict:
    import yaml

    from robot_rl.paths import shared_file
    data = yaml.safe_load(shared_file("config", "sim_randomized.yaml").read_text())
    sim = dict(data.get("sim", {}))
    sim["randomization"] = {**sim.get("randomization", {}), "seed": seed}
    return {"sim.randomization": sim["randomization"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--shifted", action="store_true",
                        help="state+tactile trained with and without randomisation "
                             "(config/sim_randomized.yaml), evaluated on the shifted sim")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    results = []
    if args.shifted:
        for randomized in (False, True):
            for seed in args.seeds:
                results.append(run(ARMS["state+tactile"], seed, args.steps, args.eval_every,
                                   args.eval_episodes, args.demos, randomized=randomized,
                                   eval_config="shifted"))
    else:
        for arm in args.arms:
            for seed in args.seeds:
                results.append(run(ARMS[arm], seed, args.steps, args.eval_every,
                                   args.eval_episodes, args.demos))
    print("\n| arm | trained | evaluated on | seed | expert | success vs env steps | final "
          f"({args.eval_episodes} ep.) | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        curve = ", ".join(f"{s}: {v:.0%}" for s, v in r["curve"])
        print(f"| {'+'.join(r['observations'])} | {'DR' if r['randomized'] else 'nominal'} | "
              f"{r['evaluated_on']} | {r['seed']} | {r['expert_success']:.0%} | {curve} | "
              f"{r['final_success']:.0%} | {r['wall_s']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
