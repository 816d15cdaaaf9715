"""The two capture flows, on any :class:`~robot_rl.calibration.robot_link.RobotLink` (ROS-free).

* :func:`interactive_capture` (``robot-rl calibrate capture``): keep a view when the board is
  found, sharp, the end-effector is at rest, and the view adds coverage (a missing image region)
  or a new board pose; report which regions are still missing.
* :func:`guided_capture` (``robot-rl calibrate guided``): plan eye-in-hand views with
  :func:`robot_rl.calibration.guided.plan_eye_in_hand` (driver workspace box, joint limits checked
  by IK), move the arm to each, wait for it to settle, capture.

Each kept view is a PNG plus the joint positions (by name) nearest the image stamp, saved in the
capture folder format of :mod:`robot_rl.calibration.capture_set` after every view.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .board import BoardConfig, Detection, detect_board
from .capture_set import CaptureSet, CaptureView
from .coverage import CoverageTracker
from .errors import BoardNotFoundError, CalibrationError, InsufficientViewsError
from .robot_link import Frame, MotionTimeout, RobotLink

Log = Callable[[str], None]


def _new_capture(cfg, camera: str, frame: Frame, board: BoardConfig, roi) -> CaptureSet:
    h, w = frame.image.shape[:2]
    return CaptureSet(
        camera=camera, image_size=(w, h), K=frame.K, D=frame.D if frame.D is not None else np.zeros(5),
        frame_id=frame.frame_id or f"{camera}_optical_frame", board=board, base_frame=cfg.robot.base_frame,
        ee_frame=cfg.robot.ee_frame, arm_joints=list(cfg.robot.arm_joints), urdf=cfg.robot.urdf, roi=roi,
    )


def _store_view(cap: CaptureSet, out: Path, frame: Frame, joint_stamp: float, joints: dict, det: Detection | None,
                note: str = "") -> CaptureView:
    name = f"view_{len(cap.views):03d}.png"
    if not cv2.imwrite(str(out / name), frame.image):
        raise CalibrationError(f"could not write {out / name}")
    missing = [j for j in cap.arm_joints if j not in joints]
    if missing:
        raise CalibrationError(f"joint state lacks arm joints {missing}")
    view = CaptureView(name, frame.stamp, joint_stamp, {j: joints[j] for j in cap.arm_joints},
                       float(det.sharpness) if det else 0.0, int(det.n_corners) if det else 0, note)
    cap.views.append(view)
    cap.save(out)
    return view


# Capture while someone (or something) moves the robot / board
def interactive_capture(client: RobotLink, board: BoardConfig, out_dir, views: int = 20,
                        timeout: float = 600.0, roi=None, max_speed: tuple[float, float] = (0.002, 0.01),
                        max_skew: float = 0.02, min_sharpness: float = 100.0, log: Log = print) -> CaptureSet:
    """Keep views from the live camera until ``views`` are kept and every region is covered
    (or ``timeout``). Needs the end-effector at rest (``/robot/ee_twist`` below ``max_speed``
    = (m/s, rad/s)); the joint state nearest the image stamp (within ``max_skew`` s) is stored."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client.wait_ready(need_pose=False)
    frame = client.next_frame(timeout=10.0)
    cap = _new_capture(client.cfg, client.camera, frame, board, roi)
    tracker = CoverageTracker(board, cap.image_size, frame.K, frame.D, roi=roi, min_sharpness=min_sharpness)
    log(f"capturing {client.camera} ({cap.image_size[0]}x{cap.image_size[1]}) into {out}: move the board/robot "
        f"between views and hold still; missing regions: {', '.join(tracker.missing)}")
    deadline = time.monotonic() + timeout
    last_reason, stamp = "", frame.stamp - 1e-6
    while time.monotonic() < deadline:
        if len(cap.views) >= views and not tracker.missing:
            break
        try:
            frame = client.next_frame(after=stamp, timeout=min(5.0, max(0.1, deadline - time.monotonic())))
        except CalibrationError:
            continue
        stamp = frame.stamp
        try:
            js, joints, speed = client.joints_at(frame.stamp, max_skew)
        except CalibrationError as exc:
            reason = str(exc)
        else:
            ee = client.ee_speed()
            if ee is not None and (ee[0] > max_speed[0] or ee[1] > max_speed[1]):
                reason = f"end-effector moving ({ee[0] * 1000:.1f} mm/s, {math.degrees(ee[1]):.2f} deg/s)"
            else:
                keep, reason, det = tracker.consider(frame.image, f"frame@{frame.stamp:.3f}")
                if keep:
                    v = _store_view(cap, out, frame, js, joints, det, reason)
                    miss = tracker.missing
                    log(f"kept {v.image} ({det.n_corners} corners, sharpness {det.sharpness:.0f}): {reason}; "
                        f"{len(cap.views)}/{views} views; "
                        + (f"still missing: {', '.join(miss)}" if miss else "all regions covered"))
                    continue
        if reason != last_reason:
            log(f"  skipped: {reason}")
            last_reason = reason
    if not cap.views:
        raise BoardNotFoundError(f"no usable view of the {board.type} {board.rows}x{board.cols} board in {timeout:.0f} s "
                                 f"(last reason: {last_reason})")
    if tracker.missing:
        log(f"stopped with regions still missing: {', '.join(tracker.missing)}")
    cap.save(out)
    return cap


