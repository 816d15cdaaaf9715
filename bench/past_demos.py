"""Issue 25: what the RL phase adds over the demonstrations and over behaviour cloning.

    python bench/past_demos.py --steps 20000                       # pick task, the recipe
    python bench/past_demos.py --steps 20000 --bc-q-filter         # the recipe with Q-filtered BC
    python bench/past_demos.py --bc-only                           # the BC baseline alone

Pick-and-lift from state (``state`` + ``object``), 20 scripted demonstrations, 50-step episodes,
sparse success reward, in-process ``PickCubeEnv`` (no ROS). Three policies are evaluated the same
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

from robot_rl.config import load_config  # noqa: E402
from robot_rl.envs.pick_cube import PickCubeEnv  # noqa: E402
from robot_rl.learning.demos import episode_success, record_episodes  # noqa: E402
from robot_rl.learning.record_demos import ExpertPolicy, record  # noqa: E402
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer  # noqa: E402
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig  # noqa: E402
from robot_rl.learning.train_gym import evaluate_policy  # noqa: E402

EVAL_SEED = 10_000   # placements of the periodic evaluations
FINAL_SEED = 20_000  # fresh placements for the kept and the last policy


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


def record_demos(cfg, out: str, episodes: int, seed: int, speed: float) -> Dict[str, Any]:
    """20 successful scripted episodes (only successes are kept), at the demonstrator's speed."""
    if speed == 1.0:
        return record(cfg, out, episodes, seed=seed, verbose=False)
    env = PickCubeEnv(cfg)
    try:
        expert = env.task.expert(noise=0.05, rng=np.random.default_rng(seed))
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


def discounted_returns(rewards: List[float], discount: float) -> np.ndarray:
    """Returns-to-go G_t = r_t + discount * G_{t+1}, with G = 0 after the last step: on an
    episode cut by the time limit the critic bootstraps there, so Q - G is an upper bound of
    the over-estimation on those (on terminated ones it is exact up to the policy's noise)."""
    g, out = 0.0, np.zeros(len(rewards))
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + discount * g
        out[t] = g
    return out


