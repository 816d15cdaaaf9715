"""Train the RLPD agent on any Gymnasium env (Box or Dict obs, Box actions).

Python API::

    rec = record_episodes(env, my_policy, episodes=20)          # robot_rl.learning.demos
    res = train(env, TrainGymConfig(eval_every=1000, eval_episodes=10), 20_000,
                demos=rec.buffer, callback=lambda p: print(p["step"], p.get("success_rate")))
    res["agent"], res["evaluations"], res["best"]

CLI: ``robot-rl train-gym Pendulum-v1 --steps 5000 [--demos DIR] [--config FILE.yaml]
[--set eval_every=1000] [--num-envs 4]`` (``load_train_config``: the project's schema loader and
``--set``).

``num_envs`` > 1 (or a ``gymnasium.vector.VectorEnv`` as the env) trains from N environments
stepping in parallel (``vector_train``): sub-envs in subprocesses (``AsyncVectorEnv``), or
in-process with ``vector_env: sync``; ``steps``, ``learning_starts``, ``eval_every`` and the
update-to-data ratio all count environment steps summed over the sub-envs.

The loop is the online part of RLPD/SERL: act, store the transition (with ``terminated`` /
``truncated`` kept apart), and once ``learning_starts`` steps are collected do one
``agent.update`` per env step with ``utd_ratio`` minibatches, ``agent.demo_ratio`` of each from
the demonstrations when they are given. With demonstrations the default is no random warm-up:
the demonstrations are the exploration (RLPD, SERL), and random actions would only dilute them.
Success is read from ``info["is_success"]`` or ``info["success"]`` (``demos.episode_success``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import gymnasium as gym
import numpy as np
import yaml

from robot_rl.schema import ConfigError, FieldError, deep_merge, from_dict, require, unflatten

from .demos import DemoRecording, episode_success
from .gym_session import GymSession, evaluate_policy, evaluation_rank
from .replay import DemoOnlineBuffers, ReplayBuffer, read_manifest
from .rlpd import RLPDAgent, RLPDConfig
from .training_core import TrainingCore
from .vector_train import make_vector_env, train_vector

__all__ = ["TrainGymConfig", "train", "main", "evaluate", "evaluate_policy", "evaluation_rank"]

RANDOM_WARMUP_STEPS = 1000  # learning_starts without demonstrations
VECTOR_ENV_MODES = ("auto", "async", "sync")
EnvSource = Union[str, gym.Env, gym.vector.VectorEnv, Callable[[], gym.Env]]


@dataclass
class TrainGymConfig:
    """Training-loop settings around an ``RLPDConfig``."""

    agent: RLPDConfig = field(default_factory=RLPDConfig)
    buffer_capacity: int = 1_000_000
    # Uniform-random actions (and no updates) before this step; None: 0 with demonstrations,
    # RANDOM_WARMUP_STEPS without.
    learning_starts: Optional[int] = None
    log_every: int = 1000  # env steps between TensorBoard scalar flushes
    flush_every: int = 1000  # replay persistence chunk size (if replay_dir is set)
    replay_dir: Optional[str] = None  # persist the online buffer here
    eval_every: int = 0  # env steps between deterministic evaluations (0: none during training)
    eval_episodes: int = 0  # episodes per evaluation, and after training
    # With evaluations: the returned agent (and --checkpoint) acts with the best-evaluated actor
    # (the final evaluation competes too), not merely the last one; res["kept_step"] says which.
    keep_best: bool = True
    seed: int = 0
    verbose: bool = True
    # Environments stepping in parallel (docs/learning.md, "Parallel environments"). 1: the
    # single env in this process. vector_env: "auto" (1 -> single env, N > 1 -> subprocesses),
    # "async" (gymnasium AsyncVectorEnv, one subprocess per env) or "sync" (SyncVectorEnv,
    # in-process, one after another).
    num_envs: int = 1
    vector_env: str = "auto"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainGymConfig":
        """The project's one schema loader (``robot_rl.schema.from_dict``): unknown keys and
        wrongly typed values are refused by name; ``agent`` is the schema's ``RLPDConfig``."""
        try:
            return from_dict(cls, dict(d))
        except ConfigError as exc:
            raise ConfigError(f"TrainGymConfig: {exc}") from None

    def validate(self) -> None:
        for name in ("buffer_capacity", "log_every", "flush_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainGymConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("eval_every", "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainGymConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.learning_starts is not None and self.learning_starts < 0:
            raise ValueError(f"TrainGymConfig.learning_starts must be >= 0 or None, got {self.learning_starts}")
        if self.eval_every and not self.eval_episodes:
            raise ValueError("TrainGymConfig.eval_every needs eval_episodes >= 1 (episodes per evaluation)")
        require(self, 1, "num_envs")
        if self.vector_env not in VECTOR_ENV_MODES:
            raise FieldError("vector_env", f"must be one of {list(VECTOR_ENV_MODES)}, got {self.vector_env!r}")


def _check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"train: env action space must be a Box, got {action_space}")
    if not isinstance(observation_space, (gym.spaces.Box, gym.spaces.Dict)):
        raise ValueError(f"train: env observation space must be Box or Dict, got {observation_space}")


