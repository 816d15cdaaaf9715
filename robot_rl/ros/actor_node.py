"""The SERL/HIL-SERL actor as a ROS 2 node.

Runs the current policy on the robot (``RosRobotEnv`` in this process) and streams every step
to the learner; several actors (distinct ``actor.actor_id``) can feed one learner.

* ``/rl/actor_weights`` in (transient_local): decoded and checked in the callback, applied by
  the acting thread before its next action (never blocks acting). Without a learner the actor
  keeps acting with the last weights it got. Within one run (metadata ``run``) only a higher
  version replaces the weights (a lower one is refused and counted: ``stale_version``); weights
  of another run are taken.
* ``/rl/transitions`` out: a batch every ``actor.send_every`` steps and at every episode end;
  each is kept (memory and ``actor.outbox_dir``) until ``/rl/transition_acks`` says the learner
  holds it durably, and resent after a learner restart or when acks stop advancing
  (``robot_rl.learning.outbox``). A restarted actor resends what it held and continues its
  episode and step numbering.
* ``/intervention/action`` in (sensor_msgs/Joy): ``axes[:action_dim]`` in the policy's action
  frame [-1, 1], ``buttons[0] == 1`` while the human holds the dead-man button. It replaces the
  policy action if the newest message has the button pressed and arrived within two control
  periods; such steps are flagged ``intervened``. A message with NaN/inf axes is ignored and
  counted (``rejections.intervention_non_finite``). With ``hil.device: sim_human`` the actor
  first waits (at most one control period) for the simulated human's answer to the current
  observation (a Joy stamped with its time), and counts answers on time and late.
* ``/episode/event`` out (std_msgs/String JSON): ``{"actor_id", "episode", "event", "return",
  "length", "interventions", "intervention_rate", "steps_since_intervention"}``, ``event`` in
  success | failure | timeout | reset_failed (with ``reason``).
* ``/rl/actor_status`` out (String JSON, 1 Hz): weights version, rejected weight messages...

Episodes follow ``robot_rl.hil.episode.EpisodeStateMachine``: resets go through ``/scene/reset``
(``actor.reset_timeout``). A robot clock that jumps back (a restarted simulator or driver) ends
the running episode unsent (``broken_episodes``, ``dropped_steps``) and a new one starts.
``actor.max_reset_failures`` consecutive failed resets, or an error in the acting thread, make
the node exit with code 1, so the launcher and ``ros2 launch`` see it.
"""
from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import List, Optional

import numpy as np
import torch
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import security, transport
from robot_rl.hil.episode import ENDED, EpisodeState, EpisodeStateMachine
from robot_rl.learning.outbox import Outbox, Resender, decode_ack
from robot_rl.learning.weight_check import WeightCheckError, WeightProbe
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.deploy.agent_export import task_spaces
from robot_rl.ros.messages import (ACTOR_STATUS, ACTOR_WEIGHTS, EPISODE_EVENT, EVENT_QOS,
                                   INTERVENTION, INTERVENTION_QOS, STATUS_QOS, TRANSITION_ACKS,
                                   TRANSITIONS, TRANSITIONS_QOS, WEIGHTS_QOS)
from robot_rl.ros.node_utils import NodeFailed, declare_config, run_nodes



