"""How fast the learning core learns pick-cube from cameras + proprioception, no cube position.

The hardware dress rehearsal (``robot-rl demo --rehearsal``) must learn from what a real robot
has: camera images, the TCP/gripper state (and tactile), a sparse success reward. This bench
runs the learning core in-process (PickCubeEnv, no ROS) on exactly those observations and prints
the deterministic success rate against env steps, critic updates and wall time, so the image
trunk options can be compared on the 2-core machine:

    python bench/rehearsal_learning.py                          # cached frozen trunk, 2 x 64x64, bf16 if native
    python bench/rehearsal_learning.py --trunk trainable         # the trunk learns (DrQ shifts)
    python bench/rehearsal_learning.py --cameras front --size 64 --precision fp32 --seed 1

Each evaluation line is JSON: env_steps, critic_updates, wall_s (training + evaluation so far),
train_s (env steps + updates only), cpu_s (CPU time of the process, all threads: the figure that
a busy machine does not inflate), updates_per_s (critic updates per second spent updating),
success_rate over --eval-episodes held-out cube poses.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robot_rl.config import load_config  # noqa: E402
from robot_rl.envs.pick_cube import PickCubeEnv  # noqa: E402
from robot_rl.learning.config import EncoderConfig  # noqa: E402
from robot_rl.learning.record_demos import record  # noqa: E402
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer  # noqa: E402
from robot_rl.learning.train_gym import evaluate_policy  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig, has_native_bf16  # noqa: E402


def evaluate(agent, env, episodes: int, seed: int) -> float:
    return evaluate_policy(agent, env, episodes, seed)["success_rate"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", default="front,wrist", help="comma-separated camera names")
    p.add_argument("--size", type=int, default=64, help="square image size in pixels")
    p.add_argument("--tactile", action="store_true", help="add the two 4x4 fingertip arrays")
    p.add_argument("--trunk", choices=("cached", "frozen", "trainable"), default="cached",
                   help="frozen: the conv trunk keeps its initial weights (agent.encoder."
                        "freeze_image_encoder); cached: frozen, and its features of each frame "
                        "computed once (agent.encoder.cache_image_features); trainable: it "
                        "learns, with DrQ shifts")
    p.add_argument("--augment", choices=("auto", "on", "off"), default="auto",
                   help="DrQ random shifts (auto: on for a trainable trunk, off for a frozen one)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="agent.precision (auto: bf16 where the CPU multiplies bf16 natively)")
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="agent.encoder.pretrain_steps: behaviour-clone the demos through the "
                        "frozen trunk first (frozen/cached trunks only)")
    p.add_argument("--steps", type=int, default=5000, help="env steps of online training")
    p.add_argument("--budget-min", type=float, default=0.0, help="stop after this wall time (0: no limit)")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--utd", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--bc-weight", type=float, default=2.0)
    p.add_argument("--discount", type=float, default=0.97)
    p.add_argument("--episode-steps", type=int, default=50, help="task.max_episode_steps")
    p.add_argument("--seed", type=int, default=0)
    # One torch thread: with two intra-op threads on a busy 2-core machine each waits for the
    # other at every op (measured 0.5 vs 14 updates/s at load 5-6).
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if has_native_bf16(torch.device("cpu")) else "fp32"
    frozen = args.trunk in ("frozen", "cached")
    augment = (not frozen) if args.augment == "auto" else args.augment == "on"
    names = [n for n in args.cameras.split(",") if n]
    cams = [{"name": n, "width": args.size, "height": args.size} for n in names]
    groups = ["state", "images"] + (["tactile"] if args.tactile else [])
    overrides = {"task.observations": groups, "cameras": cams,
                 "task.max_episode_steps": args.episode_steps}
    if not args.tactile:
        overrides["tactile"] = []
    cfg = load_config(None, overrides)
    env, eval_env = PickCubeEnv(cfg), PickCubeEnv(cfg)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_rehearsal_demos_"), "demos")
    rec = record(cfg, demo_dir, args.demos, seed=args.seed + 50_000, verbose=False)
    demo_s = time.perf_counter() - t_start
    agent_cfg = RLPDConfig(num_critics=args.critics, critic_subset=min(2, args.critics),
                           utd_ratio=args.utd, batch_size=args.batch, bc_weight=args.bc_weight,
                           discount=args.discount, seed=args.seed, precision=precision,
                           encoder=EncoderConfig(freeze_image_encoder=frozen, augment=augment,
                                                 cache_image_features=args.trunk == "cached",
                                                 pretrain_steps=args.pretrain_steps))
    agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
    demo = ReplayBuffer.load(demo_dir, resume=False, seed=args.seed + 1, verbose=False, name="demo")
    fit = agent.fit_to_demos(demo)
    if fit:
        print(f"# trunk pretrained by BC on the demos: {fit['steps']} steps in {fit['seconds']:.0f} s, "
              f"loss {fit['bc_loss_first']:.3f} -> {fit['bc_loss_last']:.3f}", flush=True)
    online = ReplayBuffer(env.observation_space, env.action_space.shape[0], args.steps,
                          seed=args.seed, verbose=False, name="online")
    buffers = DemoOnlineBuffers(demo, online, agent_cfg.demo_ratio)
    print(f"# cameras {names} {args.size}x{args.size}, groups {groups}, trunk {args.trunk}, "
          f"augment {augment}, precision {precision}, UTD {args.utd}, batch {args.batch}, "
          f"critics {args.critics}, bc_weight {args.bc_weight}, seed {args.seed}; "
          f"{rec['episodes']} demos ({rec['transitions']} transitions) in {demo_s:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    def report(step: int, train_s: float, episodes: int, successes: int) -> dict:
        row = {"env_steps": step, "critic_updates": agent.num_critic_updates,
               "success_rate": evaluate(agent, eval_env, args.eval_episodes, 10_000),
               "train_episodes": episodes, "train_successes": successes,
               "train_s": round(train_s, 1), "cpu_s": round(time.process_time() - cpu_start, 1),
               "updates_per_s": round(agent.num_critic_updates / update_s, 2) if update_s else None,
               "wall_s": round(time.perf_counter() - t_start, 1),
               "load": round(os.getloadavg()[0], 2)}
        print(json.dumps(row), flush=True)
        return row

    train_s = update_s = 0.0
    rows = [report(0, 0.0, 0, 0)]
    obs, _ = env.reset(seed=args.seed)
    episodes = successes = 0
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        action = agent.act(obs)
        nobs, r, term, trunc, info = env.step(action)
        online.add(obs, action, float(r), nobs, bool(term), bool(trunc))
        obs = nobs
        if term or trunc:
            episodes += 1
            successes += int(info["success"])
            obs, _ = env.reset()
        t1 = time.perf_counter()
        agent.update(*buffers.sample(args.batch, args.utd))
        update_s += time.perf_counter() - t1
        train_s += time.perf_counter() - t0
        over_budget = args.budget_min > 0 and time.perf_counter() - t_start > 60 * args.budget_min
        if step % args.eval_every == 0 or over_budget:
            rows.append(report(step, train_s, episodes, successes))
        if over_budget:
            break
    hit = next((r for r in rows if r["success_rate"] >= 0.8), None)
    print("# first evaluation >= 80 %: " + (f"{hit['env_steps']} env steps, {hit['critic_updates']} "
                                            f"updates, {hit['wall_s'] / 60:.1f} min" if hit else "not reached"))
    env.close()
    eval_env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