def _instance(env_source: EnvSource) -> gym.Env:
    """An env from an id, a factory or an env (returned as it is)."""
    if isinstance(env_source, str):
        return gym.make(env_source)
    if callable(env_source) and not isinstance(env_source, gym.Env):
        return env_source()
    return env_source


def _make_env(env_id_or_env: EnvSource, seed: int) -> gym.Env:
    env = _instance(env_id_or_env)
    _check_spaces(env.observation_space, env.action_space)
    env.action_space.seed(seed)
    return env


def _runs_vectorised(env_source: EnvSource, cfg: TrainGymConfig) -> bool:
    if isinstance(env_source, gym.vector.VectorEnv):
        if cfg.num_envs not in (1, env_source.num_envs):
            raise FieldError("num_envs", f"is {cfg.num_envs} but the given vector env has "
                                         f"{env_source.num_envs} sub-envs (leave it at 1 or make them equal)")
        return True
    if isinstance(env_source, gym.Env) and cfg.num_envs > 1:
        raise FieldError("num_envs", f"is {cfg.num_envs}: parallel environments need an env id, a no-argument "
                                     f"env factory or a gymnasium VectorEnv, got an env instance of "
                                     f"{type(env_source).__name__}, which cannot be copied into subprocesses")
    return cfg.num_envs > 1 or cfg.vector_env != "auto"


def _vector_spaces(env_source: EnvSource, cfg: TrainGymConfig,
                   eval_env: Optional[gym.Env]) -> Tuple[gym.Space, gym.Space, Optional[gym.Env]]:
    """The sub-env spaces and the evaluation env of a vectorised run. Evaluations run on their
    own env (a vector env's sub-envs cannot be stopped mid-episode one by one): for an id or a
    factory the instance read for the spaces, for a given VectorEnv ``eval_env``."""
    if isinstance(env_source, gym.vector.VectorEnv):
        if cfg.eval_episodes and eval_env is None:
            raise ValueError("train: evaluating a run on a given VectorEnv needs eval_env= (a single env "
                             "for the evaluation episodes), or eval_episodes: 0")
        spaces = env_source.single_observation_space, env_source.single_action_space
    else:
        probe = _instance(env_source)
        spaces = probe.observation_space, probe.action_space
        if eval_env is None and cfg.eval_episodes:
            eval_env = probe
        else:
            probe.close()
    _check_spaces(*spaces)
    return spaces[0], spaces[1], eval_env


def evaluate(agent: RLPDAgent, env: gym.Env, episodes: int, seed: int = 10_000) -> List[float]:
    """Deterministic-policy episode returns."""
    return evaluate_policy(agent, env, episodes, seed)["returns"]


