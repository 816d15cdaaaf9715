"""Calibration over the ROS 2 robot contract: capture, guided capture, solve, tactile baselines.

The ROS-free library (board detection, intrinsics, hand-eye, guided planning, tactile
baselines) does the maths; this module wires it to the topics of README "Topics and services":

* ``capture``: subscribe ``/camera/<name>/image_raw`` + ``camera_info`` and ``/joint_states``;
  keep a view when the board is found, sharp, the robot is at rest, and the view adds coverage
  (a missing image region) or a new board pose; print which regions are still missing. Each
  view is stored as a PNG plus the joint positions (by name) at the image stamp in
  ``capture.json`` (no pickle).
* ``guided``: plan views with :func:`robot_rl.calibration.guided.plan_eye_in_hand` (driver
  workspace box, joint limits checked by IK), drive the arm through ``/robot/ee_target``,
  wait for ``/robot/ee_pose`` to converge and rest, capture, optionally solve.
* ``solve``: intrinsics from the captured images, end-effector poses by pinocchio FK
  (:class:`robot_rl.robot.kinematics.ArmKinematics`, ``robot.ee_frame``) of the stored joint
  positions, hand-eye, then ``cameras/<cam>.yaml`` (camera_info), ``extrinsics/<cam>.yaml``
  (static transform parent -> ``<cam>_optical_frame``) and a config snippet.
* ``tactile-capture``: N no-contact frames from ``/tactile/<name>/image`` -> baseline by serial.

Capture folder layout::

    DIR/capture.json     # camera, camera_info K/D/size, board, robot frames/joints, views
    DIR/view_000.png     # one PNG per view (BGR on disk, as cv2 writes it)

Everything ROS-specific is imported lazily so the solver and the file format can be used and
tested without rclpy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import yaml

from robot_rl.paths import atomic_write_text

from .board import BoardConfig, Detection, detect_board
from .errors import (
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    InsufficientViewsError,
)
from .transforms import check_pose, invert_T, make_T, matrix_to_quat, quat_to_matrix, rotation_angle

CAPTURE_FILE = "capture.json"
CAPTURE_FORMAT = "robot_rl.calibration.capture/1"

#: Part of the MuJoCo Panda wrist camera's image the gripper never hides, as a fraction of
#: (width, height): the hand body covers x < 0.3 w and the open fingers x < 0.49 w at the top
#: and bottom (measured from a depth render of sim/calibration.xml). Wide boards fit this tall
#: region when rolled by 90 deg in the image (``--roll 90``).
SIM_WRIST_ROI_FRACTION = (0.5, 0.0, 1.0, 1.0)

Log = Callable[[str], None]


def roi_pixels(fraction: Sequence[float], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = image_size
    x0, y0, x1, y1 = fraction
    return (int(round(x0 * w)), int(round(y0 * h)), int(round(x1 * w)), int(round(y1 * h)))


# ---------------------------------------------------------------------------------------------
# Capture sets (ROS-free)
# ---------------------------------------------------------------------------------------------
@dataclass
class CaptureView:
    image: str  # file name inside the capture folder
    stamp: float  # image stamp, s
    joint_stamp: float  # stamp of the joint state used, s
    joints: dict[str, float]  # joint positions by name
    sharpness: float = 0.0
    corners: int = 0
    note: str = ""


@dataclass
class CaptureSet:
    camera: str
    image_size: tuple[int, int]
    K: np.ndarray  # camera_info K at capture time (nominal intrinsics)
    D: np.ndarray
    frame_id: str
    board: BoardConfig
    base_frame: str
    ee_frame: str
    arm_joints: list[str]
    urdf: str
    roi: tuple[int, int, int, int] | None = None
    views: list[CaptureView] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "format": CAPTURE_FORMAT,
            "camera": self.camera,
            "frame_id": self.frame_id,
            "image_size": [int(v) for v in self.image_size],
            "camera_info": {"K": [float(v) for v in np.ravel(self.K)], "D": [float(v) for v in np.ravel(self.D)]},
            "board": self.board.to_dict(),
            "robot": {
                "urdf": self.urdf,
                "base_frame": self.base_frame,
                "ee_frame": self.ee_frame,
                "arm_joints": list(self.arm_joints),
            },
            "roi": None if self.roi is None else [int(v) for v in self.roi],
            "views": [vars(v) for v in self.views],
            "skipped": [{"view": n, "reason": r} for n, r in self.skipped],
        }

    def save(self, directory: str | os.PathLike) -> Path:
        return atomic_write_text(Path(directory) / CAPTURE_FILE, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "CaptureSet":
        directory = Path(directory)
        path = directory / CAPTURE_FILE if directory.is_dir() else directory
        if not path.is_file():
            raise CalibrationFileError(
                f"{path} does not exist; expected a capture folder written by "
                "`robot-rl calibrate capture` or `robot-rl calibrate guided`"
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CalibrationFileError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != CAPTURE_FORMAT:
            raise CalibrationFileError(f"{path}: not a capture file (expected format {CAPTURE_FORMAT!r})")
        try:
            robot = data["robot"]
            views = [CaptureView(**v) for v in data["views"]]
            K = np.asarray(data["camera_info"]["K"], float).reshape(3, 3)
            D = np.asarray(data["camera_info"]["D"], float).ravel()
            out = cls(
                camera=str(data["camera"]),
                image_size=tuple(int(v) for v in data["image_size"]),
                K=K,
                D=D,
                frame_id=str(data.get("frame_id", "")),
                board=BoardConfig.from_dict(data["board"]),
                base_frame=str(robot["base_frame"]),
                ee_frame=str(robot["ee_frame"]),
                arm_joints=[str(j) for j in robot["arm_joints"]],
                urdf=str(robot["urdf"]),
                roi=None if data.get("roi") is None else tuple(int(v) for v in data["roi"]),
                views=views,
                skipped=[(s["view"], s["reason"]) for s in data.get("skipped", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationFileError(f"{path}: malformed capture file ({exc!r})") from None
        for v in out.views:
            missing = [j for j in out.arm_joints if j not in v.joints]
            if missing:
                raise CalibrationFileError(f"{path}: view {v.image} lacks joint positions for {missing}")
            if not (directory / v.image).is_file():
                raise CalibrationFileError(f"{path}: image {v.image} is listed but missing")
        return out

    def images(self, directory: str | os.PathLike) -> list[np.ndarray]:
        out = []
        for v in self.views:
            img = cv2.imread(str(Path(directory) / v.image), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise CalibrationFileError(f"could not read {v.image} in {directory}")
            out.append(img)
        return out

    def joint_array(self) -> np.ndarray:
        return np.array([[v.joints[j] for j in self.arm_joints] for v in self.views], float)


def fk_poses(urdf: str, arm_joints: Sequence[str], frame: str, q: np.ndarray) -> list[np.ndarray]:
    """``T_base_<frame>`` (4x4) for each row of joint positions, by pinocchio FK."""
    from robot_rl.robot.kinematics import ArmKinematics

    kin = ArmKinematics(urdf, list(arm_joints), frame)
    return [kin.forward(np.asarray(row, float)).homogeneous.copy() for row in np.atleast_2d(q)]


def rigid_offset(urdf: str, arm_joints: Sequence[str], frame_a: str, frame_b: str, q_samples: np.ndarray) -> np.ndarray:
    """``T_a_b`` for two frames rigidly attached to each other (e.g. panda_hand, panda_hand_tcp);
    raises CalibrationError when the offset changes with the joint positions."""
    Ta = fk_poses(urdf, arm_joints, frame_a, q_samples)
    Tb = fk_poses(urdf, arm_joints, frame_b, q_samples)
    rel = [invert_T(a) @ b for a, b in zip(Ta, Tb)]
    for T in rel[1:]:
        if np.linalg.norm(T[:3, 3] - rel[0][:3, 3]) > 1e-6 or rotation_angle(T[:3, :3] @ rel[0][:3, :3].T) > 1e-6:
            raise CalibrationError(
                f"frames {frame_a} and {frame_b} move relative to each other over the captured joint positions; "
                "the extrinsic parent frame must be rigidly attached to the end-effector frame"
            )
    return rel[0]


@dataclass
class SolveResult:
    intrinsics: object  # IntrinsicsResult
    handeye: object | None  # HandEyeResult
    camera_info_file: Path
    extrinsic_file: Path | None
    snippet_file: Path
    T_parent_cam: np.ndarray | None
    parent_frame: str
    child_frame: str


def solve_capture(
    capture_dir: str | os.PathLike,
    out_dir: str | os.PathLike = "calibration",
    mode: str = "eye_in_hand",
    parent_frame: str | None = None,
    child_frame: str | None = None,
    quality=None,
    handeye_config=None,
    fix_k3: bool = True,
    use_camera_info: bool = False,
    log: Log | None = print,
) -> SolveResult:
    """Intrinsics + hand-eye from a capture folder; write camera_info, extrinsic and snippet.

    ``mode="eye_in_hand"``: X = T_ee_cam with ee = the capture's ``ee_frame`` (config
    ``robot.ee_frame``); written relative to ``parent_frame`` (default: that ee frame; any frame
    rigidly attached to it, e.g. ``panda_hand``, is converted by FK). ``"eye_to_hand"``: X =
    T_base_cam, parent = base frame. ``mode="none"`` writes intrinsics only.
    ``use_camera_info``: skip intrinsics and use the captured camera_info K/D for hand-eye.
    """
    from .handeye import EYE_IN_HAND, EYE_TO_HAND, calibrate_hand_eye, write_extrinsic
    from .intrinsics import IntrinsicsResult, QualityConfig, calibrate_from_detections, detect_views, write_camera_info

    capture_dir = Path(capture_dir)
    out_dir = Path(out_dir)
    cap = CaptureSet.load(capture_dir)
    if mode not in (EYE_IN_HAND, EYE_TO_HAND, "none"):
        raise ValueError(f"mode must be eye_in_hand, eye_to_hand or none, got {mode!r}")
    if not cap.views:
        raise InsufficientViewsError(f"{capture_dir}: the capture holds no views; capture again")
    images = cap.images(capture_dir)
    names = [v.image for v in cap.views]
    if use_camera_info:
        intr = IntrinsicsResult(cap.K, cap.D, cap.image_size, float("nan"), [], [], None, camera_name=cap.camera)
        if log:
            log(f"using the captured camera_info intrinsics of {cap.camera} (no intrinsic calibration)")
    else:
        if quality is None:
            quality = QualityConfig(roi=cap.roi)
        dets, rejected, size = detect_views(list(zip(names, images)), cap.board, quality, log=log)
        intr = calibrate_from_detections(dets, size, quality, rejected, cap.camera,
                                         cv2.CALIB_FIX_K3 if fix_k3 else 0, log=log)
    info_file = out_dir / "cameras" / f"{cap.camera}.yaml"
    if not use_camera_info:
        write_camera_info(info_file, intr)
    child = child_frame or cap.frame_id or f"{cap.camera}_optical_frame"
    he = None
    T_parent_cam = None
    ext_file = None
    parent = parent_frame or (cap.ee_frame if mode == EYE_IN_HAND else cap.base_frame)
    if mode != "none":
        q = cap.joint_array()
        T_base_ee = fk_poses(cap.urdf, cap.arm_joints, cap.ee_frame, q)
        he = calibrate_hand_eye(images, T_base_ee, cap.board, intr.K, intr.D, mode=mode, config=handeye_config,
                                names=names, log=log)
        T_parent_cam = he.T
        if mode == EYE_IN_HAND and parent != cap.ee_frame:
            T_parent_cam = rigid_offset(cap.urdf, cap.arm_joints, parent, cap.ee_frame, q) @ he.T
        elif mode == EYE_TO_HAND and parent != cap.base_frame:
            raise CalibrationError(f"eye-to-hand extrinsics are relative to the base frame {cap.base_frame}, not {parent}")
        ext_file = out_dir / "extrinsics" / f"{cap.camera}.yaml"
        from .handeye import _result_metadata

        meta = _result_metadata(he)
        meta.update({"solved_in_frame": cap.ee_frame if mode == EYE_IN_HAND else cap.base_frame,
                     "capture": str(capture_dir)})
        write_extrinsic(ext_file, T_parent_cam, parent, child, meta)
    snippet = out_dir / f"{cap.camera}_config_snippet.yaml"
    write_config_snippet(snippet, cap.camera, info_file, ext_file, parent, child, T_parent_cam)
    if log:
        log(f"wrote {info_file}" + (f", {ext_file}" if ext_file else "") + f", {snippet}")
    return SolveResult(intr, he, info_file, ext_file, snippet, T_parent_cam, parent, child)


def write_config_snippet(path, camera: str, info_file, extrinsic_file, parent: str, child: str,
                         T_parent_cam: np.ndarray | None) -> Path:
    """YAML to merge into a robot_rl configuration (``cameras[].info_file``), with the static
    transform spelled out for a ``static_transform_publisher`` / URDF joint."""
    lines = [
        f"# Calibration of camera '{camera}' (robot_rl.calibration.ros_flow). Merge into your config:",
        "# the camera node then publishes the calibrated camera_info.",
        "cameras:",
        f"  - name: {camera}",
        f"    info_file: {Path(info_file).as_posix()}",
    ]
    if extrinsic_file is not None and T_parent_cam is not None:
        t = T_parent_cam[:3, 3]
        q = matrix_to_quat(T_parent_cam[:3, :3])
        lines += [
            f"# Extrinsic: {Path(extrinsic_file).as_posix()} ({parent} -> {child}). As a static transform:",
            f"#   ros2 run tf2_ros static_transform_publisher --x {t[0]:.6f} --y {t[1]:.6f} --z {t[2]:.6f} "
            f"--qx {q[0]:.8f} --qy {q[1]:.8f} --qz {q[2]:.8f} --qw {q[3]:.8f} --frame-id {parent} --child-frame-id {child}",
            "# or as a fixed URDF joint:",
            f'#   <joint name="{child}_joint" type="fixed"><parent link="{parent}"/><child link="{child}"/>',
            f'#     <origin xyz="{t[0]:.6f} {t[1]:.6f} {t[2]:.6f}" rpy="{" ".join(f"{a:.8f}" for a in _rpy(T_parent_cam[:3, :3]))}"/></joint>',
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _rpy(R: np.ndarray) -> tuple[float, float, float]:
    """URDF roll-pitch-yaw (R = Rz(y) Ry(p) Rx(r))."""
    pitch = math.asin(-max(-1.0, min(1.0, R[2, 0])))
    if abs(R[2, 0]) < 1 - 1e-9:
        return math.atan2(R[2, 1], R[2, 2]), pitch, math.atan2(R[1, 0], R[0, 0])
    return math.atan2(-R[1, 2], R[1, 1]), pitch, 0.0


# ---------------------------------------------------------------------------------------------
# View acceptance (ROS-free)
# ---------------------------------------------------------------------------------------------
class CoverageTracker:
    """Decides whether a new view is worth keeping and says what is still missing.

    A view is kept when the board is detected, its board region is sharp (``min_sharpness``)
    and it shows the board at a new pose: rotated >= ``min_rotation_deg`` or its centre moved
    >= ``min_shift`` of the image diagonal relative to every kept view (a repeat adds no
    information for intrinsics or hand-eye). ``missing`` lists the image regions (3x3 cells
    of the image or ``roi``) with fewer than ``corners_per_cell`` corners so far.
    """

    def __init__(self, board: BoardConfig, image_size: tuple[int, int], K: np.ndarray | None = None,
                 D: np.ndarray | None = None, roi: tuple[int, int, int, int] | None = None,
                 grid: tuple[int, int] = (3, 3), corners_per_cell: int = 12, min_sharpness: float = 100.0,
                 min_rotation_deg: float = 8.0, min_shift: float = 0.15):
        self.board, self.image_size, self.K, self.D = board, tuple(image_size), K, D
        self.roi, self.grid, self.corners_per_cell = roi, grid, corners_per_cell
        self.min_sharpness, self.min_rotation_deg, self.min_shift = min_sharpness, min_rotation_deg, min_shift
        self.detections: list[Detection] = []
        self._poses: list[np.ndarray] = []
        self._centres: list[np.ndarray] = []

    def report(self):
        from .intrinsics import coverage_report

        return coverage_report(self.detections, self.image_size, self.grid, self.corners_per_cell, self.roi)

    @property
    def missing(self) -> list[str]:
        return self.report().missing

    def consider(self, image: np.ndarray, name: str = "") -> tuple[bool, str, Detection | None]:
        """(keep?, reason, detection)."""
        try:
            det = detect_board(image, self.board, source=name)
        except BoardNotFoundError as exc:
            return False, f"board not found ({exc})", None
        if (det.image_size[0], det.image_size[1]) != self.image_size:
            return False, f"image size {det.image_size} differs from {self.image_size}", det
        if det.sharpness < self.min_sharpness:
            return False, f"blurred (Laplacian variance {det.sharpness:.0f} < {self.min_sharpness:.0f})", det
        before = self.report()
        after = _coverage_with(self, det)
        new_cells = [c for c in before.missing if c not in after.missing]
        gained = bool(np.any((after.counts > before.counts) & ~before.covered))
        pose = None
        if self.K is not None:
            from .handeye import board_pose

            try:
                pose, _ = board_pose(det, self.K, self.D)
            except BoardNotFoundError:
                pose = None
        centre = det.image_points.mean(axis=0)
        diag = float(np.hypot(*self.image_size))
        novel_pose = True
        for T, c in zip(self._poses, self._centres):
            moved = np.linalg.norm(centre - c) / diag >= self.min_shift
            turned = pose is not None and T is not None and math.degrees(rotation_angle(pose[:3, :3] @ T[:3, :3].T)) >= self.min_rotation_deg
            if not (moved or turned):
                novel_pose = False
                break
        if self.detections and not novel_pose:
            return False, "repeats an earlier board pose (move or tilt the board/robot more)", det
        self.detections.append(det)
        self._poses.append(pose)
        self._centres.append(centre)
        why = (f"covers {', '.join(new_cells)}" if new_cells
               else "adds corners to an under-covered region" if gained else "new board pose")
        return True, why, det


def _coverage_with(tracker: CoverageTracker, det: Detection):
    from .intrinsics import coverage_report

    return coverage_report(tracker.detections + [det], tracker.image_size, tracker.grid, tracker.corners_per_cell, tracker.roi)


# ---------------------------------------------------------------------------------------------
# ROS 2 client: camera, joint states, end-effector motion
# ---------------------------------------------------------------------------------------------
@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    stamp: float
    K: np.ndarray | None
    D: np.ndarray | None
    frame_id: str


class MotionTimeout(CalibrationError):
    """The arm did not reach or settle at a commanded pose in time."""


class RobotCameraClient:
    """A node that watches one camera, the joint states and the end-effector pose, and moves
    the arm through ``/robot/ee_target`` (re-sent on every new ``/robot/ee_pose``, which also
    paces the MuJoCo stand-in in lockstep)."""

    def __init__(self, cfg, camera: str | None, node_name: str = "calibration", joint_history: int = 400,
                 command_interval_s: float = 0.005):
        import rclpy
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from std_msgs.msg import Float64, String

        from robot_rl.ros import messages as m

        self.m = m
        self.cfg = cfg
        self.camera = camera
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.node = rclpy.create_node(node_name)
        self._cv = threading.Condition()
        self._frame: Frame | None = None
        self._info = None
        self._joints: deque = deque(maxlen=joint_history)
        self._pose: tuple[float, np.ndarray] | None = None
        self._twist: np.ndarray | None = None
        self._pose_count = 0
        self.status: list[str] = []
        self._target = None
        self._last_cmd = 0.0
        self._cmd_interval = command_interval_s
        sub = self.node.create_subscription
        if camera:
            sub(Image, m.camera_image_topic(camera), self._on_image, m.SENSOR_QOS)
            sub(CameraInfo, m.camera_info_topic(camera), self._on_info, m.SENSOR_QOS)
        sub(JointState, m.JOINT_STATES, self._on_joints, m.SENSOR_QOS)
        sub(PoseStamped, m.EE_POSE, self._on_pose, m.SENSOR_QOS)
        sub(TwistStamped, m.EE_TWIST, self._on_twist, m.SENSOR_QOS)
        sub(String, m.DRIVER_STATUS, lambda msg: self.status.append(msg.data), m.COMMAND_QOS)
        self.pub_target = self.node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
        self.pub_gripper = self.node.create_publisher(Float64, m.GRIPPER_TARGET, m.COMMAND_QOS)
        self._Float64 = Float64
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True, name="calibration-spin")
        self._spin.start()

    # -- callbacks (executor thread) ------------------------------------------------------------
    def _on_image(self, msg) -> None:
        try:
            img = self.m.msg_to_image(msg)
        except ValueError as exc:
            self.node.get_logger().error(f"camera {self.camera}: {exc}", throttle_duration_sec=2.0)
            return
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        info = self._info
        K = D = None
        if info is not None and info[0] == (msg.width, msg.height):
            K, D = info[1], info[2]
        with self._cv:
            self._frame = Frame(np.ascontiguousarray(img), self.m.from_time(msg.header.stamp), K, D, msg.header.frame_id)
            self._cv.notify_all()

    def _on_info(self, msg) -> None:
        K = np.asarray(msg.k, float).reshape(3, 3)
        D = np.asarray(msg.d, float).ravel() if len(msg.d) else np.zeros(5)
        self._info = ((msg.width, msg.height), K, D)

    def _on_joints(self, msg) -> None:
        with self._cv:
            self._joints.append((self.m.from_time(msg.header.stamp), list(msg.name), list(msg.position), list(msg.velocity)))
            self._cv.notify_all()

    def _on_twist(self, msg) -> None:
        self._twist = self.m.twist_from_msg(msg)

    def _on_pose(self, msg) -> None:
        p, q = self.m.pose_from_msg(msg)
        T = make_T(quat_to_matrix(q), p)
        with self._cv:
            self._pose = (self.m.from_time(msg.header.stamp), T)
            self._pose_count += 1
            self._cv.notify_all()
        target = self._target
        now = time.monotonic()
        if target is not None and now - self._last_cmd >= self._cmd_interval:
            self._last_cmd = now
            self._publish_target(target)

    def _publish_target(self, T: np.ndarray) -> None:
        self.pub_target.publish(self.m.pose_msg(T[:3, 3], matrix_to_quat(T[:3, :3]), self._pose[0] if self._pose else 0.0,
                                                self.cfg.robot.base_frame))

    # -- waiting ----------------------------------------------------------------------------------
    def _wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                value = predicate()
                if value is not None:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(what)
                self._cv.wait(min(left, 0.1))

    def wait_ready(self, timeout: float = 30.0, need_pose: bool = True) -> None:
        m = self.m
        checks = [(lambda: self._joints[-1] if self._joints else None, f"no {m.JOINT_STATES} received")]
        if need_pose:
            checks.append((lambda: self._pose, f"no {m.EE_POSE} received (is the joint driver running?)"))
        if self.camera:
            checks.append((lambda: self._frame, f"no image on {m.camera_image_topic(self.camera)}"))
            checks.append((lambda: self._info, f"no {m.camera_info_topic(self.camera)} received"))
        deadline = time.monotonic() + timeout
        for check, what in checks:
            try:
                self._wait(check, max(0.0, deadline - time.monotonic()), what)
            except TimeoutError as exc:
                raise CalibrationError(f"{exc} within {timeout:.0f} s; check that the robot graph runs on this "
                                       f"ROS_DOMAIN_ID ({os.environ.get('ROS_DOMAIN_ID', '0')})") from None

    def next_frame(self, after: float = -1.0, timeout: float = 5.0) -> Frame:
        """The first frame stamped strictly after ``after`` (s) with matching camera_info."""
        def ready():
            f = self._frame
            return f if f is not None and f.stamp > after and f.K is not None else None

        try:
            return self._wait(ready, timeout, "")
        except TimeoutError:
            raise CalibrationError(f"no new frame from camera {self.camera} (with camera_info) within {timeout:.1f} s") from None

    def joints_at(self, stamp: float, max_skew: float = 0.02, timeout: float = 2.0) -> tuple[float, dict[str, float], float]:
        """(joint stamp, positions by name, max |velocity|) of the joint state nearest ``stamp``."""
        def find():
            if self._joints and self._joints[-1][0] >= stamp - 1e-9:
                return min(self._joints, key=lambda j: abs(j[0] - stamp))
            return None

        try:
            js, names, pos, vel = self._wait(find, timeout, "")
        except TimeoutError:
            if not self._joints:
                raise CalibrationError(f"no joint state received around image stamp {stamp:.3f} s") from None
            js, names, pos, vel = min(self._joints, key=lambda j: abs(j[0] - stamp))
        if abs(js - stamp) > max_skew:
            raise CalibrationError(
                f"nearest joint state is {abs(js - stamp) * 1000:.1f} ms from the image stamp {stamp:.3f} s "
                f"(max skew {max_skew * 1000:.0f} ms); are camera and robot clocks synchronised?"
            )
        speed = float(np.max(np.abs(vel))) if vel else 0.0
        return js, dict(zip(names, (float(p) for p in pos))), speed

    def ee_speed(self) -> tuple[float, float] | None:
        """(|linear| m/s, |angular| rad/s) of the latest end-effector twist, or None."""
        t = self._twist
        return None if t is None else (float(np.linalg.norm(t[:3])), float(np.linalg.norm(t[3:])))

    def pose(self) -> tuple[float, np.ndarray]:
        if self._pose is None:
            raise CalibrationError("no end-effector pose received yet")
        return self._pose

    # -- motion -----------------------------------------------------------------------------------
    def set_gripper(self, width: float) -> None:
        self.pub_gripper.publish(self._Float64(data=float(width)))

    def hold(self, T: np.ndarray | None) -> None:
        """Keep commanding ``T`` (re-sent on every end-effector pose) or stop commanding (None)."""
        self._target = None if T is None else check_pose(T, "ee target").copy()
        if T is not None:
            self._last_cmd = time.monotonic()
            self._publish_target(self._target)

    def move_to(self, T: np.ndarray, timeout: float = 20.0, pos_tol: float = 0.003, rot_tol_deg: float = 0.5,
                rest_lin: float = 0.002, rest_ang: float = 0.01, settle: int = 3) -> tuple[float, np.ndarray, str]:
        """Command ``T`` (base <- ee) and wait until the end-effector pose is within tolerance and at
        rest for ``settle`` consecutive samples. A pose the driver cannot reach (clamped by the
        workspace box or the joint limits) that settles within 2 cm / 3 deg is accepted with a
        note; otherwise :class:`MotionTimeout`. Returns (stamp, reached pose, note)."""
        self.hold(T)
        deadline = time.monotonic() + timeout
        good = rest = 0
        seen = self._pose_count
        while time.monotonic() < deadline:
            with self._cv:
                self._cv.wait_for(lambda: self._pose_count > seen, timeout=0.5)
                if self._pose_count == seen:
                    continue
                seen = self._pose_count
                stamp, P = self._pose
            twist = self._twist if self._twist is not None else np.zeros(6)
            dp = float(np.linalg.norm(P[:3, 3] - T[:3, 3]))
            dr = math.degrees(rotation_angle(P[:3, :3] @ T[:3, :3].T))
            still = np.linalg.norm(twist[:3]) < rest_lin and np.linalg.norm(twist[3:]) < rest_ang
            good = good + 1 if (still and dp < pos_tol and dr < rot_tol_deg) else 0
            rest = rest + 1 if still else 0
            if good >= settle:
                return stamp, P, ""
            if rest >= 5 * settle and dp < 0.02 and dr < 3.0:
                return stamp, P, f"settled {dp * 1000:.1f} mm / {dr:.2f} deg from the target (driver clamp?)"
        P = self._pose[1] if self._pose else None
        where = "" if P is None else (f"; it is {np.linalg.norm(P[:3, 3] - T[:3, 3]) * 1000:.0f} mm / "
                                      f"{math.degrees(rotation_angle(P[:3, :3] @ T[:3, :3].T)):.1f} deg away")
        last = f"; driver: {self.status[-1]}" if self.status else ""
        raise MotionTimeout(f"the arm did not settle at the target within {timeout:.0f} s{where}{last}")

    def close(self) -> None:
        import rclpy

        self._target = None
        self._executor.shutdown(timeout_sec=1.0)
        self._spin.join(timeout=2.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()


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


# ---------------------------------------------------------------------------------------------
# Flow 1: capture while someone (or something) moves the robot / board
# ---------------------------------------------------------------------------------------------
def interactive_capture(client: RobotCameraClient, board: BoardConfig, out_dir, views: int = 20,
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


# ---------------------------------------------------------------------------------------------
# Flow 3: guided capture on the robot
# ---------------------------------------------------------------------------------------------
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


def guided_capture(client: RobotCameraClient, board: BoardConfig, out_dir, T_ee_cam_nominal: np.ndarray,
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


# ---------------------------------------------------------------------------------------------
# Flow 5: tactile baseline from live frames
# ---------------------------------------------------------------------------------------------
def tactile_capture(cfg, sensor: str, n_frames: int = 100, serial: str | None = None,
                    out_dir: str | os.PathLike = "calibration/tactile", timeout: float = 60.0, log: Log = print):
    """Capture ``n_frames`` no-contact frames of ``/tactile/<sensor>/image`` (distinct stamps),
    build the baseline and save it under the sensor serial. Returns (baseline, npz path)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from robot_rl.ros import messages as m

    from .tactile import capture_baseline, save_baseline

    names = [t.name for t in cfg.tactile]
    if sensor not in names:
        raise CalibrationError(f"tactile sensor {sensor!r} is not configured; configured: {names}")
    serial = serial or cfg.tactile[names.index(sensor)].serial
    if not serial:
        raise CalibrationError(f"tactile sensor {sensor!r} has no serial in the configuration "
                               f"(tactile[].serial); pass --serial")
    owns = not rclpy.ok()
    if owns:
        rclpy.init()
    node = rclpy.create_node(f"tactile_baseline_{sensor}")
    frames: list[np.ndarray] = []
    stamps: set = set()
    done = threading.Event()

    def on_image(msg):
        stamp = m.from_time(msg.header.stamp)
        if stamp in stamps or done.is_set():
            return
        stamps.add(stamp)
        frames.append(np.array(m.msg_to_image(msg), copy=True))
        if len(frames) >= n_frames:
            done.set()

    node.create_subscription(Image, m.tactile_topic(sensor), on_image, m.SENSOR_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    log(f"capturing {n_frames} frames of {m.tactile_topic(sensor)} (serial {serial}); do not touch the sensor")
    try:
        if not done.wait(timeout):
            raise CalibrationError(f"only {len(frames)} of {n_frames} frames from {m.tactile_topic(sensor)} within "
                                   f"{timeout:.0f} s; is the tactile node running?")
    finally:
        executor.shutdown(timeout_sec=1.0)
        spin.join(timeout=2.0)
        node.destroy_node()
        if owns:
            rclpy.try_shutdown()
    baseline = capture_baseline(frames[:n_frames], serial)
    path = save_baseline(baseline, out_dir)
    log(f"wrote {path}: {baseline.n_frames} frames, shape {baseline.shape}, median std {np.median(baseline.std):.4g}, "
        f"noise floor {baseline.noise_floor:.3g}")
    return baseline, path


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def _parse_T(text: str, what: str) -> np.ndarray:
    """``x,y,z,qx,qy,qz,qw`` or an extrinsic YAML (parent/child/translation/rotation)."""
    p = Path(text)
    if p.is_file():
        from .handeye import load_extrinsic

        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "pose_in_base" in data:
            data = data["pose_in_base"]
        return load_extrinsic(data).T
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 7:
        raise CalibrationError(f"{what}: expected x,y,z,qx,qy,qz,qw or an extrinsic YAML file, got {text!r}")
    q = np.array(v[3:])
    if abs(np.linalg.norm(q) - 1) > 1e-3:
        raise CalibrationError(f"{what}: quaternion (xyzw) must be unit length, got |q|={np.linalg.norm(q):.4f}")
    return make_T(quat_to_matrix(q), v[:3])


def _parse_roi(text: str | None, image_size=None):
    if not text:
        return None
    v = [float(x) for x in text.split(",")]
    if len(v) != 4:
        raise CalibrationError(f"--roi needs x0,y0,x1,y1, got {text!r}")
    return tuple(int(x) for x in v)


def _config(args):
    from robot_rl.cli import parse_sets
    from robot_rl.config import load_config

    return load_config(args.config or None, parse_sets(args.set))


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", default="", help="robot_rl YAML configuration (default: built-in)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def _ros_env() -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def _run(fn) -> int:
    from robot_rl.schema import ConfigError

    try:
        return fn() or 0
    except (CalibrationError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"calibration failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main_capture(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate capture --camera wrist --board ... --out DIR``."""
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate capture",
                                 description="Capture board views + joint states from a live camera topic.")
    ap.add_argument("--camera", required=True)
    add_board_arguments(ap)
    ap.add_argument("--out", required=True, help="capture folder (PNG + capture.json)")
    ap.add_argument("--views", type=int, default=20, help="stop after this many views once every region is covered")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--roi", default=None, help="usable image rectangle x0,y0,x1,y1 (px) for coverage")
    ap.add_argument("--max-speed", type=float, nargs=2, default=(0.002, 0.01), metavar=("M_PER_S", "RAD_PER_S"),
                    help="end-effector speed above which a frame is skipped (robot moving)")
    ap.add_argument("--solve", action="store_true", help="solve intrinsics + hand-eye afterwards")
    ap.add_argument("--mode", default="eye_in_hand", choices=["eye_in_hand", "eye_to_hand", "none"])
    ap.add_argument("--out-dir", default="calibration")
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        _ros_env()
        cfg = _config(args)
        board = board_from_args(args)
        client = RobotCameraClient(cfg, args.camera)
        try:
            interactive_capture(client, board, args.out, args.views, args.timeout, _parse_roi(args.roi),
                                tuple(args.max_speed))
        finally:
            client.close()
        if args.solve:
            solve_capture(args.out, args.out_dir, args.mode)
        return 0

    return _run(go)


def main_guided(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate guided --camera wrist --board ... --nominal-mount ... --out DIR [--solve]``."""
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate guided",
                                 description="Drive the arm through planned views (eye-in-hand), capture, solve.")
    ap.add_argument("--camera", required=True)
    add_board_arguments(ap)
    ap.add_argument("--nominal-mount", required=True,
                    help="rough T_ee_cam (optical frame) relative to robot.ee_frame: x,y,z,qx,qy,qz,qw or an extrinsic YAML")
    ap.add_argument("--board-pose", default=None,
                    help="T_base_board (x,y,z,qx,qy,qz,qw or YAML with pose_in_base); default: from the first view")
    ap.add_argument("--out", required=True)
    ap.add_argument("--views", type=int, default=15)
    ap.add_argument("--min-views", type=int, default=8)
    ap.add_argument("--roi", default=None, help="usable image rectangle x0,y0,x1,y1 (px)")
    ap.add_argument("--roll", type=float, default=0.0, help="board roll in the image, deg (90 fits a tall --roi)")
    ap.add_argument("--fill", type=float, default=0.6, help="board width / roi width in the image")
    ap.add_argument("--move-timeout", type=float, default=20.0)
    ap.add_argument("--solve", action="store_true")
    ap.add_argument("--out-dir", default="calibration")
    ap.add_argument("--parent-frame", default=None, help="extrinsic parent (default robot.ee_frame), e.g. panda_hand")
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        _ros_env()
        cfg = _config(args)
        board = board_from_args(args)
        T_ee_cam = _parse_T(args.nominal_mount, "--nominal-mount")
        T_base_board = _parse_T(args.board_pose, "--board-pose") if args.board_pose else None
        client = RobotCameraClient(cfg, args.camera)
        try:
            guided_capture(client, board, args.out, T_ee_cam, T_base_board, args.views, _parse_roi(args.roi),
                           args.roll, args.fill, args.move_timeout, min_views=args.min_views)
        finally:
            client.close()
        if args.solve:
            solve_capture(args.out, args.out_dir, "eye_in_hand", parent_frame=args.parent_frame)
        return 0

    return _run(go)


def main_solve(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate solve --capture DIR [--mode eye_in_hand] [--out-dir calibration]``."""
    ap = argparse.ArgumentParser(prog="robot-rl calibrate solve",
                                 description="Intrinsics + hand-eye (FK of the stored joint states) from a capture folder.")
    ap.add_argument("--capture", required=True)
    ap.add_argument("--mode", default="eye_in_hand", choices=["eye_in_hand", "eye_to_hand", "none"])
    ap.add_argument("--out-dir", default="calibration")
    ap.add_argument("--parent-frame", default=None)
    ap.add_argument("--child-frame", default=None, help="default: the image frame_id (<camera>_optical_frame)")
    ap.add_argument("--use-camera-info", action="store_true", help="trust the captured camera_info, skip intrinsics")
    ap.add_argument("--estimate-k3", action="store_true", help="also estimate k3 (default fixed at 0)")
    args = ap.parse_args(argv)
    return _run(lambda: (solve_capture(args.capture, args.out_dir, args.mode, args.parent_frame, args.child_frame,
                                       fix_k3=not args.estimate_k3, use_camera_info=args.use_camera_info), 0)[1])


def main_tactile_capture(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate tactile-capture --sensor left [--frames 100] [--serial SN]``."""
    ap = argparse.ArgumentParser(prog="robot-rl calibrate tactile-capture",
                                 description="No-contact baseline of a tactile sensor from its live topic.")
    ap.add_argument("--sensor", required=True)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--serial", default=None, help="default: tactile[].serial from the configuration")
    ap.add_argument("--out-dir", default="calibration/tactile")
    ap.add_argument("--timeout", type=float, default=60.0)
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        _ros_env()
        tactile_capture(_config(args), args.sensor, args.frames, args.serial, args.out_dir, args.timeout)
        return 0

    return _run(go)


def main_board_image(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate board-image --board ... --out board.png`` (print or sim texture)."""
    from .board import render_board_image
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate board-image")
    add_board_arguments(ap)
    ap.add_argument("--out", required=True)
    ap.add_argument("--px-per-square", type=int, default=80)
    ap.add_argument("--margin-px", type=int, default=None, help="white margin (default one square)")
    args = ap.parse_args(argv)

    def go():
        board = board_from_args(args)
        img = render_board_image(board, args.px_per_square, args.margin_px)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(args.out, img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise CalibrationError(f"could not write {args.out}")
        h, w = img.shape[:2]
        s = board.square_size / args.px_per_square
        print(f"wrote {args.out}: {w}x{h} px = {w * s:.4f} x {h * s:.4f} m at {board.square_size} m per square")
        return 0

    return _run(go)
