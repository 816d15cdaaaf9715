"""The SERL/HIL-SERL actor without ROS: weights intake, intervention, outbox and episode loop.

``robot_rl.ros.actor_node`` is a thin ROS shell around :class:`ActorCore`: its subscriptions
hand the core bytes and axes, its publishers are the core's two sinks (transition messages,
episode events), and its acting thread runs :meth:`ActorCore.run` on the env it builds.

Weights: checked when offered (decode, signature, run/version order, ``WeightProbe``) and
applied by the acting thread before its next action. Within one run only a higher version
replaces the weights (a lower one is refused and counted: ``stale_version``); weights of
another run are taken. Transitions: a message every ``actor.send_every`` steps and at every
episode end, kept in the outbox until acknowledged and resent after a learner restart or when
acks stop advancing (``robot_rl.learning.outbox``, docs/crash_safety.md). Evaluation rounds:
every ``actor.evaluate_every`` steps a few episodes with the mean action and frozen weights; the
best round's weights are kept for deployment (``robot_rl.learning.evaluation_rounds``).
"""
from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import numpy as np
import torch

from robot_rl import security, transport
from robot_rl.config import Config
from robot_rl.deploy.agent_export import task_spaces
from robot_rl.hil.episode import ENDED, EpisodeState, EpisodeStateMachine
from robot_rl.learning.evaluation_rounds import EvaluationRounds
from robot_rl.learning.outbox import Outbox, Resender, decode_ack
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.learning.weight_check import WeightCheckError, WeightProbe