def _demo_buffer(demos: Union[str, ReplayBuffer, DemoRecording, None], online: ReplayBuffer,
                 seed: int, verbose: bool) -> Optional[ReplayBuffer]:
    """Demonstrations given as a replay directory, a ``ReplayBuffer`` or a ``DemoRecording``,
    checked against the env's spaces; None when there are none."""
    if isinstance(demos, DemoRecording):
        demos = demos.buffer
    if demos is None:
        return None
    if isinstance(demos, ReplayBuffer):
        spec, adim, where = demos.obs_spec, demos.action_dim, "the demonstration buffer"
    else:
        man = read_manifest(demos)
        spec, adim, where = man["observation"], int(man["action_dim"]), f"demos in {demos!r}"
    if spec != online.obs_spec or adim != online.action_dim:
        raise ValueError(f"train: {where} have observation={spec} action_dim={adim}, "
                         f"env needs observation={online.obs_spec} action_dim={online.action_dim}")
    if not isinstance(demos, ReplayBuffer):
        demos = ReplayBuffer.load(demos, resume=False, seed=seed + 1, verbose=verbose, name="demo")
    return demos if len(demos) else None


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN: a figure that does not exist (no episode ended) is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _resolve_config(config: Union[TrainGymConfig, RLPDConfig, Mapping[str, Any], None]) -> TrainGymConfig:
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
    cfg.validate()
    return cfg


def _build_core(cfg: TrainGymConfig, observation_space: gym.Space, action_space: gym.Space,
                demos: Union[str, ReplayBuffer, DemoRecording, None]) -> Tuple[TrainingCore, int]:
    """Agent, buffers (demonstrations checked against the env) and the training core; with the
    ``learning_starts`` in effect."""
    online = ReplayBuffer(observation_space, action_space.shape[0], cfg.buffer_capacity,
                          persist_dir=cfg.replay_dir, flush_every=cfg.flush_every, seed=cfg.seed,
                          verbose=cfg.verbose, name="online")
    demo = _demo_buffer(demos, online, cfg.seed, cfg.verbose)
    agent = RLPDAgent(observation_space, action_space, cfg.agent.resolved(with_demos=demo is not None))
    if demo is not None:
        agent.fit_to_demos(demo)
    learning_starts = cfg.learning_starts
    if learning_starts is None:
        learning_starts = 0 if demo is not None else RANDOM_WARMUP_STEPS
    buffers = DemoOnlineBuffers(demo, online, cfg.agent.demo_ratio)  # the learner's sampling too
    return TrainingCore(agent, buffers, start_after=learning_starts, eval_every=cfg.eval_every), learning_starts


def _open_writer(log_dir: Optional[str], cfg: TrainGymConfig):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir)
    writer.add_text("config", "```\n" + json.dumps(asdict(cfg), indent=1, default=str) + "\n```")
    return writer


def _train_single(env: gym.Env, session: GymSession, steps: int, learning_starts: int, seed: int) -> None:
    """Step one env, store each transition, act on the core's events (updates, evaluations)."""
    core = session.core
    obs, _ = env.reset(seed=seed)
    while core.env_steps < steps and not session.stopped:
        action = env.action_space.sample() if core.env_steps < learning_starts else core.agent.act(obs)
        next_obs, reward, term, trunc, info = env.step(action)
        step_before = core.env_steps
        session.record(0, obs, action, float(reward), next_obs, bool(term), bool(trunc))
        obs = next_obs
        events = core.train()
        if term or trunc:
            session.end_episode(0, episode_success(info, term, trunc))
            obs, _ = env.reset()
        if session.after_updates(events, step_before) and session.eval_env is env:
            # the evaluation used the training env: start a fresh episode
            core.online.end_episode()
            obs, _ = env.reset()
            session.discard_running(0)


