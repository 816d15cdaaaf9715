"""The learner's run folder, ROS-free: open (new or resumed) buffers and agent state, decide
when to checkpoint. ``robot_rl.ros.learner_node`` is the ROS face of it.

Layout of ``learner.run_dir``: ``run.json`` (run id, highest weight version published;
``robot_rl.learning.intake.RunState``), ``replay/`` (online experience in replay chunks plus
``wal.bin``, the write-ahead log of received messages not yet in a chunk), ``checkpoint/``
(agent, optimizers, temperature, counters, RNG), ``tb/`` (TensorBoard).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np

from robot_rl.learning.checkpoint import checkpoint_exists, load_agent
from robot_rl.learning.replay import ReplayBuffer, count_transitions
from robot_rl.schema import ConfigError


def buffer_digest(buf: ReplayBuffer, chunk: int = 4096) -> str:
    """SHA-256 over every valid transition's arrays, oldest first (resume checks)."""
    h = hashlib.sha256()
    n = len(buf)
    for start in range(0, n, chunk):
        b = buf.get(np.arange(start, min(n, start + chunk)))
        for part in ("obs", "next_obs"):
            for k in sorted(b[part]):
                h.update(b[part][k].numpy().tobytes())
        for k in ("action", "reward", "terminated", "truncated", "actor_id", "intervened"):
            h.update(b[k].numpy().tobytes())
    return f"{n}:{h.hexdigest()}"


@dataclass
class OpenedRun:
    online: ReplayBuffer
    demo: ReplayBuffer
    n_demos_loaded: int
    extra: Dict[str, Any]  # learner counters of the checkpoint ({} without one)
    has_checkpoint: bool
    digest: str = ""  # of the online buffer as resumed
    warnings: List[str] = field(default_factory=list)
    pretrained: Dict[str, float] = field(default_factory=dict)  # the trunk's BC fit, if any


def open_run(lc, agent, obs_space, action_dim: int, seed: int, resume: bool) -> OpenedRun:
    """Buffers (demos, online from ``replay/``) and agent state of ``lc.run_dir``
    (a ``LearnerConfig``). Refuses to start a new run over an existing one."""
    replay_dir = os.path.join(lc.run_dir, "replay")
    ckpt_dir = os.path.join(lc.run_dir, "checkpoint")
    # A replay dir with chunks but no manifest is refused by the replay writer below.
    has_replay = os.path.isfile(os.path.join(replay_dir, "manifest.json"))
    if not resume and (has_replay or checkpoint_exists(ckpt_dir)):
        raise ConfigError(f"learner.run_dir {lc.run_dir!r} already holds a run; pass --resume "
                          f"(or -p learner.resume:=true) to continue it, or choose another "
                          f"learner.run_dir")
    n_demo = count_transitions(lc.demos) if lc.demos else 0
    demo = ReplayBuffer(obs_space, action_dim, n_demo + lc.capacity, seed=seed + 1,
                        verbose=False, name="demo")
    if lc.demos:
        demo.extend_from_disk(lc.demos)  # validates the manifest against the task
    n_demos_loaded = len(demo)
    has_checkpoint = resume and checkpoint_exists(ckpt_dir)
    # A checkpoint holds the statistics and the trunk it trained with.
    pretrained = agent.fit_to_demos(demo) if n_demos_loaded and not has_checkpoint else {}
    warnings: List[str] = []
    if resume and has_replay:
        online = ReplayBuffer.load(replay_dir, capacity=lc.capacity, resume=True,
                                   flush_every=lc.flush_every, seed=seed, verbose=False,
                                   name="online")
        demo.extend_from_disk(replay_dir, intervened_only=True)
    else:
        online = ReplayBuffer(obs_space, action_dim, lc.capacity, persist_dir=replay_dir,
                              flush_every=lc.flush_every, seed=seed, verbose=False,
                              name="online")
    extra: Dict[str, Any] = {}
    if has_checkpoint:
        extra = load_agent(ckpt_dir, agent)
        if "online_rng" in extra:
            online.load_state_dict({"rng": extra["online_rng"]})
            demo.load_state_dict({"rng": extra["demo_rng"]})
    elif resume:
        warnings.append(f"--resume: {ckpt_dir} holds no checkpoint (the run stopped before its "
                        f"first one?): the {len(online)} stored transitions are kept, the agent "
                        f"starts fresh and publishes no weights until it has trained")
    if len(online) < int(extra.get("online_count", 0)):
        warnings.append(f"the online buffer on disk holds {len(online)} transitions, fewer than "
                        f"the {extra['online_count']} of the last checkpoint: replay chunks in "
                        f"{replay_dir} were removed or lost")
    run = OpenedRun(online, demo, n_demos_loaded, extra, has_checkpoint, warnings=warnings,
                    pretrained=pretrained)
    if resume:
        run.digest = buffer_digest(online)
        saved = extra.get("online_digest", "")
        if saved and saved != run.digest:
            warnings.append(f"online buffer on disk ({run.digest}) differs from the one at the "
                            f"last checkpoint ({saved}): data after that checkpoint was kept")
    return run


class CheckpointCadence:
    """Checkpoint every ``every`` updates and every ``period`` seconds of training, whichever
    comes first (a slow learner still saves its counters and RNG regularly)."""

    def __init__(self, every: int, period: float, clock=time.monotonic):
        self.every, self.period, self.clock = int(every), float(period), clock
        self._last = clock()

    def due(self, updates: int) -> bool:
        now = self.clock()
        if updates % self.every == 0 or now - self._last >= self.period:
            self._last = now
            return True
        return False

    def saved(self) -> None:
        self._last = self.clock()

