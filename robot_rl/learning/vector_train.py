"""The ``train`` loop over N environments stepping in parallel (Gymnasium's vector API).

``train_gym.train`` hands over to ``train_vector`` when ``TrainGymConfig.num_envs > 1``, when
``vector_env`` asks for a vector env, or when it is given a ``gymnasium.vector.VectorEnv``.
The vector interface is the one batched simulators present: Gymnasium's ``AsyncVectorEnv``
(sub-envs in subprocesses) and ``SyncVectorEnv`` (in-process), and GPU-batched envs such as
Isaac Lab's or an MJX env behind Gymnasium's ``TorchToNumpy`` / ``JaxToNumpy`` vector wrappers:
batched observations, actions, rewards, ``terminations``, ``truncations`` and infos, and
``metadata["autoreset_mode"]``.

Why the bookkeeping looks like this:

* Every sub-env keeps its own episode (return, length, frame chain in the replay via
  ``actor_id`` = sub-env index). A transition's ``next_obs`` is the observation the episode
  ended in, never the first observation of the next one: under ``SAME_STEP`` autoreset the
  returned observation of a finished sub-env is already the reset one and the final one is in
  ``infos["final_obs"]``; under ``NEXT_STEP`` the step after an episode end only resets (its
  action is ignored, reward 0) and is not stored; under ``DISABLED`` finished sub-envs are reset
  here with ``reset(options={"reset_mask": ...})``.
* ``terminated`` and ``truncated`` are stored apart, as in the single-env loop, so a time limit
  bootstraps and a terminal state does not.
* The update-to-data ratio is per environment step: each stored transition owes one
  ``agent.update`` (``utd_ratio`` critic minibatches and one actor step), so a vector step of N
  sub-envs buys N updates and the learning per env step is that of the single-env loop.
* With an env that steps asynchronously (``step_async`` / ``step_wait``) the owed updates run
  while the subprocesses simulate; they then learn from data up to the previous vector step,
  one step behind, as a SERL learner is behind its actors.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import gymnasium as gym
import numpy as np

from robot_rl.schema import ConfigError

from .demos import episode_success

__all__ = ["make_vector_env", "train_vector", "sub_env_info", "autoreset_mode_of"]

# Sub-envs in fresh interpreters: a forked child would inherit the learner's torch thread pools,
# a TensorBoard writer's threads and any GL context, and fork-after-threads can deadlock. The
# env factory travels by cloudpickle (gymnasium's CloudpickleWrapper), so lambdas work too.
SUBPROCESS_START_METHOD = "spawn"


def make_vector_env(env: Union[str, Callable[[], gym.Env]], num_envs: int, mode: str = "async",
                    autoreset_mode: str = "SameStep") -> gym.vector.VectorEnv:
    """N copies of ``env`` (a registered id or a no-argument factory) as an ``AsyncVectorEnv``
    (``mode="async"``: one subprocess each) or a ``SyncVectorEnv`` (``"sync"``: in this
    process, one after another)."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"num_envs: must be an integer >= 1, got {num_envs!r}")
    if isinstance(env, str):
        factory: Callable[[], gym.Env] = functools.partial(gym.make, env)
    elif callable(env) and not isinstance(env, gym.Env):
        factory = env
    else:
        raise ConfigError(f"num_envs={num_envs}: parallel environments need an env id or a no-argument "
                          f"env factory (e.g. functools.partial(PickCubeEnv, cfg)), got an env instance "
                          f"of {type(env).__name__}, which cannot be copied into subprocesses")
    fns = [factory] * num_envs
    if mode == "async":
        return gym.vector.AsyncVectorEnv(fns, context=SUBPROCESS_START_METHOD, autoreset_mode=autoreset_mode)
    if mode == "sync":
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset_mode)
    raise ConfigError(f"vector_env: must be 'async' or 'sync' for a vector env, got {mode!r}")


