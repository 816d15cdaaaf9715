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

Every evaluation row also says what drift is made of (``past_demos_common``): the critic's Q on
the evaluation episodes against their Monte-Carlo returns, the temperature, the policy's
distance to the demo actions and the share of demo states the Q-filter would still clone.
Evaluations use the same ``--eval-episodes`` goals every time (50 tells a 20-point change from
noise: the binomial standard error at 60 % is 7 points, against 11 with 20 episodes).
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

from past_demos_common import (EVAL_SEED, ExpectedAction, add_rl_args, agent_config,  # noqa: E402
                               demo_diagnostics, evaluate_with_values, fresh, speedups, summarise,
                               train_bc, write_json)

from robot_rl.envs.fetch import FetchPickPlaceExpert, make_fetch_env  # noqa: E402
from robot_rl.learning.demos import record_episodes  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent  # noqa: E402
from robot_rl.learning.train_gym import TrainGymConfig, evaluate_policy, train  # noqa: E402


def run_seed(args: argparse.Namespace, seed: int) -> Dict[str, Any]:
    env_id = args.env
    demo_env = make_fetch_env(env_id)
    rec = record_episodes(demo_env, FetchPickPlaceExpert(args.demo_noise, np.random.default_rng(seed)),
                          args.demos, seed=seed + 50_000)
    demo_steps = float(np.mean(rec.episode_lengths))
    print(f"# {env_id}, seed {seed}: {len(rec.episode_lengths)} demos ({rec.attempts} attempts), "
          f"mean {demo_steps:.2f} steps to success", flush=True)
    agent_cfg = agent_config(args, seed)
    out: Dict[str, Any] = {"seed": seed, "demo_mean_steps": round(demo_steps, 2)}
    eval_env = make_fetch_env(env_id)
    if not args.no_bc_baseline:
        bc_agent = RLPDAgent(demo_env.observation_space, demo_env.action_space, agent_cfg)
        bc_agent.fit_input_normalization(rec.buffer.observations())
        out["bc_curve"] = train_bc(bc_agent, rec.buffer, args.bc_steps, args.batch // 2, eval_env, 1000,
                                   args.eval_episodes)["curve"]
        out["bc_fresh"] = fresh(bc_agent, eval_env, args.final_episodes)
        print(json.dumps({"bc_fresh": out["bc_fresh"]}), flush=True)

    curve: List[Dict[str, Any]] = []
    window = {"episodes": 0, "successes": 0}
    values_env = make_fetch_env(env_id)  # the session's eval env stays the session's

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
        # The same deterministic episodes again, now with the critic's values along them.
        values = evaluate_with_values(p["agent"], values_env, args.eval_episodes, EVAL_SEED, args.discount)
        # Its first 20 goals are the 20 of a default evaluation: the same run read both ways.
        row.update({k: values[k] for k in ("q_mean", "mc_return_mean", "q_minus_mc")},
                   success_first_20=float(np.mean(values["successes"][:20])),
                   # The same goals with sampled actions: where the mean and the samples part ways.
                   success_sampled=evaluate_policy(p["agent"], values_env, args.eval_episodes, EVAL_SEED,
                                                   deterministic=False)["success_rate"],
                   success_expected=evaluate_policy(ExpectedAction(p["agent"]), values_env,
                                                    args.eval_episodes, EVAL_SEED)["success_rate"],
                   **demo_diagnostics(p["agent"], rec.buffer))
        curve.append(row)
        print(json.dumps(row), flush=True)

    cfg = TrainGymConfig(agent=agent_cfg, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                         seed=seed, verbose=False, buffer_capacity=args.steps + 1)
    res = train(lambda: make_fetch_env(env_id), cfg, args.steps, demos=rec, eval_env=eval_env, callback=progress)
    summary = summarise(curve) if curve else {}
    summary.update(kept_step=res["kept_step"], demo_mean_steps=out["demo_mean_steps"],
                   kept_fresh=fresh(res["agent"], eval_env, args.final_episodes), wall_s=round(res["wall_s"], 1))
    if "bc_fresh" in out:
        summary["bc_fresh"] = out["bc_fresh"]
    speedups(summary, demo_steps)
    out.update(rl_curve=curve, summary=summary)
    print("# summary " + json.dumps(summary), flush=True)
    for e in (demo_env, eval_env, values_env):
        e.close()
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="FetchPickAndPlace-v4")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    add_rl_args(p, steps=10_000)
    p.add_argument("--demo-noise", type=float, default=0.1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run_seed(args, seed) for seed in args.seeds]
    write_json(args.json_out, {"args": vars(args), "seeds": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
