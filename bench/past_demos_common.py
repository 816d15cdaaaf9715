"""What bench/past_demos.py (pick, peg_insert) and bench/past_demos_fetch.py (Gymnasium-Robotics)
share: the RL/BC argument block, the agent configuration made from it, behaviour cloning alone on
the agent's own network, evaluations that also measure the critic against Monte-Carlo returns,
what drift is made of (temperature, distance to the demo actions, share of demo states the
Q-filter still clones) and the curve summary (best, final, steps to 90 %, largest drop)."""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from robot_rl.learning.demos import episode_success
from robot_rl.learning.replay import ReplayBuffer
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig
from robot_rl.learning.train_gym import evaluate_policy

EVAL_SEED = 10_000   # placements/goals of the periodic evaluations (the same set every time)
FINAL_SEED = 20_000  # fresh placements/goals for the kept and the last policy


def add_rl_args(p: argparse.ArgumentParser, steps: int = 20_000, eval_every: int = 2000) -> None:
    """The arguments every past-demonstrations bench takes (defaults: the pick recipe)."""
    p.add_argument("--steps", type=int, default=steps, help="RL env steps")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=eval_every)
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation (a fixed set)")
    p.add_argument("--final-episodes", type=int, default=50)
    p.add_argument("--bc-steps", type=int, default=3000, help="gradient steps of the BC baseline")
    p.add_argument("--no-bc-baseline", action="store_true", help="skip the BC baseline")
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--utd", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layer sizes (default: RLPDConfig's)")
    p.add_argument("--discount", type=float, default=0.97)
    p.add_argument("--bc-weight", type=float, default=2.0)
    p.add_argument("--bc-q-filter", action="store_true")
    p.add_argument("--bc-decay-updates", type=int, default=0)
    p.add_argument("--bc-final-weight", type=float, default=0.0)
    p.add_argument("--demo-ratio", type=float, default=0.5)
    p.add_argument("--target-entropy", type=float, default=None,
                   help="SAC's target entropy (default: RLPDConfig's, -|A|/2); lower narrows the "
                        "policy around its mean")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json-out", default=None, help="write the curves and the summary here")


def agent_config(args: argparse.Namespace, seed: int) -> RLPDConfig:
    extra = {"hidden_dims": list(args.hidden)} if args.hidden else {}
    if args.target_entropy is not None:
        extra["target_entropy"] = args.target_entropy
    return RLPDConfig(num_critics=args.critics, critic_subset=2, utd_ratio=args.utd, batch_size=args.batch,
                      demo_ratio=args.demo_ratio, discount=args.discount, bc_weight=args.bc_weight,
                      bc_q_filter=args.bc_q_filter, bc_decay_updates=args.bc_decay_updates,
                      bc_final_weight=args.bc_final_weight, seed=seed, num_threads=args.threads, **extra)


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
        q = agent.critic(torch.cat([torch.cat(feats), torch.cat(acts)], -1)).mean(0).cpu().numpy()
        g = discounted_returns(rewards, discount)
        q_all.append(q), g_all.append(g), q0.append(q[0]), g0.append(g[0])
    q_cat, g_cat = np.concatenate(q_all), np.concatenate(g_all)
    return {"success_rate": float(np.mean(successes)),
            "mean_steps_to_success": round(float(np.mean(lengths)), 2) if lengths else None,
            "q_mean": round(float(q_cat.mean()), 3), "mc_return_mean": round(float(g_cat.mean()), 3),
            "q_minus_mc": round(float((q_cat - g_cat).mean()), 3),
            "q_start": round(float(np.mean(q0)), 3), "mc_start": round(float(np.mean(g0)), 3),
            "successes": [int(x) for x in successes]}


@torch.no_grad()
def demo_diagnostics(agent: RLPDAgent, demo: ReplayBuffer, max_states: int = 2000) -> Dict[str, float]:
    """How far the policy has left the demonstrations, measured on the demo states themselves
    (no minibatch noise): the temperature, the squared distance of the deterministic action to
    the demo action (normalised units) and the share of demo states where the critic rates the
    demo action above the policy's (what the Q-filter would still clone)."""
    b = demo.get(np.linspace(0, len(demo) - 1, min(len(demo), max_states)).round().astype(np.int64))
    obs = {k: v.to(agent.device) for k, v in b["obs"].items()}
    feat = agent.encoder(obs, agent.encoder.precompute(obs, use_cache=False))
    a_demo, _ = agent._split_action(agent.normalize_action(b["action"].to(agent.device)))
    pi = agent.actor.deterministic(feat)
    mean, log_std = agent.actor.dist_params(feat)
    return {"temperature": round(float(agent.alpha), 5),
            "pre_tanh_mean_abs": round(float(mean.abs().mean()), 3),
            "std_mean": round(float(log_std.exp().mean()), 3),
            "demo_action_sq_dist": round(float((pi - a_demo).pow(2).sum(-1).mean()), 4),
            "demo_states_cloned": round(float(agent.q_filter_mask(feat, a_demo, pi).mean()), 3)}


class ExpectedAction:
    """The policy read as its expected action, E[tanh(mean + std * eps)] over ``draws`` fixed
    normal draws, instead of the mode tanh(mean): what the sampled policy does on average.
    Passed to ``evaluate_policy`` in place of the agent (continuous actions only)."""

    def __init__(self, agent: RLPDAgent, draws: int = 64, seed: int = 0):
        self.agent = agent
        gen = torch.Generator().manual_seed(seed)
        self.eps = torch.randn(draws, agent.cont_dim, generator=gen).to(agent.device)

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        agent = self.agent
        t = agent.obs_to_tensor(obs)
        feat = agent.encoder(t, agent.encoder.precompute(t, use_cache=False))
        mean, log_std = agent.actor.dist_params(feat)
        a = torch.tanh(mean + log_std.exp() * self.eps).mean(0, keepdim=True)
        return (agent.center + agent.half_range * a)[0].cpu().numpy()


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


def fresh(agent: RLPDAgent, env, episodes: int) -> Dict[str, Any]:
    """Success and mean steps to success on ``episodes`` placements/goals no evaluation saw."""
    ev = evaluate_policy(agent, env, episodes, FINAL_SEED)
    return {k: ev[k] for k in ("success_rate", "mean_steps_to_success")}


def summarise(curve: Sequence[Dict[str, Any]], target: float = 0.9) -> Dict[str, Any]:
    """Best and final success, first step at >= target, largest drop below the running best."""
    best, drop = -1.0, 0.0
    for c in curve:
        best = max(best, c["success_rate"])
        drop = max(drop, best - c["success_rate"])
    hit = next((c["env_steps"] for c in curve if c["success_rate"] >= target), None)
    return {"best_success": best, "final_success": curve[-1]["success_rate"], "steps_to_90": hit,
            "largest_drop_from_best": round(drop, 3)}


def speedups(summary: Dict[str, Any], demo_steps: float) -> None:
    """The deployed (kept, else last) policy's fresh steps to success against the demos and BC."""
    deployed = summary.get("kept_fresh", summary.get("last_fresh", {}))
    steps = deployed.get("mean_steps_to_success")
    if steps:
        summary["speedup_vs_demos"] = round(demo_steps / steps, 2)
        bc_steps = summary.get("bc_fresh", {}).get("mean_steps_to_success")
        if bc_steps:
            summary["speedup_vs_bc"] = round(bc_steps / steps, 2)


def write_json(path: Optional[str], data: Dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1, default=float)