# Guided capture: the flow drives the arm
def ik_reachability(cfg, q0: np.ndarray | None = None, tol: float = 1e-3):
    """``reachable(T_base_ee) -> None | reason`` for the planner: damped least-squares IK from
    ``q0`` (default home) must reach ``T`` within the joint limits minus the driver's margin."""
    import pinocchio as pin

    from robot_rl.robot.kinematics import ArmKinematics

    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    q0 = np.array(cfg.robot.home if q0 is None else q0, float)
    margin = cfg.controller.joint_limit_margin
    lo, hi = kin.limits.lower + margin, kin.limits.upper - margin

    def reachable(T: np.ndarray) -> str | None:
        target = pin.SE3(T[:3, :3].copy(), T[:3, 3].copy())
        q = kin.inverse(target, np.clip(q0, lo, hi), iters=300)
        err = float(np.linalg.norm(pin.log6(kin.forward(q).actInv(target)).vector))
        if err > tol:
            return f"no IK solution within the joint limits (residual {err:.3f})"
        bad = [cfg.robot.arm_joints[i] for i in np.where((q < lo) | (q > hi))[0]]
        if bad:
            return f"needs {bad} within {margin} rad of their limits"
        return None

    return reachable


def driver_workspace(cfg, shrink: float = 0.005):
    from .guided import WorkspaceBox

    lo = np.array(cfg.controller.workspace_min, float) + shrink
    hi = np.array(cfg.controller.workspace_max, float) - shrink
    return WorkspaceBox(tuple(lo), tuple(hi))


def estimate_board_pose(frame: Frame, board: BoardConfig, T_base_ee: np.ndarray, T_ee_cam: np.ndarray) -> np.ndarray:
    """Rough ``T_base_board`` from one detection, the current FK and the nominal mount."""
    from .handeye import board_pose

    det = detect_board(frame.image, board, source="initial view")
    T_cam_board, _ = board_pose(det, frame.K, frame.D)
    return T_base_ee @ T_ee_cam @ T_cam_board


def guided_capture(client: RobotLink, board: BoardConfig, out_dir, T_ee_cam_nominal: np.ndarray,
                   T_base_board: np.ndarray | None = None, n_views: int = 15, roi=None, roll_deg: float = 0.0,
                   fill: float = 0.6, move_timeout: float = 20.0, max_skew: float = 0.02, min_views: int = 8,
                   gripper_width: float | None = None, log: Log = print) -> CaptureSet:
    """Plan eye-in-hand views, drive the arm to each through the joint driver, capture, return
    the capture set (saved in ``out_dir``). Poses the arm cannot reach in time are skipped."""
    from .guided import CameraModel, plan_eye_in_hand

    cfg = client.cfg
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client.wait_ready()
    if gripper_width is not None:
        client.set_gripper(gripper_width)
    frame = client.next_frame(timeout=10.0)
    _, T_now = client.pose()
    if T_base_board is None:
        try:
            T_base_board = estimate_board_pose(frame, board, T_now, T_ee_cam_nominal)
        except BoardNotFoundError as exc:
            raise BoardNotFoundError(f"cannot locate the board to plan around: {exc}. Move the arm so the camera sees the "
                                     "whole board, or pass --board-pose") from None
        log(f"board located at {np.round(T_base_board[:3, 3], 3).tolist()} m (base frame) from the first view")
    w, h = frame.image.shape[1], frame.image.shape[0]
    cam = CameraModel(frame.K, (w, h))
    bw, bh = board.size_m
    c, s = abs(math.cos(math.radians(roll_deg))), abs(math.sin(math.radians(roll_deg)))
    roi_w = (roi[2] - roi[0]) if roi else w
    distance = frame.K[0, 0] * (c * bw + s * bh) / (fill * roi_w)
    plan = plan_eye_in_hand(cam, T_base_board, T_ee_cam_nominal, board, driver_workspace(cfg), n_views=n_views,
                            distance=distance, min_views=min_views, roi=roi, roll_deg=roll_deg,
                            reachable=ik_reachability(cfg))
    log(f"planned {len(plan)} views ({len(plan.rejected)} candidates rejected: workspace box / joint limits)")
    cap = _new_capture(cfg, client.camera, frame, board, roi)
    tracker = CoverageTracker(board, cap.image_size, frame.K, frame.D, roi=roi)
    try:
        for i, p in enumerate(plan.poses):
            tag = f"pose {i + 1}/{len(plan)}"
            try:
                stamp, _, note = client.move_to(p.T_base_ee, timeout=move_timeout)
            except MotionTimeout as exc:
                cap.skipped.append((tag, str(exc)))
                log(f"{tag}: skipped, {exc}")
                continue
            frame = client.next_frame(after=stamp - 1e-9, timeout=10.0)
            js, joints, speed = client.joints_at(frame.stamp, max_skew)
            try:
                det = detect_board(frame.image, board, source=tag)
            except BoardNotFoundError as exc:
                cap.skipped.append((tag, str(exc)))
                log(f"{tag}: board not found, skipped")
                continue
            tracker.detections.append(det)
            v = _store_view(cap, out, frame, js, joints, det, (p.description + (f"; {note}" if note else "")))
            miss = tracker.missing
            log(f"{tag}: {v.image} {det.n_corners} corners, sharpness {det.sharpness:.0f}"
                + (f"; {note}" if note else "") + (f"; missing: {', '.join(miss)}" if miss else "; all regions covered"))
    finally:
        client.hold(None)
    cap.save(out)
    if len(cap.views) < min_views:
        raise InsufficientViewsError(
            f"only {len(cap.views)} of {len(plan)} planned views were captured (need {min_views}); skipped: "
            + "; ".join(f"{n}: {r}" for n, r in cap.skipped[:4])
        )
    return cap