class ActorCore:
    def __init__(self, cfg: Config, send_transitions: Callable[[bytes], None],
                 send_event: Callable[[str], None]):
        self.cfg, self.ac = cfg, cfg.actor
        ac = self.ac
        torch.set_num_threads(1)  # one observation at a time: threads only add latency
        self.obs_space, self.action_space, _ = task_spaces(cfg)
        self.obs_spec = transport.obs_spec_of(self.obs_space)
        self.adim = int(self.action_space.shape[0])
        self.action_space.seed(cfg.agent.seed + 1000 + ac.actor_id)
        self.agent = RLPDAgent(self.obs_space, self.action_space, cfg.agent_settings())
        self._reference = self.agent.actor_state_dict()
        self.auth = security.NodeAuth.from_config(cfg, f"actor_{ac.actor_id}")
        self.weight_probe = WeightProbe(self.agent)
        self.period = 1.0 / cfg.control_rate_hz
        self._send_transitions, self._send_event = send_transitions, send_event
        self.weights_version = 0
        self.weights_received = 0
        self.rejected: collections.Counter = collections.Counter()  # by reason
        self._pending: Optional[tuple] = None  # (state dict, version, learner id, run id)
        self.weights_run: Optional[str] = None  # run of the newest weights received
        self.newest_version = 0  # of that run
        self.learner_id: Optional[str] = None  # of the newest weights received
        self.applied_learner: Optional[str] = None  # of the weights acting now
        self.applied_run: Optional[str] = None
        self._lock = threading.Lock()
        self.joy: Optional[tuple] = None  # (monotonic receive time, pressed, axes, stamp)
        self._joy_changed = threading.Condition()
        # The simulated human answers each observation with a Joy stamped like the pose it saw;
        # acting before that answer arrives would apply every correction one step late (on a
        # 10 Hz pick task that spoils grasps and turns the corrections into poor training data).
        self.sync_human = cfg.hil.device == "sim_human"
        self.human_sync_answers = 0
        self.human_sync_timeouts = 0
        self.stop = threading.Event()
        self.state = "starting"
        actor_dir = ac.outbox_dir or os.path.join(cfg.learner.run_dir, "actors",
                                                  f"actor_{ac.actor_id}")
        self.outbox = Outbox(actor_dir, ac.outbox_max_bytes)
        self.rounds = EvaluationRounds(ac.evaluate_every, ac.evaluate_episodes,
                                       os.path.join(actor_dir, "best_policy"))
        self.resender = Resender(self.outbox, ac.resend_after)
        self._out_lock = threading.Lock()  # outbox, resender and publishing, in order
        self.sm = EpisodeStateMachine(cfg.task.max_episode_steps, ac.actor_id,
                                      episode=self.outbox.next_episode)
        self.total_steps = 0
        self.broken_episodes = self.dropped_steps = 0
        self._env = None  # its clock_jumps (a restarted robot or simulator) go in the status
        self._learner_updates: Optional[int] = None
        self._learner_seen = 0.0
        self._lead_offset: Optional[int] = None
        self.sent_steps = self.outbox.next_step  # actor-wide transition counter
        self.seq = 0

    # -- inputs (executor thread) ----------------------------------------------------------------
    def _refuse(self, reason: str, text: str) -> str:
        self.rejected[reason] += 1
        return text

    def offer_weights(self, data: bytes) -> Tuple[Optional[str], Optional[str]]:
        """A weights message: ``(refusal, note)``; the refusal (counted) when it is not taken,
        a note worth logging when a new learner process appears."""
        try:
            sd, version, meta = transport.decode_weights(data, self._reference,
                                                         self.ac.max_message_bytes,
                                                         keyring=self.auth.keyring)
        except transport.TransportError as exc:
            return self._refuse(exc.reason, f"rejected actor weights: {exc}"), None
        learner, run = meta["learner"], meta["run"]
        # A run's versions never go backwards (the learner reserves each one durably): a lower
        # one is an old message or an impostor. Another run starts afresh.
        if run == self.weights_run and version <= self.newest_version:
            if version < self.newest_version:
                return self._refuse("stale_version", f"refused weights v{version} of run {run}: "
                                                     f"v{self.newest_version} already received"), None
            return None, None
        try:
            self.weight_probe.check(sd)
        except WeightCheckError as exc:
            return self._refuse("unfit_weights", f"rejected actor weights v{version}: {exc}"), None
        with self._lock:
            self.weights_run, self.newest_version = run, version
            self._pending = (sd, version, learner, run)
        self.weights_received += 1
        with self._out_lock:
            self.resender.on_learner(learner)
        note = None
        if learner != self.learner_id:
            if self.learner_id is not None:
                note = f"weights from a new learner process ({learner}, v{version}); following it"
            self.learner_id = learner
            self._lead_offset = self._learner_updates = None  # its update count starts anew
        updates = meta["updates"]
        if updates > 0:
            if self._lead_offset is None:  # the learner's start-up lag (demos, min_online)
                self._lead_offset = self.sent_steps - updates
            self._learner_updates, self._learner_seen = updates, time.monotonic()
        return None, note

    def on_ack(self, data: bytes) -> Optional[str]:
        """An acknowledgement message; the refusal (counted) or None."""
        try:
            ack = decode_ack(data, keyring=self.auth.keyring)
        except transport.TransportError as exc:
            return self._refuse(exc.reason, f"rejected an acknowledgement: {exc}")
        with self._out_lock:
            self.resender.on_learner(ack.learner)
            if self.ac.actor_id in ack.acks:
                self.resender.on_ack(ack.acks[self.ac.actor_id])
        return None

    def resend(self) -> None:
        """Send what the go-back-N resend has due now (called every 50 ms)."""
        with self._out_lock:
            for entry in self.resender.due():
                self._send_transitions(entry.data)

    def intervention(self, axes, pressed: bool, stamp: float) -> Optional[str]:
        """The human's newest command (policy action frame, dead-man ``pressed``); the refusal
        (counted) or None."""
        axes = np.asarray(axes, np.float32)
        if not np.all(np.isfinite(axes)):  # clipping keeps NaN: the robot must never get it
            return self._refuse("intervention_non_finite", f"ignored an intervention command "
                                                           f"with NaN/inf axes {axes.tolist()}")
        with self._joy_changed:
            self.joy = (time.monotonic(), bool(pressed), axes, float(stamp))
            self._joy_changed.notify_all()
        return None

    def status(self) -> Dict[str, Any]:
        ob = self.outbox
        return {"actor_id": self.ac.actor_id, "state": self.state,
                "weights_version": self.weights_version, "weights_learner": self.applied_learner,
                "weights_run": self.applied_run,
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
                "clock_jumps": getattr(self._env, "clock_jumps", 0),
                "authenticated": self.auth.enabled}

    # -- acting (own thread) -----------------------------------------------------------------------
    def wait_for_learner(self) -> None:
        """Pace the robot to the learner (actor.max_lead); never wait on a silent learner."""
        while self.ac.max_lead > 0 and not self.stop.is_set():
            updates, offset = self._learner_updates, self._lead_offset  # reset by a new learner
            if updates is None or offset is None:
                return
            lead = self.sent_steps - updates - offset
            if (lead <= self.ac.max_lead
                    or time.monotonic() - self._learner_seen > self.ac.learner_timeout):
                return
            self.stop.wait(0.005)

    def _await_human(self, obs_stamp: float) -> None:
        """Wait (at most one control period) for the simulated human's answer to this
        observation; only while it is answering at all (a Joy within the last second)."""
        joy = self.joy
        if not self.sync_human or joy is None or time.monotonic() - joy[0] > 1.0:
            return
        deadline = time.monotonic() + self.period
        with self._joy_changed:
            while self.joy[3] < obs_stamp - 0.25 * self.period and not self.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.human_sync_timeouts += 1
                    return
                self._joy_changed.wait(remaining)
        self.human_sync_answers += 1

    def apply_weights(self) -> None:
        """Act with the newest accepted weights from now on."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:  # ordered by run and version in offer_weights
            self.agent.load_actor_state_dict(pending[0])
            self.weights_version, self.applied_learner = pending[1], pending[2]
            self.applied_run = pending[3]

    def choose(self, obs, obs_stamp: float) -> Tuple[np.ndarray, bool]:
        """``(action, intervened)``: the human's command while held, else random warm-up
        actions before the first weights, else the policy."""
        self._await_human(obs_stamp)
        joy = self.joy
        if joy is not None and joy[1] and time.monotonic() - joy[0] <= 2.0 * self.period:
            action = np.zeros(self.adim, np.float32)
            n = min(self.adim, len(joy[2]))
            action[:n] = np.clip(joy[2][:n], -1.0, 1.0)
            return action, True
        if self.weights_version == 0 and self.total_steps < self.ac.random_steps:
            return self.action_space.sample().astype(np.float32), False
        deterministic = self.ac.deterministic or self.rounds.active
        return self.agent.act(obs, deterministic=deterministic).astype(np.float32), False

    def send(self, pending: List[transport.StepRecord]) -> None:
        """Outbox, then send (in order after a running resend), the steps gathered so far."""
        if not pending:
            return
        with self._out_lock:
            data = transport.encode_transitions(pending, self.ac.actor_id, self.seq,
                                                self.sent_steps, self.obs_spec, self.outbox.oldest,
                                                signer=self.auth.signer)
            self.outbox.add(self.sent_steps, len(pending), pending[-1].episode, data)
            if not self.resender.active:  # else the resend sends it, in order
                self._send_transitions(data)
        self.seq += 1
        self.sent_steps += len(pending)
        pending.clear()

    def _event(self, name: Optional[str] = None) -> None:
        event = self.sm.event(name)
        if self.rounds.active:
            event["evaluation"] = self.rounds.current.round
        self._send_event(json.dumps(event))

    def _start_episode(self) -> None:
        if self.rounds.due(self.total_steps):  # judge the newest weights, frozen for the round
            self.apply_weights()
            self.rounds.start(self.weights_version, self.total_steps)
        self.sm.start()

    def _end_evaluation_episode(self, log) -> None:
        result = self.rounds.episode_ended(self.sm.state == EpisodeState.SUCCESS,
                                           self.sm.interventions)
        if result is not None:
            kept = self.rounds.keep(result, self.agent.actor_state_dict())
            log.info(f"evaluation round {result.round} (weights v{result.weights_version}): "
                     f"{result.successes}/{result.episodes} episodes succeeded without help"
                     + (", the best so far: kept for deployment" if kept else ""))

    def on_reset_state(self, state: str) -> None:
        """The reset node's state (``/scene/reset_state``): while this actor's reset waits for
        the human to confirm the scene, its state and an event say so."""
        if state == "awaiting_confirmation" and self.sm.awaiting_confirmation():
            self.state = "awaiting_confirmation"
            self._event()

    def wait_for_weights(self) -> None:
        if self.ac.weights_timeout > 0:
            self.state = "waiting_for_weights"
            deadline = time.monotonic() + self.ac.weights_timeout
            while self._pending is None and time.monotonic() < deadline and not self.stop.is_set():
                time.sleep(0.05)

    def _reset(self, env, observation_errors: Tuple[Type[BaseException], ...], log):
        """One reset; the first observation, or None after a failure (backoff done)."""
        ac, sm = self.ac, self.sm
        self.state = "resetting"
        self._event()  # the simulated human (and any watcher) starts a new episode here
        try:
            env.timeout = ac.reset_timeout
            obs, _ = env.reset()
        except (*observation_errors, RuntimeError) as exc:
            n = sm.reset_failed(str(exc))
            self._event("reset_failed")
            log.error(f"reset failed ({n}/{ac.max_reset_failures}): {exc}")
            if n >= ac.max_reset_failures:
                self.state = "failed"
                log.fatal(f"giving up after {n} failed resets; fix the reset "
                          f"(service /scene/reset) and restart the actor")
                return None
            self.stop.wait(min(5.0, 0.5 * 2 ** (n - 1)))
            return None
        env.timeout = ac.observation_timeout
        return obs

    def run(self, env, observation_error: Type[BaseException],
            clock_jump_error: Type[BaseException], log) -> None:
        """Episodes on ``env`` until ``stop`` or ``max_reset_failures`` failed resets in a row.
        ``observation_error``/``clock_jump_error``: the env's exceptions for a stream that
        stopped and for a robot clock that jumped back; ``log``: info/warning/error/fatal."""
        sm = self.sm
        self._env = env
        self.wait_for_weights()
        pending: List[transport.StepRecord] = []
        log.info(f"actor {self.ac.actor_id} acting: observation {self.obs_spec}, "
                 f"action dim {self.adim}")
        while not self.stop.is_set():
            obs = self._reset(env, (observation_error,), log)
            if obs is None:
                if self.state == "failed":
                    return
                continue
            self._start_episode()
            self.state = "running"
            self._event()
            while sm.state == EpisodeState.RUNNING and not self.stop.is_set():
                self.wait_for_learner()
                if not self.rounds.active:
                    self.apply_weights()
                action, intervened = self.choose(obs, env.snapshot.stamp)
                if intervened:  # a device pushes in the base frame; the task may act in another
                    action = env.task.action_from_base_frame(action, env.snapshot)
                version = self.weights_version
                try:
                    next_obs, reward, term, _trunc, info = env.step(action)
                except clock_jump_error as exc:
                    self.broken_episodes += 1
                    self.dropped_steps += len(pending)
                    pending.clear()
                    sm.abort(f"robot clock jumped back: {exc}")
                    log.warning(f"episode {sm.episode} dropped: {exc}")
                    break
                except observation_error as exc:
                    self.send(pending)
                    sm.abort(f"observation timeout: {exc}")
                    break
                res = sm.step(reward, success=bool(info.get("success", term)),
                              failure=bool(info.get("failure", False)), intervened=intervened)
                pending.append(transport.StepRecord(
                    action=action, reward=float(reward), next_obs=next_obs,
                    terminated=res.terminated, truncated=res.truncated, intervened=intervened,
                    episode=sm.episode, step=sm.length - 1, weights_version=version,
                    steps_since_intervention=sm.steps_since_intervention,
                    # row 0 of every message carries its observation: self-contained, resendable
                    obs=obs if sm.length == 1 or not pending else None))
                self.total_steps += 1
                if len(pending) >= self.ac.send_every or res.done:
                    self.send(pending)
                obs = next_obs
            self.send(pending)
            if sm.state in ENDED:
                self._event()
                log.info(self._episode_line())
                self._end_evaluation_episode(log)
                sm.begin_reset()

    def _episode_line(self) -> str:
        sm = self.sm
        return (f"episode {sm.episode} {sm.state.value}: return {sm.ret:.2f}, length "
                f"{sm.length}, interventions {sm.interventions} "
                f"({100 * sm.intervention_rate:.0f}%), steps since last intervention "
                f"{sm.steps_since_intervention}, weights v{self.weights_version}"
                + (f", simulated human answers on time {self.human_sync_answers}, late "
                   f"{self.human_sync_timeouts}" if self.sync_human else ""))

    def close(self) -> None:
        with self._out_lock:
            self.outbox.close()