def autoreset_mode_of(envs: gym.vector.VectorEnv) -> gym.vector.AutoresetMode:
    """The env's autoreset mode (Gymnasium 1.x ``metadata["autoreset_mode"]``); an env that does
    not say is taken to follow Gymnasium's default, ``NEXT_STEP``."""
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    try:
        return gym.vector.AutoresetMode(mode) if not isinstance(mode, gym.vector.AutoresetMode) else mode
    except ValueError:
        raise ConfigError(f"vector env metadata['autoreset_mode'] is {mode!r}, expected one of "
                          f"{[m.value for m in gym.vector.AutoresetMode]}") from None


def _to_numpy(x: Any) -> Any:
    """A numpy copy: a vector env made with ``copy=False`` reuses its output arrays at the next
    step, while this step's observations are still to be stored."""
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if hasattr(x, "detach"):  # a torch tensor from a GPU-batched env without a numpy wrapper
        return x.detach().cpu().numpy().copy()
    return np.array(x, copy=True)


def _sub_obs(batched: Any, i: int) -> Any:
    if isinstance(batched, Mapping):
        return {k: v[i] for k, v in batched.items()}
    return batched[i]


def sub_env_info(infos: Mapping[str, Any], i: int) -> Dict[str, Any]:
    """Sub-env ``i``'s info dict out of a vector env's batched infos (keys whose ``_key`` mask
    is set for ``i``; nested dicts such as ``final_info`` likewise)."""
    out: Dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not bool(mask[i]):
            continue
        out[key] = sub_env_info(value, i) if isinstance(value, Mapping) else value[i]
    return out


def _replace_rows(batched: Any, new: Any, mask: np.ndarray) -> Any:
    """``batched`` with the rows where ``mask`` is set taken from ``new``."""
    if isinstance(batched, Mapping):
        return {k: _replace_rows(v, new[k], mask) for k, v in batched.items()}
    return np.where(mask.reshape(-1, *([1] * (np.ndim(batched) - 1))), new, batched)


class _Episodes:
    """Per-sub-env running return and length, and the finished episodes' figures."""

    def __init__(self, n: int):
        self.ret = np.zeros(n)
        self.len = np.zeros(n, np.int64)
        self.returns: List[float] = []
        self.lengths: List[int] = []
        self.successes: List[bool] = []

    def step(self, i: int, reward: float) -> None:
        self.ret[i] += reward
        self.len[i] += 1

    def finish(self, i: int, success: bool) -> Tuple[float, int]:
        ret, length = float(self.ret[i]), int(self.len[i])
        self.returns.append(ret)
        self.lengths.append(length)
        self.successes.append(success)
        self.ret[i], self.len[i] = 0.0, 0
        return ret, length


