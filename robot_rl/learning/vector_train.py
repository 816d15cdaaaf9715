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
  ``agent.update`` (``utd_ratio`` critic minibatches and one actor step; the credit of
  ``training_core.TrainingCore``, as in the single-env loop and the ROS learner), so a vector
  step of N sub-envs buys N updates and the learning per env step is that of the single-env loop.
* With an env that steps asynchronously (``step_async`` / ``step_wait``) the owed updates run
  while the subprocesses simulate; they then learn from data up to the previous vector step,
  one step behind, as a SERL learner is behind its actors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping, Union

import gymnasium as gym
import numpy as np

from robot_rl.schema import ConfigError

from .demos import episode_success
from .gym_session import GymSession
from .training_core import TrainingCore

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


def _vector_step(envs: gym.vector.VectorEnv, actions: np.ndarray, core: TrainingCore, overlap: bool):
    """Step every sub-env; with an env that steps asynchronously the updates owed so far run
    while the subprocesses simulate."""
    if not overlap:
        return envs.step(actions)
    envs.step_async(actions)
    core.train()
    return envs.step_wait()


def _store(session: GymSession, steps: int, obs, actions, next_obs, rewards, terms, truncs, infos,
           final_obs, skip: np.ndarray) -> None:
    """Record each sub-env's transition (up to ``steps`` in all) and its episode end. ``skip``:
    sub-envs whose step only reset them."""
    core = session.core
    for i in range(len(rewards)):
        if skip[i]:
            continue  # a reset step: its action was ignored and nothing happened
        if core.env_steps >= steps:
            break
        done = bool(terms[i] or truncs[i])
        info = sub_env_info(infos, i)
        if done and final_obs is not None:
            nobs_i = final_obs[i]
            info = info.get("final_info", info)
        else:
            nobs_i = _sub_obs(next_obs, i)
        session.record(i, _sub_obs(obs, i), actions[i], float(rewards[i]), nobs_i, bool(terms[i]),
                       bool(truncs[i]))
        if done:
            session.end_episode(i, episode_success(info, bool(terms[i]), bool(truncs[i])))


def train_vector(envs: gym.vector.VectorEnv, session: GymSession, steps: int, learning_starts: int,
                 seed: int) -> None:
    """Collect ``steps`` transitions from ``envs`` into ``session.core`` and act on its events
    (updates owed, evaluations) until done or the session is stopped."""
    core, n = session.core, envs.num_envs
    mode = autoreset_mode_of(envs)
    random_space = envs.action_space  # batched: one uniform action per sub-env
    random_space.seed(seed)
    overlap = hasattr(envs, "step_async") and hasattr(envs, "step_wait")
    obs = _to_numpy(envs.reset(seed=seed)[0])
    resetting = np.zeros(n, bool)  # NEXT_STEP: the coming step of these sub-envs only resets them
    while core.env_steps < steps and not session.stopped:
        if core.env_steps < learning_starts:
            actions = random_space.sample()
        else:
            actions = np.stack([core.agent.act(_sub_obs(obs, i)) for i in range(n)])
        next_obs, rewards, terms, truncs, infos = _vector_step(envs, actions, core, overlap)
        next_obs = _to_numpy(next_obs)
        rewards, terms, truncs = (np.asarray(_to_numpy(a)).reshape(n) for a in (rewards, terms, truncs))
        done = np.logical_or(terms, truncs)
        final_obs = infos.get("final_obs") if mode == gym.vector.AutoresetMode.SAME_STEP else None
        step_before = core.env_steps
        _store(session, steps, obs, actions, next_obs, rewards, terms, truncs, infos, final_obs, resetting)
        if mode == gym.vector.AutoresetMode.NEXT_STEP:
            resetting = done.copy()  # a reset step itself never reports done
        elif mode == gym.vector.AutoresetMode.DISABLED and done.any():
            reset_obs, _ = envs.reset(options={"reset_mask": done})
            next_obs = _replace_rows(next_obs, _to_numpy(reset_obs), done)
        obs = next_obs
        # Overlapped: this step's updates run during the next one; here only the events.
        session.after_updates(core.train(max_updates=0 if overlap else None), step_before)
    core.train()  # the updates the last vector step's transitions bought
