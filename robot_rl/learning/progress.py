"""Learner progress: windowed episode statistics, TensorBoard scalars and a console line."""
from __future__ import annotations

import collections
import time
from typing import Any, Dict, Mapping, Optional

from robot_rl.parsing import EpisodeEvent, episode_event_from


class Progress:
    """Collects episode events and training metrics; ``line()`` is the live console summary.

    TensorBoard tags: ``episode/{return,length,success,intervention_rate}`` per episode,
    ``rollout/{success_rate,intervention_rate,episode_length,return}`` over the last ``window``
    episodes, ``train/*`` (agent.update metrics: critic/actor loss, temperature, Q...),
    ``perf/{updates_per_s,real_utd,env_steps_per_s}``, ``buffer/{online,demo}``,
    ``actor/weight_version_lag``, ``transport/rejected``.
    """

    def __init__(self, log_dir: Optional[str] = None, window: int = 20):
        self.writer = None
        if log_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir)
            except ImportError:  # tensorboard not installed: console only
                self.writer = None
        self.episodes = 0
        self.window = collections.deque(maxlen=window)
        self._t_last = time.monotonic()
        self._updates_last = 0
        self._steps_last = 0
        self.updates_per_s = 0.0
        self.env_steps_per_s = 0.0

    def episode(self, ev: Any, step: int) -> bool:
        """Count an episode-end event (a ``robot_rl.parsing.EpisodeEvent``, or its JSON object
        as a mapping); False for other events. ``InputError`` (a ``ValueError``, counting
        nothing) if a field is missing, of the wrong type or out of range."""
        if not isinstance(ev, EpisodeEvent):
            ev = episode_event_from(ev)
        if not ev.ended:
            return False
        ok = float(ev.success)
        ret, length, rate = ev.ret, ev.length, ev.intervention_rate
        self.episodes += 1
        self.window.append((ok, rate, length, ret))
        if self.writer is not None:
            self.writer.add_scalar("episode/return", ret, step)
            self.writer.add_scalar("episode/length", length, step)
            self.writer.add_scalar("episode/success", ok, step)
            self.writer.add_scalar("episode/intervention_rate", rate, step)
        return True

    def rates(self) -> Dict[str, float]:
        if not self.window:
            return {"success_rate": 0.0, "intervention_rate": 0.0, "episode_length": 0.0,
                    "return": 0.0}
        n = len(self.window)
        cols = list(zip(*self.window))
        return {"success_rate": sum(cols[0]) / n, "intervention_rate": sum(cols[1]) / n,
                "episode_length": sum(cols[2]) / n, "return": sum(cols[3]) / n}

    def tick(self, updates: int, env_steps: int) -> None:
        now = time.monotonic()
        dt = now - self._t_last
        if dt > 0:
            self.updates_per_s = (updates - self._updates_last) / dt
            self.env_steps_per_s = (env_steps - self._steps_last) / dt
        self._t_last, self._updates_last, self._steps_last = now, updates, env_steps

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(k, float(v), step)
        for k, v in self.rates().items():
            self.writer.add_scalar(f"rollout/{k}", v, step)
        self.writer.flush()

    def line(self, updates: int, env_steps: int, real_utd: float, online: int, demo: int,
             version: int, rejected: int) -> str:
        r = self.rates()
        return (f"episodes {self.episodes} | success {100 * r['success_rate']:.0f}% "
                f"| intervention {100 * r['intervention_rate']:.0f}% | len {r['episode_length']:.0f} "
                f"| steps {env_steps} ({self.env_steps_per_s:.1f}/s) | updates {updates} "
                f"({self.updates_per_s:.1f}/s, UTD {real_utd:.1f}) | buffers {online}+{demo} demo "
                f"| weights v{version} | rejected {rejected}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
