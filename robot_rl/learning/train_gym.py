"""Train the RLPD agent on any Gymnasium env (Box or Dict obs, Box actions).

Python API: ``train(env_id_or_env, config, steps, demos_path=None, log_dir=None)``
CLI:        ``python -m robot_rl.learning.train_gym Pendulum-v1 --steps 5000``

The loop is the online part of RLPD/SERL: act, store the transition (with
``terminated``/``truncated`` kept apart), and once ``learning_starts`` steps
are collected do one ``agent.update`` per env step with ``utd_ratio``
minibatches, half from demos when a demo directory (replay on-disk format) is
given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import gymnasium as gym
import numpy as np

from .replay import ReplayBuffer, read_manifest
from .rlpd import RLPDAgent, RLPDConfig

__all__ = ["TrainGymConfig", "train", "main", "evaluate"]


@dataclass
class TrainGymConfig:
    """Training-loop settings around an ``RLPDConfig``."""

    agent: RLPDConfig = field(default_factory=RLPDConfig)
    buffer_capacity: int = 1_000_000
    learning_starts: int = 1000  # uniform-random actions (and no updates) before this step
    log_every: int = 1000  # env steps between TensorBoard scalar flushes
    flush_every: int = 1000  # replay persistence chunk size (if replay_dir is set)
    replay_dir: Optional[str] = None  # persist the online buffer here
    eval_episodes: int = 0  # deterministic episodes after training
    seed: int = 0
    verbose: bool = True

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainGymConfig":
        d = dict(d)
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"TrainGymConfig: unknown keys {bad}; expected a subset of {sorted(known)}")
        if isinstance(d.get("agent"), Mapping):
            d["agent"] = RLPDConfig.from_dict(d["agent"])
        return cls(**d)


def _make_env(env_id_or_env: Union[str, gym.Env], seed: int) -> gym.Env:
    env = gym.make(env_id_or_env) if isinstance(env_id_or_env, str) else env_id_or_env
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"train: env action space must be a Box, got {env.action_space}")
    if not isinstance(env.observation_space, (gym.spaces.Box, gym.spaces.Dict)):
        raise ValueError(f"train: env observation space must be Box or Dict, got {env.observation_space}")
    env.action_space.seed(seed)
    return env


def evaluate(agent: RLPDAgent, env: gym.Env, episodes: int, seed: int = 10_000) -> List[float]:
    """Deterministic-policy episode returns."""
    rets = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(agent.act(obs, deterministic=True))
            ret += float(r)
            done = term or trunc
        rets.append(ret)
    return rets


def train(
    env_id_or_env: Union[str, gym.Env],
    config: Union[TrainGymConfig, RLPDConfig, Mapping[str, Any], None],
    steps: int,
    demos_path: Optional[str] = None,
    log_dir: Optional[str] = None,
) -> Dict[str, Any]:
    """Train for ``steps`` env steps; returns summary metrics.

    ``config`` may be a ``TrainGymConfig``, a bare ``RLPDConfig`` (loop
    defaults) or a dict for ``TrainGymConfig.from_dict``.
    """
    if config is None:
        cfg = TrainGymConfig()
    elif isinstance(config, RLPDConfig):
        cfg = TrainGymConfig(agent=config)
    elif isinstance(config, TrainGymConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = TrainGymConfig.from_dict(config)
    else:
        raise ValueError(f"train: config must be TrainGymConfig, RLPDConfig or dict, got {type(config).__name__}")
    if steps <= 0:
        raise ValueError(f"train: steps must be > 0, got {steps}")
    acfg = cfg.agent
    env = _make_env(env_id_or_env, cfg.seed)
    agent = RLPDAgent(env.observation_space, env.action_space, acfg)
    adim = env.action_space.shape[0]
    online = ReplayBuffer(env.observation_space, adim, cfg.buffer_capacity, persist_dir=cfg.replay_dir,
                          flush_every=cfg.flush_every, seed=cfg.seed, verbose=cfg.verbose, name="online")
    demo: Optional[ReplayBuffer] = None
    if demos_path is not None:
        man = read_manifest(demos_path)
        if man["observation"] != online.obs_spec or int(man["action_dim"]) != adim:
            raise ValueError(
                f"train: demos in {demos_path!r} have observation={man['observation']} action_dim={man['action_dim']}, "
                f"env needs observation={online.obs_spec} action_dim={adim}"
            )
        demo = ReplayBuffer.load(demos_path, resume=False, seed=cfg.seed + 1, verbose=cfg.verbose, name="demo")
        if len(demo) == 0:
            demo = None
        else:
            agent.fit_input_normalization(demo.observations())

    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir)
        writer.add_text("config", "```\n" + json.dumps(asdict(cfg), indent=1, default=str) + "\n```")

    u, bs = acfg.utd_ratio, acfg.batch_size
    n_demo = int(round(bs * acfg.demo_ratio)) if demo is not None else 0
    n_on = bs - n_demo
    obs, _ = env.reset(seed=cfg.seed)
    ep_ret, ep_len = 0.0, 0
    returns: List[float] = []
    lengths: List[int] = []
    last: Dict[str, float] = {}
    n_updates = 0
    update_time = 0.0
    t0 = time.perf_counter()
    for step in range(steps):
        if step < cfg.learning_starts:
            action = env.action_space.sample()
        else:
            action = agent.act(obs)
        next_obs, reward, term, trunc, _ = env.step(action)
        online.add(obs, action, float(reward), next_obs, bool(term), bool(trunc))
        ep_ret += float(reward)
        ep_len += 1
        obs = next_obs
        if term or trunc:
            returns.append(ep_ret)
            lengths.append(ep_len)
            if writer is not None:
                writer.add_scalar("episode/return", ep_ret, step)
                writer.add_scalar("episode/length", ep_len, step)
            ep_ret, ep_len = 0.0, 0
            obs, _ = env.reset()
        if step + 1 >= cfg.learning_starts and len(online) >= 1:
            ts = time.perf_counter()
            demo_batch = demo.sample(u * n_demo) if demo is not None and n_demo > 0 else None
            online_batch = online.sample(u * n_on)
            last = agent.update(demo_batch, online_batch)
            update_time += time.perf_counter() - ts
            n_updates += 1
        if writer is not None and (step + 1) % cfg.log_every == 0:
            for k, v in last.items():
                writer.add_scalar(f"train/{k}", v, step)
            if update_time > 0:
                writer.add_scalar("perf/critic_updates_per_s", n_updates * u / update_time, step)
            writer.add_scalar("buffer/online", len(online), step)
            writer.add_scalar("buffer/demo", len(demo) if demo is not None else 0, step)
            writer.add_scalar("perf/env_steps_per_s", (step + 1) / (time.perf_counter() - t0), step)
    online.close()
    eval_returns = evaluate(agent, env, cfg.eval_episodes) if cfg.eval_episodes > 0 else []
    if writer is not None:
        if eval_returns:
            writer.add_scalar("eval/return", float(np.mean(eval_returns)), steps)
        writer.close()
    k = min(5, len(returns))
    return {
        "agent": agent,
        "steps": steps,
        "episodes": len(returns),
        "episode_returns": returns,
        "episode_lengths": lengths,
        "final_return_mean": float(np.mean(returns[-k:])) if k else float("nan"),
        "eval_returns": eval_returns,
        "eval_return_mean": float(np.mean(eval_returns)) if eval_returns else float("nan"),
        "critic_updates_per_s": (n_updates * u / update_time) if update_time > 0 else 0.0,
        "wall_s": time.perf_counter() - t0,
        "last_update": last,
    }


def _parse_value(s: str) -> Any:
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def _apply_override(d: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ValueError(f"--set {key}: {p!r} is not a section")
    cur[parts[-1]] = value


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="robot-rl train-gym", description="Train RLPD/SERL SAC on a Gymnasium env.")
    p.add_argument("env_id", help="Gymnasium env id, e.g. Pendulum-v1")
    p.add_argument("--steps", type=int, default=100_000, help="environment steps")
    p.add_argument("--demos", default=None, help="demo directory (replay on-disk format)")
    p.add_argument("--log-dir", default=None, help="TensorBoard log directory")
    p.add_argument("--config", default=None, help="JSON file with TrainGymConfig fields (agent: {...} for RLPDConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set agent.num_critics=2 --set learning_starts=500 (values parsed as JSON)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--checkpoint", default=None,
                   help="save the full agent checkpoint (pickle-free directory, robot_rl.learning.checkpoint) here at the end")
    args = p.parse_args(argv)
    d: Dict[str, Any] = {}
    if args.config:
        with open(args.config) as f:
            d = json.load(f)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        _apply_override(d, k.strip(), _parse_value(v))
    if args.seed is not None:
        d["seed"] = args.seed
        d.setdefault("agent", {})["seed"] = args.seed
    cfg = TrainGymConfig.from_dict(d)
    res = train(args.env_id, cfg, args.steps, demos_path=args.demos, log_dir=args.log_dir)
    if args.checkpoint:
        from .checkpoint import save_agent

        save_agent(args.checkpoint, res["agent"])
    summary = {k: v for k, v in res.items() if k not in ("agent", "episode_returns", "episode_lengths", "last_update")}
    print(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
