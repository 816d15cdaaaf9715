"""The SERL/HIL-SERL learner without ROS: agent, demo + online buffers, intake, training cadence.

``robot_rl.ros.learner_node`` is a thin ROS shell around :class:`LearnerCore`: it hands
received bytes to :meth:`LearnerCore.receive`, runs :meth:`LearnerCore.step` in its training
thread and acts on the returned :class:`StepEvents` (publish acknowledgements, publish
weights, write a checkpoint). The core never calls back into the node.

Training is tied to received data (the cadence is ``training_core.TrainingCore``, which
``train-gym`` runs too): every received env step buys one ``agent.update()`` (=
``agent.utd_ratio`` critic steps + one actor step). If data arrives faster than that, the
learner trains flat out, keeps at most ``learner.max_backlog`` steps of credit and reports the
real UTD (critic steps per received env step). Persistence and resume: ``learner_run``;
delivery guarantees (write-ahead log, dedupe, acks): ``intake`` and docs/crash_safety.md.
"""
from __future__ import annotations

import collections
import os
import queue
import uuid
from typing import Any, Dict, List, Optional

from robot_rl import security, transport
from robot_rl.config import Config
from robot_rl.deploy.agent_export import task_spaces
from robot_rl.envs.task import reward_range
from robot_rl.learning.checkpoint import save_agent
from robot_rl.learning.intake import Arrival, Intake, RunState
from robot_rl.learning.learner_run import CheckpointCadence, buffer_digest, open_run
from robot_rl.learning.outbox import encode_ack
from robot_rl.learning.progress import Progress
from robot_rl.learning.replay import DemoOnlineBuffers, read_origins
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.learning.training_core import StepEvents, TrainingCore
from robot_rl.parsing import InputError, parse_episode_event


