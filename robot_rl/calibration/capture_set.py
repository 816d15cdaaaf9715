"""The capture folder format and the config snippet a solve writes (ROS-free).

A capture folder holds what ``robot-rl calibrate capture`` / ``guided`` recorded::

    DIR/capture.json     # camera, camera_info K/D/size, board, robot frames/joints, views
    DIR/view_000.png     # one PNG per view (BGR on disk, as cv2 writes it)

``capture.json`` (format ``robot_rl.calibration.capture/1``) stores per view the image stamp and
the arm joint positions by name at that stamp, so ``solve`` can recompute the end-effector poses
by forward kinematics; no pickle anywhere. The full description is in ``calibration/README.md``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from robot_rl.paths import atomic_write_text

from .board import BoardConfig
from .errors import CalibrationFileError
from .transforms import matrix_to_quat

CAPTURE_FILE = "capture.json"
CAPTURE_FORMAT = "robot_rl.calibration.capture/1"


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


def write_config_snippet(path, camera: str, info_file, extrinsic_file, parent: str, child: str,
                         T_parent_cam: np.ndarray | None) -> Path:
    """YAML to merge into a robot_rl configuration (``cameras[].info_file``), with the static
    transform spelled out for a ``static_transform_publisher`` / URDF joint."""
    lines = [
        f"# Calibration of camera '{camera}' (robot_rl.calibration.solve). Merge into your config:",
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

