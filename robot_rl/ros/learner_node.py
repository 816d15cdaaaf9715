"""The SERL/HIL-SERL learner as a ROS 2 node.

Topics (names and QoS below):

* ``/rl/transitions`` (std_msgs/UInt8MultiArray, ``robot_rl.transport`` transition batches)
  in: decoded, checked against the task's observation space, added to the online buffer
  (human-intervened steps to the demo buffer too, HIL-SERL).
* ``/rl/actor_weights`` (UInt8MultiArray, transport weights) out, reliable + transient_local
  depth 1 so a late actor gets the newest weights; published at start and every
  ``learner.publish_every`` updates, tagged with this process's random learner id (a resumed
  learner counts versions from its checkpoint, possibly below what actors already hold).
* ``/episode/event`` (std_msgs/String JSON) in: success / intervention statistics.
* ``/rl/learner_status`` (std_msgs/String JSON) out every ``learner.log_every`` s: counters,
  real UTD, updates/s, buffer sizes, rejected messages by reason, weight lag.

Training is tied to received data: every received env step buys one ``agent.update()`` (=
``agent.utd_ratio`` critic steps + one actor step). If data arrives faster than that, the
learner trains flat out, keeps at most ``learner.max_backlog`` steps of credit and reports the
real UTD (critic steps per received env step).

Persistence under ``learner.run_dir``: ``replay/`` (online experience, replay format, written
every ``learner.flush_every`` transitions and on shutdown), ``checkpoint/`` (agent, optimizers,
temperature, counters, RNG; pickle-free, every ``learner.checkpoint_every`` updates and on
shutdown), ``tb/`` (TensorBoard). ``--resume`` or ``-p learner.resume:=true`` continues a run
dir: buffers (online from ``replay/``, demo = demos + the intervened steps of ``replay/``),
agent state and counters.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import queue
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import transport
from robot_rl.config import Config
from robot_rl.envs.task import PickCubeTask
from robot_rl.learning.checkpoint import checkpoint_exists, load_agent, save_agent
from robot_rl.learning.progress import Progress
from robot_rl.learning.replay import ReplayBuffer, count_transitions
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.ros.node_utils import declare_config, run_nodes
from robot_rl.schema import ConfigError

TRANSITIONS = "/rl/transitions"
ACTOR_WEIGHTS = "/rl/actor_weights"
LEARNER_STATUS = "/rl/learner_status"
ACTOR_STATUS = "/rl/actor_status"
EPISODE_EVENT = "/episode/event"
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
        self.agent = RLPDAgent(self.obs_space, self.action_space, cfg.agent)
        self.run_dir = lc.run_dir
        self.replay_dir = os.path.join(lc.run_dir, "replay")
        self.ckpt_dir = os.path.join(lc.run_dir, "checkpoint")
        # A replay dir with chunks but no manifest is refused by the replay writer below.
        has_replay = os.path.isfile(os.path.join(self.replay_dir, "manifest.json"))
        if not self.resume and (has_replay or checkpoint_exists(self.ckpt_dir)):
            raise ConfigError(f"learner.run_dir {lc.run_dir!r} already holds a run; pass --resume "
                              f"(or -p learner.resume:=true) to continue it, or choose another "
                              f"learner.run_dir")
        seed = cfg.agent.seed
        n_demo = count_transitions(lc.demos) if lc.demos else 0
        self.demo = ReplayBuffer(self.obs_space, self.adim, n_demo + lc.capacity, seed=seed + 1,
                                 verbose=False, name="demo")
        if lc.demos:
            self.demo.extend_from_disk(lc.demos)  # validates the manifest against the task
        self.n_demos_loaded = len(self.demo)
        resume_checkpoint = self.resume and checkpoint_exists(self.ckpt_dir)
        if self.n_demos_loaded and not resume_checkpoint:  # a checkpoint holds the statistics it trained with
            self.agent.fit_input_normalization(self.demo.observations())
        extra: Dict[str, Any] = {}
        self.resumed_digest = ""
        if self.resume and has_replay:
            self.online = ReplayBuffer.load(self.replay_dir, capacity=lc.capacity, resume=True,
                                            flush_every=lc.flush_every, seed=seed, verbose=False,
                                            name="online")
            self.demo.extend_from_disk(self.replay_dir, intervened_only=True)
        else:
            self.online = ReplayBuffer(self.obs_space, self.adim, lc.capacity,
                                       persist_dir=self.replay_dir, flush_every=lc.flush_every,
                                       seed=seed, verbose=False, name="online")
        if resume_checkpoint:
            extra = load_agent(self.ckpt_dir, self.agent)
            if "online_rng" in extra:
                self.online.load_state_dict({"rng": extra["online_rng"]})
                self.demo.load_state_dict({"rng": extra["demo_rng"]})
        elif self.resume and has_replay:
            self.get_logger().warning(
                f"--resume: {self.ckpt_dir} holds no checkpoint (the run stopped before its first "
                f"one?): the {len(self.online)} stored transitions are kept, the agent starts fresh")
        if len(self.online) < int(extra.get("online_count", 0)):
            self.get_logger().error(
                f"the online buffer on disk holds {len(self.online)} transitions, fewer than the "
                f"{extra['online_count']} of the last checkpoint: replay chunks in "
                f"{self.replay_dir} were removed or lost")
        if self.resume:
            self.resumed_digest = buffer_digest(self.online)
            saved = extra.get("online_digest", "")
            if saved and saved != self.resumed_digest:
                self.get_logger().warning(
                    f"online buffer on disk ({self.resumed_digest}) differs from the one at the "
                    f"last checkpoint ({saved}): data after that checkpoint was kept")
        self.updates = int(extra.get("updates", 0))
        self.version = int(extra.get("version", 0))
        self.env_steps = int(self.online.n_added)  # every persisted transition counts
        self.critic_steps_trained = int(extra.get("critic_steps_trained", 0))
        self.steps_at_start = int(extra.get("steps_at_start", -1))
        self.episode_events = int(extra.get("episode_events", 0))
        self.credit = 0.0
        self.rejected: collections.Counter = collections.Counter()  # by reason
        self.assembler = transport.TransitionAssembler()
        self.intervened_steps = 0
        self.lag_sum, self.lag_n = 0.0, 0
        self.last_metrics: Dict[str, float] = {}
        self._queue: "queue.Queue[List[transport.Transition]]" = queue.Queue()
        self._stop = threading.Event()
        self._closed = False
        self.progress = Progress(os.path.join(lc.run_dir, "tb") if lc.tensorboard else None)
        self._train_time = 0.0
        self.train_error: Optional[BaseException] = None
        self.learner_id = uuid.uuid4().hex[:16]
        self.action_bounds = (self.action_space.low, self.action_space.high)

        self.pub_weights = self.create_publisher(UInt8MultiArray, ACTOR_WEIGHTS, WEIGHTS_QOS)
        self.pub_status = self.create_publisher(String, LEARNER_STATUS, STATUS_QOS)
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
        self._publish_weights()
        self._thread = threading.Thread(target=self._train_loop, name="train", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"learner up: run_dir {lc.run_dir} ({'resumed' if self.resume else 'new'}), "
            f"observation {self.obs_spec}, action dim {self.adim}, demos {self.n_demos_loaded} "
            f"from {lc.demos or '-'}, online {len(self.online)}, demo buffer {len(self.demo)}, "
            f"updates {self.updates}, weights v{self.version}"
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

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        try:
            batch = transport.decode_transitions(transport.from_msg(msg), self.obs_spec,
                                                 self.adim, self.lc.max_message_bytes,
                                                 self.action_bounds)
        except transport.TransportError as exc:
            self._reject(exc.reason, str(exc))
            return
        out = self.assembler.feed(batch)
        if out:
            self._queue.put(out)

    def _on_event(self, msg: String) -> None:
        try:
            ev = json.loads(msg.data)
            if isinstance(ev, dict) and self.progress.episode(ev, self.env_steps):
                self.episode_events += 1
        except (ValueError, TypeError, RecursionError) as exc:
            self._reject("bad_event", f"episode event {msg.data[:80]!r}: {exc}", "episode event")

    # -- training (own thread) -------------------------------------------------------------------
    def _add(self, transitions: List[transport.Transition]) -> None:
        for tr in transitions:
            r = tr.record
            intervened = r.intervened
            self.online.add(tr.obs, r.action, r.reward, r.next_obs, r.terminated, r.truncated,
                            tr.actor_id, intervened)
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
        if self.updates % self.lc.checkpoint_every == 0:
            self.save()

    def _train_loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    while True:
                        self._add(self._queue.get_nowait())
                except queue.Empty:
                    pass
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
                    self._add(self._queue.get(timeout=0.05))
                except queue.Empty:
                    pass
        except Exception as exc:  # surface instead of a silently dead thread
            self.train_error = exc
            self.get_logger().fatal(f"training thread stopped: {exc!r}; the learner exits "
                                    f"(everything received is saved)")
            raise

    def _publish_weights(self) -> None:
        self.version += 1
        data = transport.encode_weights(self.agent.actor_state_dict(), self.version, self.updates,
                                        self.learner_id)
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
        extra = {"updates": self.updates, "version": self.version, "env_steps": self.env_steps,
                 "critic_steps_trained": self.critic_steps_trained,
                 "steps_at_start": self.steps_at_start, "episode_events": self.episode_events,
                 "online_rng": self.online.state_dict()["rng"],
                 "demo_rng": self.demo.state_dict()["rng"],
                 "online_count": len(self.online), "demo_count": len(self.demo)}
        if digest:
            extra["online_digest"] = buffer_digest(self.online)
        save_agent(self.ckpt_dir, self.agent, extra)

    # -- reporting (executor thread) -------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        return {"updates": self.updates, "env_steps": self.env_steps,
                "online": len(self.online), "demo": len(self.demo),
                "demos_loaded": self.n_demos_loaded, "intervened_steps": self.intervened_steps,
                "weights_version": self.version, "real_utd": self.real_utd,
                "updates_per_s": self.progress.updates_per_s,
                "rejected": sum(self.rejected.values()), "rejections": dict(self.rejected),
                "dropped_no_obs": self.assembler.dropped, "sequence_gaps": self.assembler.gaps,
                "weight_lag": self.lag_sum / self.lag_n if self.lag_n else 0.0,
                "episodes": self.progress.episodes, **self.progress.rates(),
                "resumed": self.resume, "resumed_digest": self.resumed_digest,
                "training": self.steps_at_start >= 0 and self.train_error is None,
                "learner_id": self.learner_id}

    def _report(self) -> None:
        if self.train_error is not None:  # out of spin: the process exits, close() saves
            raise RuntimeError(f"learner training thread stopped: {self.train_error!r}") \
                from self.train_error
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
            try:
                while True:
                    self._add(self._queue.get_nowait())
            except queue.Empty:
                pass
        self.save(digest=True)
        self.online.close()
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
