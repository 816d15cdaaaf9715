"""Sample efficiency of RLPD on the pick-and-lift task (in-process PickCubeEnv, no ROS).

    python bench/sample_efficiency.py                 # state observations, 5,000 env steps
    python bench/sample_efficiency.py --images        # two 128x128 cameras, 20,000 env steps
    python bench/sample_efficiency.py --images --device cuda   # the same, learner on a GPU

Measured recipes (README, docs/learning.md): state ``--critics 2 --utd 4 --bc-weight 2 --set
task.max_episode_steps=50`` (100 % by 2,000 steps, 3 min); images ``--images --critics 2 --utd 1
--batch 128 --bc-weight 2 --set task.max_episode_steps=50`` (seed 0: 100 % at 5,000 steps, about an hour
on 2 CPU cores; seed 1: 100 % at 6,000; the image defaults, UTD 4 and batch 256, cost ~8 h per 5,000 steps there).
``--precision bf16`` (on a CPU with native bf16): state 95 % at 2,000, images seed 0 100 % at 5,000 in 29 min.

Records ``--demos`` successful scripted demonstrations, then trains online with 50/50 demo
sampling (RLPD) and prints the deterministic success rate over ``--eval-episodes`` episodes
every ``--eval-every`` env steps. Targets: >= 90% within 5,000 steps (state), within 20,000
(images). "State" here is the task's ``state`` + ``object`` groups (TCP, gripper, cube pose):
the cube position is needed to pick a randomly placed cube without cameras.

Recipe (SERL pick-cube): sparse reward, discount 0.97, 50/50 demo sampling, episodes of 100
steps, no random warm-up (the demos are the exploration), actor/critic 256x256, N=10 critics.
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
from robot_rl.learning.record_demos import record  # noqa: E402
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer  # noqa: E402
from robot_rl.learning.config import EncoderConfig  # noqa: E402
from robot_rl.learning.train_gym import evaluate_policy  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig  # noqa: E402


def evaluate(agent, env, episodes: int, seed: int) -> float:
    return evaluate_policy(agent, env, episodes, seed)["success_rate"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--images", action="store_true", help="two 128x128 cameras instead of state")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--utd", type=int, default=None)
    p.add_argument("--discount", type=float, default=0.97)
    p.add_argument("--critics", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--discrete-gripper", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="where the agent trains and acts: cpu or cuda[:N]")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="agent.precision")
    p.add_argument("--compile", action="store_true", help="agent.compile (torch.compile the losses)")
    p.add_argument("--bc-weight", type=float, default=0.0)
    p.add_argument("--target-entropy", type=float, default=None, help="default -|A|/2")
    p.add_argument("--no-input-norm", action="store_true", help="raw state inputs (no demo statistics)")
    p.add_argument("--init-temperature", type=float, default=0.01)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="task/sim config overrides, e.g. task.reward=dense")
    args = p.parse_args(argv)
    steps = args.steps or (20_000 if args.images else 5_000)
    if args.threads:
        torch.set_num_threads(args.threads)
    obs_groups = ["state", "images"] if args.images else ["state", "object"]
    cams = [{"name": "front", "width": 128, "height": 128},
            {"name": "wrist", "width": 128, "height": 128}] if args.images else []
    from robot_rl.cli import parse_sets
    cfg = load_config(None, {"task.observations": obs_groups, "cameras": cams, "tactile": [],
                             "task.max_episode_steps": 100, **parse_sets(args.set)})
    env, eval_env = PickCubeEnv(cfg), PickCubeEnv(cfg)
    demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_demos_"), "demos")
    rec = record(cfg, demo_dir, args.demos, seed=args.seed + 50_000, verbose=False)
    agent_cfg = RLPDConfig(hidden_dims=(args.hidden, args.hidden), num_critics=args.critics,
                           critic_subset=2, init_temperature=args.init_temperature,
                           bc_weight=args.bc_weight, target_entropy=args.target_entropy,
                           utd_ratio=args.utd or (4 if args.images else 8),
                           batch_size=args.batch, demo_ratio=0.5, discount=args.discount,
                           discrete_gripper=args.discrete_gripper, seed=args.seed, device=args.device,
                           precision=args.precision, compile=args.compile,
                           encoder=EncoderConfig(normalize_inputs=not args.no_input_norm))
    agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
    demo = ReplayBuffer.load(demo_dir, resume=False, seed=args.seed + 1, verbose=False, name="demo")
    agent.fit_input_normalization(demo.observations())
    online = ReplayBuffer(env.observation_space, env.action_space.shape[0], steps, seed=args.seed,
                          verbose=False, name="online")
    u, bs = agent_cfg.utd_ratio, agent_cfg.batch_size
    buffers = DemoOnlineBuffers(demo, online, agent_cfg.demo_ratio)  # the learner's sampling
    print(f"# {'images' if args.images else 'state'}: {rec['episodes']} demos "
          f"({rec['transitions']} transitions), UTD {u}, batch {bs}, critics {args.critics}, "
          f"discount {args.discount}, discrete gripper {args.discrete_gripper}, precision {args.precision}"
          f"{', compiled' if args.compile else ''}", flush=True)
    results = [{"env_steps": 0, "success_rate": evaluate(agent, eval_env, args.eval_episodes, 10_000)}]
    print(json.dumps(results[-1]), flush=True)
    obs, _ = env.reset(seed=args.seed)
    t0, t_update, episodes, successes = time.perf_counter(), 0.0, 0, 0
    for step in range(1, steps + 1):
        action = agent.act(obs)
        nobs, r, term, trunc, info = env.step(action)
        online.add(obs, action, float(r), nobs, bool(term), bool(trunc))
        obs = nobs
        if term or trunc:
            episodes += 1
            successes += int(info["success"])
            obs, _ = env.reset()
        ts = time.perf_counter()
        last = agent.update(*buffers.sample(bs, u))
        t_update += time.perf_counter() - ts
        if step % args.eval_every == 0:
            sr = evaluate(agent, eval_env, args.eval_episodes, 10_000)
            results.append({"env_steps": step, "success_rate": sr,
                            "train_episodes": episodes, "train_successes": successes,
                            "wall_s": round(time.perf_counter() - t0, 1),
                            "critic_updates_per_s": round(step * u / t_update, 1),
                            **{k: round(last[k], 3) for k in ("temperature", "entropy", "q_mean")}})
            print(json.dumps(results[-1]), flush=True)
    target = 0.9
    hit = next((r["env_steps"] for r in results if r["success_rate"] >= target), None)
    print(f"# first evaluation >= {target:.0%}: {hit if hit is not None else 'not reached'} "
          f"env steps (budget {steps})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
