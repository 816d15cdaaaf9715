"""Parallel environments (``train-gym --num-envs N``): throughput and wall-clock to 90 % success.

    nice -n 10 python bench/vector_env.py                    # throughput, N = 1, 2, 4, 3 runs each
    nice -n 10 python bench/vector_env.py --to-success       # also wall-clock to 90 % on the pick task

Throughput on the in-process MuJoCo pick task from state (task ``state`` + ``object`` groups):

* env steps/s, environments only: uniform-random actions, N = 1 the plain env in this process,
  N > 1 an ``AsyncVectorEnv`` (one subprocess per env); counts env steps summed over sub-envs.
* training: ``train`` with the sample-efficiency recipe's learner (2 critics, UTD 4, batch 256,
  256x256) and no demonstrations or warm-up: env steps/s and critic updates/s over the whole
  loop (acting, stepping, updating); the sub-envs' start is timed apart. The update-to-data
  ratio is per env step, so every N does the same learning per env step; what N can buy is
  the environments stepping while the learner updates.

``--to-success``: the sample-efficiency recipe (``bench/sample_efficiency.py --critics 2 --utd 4
--bc-weight 2 --set task.max_episode_steps=50``: 20 scripted demonstrations, discount 0.97, BC
weight 2) through ``train`` for each N; deterministic evaluation of 20 episodes every
``--eval-every`` env steps; wall-clock (with and without the evaluations) to the first >= 90 %.
Prints the load average around every run: the machine is shared, read the figures with it.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robot_rl.config import load_config  # noqa: E402
from robot_rl.envs.pick_cube import PickCubeEnv  # noqa: E402
from robot_rl.learning.record_demos import record  # noqa: E402
from robot_rl.learning.rlpd import RLPDConfig  # noqa: E402
from robot_rl.learning.train_gym import TrainGymConfig, train  # noqa: E402
from robot_rl.learning.vector_train import make_vector_env  # noqa: E402


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def env_steps_per_s(cfg, n: int, env_steps: int, seed: int) -> float:
    if n == 1:
        env = PickCubeEnv(cfg)
        env.action_space.seed(seed)
        env.reset(seed=seed)
        t0 = time.perf_counter()
        for _ in range(env_steps):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()
        dt = time.perf_counter() - t0
        env.close()
        return env_steps / dt
    envs = make_vector_env(functools.partial(PickCubeEnv, cfg), n)
    try:
        envs.action_space.seed(seed)
        envs.reset(seed=seed)
        t0 = time.perf_counter()
        for _ in range(env_steps // n):
            envs.step(envs.action_space.sample())  # SAME_STEP autoreset
        return (env_steps // n) * n / (time.perf_counter() - t0)
    finally:
        envs.close()


def agent_config(seed: int) -> RLPDConfig:
    return RLPDConfig(hidden_dims=(256, 256), num_critics=2, critic_subset=2, utd_ratio=4, batch_size=256,
                      demo_ratio=0.5, discount=0.97, bc_weight=2.0, init_temperature=0.01, seed=seed)


def training_throughput(cfg, n: int, steps: int, seed: int) -> dict:
    tcfg = TrainGymConfig(agent=agent_config(seed), num_envs=n, learning_starts=0, seed=seed, verbose=False)
    res = train(functools.partial(PickCubeEnv, cfg), tcfg, steps)
    return {"env_steps_per_s": res["steps"] / res["wall_s"],
            "updates_per_s": res["agent"].num_actor_updates * tcfg.agent.utd_ratio / res["wall_s"],
            "start_s": res["vector_env_start_s"]}


def to_success(cfg, n: int, demo_dir: str, budget: int, eval_every: int, target: float, seed: int) -> dict:
    evals = []
    clock = {"eval_s": 0.0, "eval_start": None}
    t_start = time.perf_counter()

    def watch(progress):
        if progress["event"] != "eval":
            return None
        now = time.perf_counter()
        clock["eval_s"] += now - clock["eval_start"]
        clock["eval_start"] = None
        evals.append({"env_steps": progress["step"], "success_rate": progress["success_rate"],
                      "wall_s": round(now - t_start, 1),
                      "wall_s_without_evals": round(now - t_start - clock["eval_s"], 1)})
        print("  " + json.dumps(evals[-1]), flush=True)
        return progress["success_rate"] < target  # False stops training

    eval_env = PickCubeEnv(cfg)
    reset = eval_env.reset

    def timed_reset(**kw):  # an evaluation starts with its first reset and ends at its callback
        if clock["eval_start"] is None:
            clock["eval_start"] = time.perf_counter()
        return reset(**kw)
    eval_env.reset = timed_reset

    tcfg = TrainGymConfig(agent=agent_config(seed), num_envs=n, seed=seed, verbose=False,
                          eval_every=eval_every, eval_episodes=20)
    res = train(functools.partial(PickCubeEnv, cfg), tcfg, budget, demos=demo_dir, eval_env=eval_env,
                callback=watch)
    hit = next((e for e in evals if e["success_rate"] >= target), None)
    return {"num_envs": n, "first_at_target": hit, "wall_s_total": round(time.perf_counter() - t_start, 1),
            "sub_env_start_s": round(res["vector_env_start_s"], 1), "evaluations": len(evals)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--env-steps", type=int, default=800, help="env steps per environments-only run")
    p.add_argument("--train-steps", type=int, default=200, help="env steps per training-throughput run")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the learner")
    p.add_argument("--to-success", action="store_true", help="wall-clock to 90 %% on the pick task")
    p.add_argument("--budget", type=int, default=4000, help="env steps at most per --to-success run")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                             "task.max_episode_steps": 50})
    print(f"# {os.cpu_count()} CPUs, torch threads {args.threads}, load average {load()}", flush=True)
    if not args.skip_throughput:
        rows = {n: {"env": [], "train": []} for n in args.num_envs}
        for run in range(args.runs):  # runs interleaved over N, so a load change hits every N
            for n in args.num_envs:
                before = load()
                env_rate = env_steps_per_s(cfg, n, args.env_steps, args.seed + run)
                tr = training_throughput(cfg, n, args.train_steps, args.seed + run)
                rows[n]["env"].append(env_rate)
                rows[n]["train"].append(tr)
                print(json.dumps({"run": run, "num_envs": n, "env_only_steps_per_s": round(env_rate, 1),
                                  "train_env_steps_per_s": round(tr["env_steps_per_s"], 2),
                                  "train_critic_updates_per_s": round(tr["updates_per_s"], 1),
                                  "sub_env_start_s": round(tr["start_s"], 1),
                                  "load_before": before, "load_after": load()}), flush=True)
        base_env = statistics.median(rows[args.num_envs[0]]["env"])
        base_train = statistics.median(r["env_steps_per_s"] for r in rows[args.num_envs[0]]["train"])
        print(f"# medians over {args.runs} runs (min-max); ratios vs N={args.num_envs[0]}")
        print("| N | env-only steps/s | training env steps/s | critic updates/s |")
        print("|---|---|---|---|")
        for n, r in rows.items():
            env, te = r["env"], [x["env_steps_per_s"] for x in r["train"]]
            up = [x["updates_per_s"] for x in r["train"]]
            print(f"| {n} | {statistics.median(env):.0f} ({min(env):.0f}-{max(env):.0f}), "
                  f"x{statistics.median(env) / base_env:.2f} | {statistics.median(te):.1f} "
                  f"({min(te):.1f}-{max(te):.1f}), x{statistics.median(te) / base_train:.2f} | "
                  f"{statistics.median(up):.0f} ({min(up):.0f}-{max(up):.0f}) |", flush=True)
    if args.to_success:
        demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_vec_demos_"), "demos")
        rec = record(cfg, demo_dir, 20, seed=args.seed + 50_000, verbose=False)
        print(f"# to 90 %: {rec['episodes']} demos, recipe critics 2, UTD 4, BC 2, 50-step episodes, "
              f"eval 20 episodes every {args.eval_every} env steps", flush=True)
        for n in args.num_envs:
            before = load()
            out = to_success(cfg, n, demo_dir, args.budget, args.eval_every, 0.9, args.seed)
            out.update(load_before=before, load_after=load())
            print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