class LearnerCore(TrainingCore):
    """The learner's core: a ``TrainingCore`` fed from transport messages (checked, logged
    durably, acknowledged) with the learner's run folder, weights publication and status.
    ``add``/``add_episode`` (inherited) store in-process data without the wire codec; such data
    is not in the write-ahead log: it is durable once in a replay chunk or at ``save``."""

    def __init__(self, cfg: Config, resume: bool = False):
        self.cfg, self.lc = cfg, cfg.learner
        lc = self.lc
        self.resume = bool(resume or lc.resume)
        self.obs_space, self.action_space, _ = task_spaces(cfg)
        self.obs_spec = transport.obs_spec_of(self.obs_space)
        self.adim = int(self.action_space.shape[0])
        self.action_bounds = (self.action_space.low, self.action_space.high)
        self.auth = security.NodeAuth.from_config(cfg, "learner")
        self.reward_range = reward_range(cfg.task)
        self.agent = RLPDAgent(self.obs_space, self.action_space, cfg.agent_settings())
        self.replay_dir = os.path.join(lc.run_dir, "replay")
        self.ckpt_dir = os.path.join(lc.run_dir, "checkpoint")
        opened = open_run(lc, self.agent, self.obs_space, self.adim, cfg.agent.seed, self.resume)
        extra = opened.extra
        # every persisted transition counts as an env step
        super().__init__(self.agent, DemoOnlineBuffers(opened.demo, opened.online, cfg.agent.demo_ratio),
                         start_after=lc.min_online, max_backlog=lc.max_backlog,
                         publish_every=lc.publish_every,
                         cadence=CheckpointCadence(lc.checkpoint_every, lc.checkpoint_period),
                         env_steps=opened.online.n_added, counters=extra)
        self.n_demos_loaded, self.resumed_digest = opened.n_demos_loaded, opened.digest
        self.pretrained = opened.pretrained
        self.warnings: List[str] = list(opened.warnings)
        # Never untrained weights into a running run: a resume without checkpoint publishes
        # only once it has trained.
        self.publish_at_start = opened.has_checkpoint or not self.resume
        self.run_state = RunState(lc.run_dir)
        self.version = max(int(extra.get("version", 0)), self.run_state.version)
        self.episode_events = int(extra.get("episode_events", 0))
        self.rejected: collections.Counter = collections.Counter()  # by reason
        writer = self.online.writer
        self.intake = Intake(self.replay_dir, lambda: (writer.next_chunk, writer.pending),
                             read_origins(self.replay_dir), lc.wal_fsync, lc.actor_quiet_after)
        self.lag_sum, self.lag_n = 0.0, 0
        self._queue: "queue.Queue[tuple]" = queue.Queue()  # (bytes, TransitionBatch)
        self.progress = Progress(os.path.join(lc.run_dir, "tb") if lc.tensorboard else None)
        self.learner_id = uuid.uuid4().hex[:16]
        # The log holds what this learner checked on arrival; keys may have changed since.
        self.recovered = self.intake.replay_wal(lambda data: self.decode(data, verify=False),
                                                self._add)

    # -- inputs (any thread) ---------------------------------------------------------------------
    def decode(self, data: bytes, verify: bool = True) -> transport.TransitionBatch:
        return transport.decode_transitions(data, self.obs_spec, self.adim,
                                            self.lc.max_message_bytes, self.action_bounds,
                                            keyring=self.auth.keyring if verify else None,
                                            reward_range=self.reward_range)

    def receive(self, data: bytes) -> Optional[str]:
        """Check a transition message and queue it for the training thread; the reason it
        was refused (counted in ``rejected``) or None."""
        try:
            batch = self.decode(data)
        except transport.TransportError as exc:
            self.rejected[exc.reason] += 1
            return str(exc)
        self._queue.put((data, batch))
        return None

    @property
    def queued(self) -> int:
        """Messages received and not yet taken by the training thread."""
        return self._queue.qsize()

    def episode_event(self, text: str) -> Optional[str]:
        """An ``/episode/event`` payload; the reason it was refused (counted) or None."""
        try:
            ev = parse_episode_event(text)  # the one String parser (robot_rl/parsing.py)
        except InputError as exc:
            self.rejected["bad_event"] += 1
            return str(exc)
        if self.progress.episode(ev, self.env_steps):
            self.episode_events += 1
        return None

    # -- training (one thread) -------------------------------------------------------------------
    def _add(self, arrivals: List[Arrival]) -> None:
        for tr, actor_step in arrivals:
            r = tr.record
            self.add(tr.obs, r.action, r.reward, r.next_obs, r.terminated, r.truncated,
                     tr.actor_id, r.intervened, (r.episode, r.step, actor_step))
            self.lag_sum += self.version - r.weights_version
            self.lag_n += 1

    def drain(self, first: Optional[tuple] = None) -> Dict[int, int]:
        """Log and store every queued message and make them durable; the acknowledgements
        due now ({} when none)."""
        item = first
        while True:
            if item is not None:
                self.intake.ingest(item[0], item[1], self._add)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return self.intake.commit() or {}

    def step(self, wait: float = 0.05) -> StepEvents:
        """Take what arrived, then train once if credit allows, else wait up to ``wait`` s for
        data. Returns what the host must do now."""
        acks = self.drain()
        events = self.train(max_updates=1)  # one at a time: acknowledgements go out between
        events.acks = acks
        if events.updated or events.acks:  # acknowledge at once; the next step waits
            return events
        try:
            events.acks = self.drain(self._queue.get(timeout=wait))
        except queue.Empty:
            pass
        return events

    # -- outputs ---------------------------------------------------------------------------------
    def weights_message(self) -> bytes:
        """The actor weights as a signed transport message, under a new version reserved
        durably first (versions never go backwards within a run)."""
        self.version = self.run_state.next_version(self.version)
        return transport.encode_weights(self.agent.actor_state_dict(), self.version, self.updates,
                                        self.learner_id, self.run_state.run_id,
                                        signer=self.auth.signer)

    def acks_message(self, acks: Dict[int, int]) -> bytes:
        return encode_ack(self.learner_id, self.run_state.run_id, acks, self.auth.signer)

    def save(self, digest: bool = False) -> None:
        self.online.flush()
        self.intake.restart_wal([])  # every logged row is in a chunk now
        extra = {"updates": self.updates, "version": self.version, "env_steps": self.env_steps,
                 "critic_steps_trained": self.critic_steps_trained,
                 "steps_at_start": self.steps_at_start, "episode_events": self.episode_events,
                 "online_rng": self.online.state_dict()["rng"],
                 "demo_rng": self.demo.state_dict()["rng"],
                 "online_count": len(self.online), "demo_count": len(self.demo)}
        if digest:
            extra["online_digest"] = buffer_digest(self.online)
        save_agent(self.ckpt_dir, self.agent, extra)
        self.cadence.saved()

    def status(self) -> Dict[str, Any]:
        return {"updates": self.updates, "env_steps": self.env_steps,
                "online": len(self.online), "demo": len(self.demo),
                "demos_loaded": self.n_demos_loaded, "intervened_steps": self.intervened_steps,
                "weights_version": self.version, "real_utd": self.real_utd,
                "updates_per_s": self.progress.updates_per_s,
                "rejected": sum(self.rejected.values()), "rejections": dict(self.rejected),
                **self.intake.stats(), "sequence_gaps": self.intake.early,
                "actors": self.intake.actors(), "quiet_actors": sorted(self.intake.quiet),
                "run_id": self.run_state.run_id,
                "weight_lag": self.lag_sum / self.lag_n if self.lag_n else 0.0,
                "episodes": self.progress.episodes, **self.progress.rates(),
                "resumed": self.resume, "resumed_digest": self.resumed_digest,
                "training": self.training,
                "learner_id": self.learner_id, "authenticated": self.auth.enabled}

    def report(self) -> Dict[str, Any]:
        """The status, after logging this period's scalars (TensorBoard) and progress line."""
        self.progress.tick(self.updates, self.env_steps)
        st = self.status()
        scalars = {f"train/{k}": v for k, v in self.last_metrics.items()}
        scalars.update({"perf/updates_per_s": self.progress.updates_per_s,
                        "perf/env_steps_per_s": self.progress.env_steps_per_s,
                        "perf/real_utd": self.real_utd, "buffer/online": st["online"],
                        "buffer/demo": st["demo"], "actor/weight_version_lag": st["weight_lag"],
                        "transport/rejected": st["rejected"]})
        self.lag_sum, self.lag_n = 0.0, 0
        self.progress.scalars(self.env_steps, scalars)
        st["line"] = self.progress.line(self.updates, self.env_steps, self.real_utd, st["online"],
                                        st["demo"], self.version, st["rejected"])
        return st

    def describe(self) -> str:
        lc = self.lc
        mem = self.online.memory_report()
        return (f"run_dir {lc.run_dir} ({'resumed' if self.resume else 'new'}), "
                f"observation {self.obs_spec}, action dim {self.adim}, demos "
                f"{self.n_demos_loaded} from {lc.demos or '-'}, online {len(self.online)}, demo "
                f"buffer {len(self.demo)}, updates {self.updates}, weights v{self.version} of run "
                f"{self.run_state.run_id}, {self.recovered} transitions recovered from the "
                f"write-ahead log" + (f", buffer digest {self.resumed_digest}" if self.resume else "")
                + (f"; image trunk fitted to the demos by BC: {self.pretrained['steps']} steps in "
                   f"{self.pretrained['seconds']:.0f} s, loss {self.pretrained['bc_loss_first']:.3f} "
                   f"-> {self.pretrained['bc_loss_last']:.3f}" if self.pretrained else "")
                + f"; replay memory: {mem['bytes_per_transition'] / 1024:.1f} KiB per transition, "
                f"{mem['total_bytes'] / 2**30:.2f} GiB for the online capacity of {lc.capacity} "
                f"(+ {self.demo.memory_report()['total_bytes'] / 2**30:.2f} GiB demo buffer), "
                f"allocated as data arrives")

    def close(self) -> None:
        """Checkpoint (with the buffer digest) and close the files."""
        self.save(digest=True)
        self.online.close()
        self.intake.close()
        self.progress.close()
