"""Issue 25: what the RL phase adds over the demonstrations and over behaviour cloning.

    python bench/past_demos.py --steps 20000                       # pick task, the recipe
    python bench/past_demos.py --steps 20000 --bc-q-filter         # the recipe with Q-filtered BC
    python bench/past_demos.py --bc-only                           # the BC baseline alone
    python bench/past_demos.py --task peg_insert --steps 3000      # the tactile insertion (issue 23)
    python bench/past_demos.py ... --checkpoint DIR                # save at every evaluation; resume

Pick-and-lift from state (``state`` + ``object``), 20 scripted demonstrations, 50-step episodes,
sparse success reward, in-process ``PickCubeEnv`` (no ROS); or (``--task peg_insert``) the tactile
peg insertion with config/peg_insert.yaml's observations (state + tactile), episode length and
contacts, 20 demonstrations of its scripted expert (action noise 0.1, as bench/tactile_ablation.py). Three policies are evaluated the same
way (deterministic actions, the same ``--eval-episodes`` cube placements, success and mean steps
of the successful episodes):

* the **demonstrations** themselves (the scripted expert's successful episodes: mean length);
* **behaviour cloning alone**: the same encoder/actor network (``RLPDAgent``'s, same config and
  input normalisation), trained only on the squared error to the demo actions for
  ``--bc-steps`` gradient steps at the same batch size;
* **RLPD** with the chosen BC settings, evaluated every ``--eval-every`` env steps.

At every RL evaluation the bench also prints what drift is made of: the critic's mean
Q(s_t, a_t) along the evaluation episodes against their discounted Monte-Carlo returns
(over-estimation), the temperature and entropy, the BC weight, its share of the actor loss and
(Q-filter) the fraction of demo states still cloned, and the training episodes' success rate.
The best evaluation's actor is kept (as ``train-gym`` does); at the end the kept ("deployed")
and the last policy are re-evaluated on ``--final-episodes`` fresh placements, so the kept
policy's figure is not the lucky draw that selected it.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from past_demos_common import (EVAL_SEED, add_rl_args, agent_config, demo_diagnostics,  # noqa: E402,F401
                               discounted_returns, evaluate_with_values, fresh, speedups, summarise,
                               train_bc, write_json)

from robot_rl.config import load_config  # noqa: E402
from robot_rl.envs.pick_cube import PickCubeEnv  # noqa: E402
from robot_rl.learning.demos import episode_success, record_episodes  # noqa: E402
from robot_rl.learning.record_demos import ExpertPolicy, record  # noqa: E402
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent  # noqa: E402

TASKS = ("pick", "peg_insert")


class SlowedExpert(ExpertPolicy):
    """The scripted expert with its translation actions scaled by ``speed`` (< 1: a slower
    demonstrator, as a person's demonstrations are slower than a tuned script). The pick expert
    already drives its slowest axis at |a| = 1, near the controller's top speed, so only a slower
    demonstrator leaves room for RL to become faster than its demonstrations."""

    def __init__(self, expert, env, speed: float):
        if not 0.0 < speed <= 1.0:
            raise ValueError(f"demo speed must be in (0, 1], got {speed}")
        super().__init__(expert, env)
        self.speed = speed

    def __call__(self, obs) -> np.ndarray:
        action = np.array(super().__call__(obs), dtype=np.float32)
        action[:3] *= self.speed
        return action


def record_demos(cfg, out: str, episodes: int, seed: int, speed: float, noise: float = 0.05) -> Dict[str, Any]:
    """20 successful scripted episodes (only successes are kept), at the demonstrator's speed."""
    if speed == 1.0:
        return record(cfg, out, episodes, seed=seed, noise=noise, verbose=False)
    env = PickCubeEnv(cfg)
    try:
        expert = env.task.expert(noise=noise, rng=np.random.default_rng(seed))
        rec = record_episodes(env, SlowedExpert(expert, env, speed), episodes, out=out, seed=seed, verbose=False)
    finally:
        env.close()
    return {"episodes": len(rec.episode_lengths), "transitions": rec.transitions}


def fastest_scripted_steps(cfg, episodes: int, seed: int = EVAL_SEED) -> Dict[str, Any]:
    """How fast the pick task can be done at all: a script that goes straight for the grasp
    point at |a| = 1 on its slowest axis (no hover above the cube), then closes and lifts in the
    same step. Bounds what any policy can gain over the demonstrations under this controller (the
    TCP follows a target 3 cm away at about 1.8 cm per step, so the descent sets the time)."""
    from robot_rl.sim.world import CUBE_HALF

    env = PickCubeEnv(cfg)
    max_step, lengths, successes = cfg.task.max_step_pos, [], 0
    try:
        for e in range(episodes):
            env.reset(seed=seed + e)
            closed = False
            for t in range(cfg.task.max_episode_steps):
                snap = env.snapshot
                cube, tcp = snap.object_pos, snap.ee_pos
                grasp = np.array([cube[0], cube[1], cube[2] + 0.005])
                at_grasp = tcp[2] - grasp[2] < 0.008 and np.linalg.norm((cube - tcp)[:2]) < 0.012
                closed = closed or at_grasp
                goal = np.array([cube[0], cube[1], CUBE_HALF + 1.0]) if closed else grasp
                action = np.zeros(env.action_space.shape, np.float32)
                action[:3] = np.clip((goal - tcp) / max_step, -1.0, 1.0)
                action[-1] = 1.0 if closed else -1.0
                _, _, term, trunc, info = env.step(action)
                if term or trunc:
                    break
            if info["success"]:
                successes += 1
                lengths.append(t + 1)
    finally:
        env.close()
    return {"success_rate": successes / episodes,
            "mean_steps_to_success": round(float(np.mean(lengths)), 2) if lengths else None}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=TASKS, default="pick")
    add_rl_args(p)
    p.add_argument("--demo-speed", type=float, default=1.0,
                   help="scale of the scripted demonstrator's translation actions (0.5: half speed)")
    p.add_argument("--demo-noise", type=float, default=None,
                   help="the scripted demonstrator's action noise (default: pick 0.05, peg_insert 0.1)")
    p.add_argument("--bc-only", action="store_true", help="only the BC baseline")
    p.add_argument("--fastest-scripted", action="store_true",
                   help="only the fastest scripted policy (a bound on steps to success) and the demos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="save the run here at every evaluation (agent, online replay, curve, kept actor) "
                        "and resume from it when it holds one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="task/sim overrides (pick: default task.max_episode_steps=50)")
    args = p.parse_args(argv)
    if args.fastest_scripted and args.task != "pick":
        p.error("--fastest-scripted is the pick task's bound; it has no peg_insert version")
    return args


def task_config(args: argparse.Namespace):
    """Pick from state and object pose; peg_insert as config/peg_insert.yaml has it (state + tactile)."""
    from robot_rl.cli import parse_sets
    from robot_rl.paths import shared_file

    sets = parse_sets(args.set)
    if args.task == "peg_insert":
        return load_config(str(shared_file("config", "peg_insert.yaml")), {"sim.seed": args.seed, **sets})
    return load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                              "task.max_episode_steps": 50, **sets})


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = task_config(args)
    env, eval_env = PickCubeEnv(cfg), PickCubeEnv(cfg)
    demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_demos_"), "demos")
    noise = args.demo_noise if args.demo_noise is not None else (0.1 if args.task == "peg_insert" else 0.05)
    rec = record_demos(cfg, demo_dir, args.demos, args.seed + 50_000, args.demo_speed, noise)
    demo_steps = rec["transitions"] / rec["episodes"]  # only successful episodes are kept
    agent_cfg = agent_config(args, args.seed)
    demo = ReplayBuffer.load(demo_dir, resume=False, seed=args.seed + 1, verbose=False, name="demo")
    print(f"# {args.task} ({'+'.join(cfg.task.observations)}), seed {args.seed}: {rec['episodes']} demos "
          f"(speed {args.demo_speed}, noise {noise}), mean {demo_steps:.1f} steps to success; "
          f"RL: critics {args.critics}, UTD {args.utd}, batch {args.batch}, hidden {agent_cfg.hidden_dims}, "
          f"discount {args.discount}, bc_weight {args.bc_weight}, q_filter {args.bc_q_filter}, "
          f"bc_decay_updates {args.bc_decay_updates} -> {args.bc_final_weight}", flush=True)
    out: Dict[str, Any] = {"args": vars(args), "demo_mean_steps": demo_steps}
    if args.fastest_scripted:
        out["fastest_scripted"] = fastest_scripted_steps(cfg, args.eval_episodes)
        print(json.dumps({"fastest_scripted": out["fastest_scripted"], "demo_mean_steps": round(demo_steps, 2)}))
        write_json(args.json_out, out)
        return 0
    if not args.no_bc_baseline:
        bc_agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
        bc_agent.fit_input_normalization(demo.observations())
        out["bc"] = train_bc(bc_agent, demo, args.bc_steps, args.batch // 2, eval_env, 1000, args.eval_episodes)
        out["bc"]["final"] = fresh(bc_agent, eval_env, args.final_episodes)
        print(json.dumps({"bc_final_fresh": out["bc"]["final"]}), flush=True)
    if not args.bc_only:
        agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
        agent.fit_input_normalization(demo.observations())
        curve, best = run_rl(args, agent, env, eval_env, demo)
        out["rl_curve"] = curve
        out["summary"] = final_summary(args, agent, eval_env, curve, best, demo_steps, out.get("bc"))
        print("# summary " + json.dumps(out["summary"]), flush=True)
    write_json(args.json_out, out)
    for e in (env, eval_env):
        e.close()
    return 0


def run_rl(args: argparse.Namespace, agent: RLPDAgent, env, eval_env, demo: ReplayBuffer):
    """RLPD from the demos for ``args.steps`` env steps (from the checkpoint's step when resumed),
    an evaluation row every ``args.eval_every``; returns the curve and the best evaluation."""
    online, start, curve, best = open_run(args, agent, env)
    buffers = DemoOnlineBuffers(demo, online, agent.config.demo_ratio)
    u, bs = agent.config.utd_ratio, agent.config.batch_size
    # A resumed run starts a fresh episode from another reset seed (the env state is not saved).
    obs, _ = env.reset(seed=args.seed + start)
    t0 = time.perf_counter()
    window = [0, 0]  # training episodes, successes since the last evaluation
    last: Dict[str, float] = {}
    for step in range(start + 1, args.steps + 1):
        action = agent.act(obs)
        nobs, r, term, trunc, info = env.step(action)
        online.add(obs, action, float(r), nobs, bool(term), bool(trunc))
        obs = nobs
        if term or trunc:
            window[0] += 1
            window[1] += int(episode_success(info, term, trunc))
            obs, _ = env.reset()
        last = agent.update(*buffers.sample(bs, u))
        if step % args.eval_every == 0:
            ev = evaluate_with_values(agent, eval_env, args.eval_episodes, EVAL_SEED, args.discount)
            ev.pop("successes")
            row = {"env_steps": step, **ev, **update_figures(last, window),
                   "online_transitions": len(online), "wall_s": round(time.perf_counter() - t0, 1)}
            curve.append(row)
            print(json.dumps(row), flush=True)
            window = [0, 0]
            key = [ev["success_rate"], -(ev["mean_steps_to_success"] or float("inf"))]
            if best is None or key > best["key"]:
                best = {"key": key, "step": step, "actor": copy.deepcopy(agent.actor_state_dict())}  # not the live weights
            if args.checkpoint:
                save_run(args.checkpoint, agent, online, step, curve, best)
    return curve, best


def update_figures(last: Dict[str, float], window: List[int]) -> Dict[str, Any]:
    """The last update's temperature, entropy and BC term, and the training episodes' success."""
    bc_term = last["bc_weight"] * last["bc_loss"]
    return {"train_success": round(window[1] / window[0], 3) if window[0] else None,
            "temperature": round(last["temperature"], 5), "entropy": round(last["entropy"], 3),
            "bc_weight": round(last["bc_weight"], 3), "bc_loss": round(last["bc_loss"], 4),
            "bc_share": round(bc_term / (abs(last["actor_loss"] - bc_term) + bc_term + 1e-9), 3),
            "bc_cloned_fraction": round(last["bc_cloned_fraction"], 3)}


def final_summary(args, agent: RLPDAgent, eval_env, curve, best, demo_steps: float,
                  bc: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The curve's summary, the last and the kept policy on fresh placements, speed-ups."""
    summary = summarise(curve) if curve else {}
    summary["last_fresh"] = fresh(agent, eval_env, args.final_episodes)
    if best is not None:
        agent.load_actor_state_dict(best["actor"])
        summary["kept_step"] = best["step"]
        summary["kept_fresh"] = fresh(agent, eval_env, args.final_episodes)
    summary["demo_mean_steps"] = round(demo_steps, 2)
    if bc is not None:
        summary["bc_fresh"] = bc["final"]
    speedups(summary, demo_steps)
    return summary


def open_run(args, agent: RLPDAgent, env):
    """The online buffer, first env step, curve and kept actor: fresh, or restored from
    ``args.checkpoint`` when it holds a run (the demos are re-recorded from the same seed)."""
    from robot_rl.learning.checkpoint import checkpoint_exists, load_agent

    replay_dir = os.path.join(args.checkpoint, "online") if args.checkpoint else None
    state_dir = os.path.join(args.checkpoint, "agent") if args.checkpoint else None
    if state_dir and checkpoint_exists(state_dir):
        extra = load_agent(state_dir, agent)
        online = ReplayBuffer.load(replay_dir, capacity=args.steps + 1, resume=True, seed=args.seed,
                                   verbose=False, name="online")
        online.load_state_dict(extra["online"])
        best = extra["best"] or None
        if best is not None:
            best["key"] = [float(k) for k in best["key"]]
        print(f"# resumed from {args.checkpoint} at env step {extra['env_steps']} "
              f"({len(online)} online transitions)", flush=True)
        return online, int(extra["env_steps"]), list(extra["curve"]), best
    if replay_dir and os.path.isdir(replay_dir):
        raise SystemExit(f"--checkpoint {args.checkpoint}: holds online replay but no agent state; "
                         f"expected both (remove the folder to start over)")
    online = ReplayBuffer(env.observation_space, env.action_space.shape[0], args.steps + 1, seed=args.seed,
                          persist_dir=replay_dir, flush_every=args.eval_every, verbose=False, name="online")
    return online, 0, [], None


def save_run(path: str, agent: RLPDAgent, online: ReplayBuffer, step: int, curve: List[Dict[str, Any]],
             best: Optional[Dict[str, Any]]) -> None:
    """Replay first, then the agent state: a run killed in between resumes from the previous
    agent state with a little more replay, never with replay missing."""
    from robot_rl.learning.checkpoint import save_agent

    online.flush()
    save_agent(os.path.join(path, "agent"), agent,
               extra={"env_steps": step, "curve": curve, "best": best or {}, "online": online.state_dict()})


if __name__ == "__main__":
    raise SystemExit(main())
