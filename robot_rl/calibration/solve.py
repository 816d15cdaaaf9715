"""Solve a capture folder: intrinsics, end-effector poses by FK, hand-eye, output files (ROS-free).

``robot-rl calibrate solve`` (and ``capture`` / ``guided`` with ``--solve``) call
:func:`solve_capture`: intrinsics from the captured images, ``T_base_ee`` for each view by
pinocchio FK (:class:`robot_rl.robot.kinematics.ArmKinematics`, ``robot.ee_frame``) of the stored
joint positions, hand-eye, then ``cameras/<cam>.yaml`` (camera_info), ``extrinsics/<cam>.yaml``
(static transform parent -> ``<cam>_optical_frame``) and a config snippet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .capture_set import CaptureSet, write_config_snippet
from .errors import CalibrationError, InsufficientViewsError
from .transforms import invert_T, rotation_angle

Log = Callable[[str], None]


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
