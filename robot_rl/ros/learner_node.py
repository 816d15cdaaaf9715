"""The SERL/HIL-SERL learner as a ROS 2 node.

Topics (names and QoS below):

* ``/rl/transitions`` (std_msgs/UInt8MultiArray, ``robot_rl.transport`` transition batches)
  in: decoded, checked against the task's observation space, added to the online buffer
  (human-intervened steps to the demo buffer too, HIL-SERL).
* ``/rl/actor_weights`` (UInt8MultiArray, transport weights) out, reliable + transient_local
  depth 1 so a late actor gets the newest weights; published at start (not when resumed without
  a checkpoint: untrained weights would replace the actors' policy) and every
  ``learner.publish_every`` updates, tagged with this process's random learner id and the run
  id; versions never go backwards within a run (``run.json``, written before each publication).
* ``/rl/transition_acks`` (UInt8MultiArray, ``robot_rl.learning.outbox`` acks) out: per actor,
  how many of its transitions are durable (write-ahead log fsynced), after each drained group of
  messages and every ``learner.ack_period`` s; actors resend what stays unacknowledged
  (``robot_rl.learning.intake``, docs/crash_safety.md).
* ``/episode/event`` (std_msgs/String JSON) in: success / intervention statistics.
* ``/rl/learner_status`` (std_msgs/String JSON) out every ``learner.log_every`` s: counters,
  real UTD, updates/s, buffer sizes, rejected messages by reason, weight lag, per actor the
  acknowledged count and seconds since it last delivered (``quiet_actors``: silent longer than
  ``learner.actor_quiet_after`` s, also logged).

Training is tied to received data: every received env step buys one ``agent.update()`` (=
``agent.utd_ratio`` critic steps + one actor step). If data arrives faster than that, the
learner trains flat out, keeps at most ``learner.max_backlog`` steps of credit and reports the
real UTD (critic steps per received env step).

Persistence under ``learner.run_dir`` (``robot_rl.learning.learner_run``): ``replay/`` (online
experience, replay format, a chunk every ``learner.flush_every`` transitions and on shutdown;
``wal.bin`` logs every received message until its rows are in a chunk), ``checkpoint/`` (agent,
optimizers, temperature, counters, RNG; pickle-free, every ``learner.checkpoint_every`` updates,
every ``learner.checkpoint_period`` s and on shutdown), ``tb/`` (TensorBoard), ``run.json``.
``--resume`` or ``-p learner.resume:=true`` continues a run dir: buffers (online from
``replay/`` and its log, demo = demos + the intervened steps of ``replay/``), agent state and
counters.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import security, transport
from robot_rl.config import Config
from robot_rl.envs.task import PickCubeTask, reward_range
from robot_rl.learning.checkpoint import save_agent
from robot_rl.learning.intake import Arrival, Intake, RunState
from robot_rl.learning.learner_run import CheckpointCadence, buffer_digest, open_run
from robot_rl.learning.outbox import encode_ack
from robot_rl.learning.progress import Progress
from robot_rl.parsing import InputError, parse_episode_event
from robot_rl.learning.replay import read_origins
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.ros.node_utils import declare_config, run_nodes

TRANSITIONS = "/rl/transitions"
ACTOR_WEIGHTS = "/rl/actor_weights"
LEARNER_STATUS = "/rl/learner_status"
ACTOR_STATUS = "/rl/actor_status"
EPISODE_EVENT = "/episode/event"
TRANSITION_ACKS = "/rl/transition_acks"
INTERVENTION = "/intervention/action"

TRANSITIONS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
WEIGHTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
EVENT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                       reliability=ReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)


def task_spaces(cfg: Config):
    """Observation and action spaces of the configured task, without a robot."""
    task = PickCubeTask(cfg, np.array([0.0, 0.0, 0.0, 1.0]))
    return task.observation_space, task.action_space


class LearnerNode(Node):
    def __init__(self, resume: bool = False, name: str = "learner"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        lc = cfg.learner
        self.lc = lc
        self.resume = bool(resume or lc.resume)
        self.obs_space, self.action_space = task_spaces(cfg)
        self.obs_spec = transport.obs_spec_of(self.obs_space)
        self.adim = int(self.action_space.shape[0])
        self.auth = security.NodeAuth.from_config(cfg, "learner")
        self.reward_range = reward_range(cfg.task)
        if not self.auth.enabled:
            self.get_logger().warning("security.keystore is empty: learning traffic is NOT "
                                      "authenticated (docs/security.md)")
        self.agent = RLPDAgent(self.obs_space, self.action_space, cfg.agent)
        self.run_dir = lc.run_dir
        self.replay_dir = os.path.join(lc.run_dir, "replay")
        self.ckpt_dir = os.path.join(lc.run_dir, "checkpoint")
        opened = open_run(lc, self.agent, self.obs_space, self.adim, cfg.agent.seed, self.resume)
        self.online, self.demo, extra = opened.online, opened.demo, opened.extra
        self.n_demos_loaded, self.resumed_digest = opened.n_demos_loaded, opened.digest
        for text in opened.warnings:
            self.get_logger().warning(text)
        self.run_state = RunState(lc.run_dir)
        self.updates = int(extra.get("updates", 0))
        self.version = max(int(extra.get("version", 0)), self.run_state.version)
        self.env_steps = int(self.online.n_added)  # every persisted transition counts
        self.critic_steps_trained = int(extra.get("critic_steps_trained", 0))
        self.steps_at_start = int(extra.get("steps_at_start", -1))
        self.episode_events = int(extra.get("episode_events", 0))
        self.credit = 0.0
        self.rejected: collections.Counter = collections.Counter()  # by reason
        writer = self.online.writer
        self.intake = Intake(self.replay_dir, lambda: (writer.next_chunk, writer.pending),
                             read_origins(self.replay_dir), lc.wal_fsync, lc.actor_quiet_after)
        self.cadence = CheckpointCadence(lc.checkpoint_every, lc.checkpoint_period)
        self.intervened_steps = 0
        self.lag_sum, self.lag_n = 0.0, 0
        self.last_metrics: Dict[str, float] = {}
        self._queue: "queue.Queue[tuple]" = queue.Queue()  # (bytes, TransitionBatch)
        self._stop = threading.Event()
        self._closed = False
        self.progress = Progress(os.path.join(lc.run_dir, "tb") if lc.tensorboard else None)
        self._train_time = 0.0
        self.train_error: Optional[BaseException] = None
        self.learner_id = uuid.uuid4().hex[:16]
        self.action_bounds = (self.action_space.low, self.action_space.high)

        self.pub_weights = self.create_publisher(UInt8MultiArray, ACTOR_WEIGHTS, WEIGHTS_QOS)
        self.pub_status = self.create_publisher(String, LEARNER_STATUS, STATUS_QOS)
        self.pub_acks = self.create_publisher(UInt8MultiArray, TRANSITION_ACKS, STATUS_QOS)
        # The log holds what this learner checked on arrival; keys may have changed since.
        replayed = self.intake.replay_wal(lambda data: self._decode(data, verify=False), self._add)
        self.create_subscription(UInt8MultiArray, TRANSITIONS, self._on_transitions,
                                 TRANSITIONS_QOS)
        self.create_subscription(String, EPISODE_EVENT, self._on_event, EVENT_QOS)
        self.create_timer(lc.log_every, self._report)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.node_utils import Diagnostics
        tracker = HealthTracker(warn=("rejected", "sequence_gaps", "dropped_no_obs"))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            self.status(), [("ERROR", f"training thread stopped: {self.train_error!r}")]
            if self.train_error is not None else []))
        self.create_timer(lc.ack_period, lambda: self._publish_acks(self.intake.durable))
        if opened.has_checkpoint or not self.resume:  # never untrained weights into a running run
            self._publish_weights()
        self._thread = threading.Thread(target=self._train_loop, name="train", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"learner up: run_dir {lc.run_dir} ({'resumed' if self.resume else 'new'}), "
            f"observation {self.obs_spec}, action dim {self.adim}, demos {self.n_demos_loaded} "
            f"from {lc.demos or '-'}, online {len(self.online)}, demo buffer {len(self.demo)}, "
            f"updates {self.updates}, weights v{self.version} of run {self.run_state.run_id}, "
            f"{replayed} transitions recovered from the write-ahead log"
            + (f", buffer digest {self.resumed_digest}" if self.resume else ""))
        mem = self.online.memory_report()
        self.get_logger().info(
            f"replay memory: {mem['bytes_per_transition'] / 1024:.1f} KiB per transition, "
            f"{mem['total_bytes'] / 2**30:.2f} GiB for the online capacity of {lc.capacity} "
            f"(+ {self.demo.memory_report()['total_bytes'] / 2**30:.2f} GiB demo buffer), "
            f"allocated as data arrives")

    # -- inputs (executor thread) ----------------------------------------------------------------
    def _reject(self, reason: str, text: str, what: str = "transition message") -> None:
        self.rejected[reason] += 1
        self.get_logger().warning(f"rejected a {what} ({text}); "
                                  f"{sum(self.rejected.values())} rejected so far",
                                  throttle_duration_sec=1.0)

    def _decode(self, data: bytes, verify: bool = True) -> transport.TransitionBatch:
        return transport.decode_transitions(data, self.obs_spec, self.adim,
                                            self.lc.max_message_bytes, self.action_bounds,
                                            keyring=self.auth.keyring if verify else None,
                                            reward_range=self.reward_range)

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        data = transport.from_msg(msg)
        try:
            batch = self._decode(data)
        except transport.TransportError as exc:
            self._reject(exc.reason, str(exc))
            return
        self._queue.put((data, batch))

    def _on_event(self, msg: String) -> None:
        try:
            ev = parse_episode_event(msg.data)  # the one String parser (robot_rl/parsing.py)
        except InputError as exc:
            self._reject("bad_event", str(exc), "episode event")
            return
        if self.progress.episode(ev, self.env_steps):
            self.episode_events += 1

    # -- training (own thread) -------------------------------------------------------------------
    def _add(self, arrivals: List[Arrival]) -> None:
        for tr, actor_step in arrivals:
            r = tr.record
            intervened = r.intervened
            self.online.add(tr.obs, r.action, r.reward, r.next_obs, r.terminated, r.truncated,
                            tr.actor_id, intervened, (r.episode, r.step, actor_step))
            if intervened:
                self.demo.add(tr.obs, r.action, r.reward, r.next_obs, r.terminated, r.truncated,
                              tr.actor_id, intervened)
                self.intervened_steps += 1
            self.env_steps += 1
            self.lag_sum += self.version - r.weights_version
            self.lag_n += 1
            if self.steps_at_start >= 0:
                self.credit = min(self.credit + 1.0, float(self.lc.max_backlog))

    def _update(self) -> None:
        a = self.cfg.agent
        u, bs = a.utd_ratio, a.batch_size
        n_demo = int(round(bs * a.demo_ratio)) if len(self.demo) > 0 else 0
        t0 = time.perf_counter()
        demo_batch = self.demo.sample(u * n_demo) if n_demo > 0 else None
        online_batch = self.online.sample(u * (bs - n_demo))
        self.last_metrics = self.agent.update(demo_batch, online_batch)
        self._train_time += time.perf_counter() - t0
        self.updates += 1
        self.critic_steps_trained += u
        if self.updates % self.lc.publish_every == 0:
            self._publish_weights()
        if self.cadence.due(self.updates):
            self.save()

    def _drain(self, first: Optional[tuple] = None) -> None:
        """Log and store every queued message, make them durable, then acknowledge them."""
        item = first
        while True:
            if item is not None:
                self.intake.ingest(item[0], item[1], self._add)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        acks = self.intake.commit()
        if acks:
            self._publish_acks(acks)

    def _publish_acks(self, acks: Dict[int, int]) -> None:
        if not acks:
            return
        try:
            self.pub_acks.publish(transport.to_msg(
                encode_ack(self.learner_id, self.run_state.run_id, acks, self.auth.signer)))
        except Exception as exc:  # context shut down under us
            self.get_logger().warning(f"could not publish acknowledgements: {exc}")

    def _train_loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._drain()
                if self.steps_at_start < 0 and len(self.online) >= self.lc.min_online:
                    self.steps_at_start = self.env_steps
                    self.credit = 1.0
                    self.get_logger().info(f"training starts: {len(self.online)} online "
                                           f"transitions, {len(self.demo)} demo")
                if self.steps_at_start >= 0 and self.credit >= 1.0:
                    self.credit -= 1.0
                    self._update()
                    continue
                try:
                    self._drain(self._queue.get(timeout=0.05))
                except queue.Empty:
                    pass
        except Exception as exc:  # surface instead of a silently dead thread
            self.train_error = exc
            self.get_logger().fatal(f"training thread stopped: {exc!r}; the learner exits "
                                    f"(everything received is saved)")
            raise

    def _publish_weights(self) -> None:
        self.version = self.run_state.next_version(self.version)  # durable before it is sent
        data = transport.encode_weights(self.agent.actor_state_dict(), self.version, self.updates,
                                        self.learner_id, self.run_state.run_id,
                                        signer=self.auth.signer)
        try:
            self.pub_weights.publish(transport.to_msg(data))
        except Exception as exc:  # context shut down under us
            self.get_logger().warning(f"could not publish weights: {exc}")

    @property
    def real_utd(self) -> float:
        if self.steps_at_start < 0:
            return 0.0
        return self.critic_steps_trained / max(1, self.env_steps - self.steps_at_start)

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

    # -- reporting (executor thread) -------------------------------------------------------------
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
                "training": self.steps_at_start >= 0 and self.train_error is None,
                "learner_id": self.learner_id, "authenticated": self.auth.enabled}

    def _report(self) -> None:
        if self.train_error is not None:  # out of spin: the process exits, close() saves
            raise RuntimeError(f"learner training thread stopped: {self.train_error!r}") \
                from self.train_error
        self.progress.tick(self.updates, self.env_steps)
        for actor in self.intake.newly_quiet():
            self.get_logger().warning(f"actor {actor} went quiet: no transitions for more than "
                                      f"{self.lc.actor_quiet_after} s")
        st = self.status()
        scalars = {f"train/{k}": v for k, v in self.last_metrics.items()}
        scalars.update({"perf/updates_per_s": self.progress.updates_per_s,
                        "perf/env_steps_per_s": self.progress.env_steps_per_s,
                        "perf/real_utd": self.real_utd, "buffer/online": st["online"],
                        "buffer/demo": st["demo"], "actor/weight_version_lag": st["weight_lag"],
                        "transport/rejected": st["rejected"]})
        self.lag_sum, self.lag_n = 0.0, 0
        self.progress.scalars(self.env_steps, scalars)
        self.get_logger().info(self.progress.line(self.updates, self.env_steps, self.real_utd,
                                                  st["online"], st["demo"], self.version,
                                                  st["rejected"]))
        try:
            self.pub_status.publish(String(data=json.dumps(st)))
        except Exception:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=30.0)
        if not self._thread.is_alive():  # what arrived during the last update is kept too
            self._drain()
        self.save(digest=True)
        self.online.close()
        self.intake.close()
        self.progress.close()
        print(f"[learner] saved: updates {self.updates}, online {len(self.online)}, "
              f"weights v{self.version}, checkpoint {self.ckpt_dir}", flush=True)


def main(args: Optional[List[str]] = None) -> int:
    argv = list(sys.argv if args is None else args)
    resume = "--resume" in argv
    argv = [a for a in argv if a != "--resume"]
    return run_nodes(lambda: [LearnerNode(resume=resume)], argv, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
