"""What the capture flows need from a robot with a camera, independent of how it is reached.

:class:`RobotLink` keeps the latest camera frame (with the camera_info of the same size), a
history of joint states, the end-effector pose and twist and the driver's status lines, lets
the flows wait for them, and moves the arm: a held target is re-sent on every new end-effector
pose (which also paces a lockstep simulator), and :meth:`RobotLink.move_to` decides when the arm
has arrived and settled. A transport feeds it through the ``receive_*`` methods and sends the
commands by overriding :meth:`RobotLink.send_target` and :meth:`RobotLink.send_gripper`; the
ROS 2 one is :class:`robot_rl.ros.calibration_client.RobotCameraClient`. No ROS here, so the
waiting and settling logic is tested with samples fed from a plain thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .errors import CalibrationError
from .transforms import check_pose, rotation_angle


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    stamp: float
    K: np.ndarray | None
    D: np.ndarray | None
    frame_id: str


class MotionTimeout(CalibrationError):
    """The arm did not reach or settle at a commanded pose in time."""


class RobotLink:
    """Latest robot and camera state, waits on it, and end-effector motion.

    ``cfg`` is the robot_rl configuration (``robot.base_frame``, ``ee_frame``, ``arm_joints``,
    ``urdf``, ``controller`` workspace and joint margins are read by the flows). ``sources``
    names where each input comes from, for the error messages (a transport passes its topic
    names).
    """

    def __init__(self, cfg, camera: str | None, joint_history: int = 400, command_interval_s: float = 0.005,
                 sources: dict[str, str] | None = None):
        self.cfg = cfg
        self.camera = camera
        self.sources = {"joints": "joint states", "pose": "end-effector pose",
                        "image": f"camera {camera}", "info": f"camera_info of camera {camera}"}
        self.sources.update(sources or {})
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

    # -- the transport's side ------------------------------------------------------------------
    def send_target(self, T: np.ndarray, stamp: float) -> None:
        """Command the end-effector pose ``T`` (base <- ee); ``stamp`` is the latest pose's stamp."""
        raise NotImplementedError(f"{type(self).__name__} cannot command the arm (send_target not provided)")

    def send_gripper(self, width: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot command the gripper (send_gripper not provided)")

    def connection_hint(self) -> str:
        """What to check when an input never arrives (a transport says where it listens)."""
        return "check that the robot and the camera are running"

    def receive_image(self, image: np.ndarray, stamp: float, frame_id: str) -> None:
        """A camera image as published (RGB or mono); kept BGR, as OpenCV and the PNGs expect."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        info = self._info
        K = D = None
        if info is not None and info[0] == (image.shape[1], image.shape[0]):
            K, D = info[1], info[2]
        with self._cv:
            self._frame = Frame(np.ascontiguousarray(image), stamp, K, D, frame_id)
            self._cv.notify_all()

    def receive_camera_info(self, image_size: tuple[int, int], K: Sequence[float], D: Sequence[float]) -> None:
        K = np.asarray(K, float).reshape(3, 3)
        D = np.asarray(D, float).ravel() if len(D) else np.zeros(5)
        self._info = (tuple(image_size), K, D)

    def receive_joint_state(self, stamp: float, names: Sequence[str], positions: Sequence[float],
                            velocities: Sequence[float]) -> None:
        with self._cv:
            self._joints.append((stamp, list(names), list(positions), list(velocities)))
            self._cv.notify_all()

    def receive_twist(self, twist: np.ndarray) -> None:
        self._twist = np.asarray(twist, float)

    def receive_status(self, text: str) -> None:
        self.status.append(text)

    def receive_pose(self, stamp: float, T: np.ndarray) -> None:
        with self._cv:
            self._pose = (stamp, T)
            self._pose_count += 1
            self._cv.notify_all()
        target = self._target
        now = time.monotonic()
        if target is not None and now - self._last_cmd >= self._cmd_interval:
            self._last_cmd = now
            self._send_held(target)

    def _send_held(self, T: np.ndarray) -> None:
        self.send_target(T, self._pose[0] if self._pose else 0.0)

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
        src = self.sources
        checks = [(lambda: self._joints[-1] if self._joints else None, f"no {src['joints']} received")]
        if need_pose:
            checks.append((lambda: self._pose, f"no {src['pose']} received (is the joint driver running?)"))
        if self.camera:
            checks.append((lambda: self._frame, f"no image on {src['image']}"))
            checks.append((lambda: self._info, f"no {src['info']} received"))
        deadline = time.monotonic() + timeout
        for check, what in checks:
            try:
                self._wait(check, max(0.0, deadline - time.monotonic()), what)
            except TimeoutError as exc:
                raise CalibrationError(f"{exc} within {timeout:.0f} s; {self.connection_hint()}") from None

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
        self.send_gripper(float(width))

    def hold(self, T: np.ndarray | None) -> None:
        """Keep commanding ``T`` (re-sent on every end-effector pose) or stop commanding (None)."""
        self._target = None if T is None else check_pose(T, "ee target").copy()
        if T is not None:
            self._last_cmd = time.monotonic()
            self._send_held(self._target)

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

    def stop(self) -> None:
        """Stop re-sending the held target (the transport closes itself afterwards)."""
        self._target = None
