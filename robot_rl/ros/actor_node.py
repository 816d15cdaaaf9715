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
* Success, failure and reward come from ``hil.reward.source`` through ``RosRobotEnv``:
  ``/task/success`` (std_msgs/Bool, ``hil.reward.consecutive`` True in a row) for
  ``classifier`` and ``topic``, the operator's success / failure buttons (Joy ``buttons[2]`` /
  ``buttons[3]`` on ``hil.topic``) for ``human``, the simulator's state for ``sim_state``
  (the only case, with tasks that read simulator state, where ``/sim/object_pose`` is
  subscribed). Success and a failure label end the episode as terminal.
* ``/episode/event`` out (std_msgs/String JSON): ``{"actor_id", "episode", "event", "return",
  "length", "interventions", "intervention_rate", "steps_since_intervention"}``, ``event`` in
  success | failure | timeout | reset_failed (with ``reason``) | awaiting_confirmation (the
  reset node waits for the human to confirm the scene: ``/scene/reset_state``).
* ``/rl/actor_status`` out (String JSON, 1 Hz): weights version, rejected weight messages...

The acting logic is ROS-free: ``robot_rl.learning.actor_core.ActorCore`` (weights intake,
intervention, outbox, episode loop); this node feeds it messages and publishes for it.
Episodes follow ``robot_rl.hil.episode.EpisodeStateMachine``: resets go through ``/scene/reset``
(``actor.reset_timeout``). A robot clock that jumps back (a restarted simulator or driver) ends
the running episode unsent (``broken_episodes``, ``dropped_steps``) and a new one starts.
``actor.max_reset_failures`` consecutive failed resets, or an error in the acting thread, make
the node exit with code 1, so the launcher and ``ros2 launch`` see it.
"""
from __future__ import annotations

import json
import threading

from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import transport
from robot_rl.learning.actor_core import ActorCore
from robot_rl.ros.messages import (ACTOR_STATUS, ACTOR_WEIGHTS, EPISODE_EVENT, EVENT_QOS,
                                   INTERVENTION, INTERVENTION_QOS, STATUS_QOS, TRANSITION_ACKS,
                                   TRANSITIONS, TRANSITIONS_QOS, WEIGHTS_QOS)
from robot_rl.ros.node_utils import NodeFailed, declare_config, run_nodes


class ActorNode(Node):
    def __init__(self, name: str = "actor"):
        super().__init__(name)
        self.cfg = cfg = declare_config(self)
        self.ac = cfg.actor
        self.pub_tr = self.create_publisher(UInt8MultiArray, TRANSITIONS, TRANSITIONS_QOS)
        self.pub_event = self.create_publisher(String, EPISODE_EVENT, EVENT_QOS)
        self.pub_status = self.create_publisher(String, ACTOR_STATUS, STATUS_QOS)
        self.core = core = ActorCore(
            cfg, lambda data: self.pub_tr.publish(transport.to_msg(data)),
            lambda text: self.pub_event.publish(String(data=text)))
        self.env = None
        self.create_subscription(UInt8MultiArray, ACTOR_WEIGHTS, self._on_weights, WEIGHTS_QOS)
        self.create_subscription(Joy, INTERVENTION, self._on_joy, INTERVENTION_QOS)
        self.create_subscription(UInt8MultiArray, TRANSITION_ACKS, self._on_ack, STATUS_QOS)
        from robot_rl.ros.messages import RESET_STATE, RESET_STATE_LISTEN_QOS
        self.create_subscription(String, RESET_STATE, self._on_reset_state, RESET_STATE_LISTEN_QOS)
        self.create_timer(1.0, self._report)
        self.create_timer(0.05, core.resend)
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        tracker = HealthTracker(warn=("rejected", "human_sync_timeouts"))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"steps": core.total_steps, "sent": core.sent_steps,
             "weights_received": core.weights_received, "rejected": sum(core.rejected.values()),
             "human_sync_answers": core.human_sync_answers,
             "human_sync_timeouts": core.human_sync_timeouts},
            values={"state": core.state, "episode": core.sm.episode,
                    "weights_version": core.weights_version,
                    "rejections": dict(core.rejected)}))
        self._thread = threading.Thread(target=self._run, name="acting", daemon=True)
        self._thread.start()

    @property
    def state(self) -> str:
        return self.core.state

    # -- callbacks (executor thread) -------------------------------------------------------------
    def _warn(self, text) -> None:
        if text is not None:
            self.get_logger().warning(text, throttle_duration_sec=1.0)

    def _on_weights(self, msg: UInt8MultiArray) -> None:
        refusal, note = self.core.offer_weights(transport.from_msg(msg))
        self._warn(refusal)
        if note is not None:
            self.get_logger().info(note)

    def _on_ack(self, msg: UInt8MultiArray) -> None:
        self._warn(self.core.on_ack(transport.from_msg(msg)))

    def _on_joy(self, msg: Joy) -> None:
        pressed = len(msg.buttons) > 0 and msg.buttons[0] == 1
        stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
        self._warn(self.core.intervention(msg.axes, pressed, stamp))

    def _on_reset_state(self, msg: String) -> None:
        try:
            state = json.loads(msg.data).get("state")
        except (ValueError, AttributeError):
            return  # not the reset node's JSON: nothing to show
        self.core.on_reset_state(str(state))

    def _report(self) -> None:
        if self.core.state == "failed":  # out of spin: the process exits non-zero
            raise NodeFailed(f"actor {self.ac.actor_id} cannot go on (see the fatal log above)")
        try:
            self.pub_status.publish(String(data=json.dumps(self.core.status())))
        except Exception:
            pass

    # -- acting (own thread) -----------------------------------------------------------------------
    def _make_env(self):
        from robot_rl.envs.ros_env import ObservationTimeout, RosRobotEnv

        while not self.core.stop.is_set():
            try:
                env = RosRobotEnv(self.cfg, node_name=f"{self.get_name()}_env",
                                  timeout=self.ac.observation_timeout, stop=self.core.stop)
                env.timeout = self.ac.reset_timeout
                return env
            except ObservationTimeout as exc:
                self.get_logger().warning(f"waiting for the robot: {exc}",
                                          throttle_duration_sec=5.0)
        return None

    def _run(self) -> None:
        from robot_rl.envs.ros_env import ClockJumpedBack, ObservationTimeout

        try:
            self.core.state = "waiting_for_robot"
            self.env = self._make_env()
            if self.env is not None:
                self.core.run(self.env, ObservationTimeout, ClockJumpedBack, self.get_logger())
        except Exception as exc:
            if self.core.stop.is_set():
                return  # shutting down: the context is gone under a publish or a wait
            self.core.state = "failed"
            self.get_logger().fatal(f"acting thread stopped: {exc!r}")
            raise

    def close(self) -> None:
        self.core.stop.set()
        # An observation wait in progress ends within actor.observation_timeout; the thread is
        # a daemon, so shutdown does not wait for it longer than this.
        self._thread.join(timeout=3.0)
        if self.env is not None:
            try:
                self.env.close()
            except Exception:
                pass
        self.core.close()


def main(args=None) -> int:
    return run_nodes(lambda: [ActorNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
