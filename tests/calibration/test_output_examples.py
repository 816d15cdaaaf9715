"""The example outputs in calibration/examples/ (written by a real run against the MuJoCo
stand-in, see calibration/README.md) load with the library's readers and match the MJCF."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from robot_rl.calibration.handeye import load_extrinsic, static_transform_args
from robot_rl.calibration.intrinsics import load_camera_info
from robot_rl.calibration.tactile import load_baseline
from robot_rl.calibration.transforms import T_MJCAM_CVCAM, make_T, pose_error, quat_to_matrix, wxyz_to_xyzw

EXAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "examples" / "mujoco_wrist"


def test_example_outputs_load_and_match_the_mujoco_ground_truth():
    info = load_camera_info(EXAMPLE / "cameras" / "wrist.yaml")
    f = 240 / math.tan(math.radians(35.0))  # sim wrist camera: 480 px high, fovy 70 deg
    assert info.image_size == (640, 480)
    assert abs(info.K[0, 0] / f - 1) < 0.01 and abs(info.K[1, 1] / f - 1) < 0.01
    ext = load_extrinsic(EXAMPLE / "extrinsics" / "wrist.yaml")
    assert (ext.parent_frame, ext.child_frame) == ("panda_hand", "wrist_optical_frame")
    q = np.array(wxyz_to_xyzw([0.0, 0.9659258, 0.0, 0.258819]))
    gt = make_T(quat_to_matrix(q / np.linalg.norm(q)), [0.06, 0.0, 0.03]) @ T_MJCAM_CVCAM
    dt, dr = pose_error(ext.T, gt)
    assert dt < 0.002 and dr < 0.5
    assert "panda_hand" in static_transform_args(ext)
    snippet = yaml.safe_load((EXAMPLE / "wrist_config_snippet.yaml").read_text())
    assert snippet == {"cameras": [{"name": "wrist", "info_file": "calibration/cameras/wrist.yaml"}]}
    baseline = load_baseline(EXAMPLE / "tactile", "SIM-LEFT-01", (4, 4))
    assert baseline.n_frames == 50 and np.all(np.isfinite(baseline.mean))
