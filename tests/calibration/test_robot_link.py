"""The capture flows' robot interface without ROS: a RobotLink fed from a plain thread.

The ROS 2 node (robot_rl.ros.calibration_client) only converts messages and calls these
methods; here a simulated arm moves toward the commanded target a fraction per tick, so the
waiting, settling and time-matching logic is exercised on its own.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from robot_rl.calibration.errors import CalibrationError
from robot_rl.calibration.robot_link import MotionTimeout, RobotLink
from robot_rl.calibration.tactile_flow import DistinctFrames, save_stream_baseline, sensor_serial
from robot_rl.calibration.tactile import load_baseline
from robot_rl.calibration.transforms import euler_xyz_to_matrix, make_T, pose_error

JOINTS = [f"j{i}" for i in range(7)]


class SimulatedArm(RobotLink):
    """Each tick moves the end effector ``gain`` of the way to the last target (clamped to
    ``reach`` in x when given, like a driver's workspace box) and reports pose and twist."""

    def __init__(self, gain: float = 0.3, reach: float | None = None, camera: str | None = "wrist"):
        super().__init__(SimpleNamespace(robot=SimpleNamespace(base_frame="base")), camera=camera,
                         command_interval_s=0.0)
        self.gain, self.reach = gain, reach
        self.sent: list[np.ndarray] = []
        self.gripper: list[float] = []
        self._T = make_T(np.eye(3), [0.4, 0.0, 0.4])
        self._stamp = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def send_target(self, T, stamp):
        self.sent.append(np.array(T))

    def send_gripper(self, width):
        self.gripper.append(width)

    def _run(self):
        while not self._stop.is_set():
            target = self.sent[-1] if self.sent else self._T
            goal = target.copy()
            if self.reach is not None:
                goal[0, 3] = min(goal[0, 3], self.reach)
            step = self.gain * (goal[:3, 3] - self._T[:3, 3])
            T = self._T.copy()
            T[:3, 3] += step
            T[:3, :3] = goal[:3, :3] if np.linalg.norm(step) < 1e-3 else T[:3, :3]
            self._T = T
            self._stamp += 0.01
            self.receive_joint_state(self._stamp, JOINTS, list(range(7)), [float(np.linalg.norm(step)) / 0.01] * 7)
            self.receive_twist(np.r_[step / 0.01, 0.0, 0.0, 0.0])
            self.receive_pose(self._stamp, T)
            self._stop.wait(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5.0)


def test_move_to_waits_until_the_arm_settles_at_the_target():
    target = make_T(euler_xyz_to_matrix(0.0, 0.0, 0.3), [0.5, 0.1, 0.3])
    with SimulatedArm(camera=None) as arm:
        arm.wait_ready(timeout=30.0)
        stamp, reached, note = arm.move_to(target, timeout=30.0)
        arm.hold(None)
    dt, dr = pose_error(reached, target)
    assert note == "" and dt < 0.003 and dr < 0.5
    assert stamp > 0 and np.allclose(arm.sent[0], target)
    assert len(arm.sent) > 1, "the held target is re-sent on new poses"


def test_move_to_accepts_a_clamped_pose_with_a_note_and_times_out_when_far():
    near = make_T(np.eye(3), [0.51, 0.0, 0.4])
    with SimulatedArm(reach=0.5) as arm:
        _, reached, note = arm.move_to(near, timeout=30.0)
        assert "from the target (driver clamp?)" in note and reached[0, 3] == pytest.approx(0.5, abs=1e-3)
        with pytest.raises(MotionTimeout, match="did not settle") as info:
            arm.receive_status("workspace clamp active")
            arm.move_to(make_T(np.eye(3), [0.6, 0.0, 0.4]), timeout=0.5)
        arm.hold(None)
    assert "mm /" in str(info.value) and "driver: workspace clamp active" in str(info.value)


def test_wait_ready_names_the_missing_inputs_and_frames_need_matching_camera_info():
    link = SimulatedArm()
    with pytest.raises(CalibrationError, match="no joint states received within 0 s; check that the robot"):
        link.wait_ready(timeout=0.0)
    link.receive_joint_state(1.0, JOINTS, [0.0] * 7, [0.0] * 7)
    link.receive_pose(1.0, np.eye(4))
    with pytest.raises(CalibrationError, match="no image on camera wrist"):
        link.wait_ready(timeout=0.0)
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    link.receive_image(rgb, 1.0, "wrist_optical_frame")
    with pytest.raises(CalibrationError, match="with camera_info"):
        link.next_frame(timeout=0.0)  # no camera_info yet
    link.receive_camera_info((6, 4), np.eye(3).ravel(), [])
    link.receive_image(rgb, 1.1, "wrist_optical_frame")
    link.wait_ready(timeout=0.0)
    frame = link.next_frame(after=1.0, timeout=0.0)
    assert frame.stamp == 1.1 and frame.image[0, 0].tolist() == [0, 0, 255]  # stored BGR
    assert np.array_equal(frame.D, np.zeros(5))
    link.receive_camera_info((640, 480), np.eye(3).ravel(), [0.1] * 5)  # another size: no K for 6x4
    link.receive_image(rgb, 1.2, "wrist_optical_frame")
    with pytest.raises(CalibrationError, match="no new frame"):
        link.next_frame(after=1.1, timeout=0.0)


def test_joints_at_picks_the_nearest_state_and_refuses_clock_skew():
    link = SimulatedArm()
    for i, stamp in enumerate((1.00, 1.01, 1.02)):
        link.receive_joint_state(stamp, JOINTS, [float(i)] * 7, [0.0, -0.5] + [0.0] * 5)
    js, joints, speed = link.joints_at(1.012, max_skew=0.005, timeout=0.0)
    assert js == 1.01 and joints["j3"] == 1.0 and speed == 0.5
    with pytest.raises(CalibrationError, match="from the image stamp 1.500 s"):
        link.joints_at(1.5, max_skew=0.02, timeout=0.0)
    with pytest.raises(NotImplementedError, match="cannot command the arm"):
        RobotLink(None, None).hold(np.eye(4))


def test_tactile_stream_baseline_without_ros(tmp_path):
    cfg = SimpleNamespace(tactile=[SimpleNamespace(name="left", serial="SN-1"), SimpleNamespace(name="right", serial="")])
    assert sensor_serial(cfg, "left") == "SN-1" and sensor_serial(cfg, "right", "SN-2") == "SN-2"
    with pytest.raises(CalibrationError, match="no serial"):
        sensor_serial(cfg, "right")
    with pytest.raises(CalibrationError, match="not configured; configured: \\['left', 'right'\\]"):
        sensor_serial(cfg, "middle")
    frames = DistinctFrames(12)
    rng = np.random.default_rng(0)
    for stamp in (0.1, 0.1, 0.1) + tuple(0.2 + 0.1 * i for i in range(13)):  # a repeated stamp is the same reading
        frames.add(stamp, 1.0 + 0.01 * rng.standard_normal((2, 2)))
    got = frames.wait(0.0, "/tactile/left/image")
    assert len(got) == 12 and len(frames.frames) == 12
    with pytest.raises(CalibrationError, match="only 0 of 2 frames from /tactile/x/image"):
        DistinctFrames(2).wait(0.0, "/tactile/x/image")
    baseline, path = save_stream_baseline(got, "SN-1", tmp_path, log=lambda s: None)
    assert path.name == "SN-1.npz" and load_baseline(tmp_path, "SN-1", (2, 2)).n_frames == 12
