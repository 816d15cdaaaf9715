"""The one store-and-update body of RLPD/SERL training, shared by the ROS learner and train-gym.

``TrainingCore`` holds an ``RLPDAgent`` and its ``DemoOnlineBuffers`` and owns the training
cadence: every stored env step, from the ``start_after``-th on, buys one ``agent.update()``
(``agent.utd_ratio`` critic minibatches and one actor step, ``agent.demo_ratio`` of each from the
demonstrations). :meth:`TrainingCore.train` runs the updates owed and returns a
:class:`StepEvents` saying what the caller should do now (publish weights, checkpoint,
evaluate); the core never calls back into its host.

Two hosts: ``learner_core.LearnerCore`` (the ROS learner's core: transitions arrive as transport
messages, at most one update per step so acknowledgements go out between updates, at most
``learner.max_backlog`` steps of credit) and ``train_gym.train`` (transitions from Gymnasium envs
in this process through :meth:`TrainingCore.add`, every owed update run, no backlog limit).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from .replay import DemoOnlineBuffers


@dataclass
class StepEvents:
    """What one :meth:`TrainingCore.train` (or ``LearnerCore.step``) asks of its host."""

    acks: Dict[int, int] = field(default_factory=dict)  # {actor_id: durable count} to publish
    weights_due: bool = False  # publish the actor weights (every ``publish_every`` updates)
    checkpoint_due: bool = False  # save a checkpoint (the core's ``CheckpointCadence``)
    evaluation_due: bool = False  # the env-step count passed a multiple of ``eval_every``
    started: bool = False  # training started (enough data) since the last call
    updated: bool = False  # at least one agent update ran
    n_updates: int = 0  # agent updates run in this call


def _passed_multiple(before: int, now: int, every: int) -> bool:
    return bool(every) and now // every > before // every


class TrainingCore:
    """Agent + demo/online buffers + update credit.

    ``start_after``: env steps stored (resumed ones included) before the first update; the step
    that reaches it buys the first update. ``max_backlog``: most updates owed at once (older
    credit is dropped when training lags behind the data). ``counters``: ``updates``,
    ``critic_steps_trained`` and ``steps_at_start`` of a resumed run (a checkpoint's extras).
    """

    def __init__(self, agent, buffers: DemoOnlineBuffers, *, start_after: int,
                 max_backlog: float = math.inf, publish_every: int = 0, eval_every: int = 0,
                 cadence=None, env_steps: int = 0, counters: Optional[Mapping[str, Any]] = None):
        counters = counters or {}
        self.agent, self.buffers = agent, buffers
        self.online, self.demo = buffers.online, buffers.demo
        self.start_after = max(1, int(start_after))  # an update needs one stored transition
        self.max_backlog = float(max_backlog)
        self.publish_every, self.eval_every, self.cadence = publish_every, eval_every, cadence
        self.env_steps = int(env_steps)
        self.updates = int(counters.get("updates", 0))
        self.critic_steps_trained = int(counters.get("critic_steps_trained", 0))
        self.steps_at_start = int(counters.get("steps_at_start", -1))
        self.credit = 0.0
        self.intervened_steps = 0
        self.update_time = 0.0  # seconds in agent.update
        self.last_metrics: Dict[str, float] = {}
        self._checked_at = self.env_steps  # env steps at the last evaluation check
        self._just_started = False

    # -- data --------------------------------------------------------------------------------
    def add(self, obs, action, reward, next_obs, terminated, truncated, actor_id: int = 0,
            intervened: bool = False, origin: Optional[Tuple[int, int, int]] = None) -> None:
        """Store one transition (HIL-SERL routing: intervened ones go to the demos too) and
        credit the update it buys."""
        self.buffers.add(obs, action, float(reward), next_obs, bool(terminated), bool(truncated),
                         actor_id, intervened, origin)
        self.env_steps += 1
        self.intervened_steps += int(intervened)
        if self.training:
            self.credit = min(self.credit + 1.0, self.max_backlog)
        else:
            self._maybe_start()

    def add_episode(self, transitions: Iterable[Tuple[Any, Any, float, Any, bool, bool]],
                    actor_id: int = 0, intervened: bool = False) -> None:
        """Store a whole episode of ``(obs, action, reward, next_obs, terminated, truncated)``
        (a recorded demonstration, another process's rollout) and close its frame chain."""
        for transition in transitions:
            self.add(*transition, actor_id=actor_id, intervened=intervened)
        self.online.end_episode()

    def _maybe_start(self) -> None:
        if not self.training and self.env_steps >= self.start_after:
            self.steps_at_start = self.env_steps
            self.credit = 1.0
            self._just_started = True

    # -- training ----------------------------------------------------------------------------
    def update(self) -> Dict[str, float]:
        """One agent update on a demo/online minibatch per ``agent.utd_ratio``."""
        a = self.agent.config
        t0 = time.perf_counter()
        self.last_metrics = self.agent.update(*self.buffers.sample(a.batch_size, a.utd_ratio))
        self.update_time += time.perf_counter() - t0
        self.updates += 1
        self.critic_steps_trained += a.utd_ratio
        return self.last_metrics

    def train(self, max_updates: Optional[int] = None) -> StepEvents:
        """Run the updates owed (at most ``max_updates``; 0: none, only the events) and say
        what is due."""
        self._maybe_start()  # a resumed run may hold enough data already
        events = StepEvents(started=self._just_started)
        self._just_started = False
        before = self.updates
        while self.credit >= 1.0 and (max_updates is None or events.n_updates < max_updates):
            self.credit -= 1.0
            self.update()
            events.n_updates += 1
        events.updated = events.n_updates > 0
        events.weights_due = _passed_multiple(before, self.updates, self.publish_every)
        events.checkpoint_due = (events.updated and self.cadence is not None
                                 and self.cadence.due(self.updates))
        events.evaluation_due = _passed_multiple(self._checked_at, self.env_steps, self.eval_every)
        self._checked_at = self.env_steps
        return events

    @property
    def training(self) -> bool:
        """Updates have started (enough data was stored)."""
        return self.steps_at_start >= 0

    @property
    def real_utd(self) -> float:
        """Critic steps per env step stored since training started."""
        if not self.training:
            return 0.0
        return self.critic_steps_trained / max(1, self.env_steps - self.steps_at_start)

    @property
    def critic_updates_per_s(self) -> float:
        return self.critic_steps_trained / self.update_time if self.update_time > 0 else 0.0
