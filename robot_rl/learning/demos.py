"""Demonstrations from any Gymnasium env and any policy: no robot, ROS, OpenCV or pinocchio.

    rec = record_episodes(env, policy, episodes=20)        # in memory
    rec = record_episodes(env, policy, 20, out="demos/")    # also written in the replay format
    train(env, cfg, steps, demos=rec.buffer)                # or demos="demos/"

``policy`` is any callable ``obs -> action`` (a scripted controller, a teleoperation reader, a
trained agent's ``act``); one with a ``reset()`` method is reset before every episode. An episode counts as a success when its last ``info`` says so
(``info["is_success"]``, Gymnasium-Robotics' key, or ``info["success"]``, robot_rl's); an env
that reports neither counts an episode that ends ``terminated`` (not truncated) as a success.
Only successful episodes are kept by default: a failed demonstration would teach the critic
that the demonstrated actions lead nowhere. With ``rejected_out`` the episodes that were not kept
(failed, discarded by the person) are written there in the same format instead of dropped: a
person's demonstrations are never lost, even when none succeeded.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple

import gymnasium as gym
import numpy as np

from .replay import ReplayBuffer

Policy = Callable[[Any], Any]
Transition = Tuple[Any, np.ndarray, float, Any, bool, bool]


def episode_success(info: Mapping[str, Any], terminated: bool, truncated: bool) -> bool:
    """The success of an episode that just ended, read from its last ``info``."""
    for key in ("is_success", "success"):
        if key in info:
            return bool(np.asarray(info[key]).item())
    return bool(terminated and not truncated)


@dataclass
class DemoRecording:
    buffer: ReplayBuffer               # the kept episodes, ready for ``train(demos=...)``
    episode_lengths: List[int]         # of the kept episodes
    attempts: int                      # episodes run, kept or not
    wall_s: float
    out: Optional[str] = None          # the replay directory, when written to disk
    returns: List[float] = field(default_factory=list)

    @property
    def transitions(self) -> int:
        return int(sum(self.episode_lengths))


EpisodeRunner = Callable[[gym.Env, Policy, int], Tuple[List[Transition], bool]]


def record_episodes(env: gym.Env, policy: Policy, episodes: int, *, out: Optional[str] = None,
                    seed: int = 0, only_successful: bool = True,
                    max_attempts: Optional[int] = None, verbose: bool = False,
                    run_episode: Optional[EpisodeRunner] = None,
                    rejected_out: Optional[str] = None) -> DemoRecording:
    """Run ``policy`` in ``env`` until ``episodes`` episodes are kept; return them as a buffer.

    Episodes are held back until they end, so a failed one leaves no trace. With ``out`` the
    kept episodes are also written as a replay directory (``ReplayBuffer.load(out)``,
    ``learner.demos``, ``train-gym --demos``), which must not exist or be empty.
    ``run_episode(env, policy, seed) -> (transitions, success)`` runs one episode (default:
    the policy until the env ends it; a teleoperation recorder passes its own).
    ``rejected_out``: where episodes that were not kept go (same format), else they are dropped.
    """
    if episodes <= 0:  # would "succeed" with nothing, and the learner would fail much later
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    for where in (out, rejected_out):
        if where is not None and os.path.isdir(where) and os.listdir(where):
            raise FileExistsError(f"{where!r} is not empty; demonstrations go to a new "
                                  f"directory")
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"record_episodes: the env's action space must be a Box, got {env.action_space}")
    max_attempts = max_attempts or 3 * episodes + 5
    run_episode = run_episode or _run_episode
    kept: List[List[Transition]] = []
    rejected: List[List[Transition]] = []
    returns: List[float] = []
    attempts, t0 = 0, time.perf_counter()
    try:
        while len(kept) < episodes:
            if attempts >= max_attempts:
                where = (f"; the {len(rejected)} unsuccessful episode(s) are kept in "
                         f"{rejected_out!r}" if rejected_out and rejected else "")
                raise RuntimeError(f"only {len(kept)}/{episodes} successful episodes after "
                                   f"{attempts} attempts; does the policy solve the task?"
                                   f"{where}")
            attempts += 1
            episode, success = run_episode(env, policy, seed + attempts)
            if only_successful and not success:
                if rejected_out is not None and episode:
                    rejected.append(episode)
                continue
            kept.append(episode)
            returns.append(sum(t[2] for t in episode))
            if verbose:
                print(f"[demos] episode {len(kept)}/{episodes}: {len(episode)} steps "
                      f"(attempt {attempts})", flush=True)
    finally:  # on an error too: episodes already kept are written, never lost
        buffer = _to_buffer(env, kept, out)
        if rejected_out is not None:
            _to_buffer(env, rejected, rejected_out)
    lengths = [len(e) for e in kept]
    return DemoRecording(buffer, lengths, attempts, time.perf_counter() - t0, out, returns)


def _run_episode(env: gym.Env, policy: Policy, seed: int) -> Tuple[List[Transition], bool]:
    if callable(getattr(policy, "reset", None)):  # a stateful policy (a scripted expert) restarts
        policy.reset()
    obs, _ = env.reset(seed=seed)
    episode: List[Transition] = []
    done, success = False, False
    while not done:
        action = np.asarray(policy(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        episode.append((obs, action, float(reward), next_obs, bool(terminated), bool(truncated)))
        obs, done = next_obs, bool(terminated or truncated)
        success = episode_success(info, terminated, truncated)
    return episode, success


def _to_buffer(env: gym.Env, episodes: List[List[Transition]], out: Optional[str]) -> Optional[ReplayBuffer]:
    if not episodes:
        return None
    buffer = ReplayBuffer(env.observation_space, int(env.action_space.shape[0]),
                          sum(len(e) for e in episodes), persist_dir=out, flush_every=1000,
                          frame_slack=len(episodes) + 1,  # each episode adds one first frame
                          verbose=False, name="demos")
    for episode in episodes:
        for transition in episode:
            buffer.add(*transition, actor_id=0, intervened=False)
        buffer.end_episode()
    buffer.close()  # flushes the last chunk to ``out``; the in-memory copy stays usable
    return buffer
