"""``robot-rl check-backend``'s motion probes, on the live graph through a ``BackendProbe``:
a Cartesian target 1 m past the workspace box (the arm starts toward the clamped face and is
sent back to where it was at once), a joint target whose TCP leaves the box, NaN targets,
gripper openings outside [0, max], then ``/scene/reset``. Skipped with ``--no-motion``.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from robot_rl import check_backend as cb
from robot_rl.config import Config
from robot_rl.ros import messages as m

if TYPE_CHECKING:  # the probe imports these checks
    from robot_rl.ros.backend_probe import BackendProbe

BOX_FACE = ("workspace_min.", "workspace_max.")


def motion_checks(probe: BackendProbe, cfg: Config) -> list[cb.Result]:
    from robot_rl.robot.controller import ImpedanceController
    from robot_rl.robot.kinematics import ArmKinematics

    results = []
    pose, joints = probe.newest(m.EE_POSE), probe.newest(m.JOINT_STATES)
    if pose is None or joints is None:
        return [cb.Result("commands", "motion probes", cb.FAIL, "no ee_pose / joint_states",
                          "state before commanding")]
    position, quat = m.pose_from_msg(pose)
    hold = m.pose_msg(position, quat, 0.0, cfg.robot.base_frame)  # where the arm was
    box_min, box_max = np.array(cfg.controller.workspace_min), np.array(cfg.controller.workspace_max)
    excursion = [0.0]

    def watch():
        """Tracks how far the TCP got outside the box."""
        pose = probe.newest(m.EE_POSE)
        if pose is not None:
            distance = cb.outside_box(m.pose_from_msg(pose)[0], box_min, box_max)
            excursion[0] = max(excursion[0], distance)

    def pump():
        """Keeps a lockstep sim stepping (one period per command) with harmless hold targets."""
        probe.pub_ee.publish(hold)
        watch()

    def answer_to(send, prefixes, must_contain, also=()):
        """The status line answering a command; then back to holding at once, so the arm moves
        no further toward a clamped target than the answer took."""
        line = probe.expect_status(send, prefixes, must_contain, also, watch=watch)
        pump()
        return line

    def row(check, subject, line, expected):
        results.append(cb.Result(check, subject, cb.PASS if line else cb.FAIL,
                                 line or "no matching status", expected))

    clamped_or_refused = ("CLAMPED:", "REJECTED:")
    far = m.pose_msg(position + [box_max[0] + 1.0 - position[0], 0.0, 0.0], quat, 0.0,
                     cfg.robot.base_frame)
    line = answer_to(lambda: probe.pub_ee.publish(far), clamped_or_refused,
                     "ee_target", BOX_FACE + ("workspace box",))
    row("command", "ee_target 1 m past the box", line, "CLAMPED:/REJECTED: naming the box face")
    nan_pose = PoseStamped()
    nan_pose.header.frame_id = cfg.robot.base_frame
    nan_pose.pose.position.x = float("nan")
    line = answer_to(lambda: probe.pub_ee.publish(nan_pose), ("REJECTED:",),
                     "ee_target")
    row("command", "ee_target NaN", line, "REJECTED:")

    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    limits = ImpedanceController(kin, cfg.controller, np.array(cfg.robot.home))
    q_now = m.joint_positions_by_name(joints, cfg.robot.arm_joints)
    q_out, face = cb.outside_box_joint_target(kin, q_now, box_min, box_max, limits.q_min,
                                              limits.q_max)
    target = m.joint_state_msg(cfg.robot.arm_joints, q_out, [], [], 0.0)
    line = answer_to(lambda: probe.pub_joint.publish(target), clamped_or_refused,
                     "joint_target", BOX_FACE)
    row("command", f"joint_target with TCP past {face}", line,
        "CLAMPED:/REJECTED: naming the box face")
    nan_q = m.joint_state_msg(cfg.robot.arm_joints, [float("nan")] * len(q_now), [], [], 0.0)
    line = answer_to(lambda: probe.pub_joint.publish(nan_q), ("REJECTED:",),
                     "joint_target")
    row("command", "joint_target NaN", line, "REJECTED:")
    for _ in range(int(1.0 / probe.spec.control_period)):  # back to Cartesian hold
        pump()
        time.sleep(probe.spec.control_period)

    width_max = cfg.robot.gripper_max_width
    for value, prefix in ((width_max + 0.02, "CLAMPED:"), (-0.01, "CLAMPED:"),
                          (float("nan"), "REJECTED:")):
        line = answer_to(lambda v=value: probe.pub_gripper.publish(Float64(data=v)),
                         (prefix,), "gripper_target")
        row("command", f"gripper_target {value:g} m", line, prefix)
    results.append(gripper_range(probe, cfg, pump))
    results.append(cb.Result("command", "TCP outside the box during the probes",
                             cb.PASS if excursion[0] <= 0.005 else cb.FAIL,
                             f"{excursion[0] * 1e3:.1f} mm", "≤ 5 mm"))
    results.append(reset_check(probe, cfg))
    return results


def gripper_range(probe: BackendProbe, cfg: Config, pump) -> cb.Result:
    """Command half the range: the measured opening must get there and stay in [0, max]."""
    goal = cfg.robot.gripper_max_width / 2
    fingers = cfg.robot.gripper_joints
    probe.pub_gripper.publish(Float64(data=goal))
    seen, deadline = [], time.monotonic() + 5.0
    while time.monotonic() < deadline:
        pump()
        time.sleep(probe.spec.control_period)
        msg = probe.newest(m.JOINT_STATES)
        if msg is not None:
            seen.append(float(np.sum(m.joint_positions_by_name(msg, fingers))))
            if abs(seen[-1] - goal) <= 0.005:
                break
    probe.pub_gripper.publish(Float64(data=cfg.robot.gripper_max_width))  # open again
    if not seen:
        return cb.Result("gripper", "opening", cb.FAIL, "no joint_states", f"{goal:.3f} m")
    inside = min(seen) >= -0.001 and max(seen) <= cfg.robot.gripper_max_width + 0.001
    reached = abs(seen[-1] - goal) <= 0.005
    return cb.Result("gripper", "opening", cb.PASS if inside and reached else cb.FAIL,
                     f"reached {seen[-1]:.4f} m, range seen {min(seen):.4f}..{max(seen):.4f} m",
                     f"{goal:.3f} ± 0.005 m within 5 s, always in [0, {cfg.robot.gripper_max_width}]")


def reset_check(probe: BackendProbe, cfg: Config) -> cb.Result:
    service = probe.spec.reset_service
    if not probe.reset_client.wait_for_service(timeout_sec=2.0):
        return cb.Result("reset", service, cb.SKIP, "no service",
                         "real robots: the reset node (train profile) serves it")
    future = probe.reset_client.call_async(Trigger.Request())
    deadline = time.monotonic() + cfg.hil.reset.timeout + 5.0
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not future.done() or not future.result().success:
        why = future.result().message if future.done() else "no answer"
        return cb.Result("reset", service, cb.FAIL, why, "success, arm near home")
    answered = time.time()
    msg = probe.wait_newest(m.JOINT_STATES, answered, timeout=5.0)
    if msg is None:
        return cb.Result("reset", service, cb.FAIL, "no joint_states after the reset",
                         "arm near home")
    q = m.joint_positions_by_name(msg, cfg.robot.arm_joints)
    error = float(np.max(np.abs(q - np.array(cfg.robot.home))))
    return cb.Result("reset", service, cb.PASS if error <= 0.05 else cb.FAIL,
                     f"success, max |q - home| {error:.4f} rad", "success, ≤ 0.05 rad from home")
