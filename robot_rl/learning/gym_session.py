"""What one ``train-gym`` run keeps besides the agent: episode figures, evaluations (and the best
evaluated actor), TensorBoard scalars and the user's callback.

The single-env loop (``train_gym``) and the vector loop (``vector_train``) both store through
:meth:`GymSession.record`, report episode ends through :meth:`GymSession.end_episode` and hand
the ``TrainingCore``'s events to :meth:`GymSession.after_updates`; the store/update body itself
is ``training_core.TrainingCore``.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import gymnasium as gym
import numpy as np

from .demos import episode_success
from .training_core import StepEvents, TrainingCore

__all__ = ["GymSession", "evaluate_policy", "evaluation_rank"]

Callback = Callable[[Dict[str, Any]], Optional[bool]]


def evaluate_policy(agent, env: gym.Env, episodes: int, seed: int = 10_000,
                    deterministic: bool = True) -> Dict[str, Any]:
    """Episodes with the mean action (``deterministic=False``: sampled actions, the training
    policy's): returns, success rate, mean steps of the successful ones."""
    returns, successes, lengths = [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        done, ret, steps = False, 0.0, 0
        while not done:
            obs, r, term, trunc, info = env.step(agent.act(obs, deterministic=deterministic))
            ret += float(r)
            steps += 1
            done = term or trunc
        returns.append(ret)
        success = episode_success(info, term, trunc)
        successes.append(success)
        if success:
            lengths.append(steps)
    return {"returns": returns, "return_mean": float(np.mean(returns)),
            "success_rate": float(np.mean(successes)),
            "mean_steps_to_success": float(np.mean(lengths)) if lengths else None}


def evaluation_rank(result: Mapping[str, Any]) -> tuple:
    """Order of evaluations: success, then return, then fewer steps to success."""
    steps = result.get("mean_steps_to_success")
    return (result["success_rate"], result["return_mean"], -(steps if steps is not None else math.inf))


class GymSession:
    """Bookkeeping of one run over ``num_envs`` environments (sub-env ``i`` is replay actor
    ``i``). ``stopped`` turns True when the callback returns False."""

    def __init__(self, core: TrainingCore, cfg, num_envs: int, eval_env: Optional[gym.Env],
                 writer=None, callback: Optional[Callback] = None):
        self.core, self.cfg, self.eval_env = core, cfg, eval_env
        self.writer, self.callback = writer, callback
        self.running_return = np.zeros(num_envs)
        self.running_length = np.zeros(num_envs, np.int64)
        self.returns: List[float] = []
        self.lengths: List[int] = []
        self.successes: List[bool] = []
        self.evaluations: List[Dict[str, Any]] = []
        self.best: Optional[Dict[str, Any]] = None
        self.stopped = False
        self.t0 = time.perf_counter()

    def record(self, i: int, obs, action, reward: float, next_obs, terminated, truncated) -> None:
        """Store sub-env ``i``'s transition (it buys its update in the core)."""
        self.core.add(obs, action, reward, next_obs, terminated, truncated, actor_id=i)
        self.running_return[i] += reward
        self.running_length[i] += 1

    def discard_running(self, i: int) -> None:
        """Sub-env ``i``'s episode was cut short (an evaluation reset its env): not counted."""
        self.running_return[i], self.running_length[i] = 0.0, 0

    def end_episode(self, i: int, success: bool) -> None:
        ret, length = float(self.running_return[i]), int(self.running_length[i])
        self.discard_running(i)
        self.returns.append(ret)
        self.lengths.append(length)
        self.successes.append(success)
        step = self.core.env_steps
        if self.writer is not None:
            self.writer.add_scalar("episode/return", ret, step)
            self.writer.add_scalar("episode/length", length, step)
            self.writer.add_scalar("episode/success", float(success), step)
        if self.callback is not None and not self.stopped:
            self.stopped = self.callback({"event": "episode", "step": step, "agent": self.core.agent,
                                          "return": ret, "length": length, "success": success,
                                          "env_index": i}) is False

    def after_updates(self, events: StepEvents, step_before: int) -> bool:
        """Act on the core's events after the transitions since ``step_before`` were stored and
        their updates ran: evaluate when due (True when it did), log the periodic scalars."""
        evaluated = events.evaluation_due and not self.stopped
        if evaluated:
            self.evaluate()
        self._log(step_before)
        return evaluated

    def evaluate(self) -> Dict[str, Any]:
        """One evaluation at the current step; keeps the best actor; the callback may stop."""
        step, agent = self.core.env_steps, self.core.agent
        result = evaluate_policy(agent, self.eval_env, self.cfg.eval_episodes)
        result = {"step": step, **{k: v for k, v in result.items() if k != "returns"}}
        self.evaluations.append(result)
        if self.best is None or evaluation_rank(result) > evaluation_rank(self.best):
            # A copy: the state dict's tensors are the live parameters, which training goes on
            # to change in place.
            self.best = {**result, "actor_state": copy.deepcopy(agent.actor_state_dict())}
        self.eval_scalars(result, step)
        if self.cfg.verbose:
            print(f"[train-gym] step {step}: eval success {result['success_rate']:.0%}, "
                  f"return {result['return_mean']:.2f}", flush=True)
        if self.callback is not None and self.callback({"event": "eval", "agent": agent, **result}) is False:
            self.stopped = True
        return result

    def eval_scalars(self, result: Mapping[str, Any], step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar("eval/return", result["return_mean"], step)
            self.writer.add_scalar("eval/success_rate", result["success_rate"], step)

    def _log(self, step_before: int) -> None:
        core, step = self.core, self.core.env_steps
        if self.writer is None or step // self.cfg.log_every <= step_before // self.cfg.log_every:
            return
        for k, v in core.last_metrics.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        if core.update_time > 0:
            self.writer.add_scalar("perf/critic_updates_per_s", core.critic_updates_per_s, step)
        self.writer.add_scalar("buffer/online", len(core.online), step)
        self.writer.add_scalar("buffer/demo", len(core.demo) if core.demo is not None else 0, step)
        self.writer.add_scalar("perf/env_steps_per_s", step / (time.perf_counter() - self.t0), step)

    def keep_best(self, final: Optional[Dict[str, Any]]) -> Optional[int]:
        """With ``keep_best``, put the best-evaluated actor into the agent unless the final
        evaluation ranks at least as high; returns the step of the actor the agent now holds."""
        step = self.core.env_steps
        if not self.cfg.keep_best or self.best is None or final is None:
            return step if final is not None else None
        if evaluation_rank(final) >= evaluation_rank(self.best):
            return step
        self.core.agent.load_actor_state_dict(self.best["actor_state"])
        return self.best["step"]
