"""Sim-to-sim gap check: train with and without domain randomisation, evaluate on the nominal
and on a shifted simulator (docs/sim_to_real.md; results in docs/benchmarks.md, "Issue 23 —
sim-to-sim").

    nice -n 10 python bench/sim_to_sim.py                    # seeds 0 1, 2,000 steps each
    nice -n 10 python bench/sim_to_sim.py --seeds 0 --steps 1000 --eval-episodes 10

For every seed, two agents learn the pick task from state (in-process, no ROS) with the
sample-efficiency recipe of docs/benchmarks.md (RLPD, 2 critics, UTD 4, BC weight 2, episodes of
50 steps, 20 scripted demonstrations recorded on the nominal sim): one on the nominal stand-in,
one with ``--randomized`` (config/sim_randomized.yaml) applied per episode. Each final policy
then runs ``--eval-episodes`` deterministic episodes on the nominal sim and on ``--shifted``
(config/sim_shifted.yaml: every randomised quantity outside the training ranges, and another
time step, integrator, friction cone, no-slip pass and contact softness). The table gives the
success on each and the gap (nominal - shifted); the scripted expert's success on each sim is
printed as the reference of what the shifted sim still allows.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robot_rl.config import load_config  # noqa: E402
from robot_rl.schema import to_dict  # noqa: E402
from robot_rl.envs.pick_cube import PickCubeEnv  # noqa: E402
from robot_rl.learning.config import EncoderConfig  # noqa: E402
from robot_rl.learning.record_demos import ExpertPolicy, record  # noqa: E402
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig  # noqa: E402
from robot_rl.learning.train_gym import evaluate_policy  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_SEED = 10_000
STATE_TASK = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
              "task.max_episode_steps": 50}


def expert_success(cfg, episodes: int) -> float:
    env = PickCubeEnv(cfg)
    expert = env.task.expert(noise=0.0, rng=np.random.default_rng(0))
    policy, wins = ExpertPolicy(expert, env), 0
    try:
        for e in range(episodes):
            obs, _ = env.reset(seed=EVAL_SEED + e)
            policy.reset()
            for _ in range(env.task.max_episode_steps):
                obs, _, term, trunc, info = env.step(policy(obs))
                if term or trunc:
                    break
            wins += int(info["success"])
    finally:
        env.close()
    return wins / episodes


def train(cfg, demo_dir: str, steps: int, seed: int, eval_cfg, eval_every: int,
          eval_episodes: int) -> tuple[RLPDAgent, list[dict]]:
    """RLPD from state with the benchmarks' recipe; nominal success logged every eval_every."""
    env, eval_env = PickCubeEnv(cfg), PickCubeEnv(eval_cfg)
    agent_cfg = RLPDConfig(hidden_dims=(256, 256), num_critics=2, critic_subset=2,
                           init_temperature=0.01, bc_weight=2.0, utd_ratio=4, batch_size=256,
                           demo_ratio=0.5, discount=0.97, seed=seed,
                           encoder=EncoderConfig(normalize_inputs=True))
    agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
    demo = ReplayBuffer.load(demo_dir, resume=False, seed=seed + 1, verbose=False, name="demo")
    agent.fit_input_normalization(demo.observations())
    online = ReplayBuffer(env.observation_space, env.action_space.shape[0], steps, seed=seed,
                          verbose=False, name="online")
    buffers = DemoOnlineBuffers(demo, online, agent_cfg.demo_ratio)
    curve, t0 = [], time.perf_counter()
    obs, _ = env.reset(seed=seed)
    for step in range(1, steps + 1):
        action = agent.act(obs)
        nobs, r, term, trunc, info = env.step(action)
        online.add(obs, action, float(r), nobs, bool(term), bool(trunc))
        obs = env.reset()[0] if term or trunc else nobs
        agent.update(*buffers.sample(agent_cfg.batch_size, agent_cfg.utd_ratio))
        if step % eval_every == 0 and step < steps:
            sr = evaluate_policy(agent, eval_env, eval_episodes, EVAL_SEED)["success_rate"]
            curve.append({"env_steps": step, "nominal_success": sr,
                          "wall_s": round(time.perf_counter() - t0, 1)})
            print(f"#   {step} steps: nominal success {sr:.0%} ({curve[-1]['wall_s']} s)",
                  flush=True)
    env.close()
    eval_env.close()
    return agent, curve


def evaluate_on(agent, cfg, episodes: int) -> float:
    env = PickCubeEnv(cfg)
    try:
        return evaluate_policy(agent, env, episodes, EVAL_SEED)["success_rate"]
    finally:
        env.close()