def _train_vectorised(env_source: EnvSource, cfg: TrainGymConfig, session: GymSession, steps: int,
                      learning_starts: int) -> Tuple[int, float]:
    """Run ``train_vector`` on the given VectorEnv or on sub-envs made (and closed) here;
    returns the number of sub-envs and the seconds they took to start."""
    t0 = time.perf_counter()
    if isinstance(env_source, gym.vector.VectorEnv):
        envs = env_source
    else:
        envs = make_vector_env(env_source, cfg.num_envs, "sync" if cfg.vector_env == "sync" else "async")
    start_s = time.perf_counter() - t0
    session.t0 = time.perf_counter()  # wall_s: training, not the sub-envs' start (start_s)
    try:
        train_vector(envs, session, steps, learning_starts, cfg.seed)
    finally:
        if envs is not env_source:  # sub-envs made here end here, subprocesses included
            envs.close()
    return envs.num_envs, start_s


def _finish(session: GymSession, num_envs: int, start_s: float) -> Dict[str, Any]:
    """Final evaluation, best actor kept, the summary ``train`` returns."""
    core, cfg = session.core, session.cfg
    core.online.close()
    final = evaluate_policy(core.agent, session.eval_env, cfg.eval_episodes) if cfg.eval_episodes > 0 else None
    kept_step = session.keep_best(final)
    if session.writer is not None:
        if final:
            session.eval_scalars(final, core.env_steps)
        session.writer.close()
    returns = session.returns
    k = min(5, len(returns))
    return {
        "agent": core.agent,
        "steps": core.env_steps,
        "episodes": len(returns),
        "episode_returns": returns,
        "episode_lengths": session.lengths,
        "episode_successes": session.successes,
        "final_return_mean": float(np.mean(returns[-k:])) if k else float("nan"),
        "eval_returns": final["returns"] if final else [],
        "eval_return_mean": final["return_mean"] if final else float("nan"),
        "eval_success_rate": final["success_rate"] if final else float("nan"),
        "evaluations": session.evaluations,
        "best": session.best,
        "kept_step": kept_step,
        "critic_updates_per_s": core.critic_updates_per_s,
        "wall_s": time.perf_counter() - session.t0,
        "num_envs": num_envs,
        "vector_env_start_s": start_s,
        "last_update": core.last_metrics,
    }


def train(
    env_id_or_env: EnvSource,
    config: Union[TrainGymConfig, RLPDConfig, Mapping[str, Any], None],
    steps: int,
    demos_path: Optional[str] = None,
    log_dir: Optional[str] = None,
    *,
    demos: Union[str, ReplayBuffer, DemoRecording, None] = None,
    eval_env: Optional[gym.Env] = None,
    callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
) -> Dict[str, Any]:
    """Train for ``steps`` env steps; returns the agent and summary metrics.

    ``config`` may be a ``TrainGymConfig``, a bare ``RLPDConfig`` (loop defaults) or a dict for
    ``TrainGymConfig.from_dict``. ``demos`` (or the older ``demos_path``): a replay directory,
    a ``ReplayBuffer`` or a ``DemoRecording``. Every ``eval_every`` steps the deterministic
    policy runs ``eval_episodes`` episodes on ``eval_env`` (default: a second instance for an env
    id, else the training env, whose running episode an evaluation then ends); the best evaluation's actor
    weights are kept (``res["best"]``). ``callback(progress)`` is called after each episode
    (``progress["event"] == "episode"``) and each evaluation (``"eval"``) with the step, the
    live agent and the figures; returning ``False`` stops training there.

    ``env_id_or_env`` may also be a no-argument env factory, or a ``gymnasium.vector.VectorEnv``
    (trained from as it is, and not closed here); with ``cfg.num_envs`` > 1 an id or a factory
    makes that many sub-envs (``vector_train``), which are closed when training ends.

    The store/update body is ``training_core.TrainingCore`` (the ROS learner's too); this
    function only steps the env(s) and acts on the core's events.
    """
    cfg = _resolve_config(config)
    if steps <= 0:
        raise ValueError(f"train: steps must be > 0, got {steps}")
    if demos is not None and demos_path is not None:
        raise ValueError("train: give demos or demos_path, not both")
    vectorised = _runs_vectorised(env_id_or_env, cfg)
    if vectorised:
        env = None
        observation_space, action_space, eval_env = _vector_spaces(env_id_or_env, cfg, eval_env)
    else:
        env = _make_env(env_id_or_env, cfg.seed)
        observation_space, action_space = env.observation_space, env.action_space
    if eval_env is None:  # an env id makes a second instance, so evaluations interrupt nothing
        eval_env = gym.make(env_id_or_env) if isinstance(env_id_or_env, str) and cfg.eval_episodes else env
    core, learning_starts = _build_core(cfg, observation_space, action_space,
                                        demos if demos is not None else demos_path)
    num_envs = env_id_or_env.num_envs if isinstance(env_id_or_env, gym.vector.VectorEnv) else cfg.num_envs
    session = GymSession(core, cfg, num_envs, eval_env, _open_writer(log_dir, cfg), callback)
    if vectorised:
        num_envs, start_s = _train_vectorised(env_id_or_env, cfg, session, steps, learning_starts)
    else:
        num_envs, start_s = 1, 0.0
        _train_single(env, session, steps, learning_starts, cfg.seed)
    return _finish(session, num_envs, start_s)


