"""Issue 25 on a stock task: Gymnasium-Robotics FetchPickAndPlace through robot_rl's public API.

    pip install -e '.[test]'        # gymnasium-robotics comes with the test extra
    python bench/past_demos_fetch.py --seeds 0 1 --steps 10000

What a user with their own env does: wrap it (``robot_rl.envs.fetch.SuccessTask``: flat
``observation`` + ``desired_goal``, 0/1 reward from ``info["is_success"]``, episode ends on
success), record 20 scripted demonstrations with ``robot_rl.learning.demos.record_episodes``
(``FetchPickPlaceExpert``, from the observation alone) and call ``train_gym.train`` with the
recipe. Per seed it prints the demonstrations' mean steps to success, behaviour cloning alone on
the same network (``bench/past_demos.py``'s ``train_bc``), and the recipe's deterministic
evaluations every ``--eval-every`` env steps; then the deployed (kept-best) policy and BC are
re-evaluated on ``--final-episodes`` fresh goals.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from past_demos import FINAL_SEED, summarise, train_bc  # noqa: E402

from robot_rl.envs.fetch import FetchPickPlaceExpert, make_fetch_env  # noqa: E402
from robot_rl.learning.demos import record_episodes  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig  # noqa: E402
from robot_rl.learning.train_gym import TrainGymConfig, evaluate_policy, train  # noqa: E402


def run_seed(args: argparse.Namespace, seed: int) -> Dict[str, Any]:
    env_id = args.env
    demo_env = make_fetch_env(env_id)
    rec = record_episodes(demo_env, FetchPickPlaceExpert(args.demo_noise, np.random.default_rng(seed)),
                          args.demos, seed=seed + 50_000)
    demo_steps = float(np.mean(rec.episode_lengths))
    print(f"# {env_id}, seed {seed}: {len(rec.episode_lengths)} demos ({rec.attempts} attempts), "
          f"mean {demo_steps:.2f} steps to success", flush=True)
    agent_cfg = RLPDConfig(num_critics=args.critics, critic_subset=2, utd_ratio=args.utd, batch_size=args.batch,
                           discount=args.discount, bc_weight=args.bc_weight, bc_q_filter=args.bc_q_filter,
                           seed=seed, num_threads=args.threads)
    out: Dict[str, Any] = {"seed": seed, "demo_mean_steps": round(demo_steps, 2)}
    eval_env = make_fetch_env(env_id)
    if not args.no_bc_baseline:
        bc_agent = RLPDAgent(demo_env.observation_space, demo_env.action_space, agent_cfg)
        bc_agent.fit_input_normalization(rec.buffer.observations())
        out["bc_curve"] = train_bc(bc_agent, rec.buffer, args.bc_steps, args.batch // 2, eval_env, 1000,
                                   args.eval_episodes)["curve"]
        bc_fresh = evaluate_policy(bc_agent, eval_env, args.final_episodes, FINAL_SEED)
        out["bc_fresh"] = {k: bc_fresh[k] for k in ("success_rate", "mean_steps_to_success")}
        print(json.dumps({"bc_fresh": out["bc_fresh"]}), flush=True)

    curve: List[Dict[str, Any]] = []
    window = {"episodes": 0, "successes": 0}

    def progress(p: Dict[str, Any]) -> None:
        if p["event"] == "episode":
            window["episodes"] += 1
            window["successes"] += int(p["success"])
            return
        row = {"env_steps": p["step"], "success_rate": p["success_rate"],
               "mean_steps_to_success": (round(p["mean_steps_to_success"], 2)
                                         if p["mean_steps_to_success"] is not None else None),
               "train_success": (round(window["successes"] / window["episodes"], 3)
                                 if window["episodes"] else None)}
        window.update(episodes=0, successes=0)
        curve.append(row)
        print(json.dumps(row), flush=True)

    cfg = TrainGymConfig(agent=agent_cfg, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                         seed=seed, verbose=False, buffer_capacity=args.steps + 1)
    res = train(lambda: make_fetch_env(env_id), cfg, args.steps, demos=rec, eval_env=eval_env, callback=progress)
    deployed = evaluate_policy(res["agent"], eval_env, args.final_episodes, FINAL_SEED)
    summary = summarise(curve) if curve else {}
    summary.update(kept_step=res["kept_step"], demo_mean_steps=out["demo_mean_steps"],
                   kept_fresh={k: deployed[k] for k in ("success_rate", "mean_steps_to_success")},
                   wall_s=round(res["wall_s"], 1))
    steps = deployed["mean_steps_to_success"]
    if steps:
        summary["speedup_vs_demos"] = round(demo_steps / steps, 2)
        if out.get("bc_fresh", {}).get("mean_steps_to_success"):
            summary["speedup_vs_bc"] = round(out["bc_fresh"]["mean_steps_to_success"] / steps, 2)
    if "bc_fresh" in out:
        summary["bc_fresh"] = out["bc_fresh"]
    out.update(rl_curve=curve, summary=summary)
    print("# summary " + json.dumps(summary), flush=True)
    for e in (demo_env, eval_env):
        e.close()
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="FetchPickAndPlace-v4")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--demo-noise", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--final-episodes", type=int, default=50)
    p.add_argument("--bc-steps", type=int, default=3000)
    p.add_argument("--no-bc-baseline", action="store_true")
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--utd", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--discount", type=float, default=0.97)
    p.add_argument("--bc-weight", type=float, default=2.0)
    p.add_argument("--bc-q-filter", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run_seed(args, seed) for seed in args.seeds]
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": vars(args), "seeds": results}, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