def train_vector(envs: gym.vector.VectorEnv, agent, online, buffers, cfg, steps: int, learning_starts: int, *,
                 eval_fn: Optional[Callable[[int], bool]] = None, writer=None,
                 callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None) -> Dict[str, Any]:
    """Collect ``steps`` transitions from ``envs`` into ``online`` and run the owed updates.

    ``eval_fn(step)`` runs an evaluation (and returns True to stop) whenever the env-step count
    passes a multiple of ``cfg.eval_every``. Returns the episode figures, the last update's
    losses, the update count and time, the env-step count and the time spent stepping envs.
    """
    n = envs.num_envs
    mode = autoreset_mode_of(envs)
    random_space = envs.action_space  # batched: one uniform action per sub-env
    random_space.seed(cfg.seed)
    u, bs = cfg.agent.utd_ratio, cfg.agent.batch_size
    overlap = hasattr(envs, "step_async") and hasattr(envs, "step_wait")
    episodes = _Episodes(n)
    stats = {"n_updates": 0, "update_time": 0.0}
    last: Dict[str, float] = {}
    owed = 0

    def run_updates() -> None:
        nonlocal owed, last
        while owed > 0:
            ts = time.perf_counter()
            last = agent.update(*buffers.sample(bs, u))
            stats["update_time"] += time.perf_counter() - ts
            stats["n_updates"] += 1
            owed -= 1

    obs, _ = envs.reset(seed=cfg.seed)
    obs = _to_numpy(obs)
    resetting = np.zeros(n, bool)  # NEXT_STEP: the coming step of these sub-envs only resets them
    step, stopped, env_time = 0, False, 0.0
    t0 = time.perf_counter()
    while step < steps and not stopped:
        if step < learning_starts:
            actions = random_space.sample()
        else:
            actions = np.stack([agent.act(_sub_obs(obs, i)) for i in range(n)])
        ts = time.perf_counter()
        if overlap:
            envs.step_async(actions)
            te = time.perf_counter()
            run_updates()  # while the subprocesses simulate
            ts += time.perf_counter() - te
            next_obs, rewards, terms, truncs, infos = envs.step_wait()
        else:
            next_obs, rewards, terms, truncs, infos = envs.step(actions)
        env_time += time.perf_counter() - ts
        next_obs = _to_numpy(next_obs)
        rewards, terms, truncs = (np.asarray(_to_numpy(a)).reshape(n) for a in (rewards, terms, truncs))
        done = np.logical_or(terms, truncs)
        final_obs = infos.get("final_obs") if mode == gym.vector.AutoresetMode.SAME_STEP else None
        step_before = step
        for i in range(n):
            if resetting[i]:
                continue  # a reset step: its action was ignored and nothing happened
            if step >= steps:
                break
            info = sub_env_info(infos, i)
            if done[i] and final_obs is not None:
                nobs_i = final_obs[i]
                info = info.get("final_info", info)
            else:
                nobs_i = _sub_obs(next_obs, i)
            online.add(_sub_obs(obs, i), actions[i], float(rewards[i]), nobs_i, bool(terms[i]), bool(truncs[i]),
                       actor_id=i)
            episodes.step(i, float(rewards[i]))
            step += 1
            if step >= learning_starts:
                owed += 1
            if done[i]:
                success = episode_success(info, bool(terms[i]), bool(truncs[i]))
                ret, length = episodes.finish(i, success)
                if writer is not None:
                    writer.add_scalar("episode/return", ret, step)
                    writer.add_scalar("episode/length", length, step)
                    writer.add_scalar("episode/success", float(success), step)
                if callback is not None and not stopped:
                    stopped = callback({"event": "episode", "step": step, "agent": agent, "return": ret,
                                        "length": length, "success": success, "env_index": i}) is False
        if mode == gym.vector.AutoresetMode.NEXT_STEP:
            resetting = done.copy()  # a reset step itself never reports done
        elif mode == gym.vector.AutoresetMode.DISABLED and done.any():
            reset_obs, _ = envs.reset(options={"reset_mask": done})
            next_obs = _replace_rows(next_obs, _to_numpy(reset_obs), done)
        obs = next_obs
        if not overlap:
            run_updates()
        if eval_fn is not None and cfg.eval_every and step // cfg.eval_every > step_before // cfg.eval_every \
                and not stopped:
            stopped = bool(eval_fn(step))
        if writer is not None and step // cfg.log_every > step_before // cfg.log_every:
            for k, v in last.items():
                writer.add_scalar(f"train/{k}", v, step)
            if stats["update_time"] > 0:
                writer.add_scalar("perf/critic_updates_per_s", stats["n_updates"] * u / stats["update_time"], step)
            writer.add_scalar("buffer/online", len(online), step)
            writer.add_scalar("perf/env_steps_per_s", step / (time.perf_counter() - t0), step)
    run_updates()  # the updates the last vector step's transitions bought
    return {"steps": step, "returns": episodes.returns, "lengths": episodes.lengths,
            "successes": episodes.successes, "last": last, "n_updates": stats["n_updates"],
            "update_time": stats["update_time"], "env_time": env_time, "num_envs": n}