def print_table(rows: list[dict]) -> None:
    print(f"\n{'seed':>4}  {'train':<8} {'nominal':>8} {'shifted':>8} {'gap':>6}")
    for row in sorted(rows, key=lambda r: (r["train_dr"], r["seed"])):
        print(f"{row['seed']:>4}  {'DR' if row['train_dr'] else 'no DR':<8} {row['nominal']:>8.0%} "
              f"{row['shifted']:>8.0%} {row['gap']:>+6.0%}")
    for dr in sorted({r["train_dr"] for r in rows}):
        mine = [r for r in rows if r["train_dr"] == dr]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in ("nominal", "shifted", "gap")}
        print(f"{'mean':>4}  {'DR' if dr else 'no DR':<8} {mean['nominal']:>8.0%} "
              f"{mean['shifted']:>8.0%} {mean['gap']:>+6.0%}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=2000, help="env steps of training per agent")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=1000, help="nominal success during training")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--randomized", default=os.path.join(REPO, "config", "sim_randomized.yaml"))
    p.add_argument("--shifted", default=os.path.join(REPO, "config", "sim_shifted.yaml"))
    p.add_argument("--conditions", nargs="+", choices=("nominal", "dr"), default=["nominal", "dr"],
                   help="which agents to train: on the nominal sim, with randomisation")
    p.add_argument("--decompose", action="store_true",
                   help="also evaluate on the shifted sim's halves: its solver settings alone "
                        "(shifted_physics) and its parameter values alone (shifted_params)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="", help="also write the results as JSON here")
    p.add_argument("--table", nargs="+", metavar="JSON", help="only print the table of earlier "
                   "--out files or printed outputs (runs split over processes)")
    args = p.parse_args(argv)
    if args.table:
        rows = []
        for path in args.table:
            with open(path) as f:
                text = f.read()
            if path.endswith(".json"):
                result = json.loads(text)
                print(f"# {path}: expert {result['expert']}, {result['args']['eval_episodes']} "
                      f"evaluation episodes per cell, {result['args']['steps']} training steps")
                rows += result["rows"]
            else:  # this script's printed output: its result lines
                rows += [json.loads(line) for line in text.splitlines()
                         if line.startswith('{"seed"')]
                print("\n".join(f"# {path}: {line[2:]}" for line in text.splitlines()
                                if line.startswith("# scripted expert")))
        print_table(rows)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    nominal = load_config(None, STATE_TASK)
    randomized = load_config(args.randomized, STATE_TASK)
    shifted = load_config(args.shifted, STATE_TASK)
    sims = {"nominal": nominal, "shifted": shifted}
    if args.decompose:
        sims["shifted_physics"] = load_config(args.shifted, {
            **STATE_TASK, "sim.randomization.enabled": False})
        sims["shifted_params"] = load_config(args.shifted, {
            **STATE_TASK, "sim.physics_dt": nominal.sim.physics_dt,
            **{f"sim.physics.{k}": v for k, v in to_dict(nominal.sim.physics).items()}})
    if not randomized.sim.randomization.enabled:
        raise SystemExit(f"--randomized {args.randomized}: sim.randomization.enabled is false")

    reference = {name: expert_success(sim_cfg, args.eval_episodes)
                 for name, sim_cfg in sims.items()}
    print("# scripted expert: " + ", ".join(f"{name} {sr:.0%}" for name, sr in reference.items())
          + f" ({args.eval_episodes} episodes each)", flush=True)
    rows, t_start = [], time.perf_counter()
    for seed in args.seeds:
        demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_s2s_"), "demos")
        record(nominal, demo_dir, args.demos, seed=seed + 50_000, verbose=False)
        for dr in [c == "dr" for c in args.conditions]:
            t0 = time.perf_counter()
            print(f"# seed {seed}, train {'with' if dr else 'without'} randomisation", flush=True)
            agent, curve = train(randomized if dr else nominal, demo_dir, args.steps, seed,
                                 nominal, args.eval_every, args.eval_episodes)
            row = {"seed": seed, "train_dr": dr, "steps": args.steps,
                   **{name: evaluate_on(agent, sim_cfg, args.eval_episodes)
                      for name, sim_cfg in sims.items()},
                   "wall_s": round(time.perf_counter() - t0, 1), "curve": curve}
            row["gap"] = row["nominal"] - row["shifted"]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)

    print_table(rows)
    print(f"# {args.eval_episodes} evaluation episodes per cell, {args.steps} training steps, "
          f"total {time.perf_counter() - t_start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"expert": reference, "rows": rows, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
