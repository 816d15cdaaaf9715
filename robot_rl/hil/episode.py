"""The episode state machine of an actor (ROS-free).

::

    RESETTING --start()--> RUNNING --step()--> RUNNING
        ^                     |  success          -> SUCCESS  (terminated)
        |                     |  failure          -> FAILURE  (terminated)
        |                     |  max_steps reached -> TIMEOUT (truncated: the learner bootstraps)
        |                     |  abort(reason)    -> FAILURE  (no more steps of this episode)
        +---- begin_reset() --+-- from SUCCESS | FAILURE | TIMEOUT
    RESETTING --reset_failed(reason)--> RESETTING (counted; the caller retries or gives up)
    RESETTING --awaiting_confirmation()--> AWAITING_CONFIRMATION (the reset node waits for the
        human to re-arrange the scene and confirm) --start()--> RUNNING, or
        --reset_failed(reason)--> RESETTING

``start`` and ``awaiting_confirmation`` may come from two threads (the acting loop, and the
reset node's state topic): they check and change the state under one lock.

Any other call raises ``IllegalTransition``. The machine also keeps the episode's return,
length, intervention count and rate, and the steps since the last human intervention, and
builds the ``/episode/event`` payload.
"""
from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional


class EpisodeState(str, enum.Enum):
    RESETTING = "resetting"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"


ENDED = (EpisodeState.SUCCESS, EpisodeState.FAILURE, EpisodeState.TIMEOUT)


class IllegalTransition(RuntimeError):
    """A state machine call that is not allowed in the current state."""


@dataclass
class StepResult:
    terminated: bool
    truncated: bool
    state: EpisodeState

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class EpisodeStateMachine:
    def __init__(self, max_steps: int, actor_id: int = 0, episode: int = 0):
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        self.actor_id = int(actor_id)
        self.state = EpisodeState.RESETTING
        self.episode = int(episode)  # index of the current (or next) episode
        self.length = 0
        self.ret = 0.0
        self.interventions = 0
        self.steps_since_intervention = -1  # -1: no intervention yet (across episodes)
        self.reset_failures = 0  # consecutive
        self.reason = ""
        self._lock = threading.Lock()

    def _require(self, *allowed: EpisodeState, what: str) -> None:
        if self.state not in allowed:
            raise IllegalTransition(f"{what} is not allowed in state {self.state.value!r} "
                                    f"(allowed from {[s.value for s in allowed]})")

    def start(self) -> None:
        """The scene was reset successfully: a new episode runs."""
        with self._lock:
            self._require(EpisodeState.RESETTING, EpisodeState.AWAITING_CONFIRMATION,
                          what="start()")
            self.state = EpisodeState.RUNNING
        self.length, self.ret, self.interventions, self.reason = 0, 0.0, 0, ""
        self.reset_failures = 0

    def step(self, reward: float, success: bool = False, failure: bool = False,
             intervened: bool = False) -> StepResult:
        self._require(EpisodeState.RUNNING, what="step()")
        self.length += 1
        self.ret += float(reward)
        if intervened:
            self.interventions += 1
            self.steps_since_intervention = 0
        elif self.steps_since_intervention >= 0:
            self.steps_since_intervention += 1
        if success:
            self.state = EpisodeState.SUCCESS
        elif failure:
            self.state = EpisodeState.FAILURE
        elif self.length >= self.max_steps:
            self.state = EpisodeState.TIMEOUT
        return StepResult(self.state in (EpisodeState.SUCCESS, EpisodeState.FAILURE),
                          self.state == EpisodeState.TIMEOUT, self.state)

    def abort(self, reason: str) -> None:
        """The episode cannot go on (lost observations, driver error): ends as a failure."""
        self._require(EpisodeState.RUNNING, what="abort()")
        self.state = EpisodeState.FAILURE
        self.reason = reason

    def begin_reset(self) -> None:
        self._require(*ENDED, what="begin_reset()")
        self.state = EpisodeState.RESETTING
        self.episode += 1

    def awaiting_confirmation(self) -> bool:
        """The reset node waits for the human (its ``/scene/reset_state``). True if the state
        changed; False when no reset is under way (a late or repeated message: ignored)."""
        with self._lock:
            if self.state != EpisodeState.RESETTING:
                return False
            self.state = EpisodeState.AWAITING_CONFIRMATION
            return True

    def reset_failed(self, reason: str) -> int:
        """A reset attempt failed; returns the number of consecutive failures."""
        self._require(EpisodeState.RESETTING, EpisodeState.AWAITING_CONFIRMATION,
                      what="reset_failed()")
        self.state = EpisodeState.RESETTING
        self.reset_failures += 1
        self.reason = reason
        return self.reset_failures

    @property
    def intervention_rate(self) -> float:
        return self.interventions / self.length if self.length else 0.0

    def event(self, name: Optional[str] = None) -> Dict[str, Any]:
        """The ``/episode/event`` payload (``name`` defaults to the current state)."""
        ev = {"actor_id": self.actor_id, "episode": self.episode,
              "event": name or self.state.value, "return": self.ret, "length": self.length,
              "interventions": self.interventions,
              "intervention_rate": self.intervention_rate,
              "steps_since_intervention": self.steps_since_intervention}
        if self.reason:
            ev["reason"] = self.reason
        return ev

    def event_json(self, name: Optional[str] = None) -> str:
        return json.dumps(self.event(name))
