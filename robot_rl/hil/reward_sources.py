"""Where an episode's success comes from, without ROS (``hil.reward.source``, docs/hil.md).

The ROS environment (``robot_rl.envs.ros_env``) subscribes the source's topic and hands each
message to one of these; at every step it asks :meth:`RewardSource.outcome` whether the
episode succeeded or failed, and the task turns that into the reward
(``Task.reward_from_success``).

* :class:`ConsecutiveSuccess` (``classifier``, ``topic``): std_msgs/Bool messages; success once
  ``consecutive`` True messages in a row arrived during the episode (a single false positive
  of a classifier does not end it).
* :class:`HumanLabels` (``human``): the operator's Joy buttons; a press (not a hold carried
  over from the previous episode) of the success button is success, of the failure button
  failure. With ``consecutive`` > 1 the success button must be held through that many control
  steps in a row (a person keeps the goal state in view while the frames are labelled success:
  more positive frames for the reward classifier, and a brushed button ends nothing).

Messages that arrive before :meth:`RewardSource.reset` belong to the previous episode and are
discarded; sources are thread-safe (messages come from an executor thread, the step from the
acting thread).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from robot_rl.hil.config import RewardConfig

SUCCESS_BUTTON = 2  # Joy buttons[2] on hil.topic: "success" (the intervention node's layout)
FAILURE_BUTTON = 3  # Joy buttons[3]: "failure"


@dataclass(frozen=True)
class Outcome:
    success: bool = False
    failure: bool = False


def _check_consecutive(consecutive) -> None:
    if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
        raise ValueError(f"consecutive must be an integer >= 1, got {consecutive!r}")


class RewardSource:
    def reset(self) -> None:
        """A new episode starts: forget what was said about the previous one."""
        raise NotImplementedError

    def outcome(self) -> Outcome:
        raise NotImplementedError


class ConsecutiveSuccess(RewardSource):
    """Success after ``consecutive`` True messages in a row since the last :meth:`reset`;
    a False message starts the count again. Success, once reached, holds until the reset."""

    def __init__(self, consecutive: int = 1):
        _check_consecutive(consecutive)
        self.consecutive = consecutive
        self._lock = threading.Condition()
        self.run = 0          # True messages in a row, this episode
        self.messages = 0     # messages this episode
        self.received = 0     # messages over the lifetime
        self._success = False

    def on_message(self, value: bool) -> None:
        with self._lock:
            self.messages += 1
            self.received += 1
            self.run = self.run + 1 if value else 0
            if self.run >= self.consecutive:
                self._success = True
            self._lock.notify_all()

    def wait_after(self, received: int, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until more than ``received`` messages came in all;
        whether they did. A step waits so for the answer to its own frame."""
        with self._lock:
            return self._lock.wait_for(lambda: self.received > received, timeout)

    def reset(self) -> None:
        with self._lock:
            self.run = self.messages = 0
            self._success = False

    def outcome(self) -> Outcome:
        with self._lock:
            return Outcome(success=self._success)


class HumanLabels(RewardSource):
    """Edge-triggered success / failure buttons of a Joy message's ``buttons`` list. A button
    still held from the previous episode counts only after it is released and pressed again;
    when both were pressed, the first press wins.

    ``consecutive``: success once the success button, freshly pressed, is seen held at that many
    :meth:`outcome` calls in a row (the environment asks once per control step); 1: any press,
    even one released between two steps."""

    def __init__(self, success_button: int = SUCCESS_BUTTON,
                 failure_button: int = FAILURE_BUTTON, consecutive: int = 1):
        _check_consecutive(consecutive)
        self.buttons = (success_button, failure_button)
        self.consecutive = consecutive
        self._lock = threading.Lock()
        self._held = [False, False]
        self._fresh_hold = False   # the success button is held since a press of this episode
        self._held_steps = 0       # outcome() calls in a row that saw that hold
        self._outcome = Outcome()
        self.messages = 0     # over the lifetime (a press may be held across episodes)

    def on_buttons(self, buttons) -> None:
        pressed = [0 <= b < len(buttons) and bool(buttons[b]) for b in self.buttons]
        with self._lock:
            self.messages += 1
            edges = [now and not before for now, before in zip(pressed, self._held)]
            self._held = pressed
            self._fresh_hold = pressed[0] and (self._fresh_hold or edges[0])
            if self._outcome.success or self._outcome.failure:
                return
            if edges[0] and self.consecutive == 1:
                self._outcome = Outcome(success=True)
            elif edges[1]:
                self._outcome = Outcome(failure=True)

    def reset(self) -> None:
        with self._lock:
            self._outcome = Outcome()
            self._fresh_hold = False
            self._held_steps = 0

    def outcome(self) -> Outcome:
        with self._lock:
            if self.consecutive > 1 and not (self._outcome.success or self._outcome.failure):
                self._held_steps = self._held_steps + 1 if self._fresh_hold else 0
                if self._held_steps >= self.consecutive:
                    self._outcome = Outcome(success=True)
            return self._outcome


def make_source(rc: RewardConfig) -> RewardSource | None:
    """The source ``hil.reward.source`` names; None for ``sim_state`` (the task judges the
    simulator state itself)."""
    if rc.source in ("classifier", "topic"):
        return ConsecutiveSuccess(rc.consecutive)
    if rc.source == "human":
        return HumanLabels(consecutive=rc.consecutive)
    if rc.source == "sim_state":
        return None
    raise ValueError(f"hil.reward.source {rc.source!r}: expected one of "
                     f"'sim_state', 'classifier', 'human', 'topic'")