class ActorNode(Node):
    def __init__(self, name: str = "actor"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        self.ac = ac = cfg.actor
        torch.set_num_threads(1)  # one observation at a time: threads only add latency
        self.obs_space, self.action_space, _ = task_spaces(cfg)
        self.obs_spec = transport.obs_spec_of(self.obs_space)
        self.adim = int(self.action_space.shape[0])
        self.action_space.seed(cfg.agent.seed + 1000 + ac.actor_id)
        self.agent = RLPDAgent(self.obs_space, self.action_space, cfg.agent)
        self._reference = self.agent.actor_state_dict()
        self.auth = security.NodeAuth.from_config(cfg, f"actor_{ac.actor_id}")
        self.weight_probe = WeightProbe(self.agent)
        self.period = 1.0 / cfg.control_rate_hz
        self.weights_version = 0
        self.weights_received = 0
        self.rejected: collections.Counter = collections.Counter()  # by reason
        self._pending: Optional[tuple] = None  # (state dict, version, learner id, run id)
        self._weights_run: Optional[str] = None  # run of the newest weights received
        self._newest_version = 0  # of that run
        self._learner_id: Optional[str] = None  # of the newest weights received
        self._applied_learner: Optional[str] = None  # of the weights acting now
        self._applied_run: Optional[str] = None
        self._lock = threading.Lock()
        self._joy: Optional[tuple] = None  # (monotonic receive time, pressed, axes, stamp)
        self._joy_changed = threading.Condition()
        # The simulated human answers each observation with a Joy stamped like the pose it saw;
        # acting before that answer arrives would apply every correction one step late (on a
        # 10 Hz pick task that spoils grasps and turns the corrections into poor training data).
        self.sync_human = cfg.hil.device == "sim_human"
        self.human_sync_answers = 0
        self.human_sync_timeouts = 0
        self._stop = threading.Event()
        self.state = "starting"
        self.outbox = Outbox(ac.outbox_dir or os.path.join(cfg.learner.run_dir, "actors",
                                                           f"actor_{ac.actor_id}"),
                             ac.outbox_max_bytes)
        self.resender = Resender(self.outbox, ac.resend_after)
        self._out_lock = threading.Lock()  # outbox, resender and publishing, in order
        self.sm = EpisodeStateMachine(cfg.task.max_episode_steps, ac.actor_id,
                                      episode=self.outbox.next_episode)
        self.total_steps = 0
        self.broken_episodes = self.dropped_steps = 0
        self._learner_updates: int | None = None
        self._learner_seen = 0.0
        self._lead_offset: int | None = None
        self.sent_steps = self.outbox.next_step  # actor-wide transition counter
        self.seq = 0
        self.env = None

        self.pub_tr = self.create_publisher(UInt8MultiArray, TRANSITIONS, TRANSITIONS_QOS)
        self.pub_event = self.create_publisher(String, EPISODE_EVENT, EVENT_QOS)
        self.pub_status = self.create_publisher(String, ACTOR_STATUS, STATUS_QOS)
        self.create_subscription(UInt8MultiArray, ACTOR_WEIGHTS, self._on_weights, WEIGHTS_QOS)
        self.create_subscription(Joy, INTERVENTION, self._on_joy, INTERVENTION_QOS)
        self.create_subscription(UInt8MultiArray, TRANSITION_ACKS, self._on_ack, STATUS_QOS)
        self.create_timer(1.0, self._report)
        self.create_timer(0.05, self._resend)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.node_utils import Diagnostics
        tracker = HealthTracker(warn=("rejected", "human_sync_timeouts"))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"steps": self.total_steps, "sent": self.sent_steps,
             "weights_received": self.weights_received, "rejected": sum(self.rejected.values()),
             "human_sync_answers": self.human_sync_answers,
             "human_sync_timeouts": self.human_sync_timeouts},
            values={"state": self.state, "episode": self.sm.episode,
                    "weights_version": self.weights_version,
                    "rejections": dict(self.rejected)}))
        self._thread = threading.Thread(target=self._run, name="acting", daemon=True)
        self._thread.start()

    # -- callbacks (executor thread) -------------------------------------------------------------
    def _on_weights(self, msg: UInt8MultiArray) -> None:
        try:
            sd, version, meta = transport.decode_weights(
                transport.from_msg(msg), self._reference, self.ac.max_message_bytes,
                keyring=self.auth.keyring)
        except transport.TransportError as exc:
            self._reject(exc.reason, f"rejected actor weights: {exc}")
            return
        learner, run = meta["learner"], meta["run"]
        # A run's versions never go backwards (the learner reserves each one durably): a lower
        # one is an old message or an impostor. Another run starts afresh.
        if run == self._weights_run and version <= self._newest_version:
            if version < self._newest_version:
                self._reject("stale_version", f"refused weights v{version} of run {run}: "
                                              f"v{self._newest_version} already received")
            return
        try:
            self.weight_probe.check(sd)
        except WeightCheckError as exc:
            self._reject("unfit_weights", f"rejected actor weights v{version}: {exc}")
            return
        with self._lock:
            self._weights_run, self._newest_version = run, version
            self._pending = (sd, version, learner, run)
        self.weights_received += 1
        with self._out_lock:
            self.resender.on_learner(learner)
        if learner != self._learner_id:
            if self._learner_id is not None:
                self.get_logger().info(f"weights from a new learner process ({learner}, v{version}); "
                                       f"following it")
            self._learner_id = learner
            self._lead_offset = self._learner_updates = None  # its update count starts anew
        updates = meta["updates"]
        if updates > 0:
            if self._lead_offset is None:  # the learner's start-up lag (demos, min_online)
                self._lead_offset = self.sent_steps - updates
            self._learner_updates, self._learner_seen = updates, time.monotonic()

    def _on_ack(self, msg: UInt8MultiArray) -> None:
        try:
            ack = decode_ack(transport.from_msg(msg), keyring=self.auth.keyring)
        except transport.TransportError as exc:
            self._reject(exc.reason, f"rejected an acknowledgement: {exc}")
            return
        with self._out_lock:
            self.resender.on_learner(ack.learner)
            if self.ac.actor_id in ack.acks:
                self.resender.on_ack(ack.acks[self.ac.actor_id])

    def _resend(self) -> None:
        with self._out_lock:
            for entry in self.resender.due():
                self.pub_tr.publish(transport.to_msg(entry.data))

    def _reject(self, reason: str, text: str) -> None:
        self.rejected[reason] += 1
        self.get_logger().warning(text, throttle_duration_sec=1.0)

    def _wait_for_learner(self) -> None:
        """Pace the robot to the learner (actor.max_lead); never wait on a silent learner."""
        while self.ac.max_lead > 0 and not self._stop.is_set():
            updates, offset = self._learner_updates, self._lead_offset  # reset by a new learner
            if updates is None or offset is None:
                return
            lead = self.sent_steps - updates - offset
            if (lead <= self.ac.max_lead
                    or time.monotonic() - self._learner_seen > self.ac.learner_timeout):
                return
            self._stop.wait(0.005)

    def _on_joy(self, msg: Joy) -> None:
        pressed = len(msg.buttons) > 0 and msg.buttons[0] == 1
        axes = np.asarray(msg.axes, np.float32)
        if not np.all(np.isfinite(axes)):  # clipping keeps NaN: the robot must never get it
            self._reject("intervention_non_finite",
                         f"ignored an intervention command with NaN/inf axes {axes.tolist()}")
            return
        with self._joy_changed:
            self._joy = (time.monotonic(), pressed, axes,
                         msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
            self._joy_changed.notify_all()

    def _await_human(self, obs_stamp: float) -> None:
        """Wait (at most one control period) for the simulated human's answer to this
        observation; only while it is answering at all (a Joy within the last second)."""
        joy = self._joy
        if not self.sync_human or joy is None or time.monotonic() - joy[0] > 1.0:
            return
        deadline = time.monotonic() + self.period
        with self._joy_changed:
            while self._joy[3] < obs_stamp - 0.25 * self.period and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.human_sync_timeouts += 1
                    return
                self._joy_changed.wait(remaining)
        self.human_sync_answers += 1

    def _report(self) -> None:
        if self.state == "failed":  # out of spin: the process exits non-zero
            raise NodeFailed(f"actor {self.ac.actor_id} cannot go on (see the fatal log above)")
        ob = self.outbox
        st = {"actor_id": self.ac.actor_id, "state": self.state,
              "weights_version": self.weights_version, "weights_learner": self._applied_learner,
              "weights_run": self._applied_run,
              "weights_received": self.weights_received,
              "rejected": sum(self.rejected.values()), "rejections": dict(self.rejected),
              "episode": self.sm.episode, "steps": self.total_steps, "sent": self.sent_steps,
              "steps_since_intervention": self.sm.steps_since_intervention,
              "human_sync_answers": self.human_sync_answers,
              "human_sync_timeouts": self.human_sync_timeouts,
              "unacked_steps": ob.unacked_steps, "acked": ob.acked, "outbox_bytes": ob.bytes,
              "outbox_dropped_steps": ob.dropped_steps, "recovered_messages": ob.recovered,
              "resends": self.resender.resends, "resent_messages": self.resender.resent,
              "broken_episodes": self.broken_episodes, "dropped_steps": self.dropped_steps,
              "authenticated": self.auth.enabled}
        try:
            self.pub_status.publish(String(data=json.dumps(st)))
        except Exception:
            pass

    # -- acting (own thread) -----------------------------------------------------------------------
    def _apply_weights(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:  # ordered by run and version in _on_weights
            self.agent.load_actor_state_dict(pending[0])
            self.weights_version, self._applied_learner = pending[1], pending[2]
            self._applied_run = pending[3]

    def _choose(self, obs, obs_stamp: float) -> tuple[np.ndarray, bool]:
        self._await_human(obs_stamp)
        joy = self._joy
        if joy is not None and joy[1] and time.monotonic() - joy[0] <= 2.0 * self.period:
            action = np.zeros(self.adim, np.float32)
            n = min(self.adim, len(joy[2]))
            action[:n] = np.clip(joy[2][:n], -1.0, 1.0)
            return action, True
        if self.weights_version == 0 and self.total_steps < self.ac.random_steps:
            return self.action_space.sample().astype(np.float32), False
        return self.agent.act(obs, deterministic=self.ac.deterministic).astype(np.float32), False

    def _send(self, pending: List[transport.StepRecord]) -> None:
        if not pending:
            return
        with self._out_lock:
            data = transport.encode_transitions(pending, self.ac.actor_id, self.seq,
                                                self.sent_steps, self.obs_spec, self.outbox.oldest,
                                                signer=self.auth.signer)
            self.outbox.add(self.sent_steps, len(pending), pending[-1].episode, data)
            if not self.resender.active:  # else the resend sends it, in order
                self.pub_tr.publish(transport.to_msg(data))
        self.seq += 1
        self.sent_steps += len(pending)
        pending.clear()

    def _event(self, name: Optional[str] = None) -> None:
        self.pub_event.publish(String(data=self.sm.event_json(name)))

    def _make_env(self):
        from robot_rl.envs.ros_env import ObservationTimeout, RosRobotEnv

        while not self._stop.is_set():
            try:
                env = RosRobotEnv(self.cfg, node_name=f"{self.get_name()}_env",
                                  timeout=self.ac.observation_timeout, stop=self._stop)
                env.timeout = self.ac.reset_timeout
                return env
            except ObservationTimeout as exc:
                self.get_logger().warning(f"waiting for the robot: {exc}",
                                          throttle_duration_sec=5.0)
        return None

    def _run(self) -> None:
        try:
            self._act()
        except Exception as exc:
            if self._stop.is_set():
                return  # shutting down: the context is gone under a publish or a wait
            self.state = "failed"
            self.get_logger().fatal(f"acting thread stopped: {exc!r}")
            raise

    def _act(self) -> None:
        from robot_rl.envs.ros_env import ClockJumpedBack, ObservationTimeout

        ac, sm = self.ac, self.sm
        self.state = "waiting_for_robot"
        self.env = env = self._make_env()
        if env is None:
            return
        if ac.weights_timeout > 0:
            self.state = "waiting_for_weights"
            deadline = time.monotonic() + ac.weights_timeout
            while self._pending is None and time.monotonic() < deadline and not self._stop.is_set():
                time.sleep(0.05)
        pending: List[transport.StepRecord] = []
        self.get_logger().info(f"actor {ac.actor_id} acting: observation {self.obs_spec}, "
                               f"action dim {self.adim}")
        while not self._stop.is_set():
            self.state = "resetting"
            self._event()  # the simulated human (and any watcher) starts a new episode here
            try:
                env.timeout = ac.reset_timeout
                obs, _ = env.reset()
            except (ObservationTimeout, RuntimeError) as exc:
                n = sm.reset_failed(str(exc))
                self._event("reset_failed")
                self.get_logger().error(f"reset failed ({n}/{ac.max_reset_failures}): {exc}")
                if n >= ac.max_reset_failures:
                    self.state = "failed"
                    self.get_logger().fatal(f"giving up after {n} failed resets; fix the reset "
                                            f"(service /scene/reset) and restart the actor")
                    return
                self._stop.wait(min(5.0, 0.5 * 2 ** (n - 1)))
                continue
            env.timeout = ac.observation_timeout
            sm.start()
            self.state = "running"
            self._event()
            while sm.state == EpisodeState.RUNNING and not self._stop.is_set():
                self._wait_for_learner()
                self._apply_weights()
                action, intervened = self._choose(obs, env.snapshot.stamp)
                version = self.weights_version
                try:
                    next_obs, reward, term, _trunc, info = env.step(action)
                except ClockJumpedBack as exc:
                    self.broken_episodes += 1
                    self.dropped_steps += len(pending)
                    pending.clear()
                    sm.abort(f"robot clock jumped back: {exc}")
                    self.get_logger().warning(f"episode {sm.episode} dropped: {exc}")
                    break
                except ObservationTimeout as exc:
                    self._send(pending)
                    sm.abort(f"observation timeout: {exc}")
                    break
                res = sm.step(reward, success=bool(info.get("success", term)),
                              intervened=intervened)
                pending.append(transport.StepRecord(
                    action=action, reward=float(reward), next_obs=next_obs,
                    terminated=res.terminated, truncated=res.truncated, intervened=intervened,
                    episode=sm.episode, step=sm.length - 1, weights_version=version,
                    steps_since_intervention=sm.steps_since_intervention,
                    # row 0 of every message carries its observation: self-contained, resendable
                    obs=obs if sm.length == 1 or not pending else None))
                self.total_steps += 1
                if len(pending) >= ac.send_every or res.done:
                    self._send(pending)
                obs = next_obs
            self._send(pending)
            if sm.state in ENDED:
                self._event()
                self.get_logger().info(
                    f"episode {sm.episode} {sm.state.value}: return {sm.ret:.2f}, length "
                    f"{sm.length}, interventions {sm.interventions} "
                    f"({100 * sm.intervention_rate:.0f}%), steps since last intervention "
                    f"{sm.steps_since_intervention}, weights v{self.weights_version}"
                    + (f", simulated human answers on time {self.human_sync_answers}, late "
                       f"{self.human_sync_timeouts}" if self.sync_human else ""))
                sm.begin_reset()

    def close(self) -> None:
        self._stop.set()
        # An observation wait in progress ends within actor.observation_timeout; the thread is
        # a daemon, so shutdown does not wait for it longer than this.
        self._thread.join(timeout=3.0)
        if self.env is not None:
            try:
                self.env.close()
            except Exception:
                pass
        with self._out_lock:
            self.outbox.close()


def main(args=None) -> int:
    return run_nodes(lambda: [ActorNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
