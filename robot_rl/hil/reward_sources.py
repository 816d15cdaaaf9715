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
  failure.

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
        if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
            raise ValueError(f"consecutive must be an integer >= 1, got {consecutive!r}")
        self.consecutive = consecutive
        self._lock = threading.Lock()
        self.run = 0          # True messages in a row, this episode
        self.messages = 0     # messages this episode
        self._success = False

    def on_message(self, value: bool) -> None:
        with self._lock:
            self.messages += 1
            self.run = self.run + 1 if value else 0
            if self.run >= self.consecutive:
                self._success = True

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
    when both were pressed, the first press wins."""

    def __init__(self, success_button: int = SUCCESS_BUTTON,
                 failure_button: int = FAILURE_BUTTON):
        self.buttons = (success_button, failure_button)
        self._lock = threading.Lock()
        self._held = [False, False]
        self._outcome = Outcome()
        self.messages = 0     # over the lifetime (a press may be held across episodes)

    def on_buttons(self, buttons) -> None:
        pressed = [0 <= b < len(buttons) and bool(buttons[b]) for b in self.buttons]
        with self._lock:
            self.messages += 1
            edges = [now and not before for now, before in zip(pressed, self._held)]
            self._held = pressed
            if self._outcome.success or self._outcome.failure:
                return
            if edges[0]:
                self._outcome = Outcome(success=True)
            elif edges[1]:
                self._outcome = Outcome(failure=True)

    def reset(self) -> None:
        with self._lock:
            self._outcome = Outcome()

    def outcome(self) -> Outcome:
        with self._lock:
            return self._outcome


def make_source(rc: RewardConfig) -> RewardSource | None:
    """The source ``hil.reward.source`` names; None for ``sim_state`` (the task judges the
    simulator state itself)."""
    if rc.source in ("classifier", "topic"):
        return ConsecutiveSuccess(rc.consecutive)
    if rc.source == "human":
        return HumanLabels()
    if rc.source == "sim_state":
        return None
    raise ValueError(f"hil.reward.source {rc.source!r}: expected one of "
                     f"'sim_state', 'classifier', 'human', 'topic'")
