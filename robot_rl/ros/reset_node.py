"""Reset node for real robots: provides ``/scene/reset`` (std_srvs/Trigger) where no simulator
does (``hil.reset.service`` renames it).

A reset, within ``hil.reset.timeout``: open the gripper, rise ``clearance`` straight up, move
along an interpolated path (``/robot/ee_target`` at the control rate, no faster than
``max_speed``) to the home pose plus a random x/y/yaw offset, hold it until ``/robot/ee_pose``
converges, run the configured hooks; in ``human`` / ``move_then_human`` mode then wait (up to
``confirm_timeout``) for a human to reset the scene and confirm, by calling
``/scene/confirm`` (std_srvs/Trigger, ``hil.reset.confirm_service``) or pressing the
device's confirm button (Joy ``buttons[1]`` on the intervention topic). Every failure answers
``success=False`` with the reason.

Its state goes out on ``/scene/reset_state`` (std_msgs/String JSON ``{"state", "resets",
"stamp"}``, latched): ``idle`` (no reset running; the last one succeeded or none ran yet),
``moving``, ``awaiting_confirmation`` (the human's turn: a UI shows it, the rehearsal's
simulated operator acts on it), ``failed`` (the last reset failed; the message says why).
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_rl.config import Config
from robot_rl.hil.reset import (RESET_HOOKS, ResetFailed, check_hooks, converged, home_pose,
                                interpolate, quat_angle, sample_start)
from robot_rl.ros import messages as m
from robot_rl.ros.command_guard import CommandGuard


class ResetNode(Node):
    def __init__(self, cfg: Config | None = None, name: str = "reset"):
        super().__init__(name)
        if cfg is None:
            from robot_rl.ros.node_utils import declare_config
            cfg = declare_config(self)
        self.cfg = cfg
        self.r = r = cfg.hil.reset
        check_hooks(r.hooks)
        self.rate = cfg.control_rate_hz
        self.home_pos, self.home_quat = home_pose(cfg)
        self.rng = np.random.default_rng(r.seed)
        self._pose_lock = threading.Lock()
        self._pose: tuple[float, np.ndarray, np.ndarray] | None = None  # (receipt time, pos, quat)
        self._confirm = threading.Event()
        self._confirm_wanted = False
        self._last_joy_confirm = False
        self._busy = threading.Lock()
        self.resets = 0
        self.failed_resets = 0
        # The reset service blocks its executor for the whole motion, so what it waits for (the
        # TCP pose, the human's confirmation) arrives on a helper node with its own
        # single-threaded executor (rclpy's multi-threaded one starved these callbacks for
        # seconds; docs/architecture.md, "Executors").
        self._inputs = rclpy.create_node(f"{name}_inputs", context=self.context)
        self._inputs.create_subscription(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        self._inputs.create_subscription(Joy, cfg.hil.topic, self._on_joy, 10)
        # Tokens arrive on the helper node: the main executor is busy during a reset motion.
        guard = CommandGuard(self._inputs, cfg)  # security.restrict_commands
        self._inputs.create_service(Trigger, r.confirm_service,
                                    guard.wrap(r.confirm_service, self._on_confirm))
        self._input_executor = SingleThreadedExecutor(context=self.context)
        self._input_executor.add_node(self._inputs)
        self._input_thread = threading.Thread(target=self._input_executor.spin, daemon=True)
        self._input_thread.start()
        self.pub_target = self.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self.create_service(Trigger, r.service, guard.wrap(r.service, self._on_reset))
        self.pub_state = self.create_publisher(String, m.RESET_STATE, m.RESET_STATE_QOS)
        self.state = ""
        self._publish_state("idle")
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics
        self.last_failure = ""
        tracker = HealthTracker(error=("failed_resets",))
        self.diagnostics = Diagnostics(self, lambda: tracker.assess(
            {"resets": self.resets, "failed_resets": self.failed_resets},
            values={"last_failure": self.last_failure, "state": self.state}))
        self.get_logger().info(
            f"reset service {r.service} ({r.mode}); home TCP {np.round(self.home_pos, 3)}, "
            f"offsets x {r.x_range} y {r.y_range} yaw {r.yaw_range}, hooks {r.hooks}; "
            f"confirm via {r.confirm_service} or Joy buttons[1] on {cfg.hil.topic}")

    def _publish_state(self, state: str) -> None:
        self.state = state
        self.pub_state.publish(String(data=json.dumps(
            {"state": state, "resets": self.resets, "stamp": time.time()})))

    # -- inputs ---------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        pos, quat = m.pose_from_msg(msg)
        with self._pose_lock:
            self._pose = (time.monotonic(), pos, quat)

    def _on_joy(self, msg: Joy) -> None:
        pressed = len(msg.buttons) > 1 and bool(msg.buttons[1])
        if pressed and not self._last_joy_confirm and self._confirm_wanted:
            self._confirm.set()
        self._last_joy_confirm = pressed

    def _on_confirm(self, request, response):
        if not self._confirm_wanted:
            response.success = False
            response.message = "no reset is waiting for a confirmation"
            return response
        self._confirm.set()
        response.success = True
        response.message = "confirmed"
        return response

    # -- ResetContext (for hooks) ----------------------------------------------------------------
    def ee_pose(self, max_age: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        with self._pose_lock:
            pose = self._pose
        if pose is None or time.monotonic() - pose[0] > max_age:
            raise ResetFailed(f"no fresh {m.EE_POSE} (is the joint driver running on "
                              f"ROS_DOMAIN_ID {__import__('os').environ.get('ROS_DOMAIN_ID', '0')}?)")
        return pose[1].copy(), pose[2].copy()

    def fresh_ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The TCP pose, waiting for a fresh one until the reset's deadline: a lockstep sim
        publishes only when it advances, and a loaded machine may pause the driver for longer
        than ``ee_pose``'s age limit; only a pose that stays stale past the deadline fails."""
        while True:
            try:
                return self.ee_pose()
            except ResetFailed:
                if time.monotonic() > self._deadline:
                    raise
                time.sleep(0.05)

    def sleep(self, seconds: float) -> None:
        self._check_deadline()
        time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        self._check_deadline()

    def set_gripper(self, width: float) -> None:
        self.pub_gripper.publish(Float64(data=float(width)))

    def _send(self, pos, quat) -> None:
        self.pub_target.publish(m.pose_msg(pos, quat, self.get_clock().now().nanoseconds * 1e-9,
                                           self.cfg.robot.base_frame))

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise ResetFailed(f"timed out after {self.r.timeout} s ({self._stage})")

    def move_to(self, pos, quat) -> None:
        """Interpolated path from the current pose, then hold until converged (or timeout)."""
        period = 1.0 / self.rate
        start_pos, start_quat = self.fresh_ee_pose()
        path = interpolate(start_pos, start_quat, pos, quat, self.r.max_speed,
                           self.r.max_yaw_rate, self.rate)
        next_t = time.monotonic()
        for p, q in path:
            self._check_deadline()
            self._send(p, q)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        sent = time.monotonic()
        while True:
            self._send(pos, quat)  # keep commanding: a lockstep sim advances per command
            time.sleep(period)
            cur_pos, cur_quat = self.fresh_ee_pose()
            if (time.monotonic() - sent > period
                    and converged(cur_pos, cur_quat, pos, quat, self.r.tolerance,
                                  self.r.yaw_tolerance)):
                return
            if time.monotonic() > self._deadline:
                raise ResetFailed(
                    f"did not converge within {self.r.timeout} s ({self._stage}): TCP "
                    f"{np.linalg.norm(cur_pos - pos) * 100:.1f} cm and "
                    f"{quat_angle(cur_quat, quat):.3f} rad from the target (tolerance "
                    f"{self.r.tolerance * 100:.1f} cm, {self.r.yaw_tolerance} rad)")

    # -- the service ---------------------------------------------------------------------------
    def _on_reset(self, request, response):
        start = time.monotonic()
        try:
            self._publish_state("moving")
            response.message = self.reset_scene()
            response.success = True
        except ResetFailed as exc:
            response.success, response.message = False, str(exc)
        except Exception as exc:  # a hook's bug must not kill the node
            response.success, response.message = False, f"reset failed: {exc!r}"
        if not response.success:
            self.failed_resets += 1
            self.last_failure = response.message
        self._publish_state("idle" if response.success else "failed")
        log = self.get_logger()
        text = f"reset {'ok' if response.success else 'FAILED'} in " \
               f"{time.monotonic() - start:.1f} s: {response.message}"
        if response.success:
            log.info(text)
        else:
            log.error(text)
        return response

    def reset_scene(self) -> str:
        r = self.r
        self._deadline = time.monotonic() + r.timeout
        parts = []
        if r.mode in ("move", "move_then_human"):
            self._stage = "waiting for the TCP pose"
            pos, quat = self.fresh_ee_pose()  # a fresh node may not have heard the driver yet
            if r.open_gripper:
                self.set_gripper(self.cfg.robot.gripper_max_width)
            if r.clearance > 0:
                self._stage = "rising"
                up = pos.copy()
                up[2] = min(pos[2] + r.clearance, self.cfg.controller.workspace_max[2])
                self.move_to(up, quat)
            goal_pos, goal_quat, (dx, dy, dyaw) = sample_start(self.cfg, self.home_pos,
                                                               self.home_quat, self.rng)
            self._stage = "moving home"
            self.move_to(goal_pos, goal_quat)
            parts.append(f"home + offset dx={dx:.3f} dy={dy:.3f} dyaw={dyaw:.3f} reached "
                         f"({goal_pos[0]:.3f}, {goal_pos[1]:.3f}, {goal_pos[2]:.3f})")
        for name in r.hooks:
            self._stage = f"hook {name}"
            note = RESET_HOOKS[name](self)
            parts.append(f"{name}: {note}" if note else name)
        if r.mode in ("human", "move_then_human"):
            self._stage = "waiting for the human"
            self._confirm.clear()
            self._confirm_wanted = True
            self._publish_state("awaiting_confirmation")
            self.get_logger().warning(
                f"reset the scene by hand, then confirm: call {r.confirm_service} or press the "
                f"confirm button (waiting up to {r.confirm_timeout:g} s)")
            try:
                if not self._confirm.wait(r.confirm_timeout):
                    raise ResetFailed(f"no confirmation from the human within "
                                      f"{r.confirm_timeout:g} s ({r.confirm_service} or the "
                                      f"device's confirm button)")
            finally:
                self._confirm_wanted = False
            parts.append("human confirmed the scene")
        self.resets += 1
        return "; ".join(parts) or "nothing to do"

    def close(self) -> None:
        self._input_executor.shutdown(timeout_sec=1.0)
        self._input_thread.join(timeout=2.0)
        self._inputs.destroy_node()


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    return run_nodes(lambda: [ResetNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
