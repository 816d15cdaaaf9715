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

The learning itself is ROS-free: ``robot_rl.learning.learner_core.LearnerCore``; this node
hands it received messages, runs its ``step()`` in a training thread and publishes what the
returned events ask for. Training is tied to received data: every received env step buys one ``agent.update()`` (=
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

import json
import sys
import threading
from typing import Any, Dict, List, Optional

from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import transport
from robot_rl.learning.learner_core import LearnerCore
from robot_rl.ros.messages import (ACTOR_WEIGHTS, EPISODE_EVENT, EVENT_QOS, LEARNER_STATUS,
                                   STATUS_QOS, TRANSITION_ACKS, TRANSITIONS, TRANSITIONS_QOS,
                                   WEIGHTS_QOS)
from robot_rl.ros.node_utils import declare_config, run_nodes


class LearnerNode(Node):
    def __init__(self, resume: bool = False, name: str = "learner"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        self.lc = lc = cfg.learner
        self.core = core = LearnerCore(cfg, resume)
        if not core.auth.enabled:
            self.get_logger().warning("security.keystore is empty: learning traffic is NOT "
                                      "authenticated (docs/security.md)")
        for text in core.warnings:
            self.get_logger().warning(text)
        self.obs_spec = core.obs_spec
        self._stop = threading.Event()
        self._closed = False
        self.train_error: Optional[BaseException] = None
        self.pub_weights = self.create_publisher(UInt8MultiArray, ACTOR_WEIGHTS, WEIGHTS_QOS)
        self.pub_status = self.create_publisher(String, LEARNER_STATUS, STATUS_QOS)
        self.pub_acks = self.create_publisher(UInt8MultiArray, TRANSITION_ACKS, STATUS_QOS)
        self.create_subscription(UInt8MultiArray, TRANSITIONS, self._on_transitions,
                                 TRANSITIONS_QOS)
        self.create_subscription(String, EPISODE_EVENT, self._on_event, EVENT_QOS)
        self.create_timer(lc.log_every, self.report)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker(warn=("rejected", "sequence_gaps", "dropped_no_obs"))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            self.status(), [("ERROR", f"training thread stopped: {self.train_error!r}")]
            if self.train_error is not None else []))
        self.create_timer(lc.ack_period, lambda: self._publish_acks(core.intake.durable))
        if core.publish_at_start:
            self._publish_weights()
        self._thread = threading.Thread(target=self._train_loop, name="train", daemon=True)
        self._thread.start()
        self.get_logger().info(f"learner up: {core.describe()}")

    # -- inputs (executor thread) ----------------------------------------------------------------
    def _refused(self, text: Optional[str], what: str) -> None:
        if text is not None:
            self.get_logger().warning(f"rejected a {what} ({text}); "
                                      f"{sum(self.core.rejected.values())} rejected so far",
                                      throttle_duration_sec=1.0)

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        self._refused(self.core.receive(transport.from_msg(msg)), "transition message")

    def _on_event(self, msg: String) -> None:
        self._refused(self.core.episode_event(msg.data), "episode event")

    # -- training (own thread) -------------------------------------------------------------------
    def _train_loop(self) -> None:
        core = self.core
        try:
            while not self._stop.is_set():
                events = core.step()
                self._publish_acks(events.acks)
                if events.started:
                    self.get_logger().info(f"training starts: {len(core.online)} online "
                                           f"transitions, {len(core.demo)} demo")
                if events.weights_due:
                    self._publish_weights()
                if events.checkpoint_due:
                    core.save()
        except Exception as exc:  # surface instead of a silently dead thread
            self.train_error = exc
            self.get_logger().fatal(f"training thread stopped: {exc!r}; the learner exits "
                                    f"(everything received is saved)")
            raise

    def stop_training(self) -> None:
        """End the training thread; what arrives afterwards is only queued (``close`` keeps it)."""
        self._stop.set()
        self._thread.join(timeout=30.0)

    def _publish_acks(self, acks: Dict[int, int]) -> None:
        if not acks:
            return
        try:
            self.pub_acks.publish(transport.to_msg(self.core.acks_message(acks)))
        except Exception as exc:  # context shut down under us
            self.get_logger().warning(f"could not publish acknowledgements: {exc}")

    def _publish_weights(self) -> None:
        data = self.core.weights_message()  # its version is durable before it is sent
        try:
            self.pub_weights.publish(transport.to_msg(data))
        except Exception as exc:  # context shut down under us
            self.get_logger().warning(f"could not publish weights: {exc}")

    # -- reporting (executor thread) -------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        st = self.core.status()
        st["training"] = st["training"] and self.train_error is None
        return st

    def report(self) -> None:
        """The periodic status (timer): log line, TensorBoard scalars, ``/rl/learner_status``."""
        if self.train_error is not None:  # out of spin: the process exits, close() saves
            raise RuntimeError(f"learner training thread stopped: {self.train_error!r}") \
                from self.train_error
        for actor in self.core.intake.newly_quiet():
            self.get_logger().warning(f"actor {actor} went quiet: no transitions for more than "
                                      f"{self.lc.actor_quiet_after} s")
        st = self.core.report()
        self.get_logger().info(st.pop("line"))
        st["training"] = st["training"] and self.train_error is None
        try:
            self.pub_status.publish(String(data=json.dumps(st)))
        except Exception:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop_training()
        if not self._thread.is_alive():  # what arrived during the last update is kept too
            self._publish_acks(self.core.drain())
        self.core.close()
        print(f"[learner] saved: updates {self.core.updates}, online {len(self.core.online)}, "
              f"weights v{self.core.version}, checkpoint {self.core.ckpt_dir}", flush=True)


def main(args: Optional[List[str]] = None) -> int:
    argv = list(sys.argv if args is None else args)
    resume = "--resume" in argv
    argv = [a for a in argv if a != "--resume"]
    return run_nodes(lambda: [LearnerNode(resume=resume)], argv, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