@torch.no_grad()
def evaluate_with_values(agent: RLPDAgent, env, episodes: int, seed: int, discount: float) -> Dict[str, Any]:
    """Deterministic episodes: success, mean steps to success, and the critic's Q(s_t, a_t) on
    the visited states against the discounted Monte-Carlo return from there."""
    successes, lengths, q_all, g_all, q0, g0 = [], [], [], [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        feats, acts, rewards = [], [], []
        done = False
        while not done:
            t = agent.obs_to_tensor(obs)
            feat = agent.encoder(t, agent.encoder.precompute(t, use_cache=False))
            a_norm = agent.actor.deterministic(feat)
            feats.append(feat)
            acts.append(a_norm)
            action = (agent.center + agent.half_range * a_norm)[0].cpu().numpy()
            obs, r, term, trunc, info = env.step(action)
            rewards.append(float(r))
            done = term or trunc
        ok = episode_success(info, term, trunc)
        successes.append(ok)
        if ok:
            lengths.append(len(rewards))
        f, a = torch.cat(feats), torch.cat(acts)
        q = agent.critic(torch.cat([f, a], -1)).mean(0).cpu().numpy()
        g = discounted_returns(rewards, discount)
        q_all.append(q), g_all.append(g), q0.append(q[0]), g0.append(g[0])
    q_cat, g_cat = np.concatenate(q_all), np.concatenate(g_all)
    return {"success_rate": float(np.mean(successes)),
            "mean_steps_to_success": round(float(np.mean(lengths)), 2) if lengths else None,
            "q_mean": round(float(q_cat.mean()), 3), "mc_return_mean": round(float(g_cat.mean()), 3),
            "q_minus_mc": round(float((q_cat - g_cat).mean()), 3),
            "q_start": round(float(np.mean(q0)), 3), "mc_start": round(float(np.mean(g0)), 3)}


def train_bc(agent: RLPDAgent, demo: ReplayBuffer, steps: int, batch: int, eval_env, eval_every: int,
             eval_episodes: int) -> Dict[str, Any]:
    """Behaviour cloning alone on the agent's own encoder + actor (the RL agent's network)."""
    opt = torch.optim.Adam(list(agent.actor.parameters()) + [p for p in agent.encoder.parameters() if p.requires_grad],
                           lr=agent.config.actor_lr)
    curve = []
    for step in range(1, steps + 1):
        b = demo.sample(batch)
        obs = {k: v.to(agent.device) for k, v in b["obs"].items()}
        feat = agent.encoder(obs, agent.encoder.precompute(obs, use_cache=False))
        a_demo, _ = agent._split_action(agent.normalize_action(b["action"].to(agent.device)))
        loss = (agent.actor.deterministic(feat) - a_demo).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            ev = evaluate_policy(agent, eval_env, eval_episodes, EVAL_SEED)
            curve.append({"bc_steps": step, "success_rate": ev["success_rate"],
                          "mean_steps_to_success": ev["mean_steps_to_success"], "bc_loss": round(loss.item(), 4)})
            print(json.dumps({"bc": curve[-1]}), flush=True)
    return {"curve": curve}


def summarise(curve: List[Dict[str, Any]], target: float = 0.9) -> Dict[str, Any]:
    """Best and final success, first step at >= target, largest drop below the running best."""
    best, drop = -1.0, 0.0
    for c in curve:
        best = max(best, c["success_rate"])
        drop = max(drop, best - c["success_rate"])
    hit = next((c["env_steps"] for c in curve if c["success_rate"] >= target), None)
    return {"best_success": best, "final_success": curve[-1]["success_rate"], "steps_to_90": hit,
            "largest_drop_from_best": round(drop, 3)}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20_000, help="RL env steps")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--demo-speed", type=float, default=1.0,
                   help="scale of the scripted demonstrator's translation actions (0.5: half speed)")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--final-episodes", type=int, default=50)
    p.add_argument("--bc-steps", type=int, default=5000, help="gradient steps of the BC baseline")
    p.add_argument("--bc-only", action="store_true", help="only the BC baseline")
    p.add_argument("--fastest-scripted", action="store_true",
                   help="only the fastest scripted policy (a bound on steps to success) and the demos")
    p.add_argument("--no-bc-baseline", action="store_true", help="skip the BC baseline")
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--utd", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--discount", type=float, default=0.97)
    p.add_argument("--bc-weight", type=float, default=2.0)
    p.add_argument("--bc-q-filter", action="store_true")
    p.add_argument("--bc-decay-updates", type=int, default=0)
    p.add_argument("--bc-final-weight", type=float, default=0.0)
    p.add_argument("--demo-ratio", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json-out", default=None, help="write the curves and the summary here")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="save the run here at every evaluation (agent, online replay, curve, kept actor) "
                        "and resume from it when it holds one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="task/sim overrides (default task.max_episode_steps=50)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from robot_rl.cli import parse_sets
    cfg = load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                             "task.max_episode_steps": 50, **parse_sets(args.set)})
    env, eval_env = PickCubeEnv(cfg), PickCubeEnv(cfg)
    demo_dir = os.path.join(tempfile.mkdtemp(prefix="robot_rl_demos_"), "demos")
    rec = record_demos(cfg, demo_dir, args.demos, args.seed + 50_000, args.demo_speed)
    demo_steps = rec["transitions"] / rec["episodes"]  # only successful episodes are kept
    agent_cfg = RLPDConfig(num_critics=args.critics, critic_subset=2, utd_ratio=args.utd, batch_size=args.batch,
                           demo_ratio=args.demo_ratio, discount=args.discount, bc_weight=args.bc_weight,
                           bc_q_filter=args.bc_q_filter, bc_decay_updates=args.bc_decay_updates,
                           bc_final_weight=args.bc_final_weight, seed=args.seed, num_threads=args.threads)
    demo = ReplayBuffer.load(demo_dir, resume=False, seed=args.seed + 1, verbose=False, name="demo")
    print(f"# pick (state), seed {args.seed}: {rec['episodes']} demos (speed {args.demo_speed}), mean {demo_steps:.1f} steps to success; "
          f"RL: critics {args.critics}, UTD {args.utd}, bc_weight {args.bc_weight}, q_filter {args.bc_q_filter}, "
          f"bc_decay_updates {args.bc_decay_updates} -> {args.bc_final_weight}", flush=True)
    out: Dict[str, Any] = {"args": vars(args), "demo_mean_steps": demo_steps}
    if args.fastest_scripted:
        out["fastest_scripted"] = fastest_scripted_steps(cfg, args.eval_episodes)
        print(json.dumps({"fastest_scripted": out["fastest_scripted"], "demo_mean_steps": round(demo_steps, 2)}))
        _write(args.json_out, out)
        return 0

    if not args.no_bc_baseline:
        bc_agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
        bc_agent.fit_input_normalization(demo.observations())
        out["bc"] = train_bc(bc_agent, demo, args.bc_steps, args.batch // 2, eval_env, 1000, args.eval_episodes)
        out["bc"]["final"] = evaluate_policy(bc_agent, eval_env, args.final_episodes, FINAL_SEED)
        out["bc"]["final"].pop("returns")
        print(json.dumps({"bc_final_fresh": out["bc"]["final"]}), flush=True)
    if args.bc_only:
        _write(args.json_out, out)
        return 0

    agent = RLPDAgent(env.observation_space, env.action_space, agent_cfg)
    agent.fit_input_normalization(demo.observations())
    online, start, curve, best = open_run(args, agent, env)
    buffers = DemoOnlineBuffers(demo, online, agent_cfg.demo_ratio)
    u, bs = agent_cfg.utd_ratio, agent_cfg.batch_size
    # A resumed run starts a fresh episode from another reset seed (the env state is not saved).
    obs, _ = env.reset(seed=args.seed + start)
    t0 = time.perf_counter()
    window_eps, window_ok = 0, 0
    last: Dict[str, float] = {}
    for step in range(start + 1, args.steps + 1):
        action = agent.act(obs)
        nobs, r, term, trunc, info = env.step(action)
        online.add(obs, action, float(r), nobs, bool(term), bool(trunc))
        obs = nobs
        if term or trunc:
            window_eps += 1
            window_ok += int(episode_success(info, term, trunc))
            obs, _ = env.reset()
        last = agent.update(*buffers.sample(bs, u))
        if step % args.eval_every == 0:
            ev = evaluate_with_values(agent, eval_env, args.eval_episodes, EVAL_SEED, args.discount)
            bc_term = last["bc_weight"] * last["bc_loss"]
            row = {"env_steps": step, **ev,
                   "train_success": round(window_ok / window_eps, 3) if window_eps else None,
                   "temperature": round(last["temperature"], 5), "entropy": round(last["entropy"], 3),
                   "bc_weight": round(last["bc_weight"], 3), "bc_loss": round(last["bc_loss"], 4),
                   "bc_share": round(bc_term / (abs(last["actor_loss"] - bc_term) + bc_term + 1e-9), 3),
                   "bc_cloned_fraction": round(last["bc_cloned_fraction"], 3),
                   "online_transitions": len(online), "wall_s": round(time.perf_counter() - t0, 1)}
            curve.append(row)
            print(json.dumps(row), flush=True)
            window_eps, window_ok = 0, 0
            key = [ev["success_rate"], -(ev["mean_steps_to_success"] or float("inf"))]
            if best is None or key > best["key"]:
                best = {"key": key, "step": step, "actor": copy.deepcopy(agent.actor_state_dict())}  # not the live weights
            if args.checkpoint:
                save_run(args.checkpoint, agent, online, step, curve, best)
    out["rl_curve"] = curve
    summary = summarise(curve) if curve else {}
    last_fresh = evaluate_policy(agent, eval_env, args.final_episodes, FINAL_SEED)
    summary["last_fresh"] = {k: last_fresh[k] for k in ("success_rate", "mean_steps_to_success")}
    if best is not None:
        agent.load_actor_state_dict(best["actor"])
        kept = evaluate_policy(agent, eval_env, args.final_episodes, FINAL_SEED)
        summary["kept_step"] = best["step"]
        summary["kept_fresh"] = {k: kept[k] for k in ("success_rate", "mean_steps_to_success")}
    summary["demo_mean_steps"] = round(demo_steps, 2)
    if "bc" in out:
        summary["bc_fresh"] = {k: out["bc"]["final"][k] for k in ("success_rate", "mean_steps_to_success")}
    deployed = summary.get("kept_fresh", summary["last_fresh"])
    if deployed["mean_steps_to_success"]:
        summary["speedup_vs_demos"] = round(demo_steps / deployed["mean_steps_to_success"], 2)
        bc_steps = summary.get("bc_fresh", {}).get("mean_steps_to_success")
        if bc_steps:
            summary["speedup_vs_bc"] = round(bc_steps / deployed["mean_steps_to_success"], 2)
    out["summary"] = summary
    print("# summary " + json.dumps(summary), flush=True)
    _write(args.json_out, out)
    return 0


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


def _write(path: Optional[str], data: Dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1, default=float)


if __name__ == "__main__":
    raise SystemExit(main())