def load_train_config(path: Optional[str] = None, sets: Sequence[str] = ()) -> TrainGymConfig:
    """``TrainGymConfig`` from a YAML (or JSON) file and ``--set key=value`` overrides (values
    are YAML scalars, dotted keys reach ``agent.*``), through the project's schema loader."""
    from robot_rl.cli import parse_sets

    data: Dict[str, Any] = {}
    if path:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"train-gym --config {path}: cannot read it as YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"train-gym --config {path}: expected a mapping of TrainGymConfig "
                              f"fields, found {type(data).__name__}")
    overrides = parse_sets(list(sets))
    data = deep_merge(data, {k: v for k, v in overrides.items() if "." not in k})
    data = deep_merge(data, unflatten({k: v for k, v in overrides.items() if "." in k}))
    return TrainGymConfig.from_dict(data)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="robot-rl train-gym", description="Train RLPD/SERL SAC on a Gymnasium env.")
    p.add_argument("env_id", help="Gymnasium env id, e.g. Pendulum-v1")
    p.add_argument("--steps", type=int, default=100_000, help="environment steps")
    p.add_argument("--demos", default=None, help="demo directory (replay on-disk format)")
    p.add_argument("--log-dir", default=None, help="TensorBoard log directory")
    p.add_argument("--config", default=None,
                   help="YAML (or JSON) file with TrainGymConfig fields (agent: {...} for RLPDConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set agent.num_critics=2 --set learning_starts=500 (YAML values)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--num-envs", type=int, default=None, metavar="N",
                   help="environments stepping in parallel (num_envs; > 1: one subprocess each)")
    p.add_argument("--vector-env", choices=VECTOR_ENV_MODES, default=None,
                   help="vector_env: auto (default), async (subprocesses) or sync (in-process)")
    p.add_argument("--checkpoint", default=None,
                   help="save the full agent checkpoint (pickle-free directory, robot_rl.learning.checkpoint) here at the end")
    args = p.parse_args(argv)
    seed = [f"seed={args.seed}", f"agent.seed={args.seed}"] if args.seed is not None else []
    vector = [f"num_envs={args.num_envs}"] if args.num_envs is not None else []
    vector += [f"vector_env={args.vector_env}"] if args.vector_env is not None else []
    cfg = load_train_config(args.config, [*args.set, *seed, *vector])
    res = train(args.env_id, cfg, args.steps, demos_path=args.demos, log_dir=args.log_dir)
    if args.checkpoint:
        from .checkpoint import save_agent

        save_agent(args.checkpoint, res["agent"])
    hidden = ("agent", "episode_returns", "episode_lengths", "episode_successes", "last_update", "best")
    summary = {k: _finite_or_none(v) for k, v in res.items() if k not in hidden}
    if res["best"] is not None:
        summary["best"] = {k: v for k, v in res["best"].items() if k != "actor_state"}
    print(json.dumps(summary, indent=1, default=float, allow_nan=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
