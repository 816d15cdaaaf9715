"""Fixtures for the calibration ground-truth tests.

MuJoCo must pick its GL backend before it is first imported: headless EGL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from robot_rl.calibration.board import BoardConfig, aruco_available  # noqa: E402
from robot_rl.calibration.guided import CameraModel, WorkspaceBox, plan_eye_in_hand, plan_eye_to_hand  # noqa: E402
from robot_rl.calibration.transforms import euler_xyz_to_matrix, make_T  # noqa: E402

WIDTH, HEIGHT, FOVY = 640, 480, 50.0

BOARDS = {
    # rows + cols odd: the checkerboard's orientation is unambiguous (needed for hand-eye)
    "checkerboard": BoardConfig("checkerboard", rows=7, cols=10, square_size=0.03),
    "charuco": BoardConfig("charuco", rows=7, cols=10, square_size=0.03, marker_size=0.022, dictionary="DICT_5X5_100")
    if aruco_available()
    else None,
}

# Ground truth, deliberately not axis-aligned so sign/convention errors show up.
GT_T_EE_CAM = make_T(euler_xyz_to_matrix(*np.radians([4.0, -6.0, 90.0])), [0.05, -0.032, 0.085])
GT_T_WORLD_BOARD = make_T(euler_xyz_to_matrix(np.pi, 0.0, np.radians(12.0)), [0.55, 0.05, 0.02])
GT_T_WORLD_CAM = make_T(euler_xyz_to_matrix(*np.radians([-150.0, 5.0, -80.0])), [0.45, -0.55, 0.60])
GT_T_EE_BOARD = make_T(euler_xyz_to_matrix(*np.radians([0.0, 0.0, 7.0])), [-0.15, -0.105, 0.06])
WORKSPACE = WorkspaceBox((-0.2, -1.0, -0.1), (1.2, 1.0, 1.4))


def board_or_skip(kind: str) -> BoardConfig:
    b = BOARDS[kind]
    if b is None:
        pytest.skip("cv2.aruco not available in this OpenCV build")
    return b


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory):
    """``sim_dataset(board_kind, mode)`` -> dict(scene, plan, images, ee_poses); rendered once per session."""
    from .sim_scene import build_scene

    cache: dict = {}
    scenes = []

    def get(kind: str, mode: str = "eye_in_hand") -> dict:
        key = (kind, mode)
        if key in cache:
            return cache[key]
        board = board_or_skip(kind)
        tmp = tmp_path_factory.mktemp(f"{kind}_{mode}")
        if mode == "eye_in_hand":
            scene = build_scene(board, tmp, mode, WIDTH, HEIGHT, FOVY, T_ee_cam=GT_T_EE_CAM, T_world_board=GT_T_WORLD_BOARD)
            cam = CameraModel(scene.K, (WIDTH, HEIGHT))
            plan = plan_eye_in_hand(cam, GT_T_WORLD_BOARD, GT_T_EE_CAM, board, WORKSPACE, n_views=15)
        else:
            scene = build_scene(board, tmp, mode, WIDTH, HEIGHT, FOVY, T_world_cam=GT_T_WORLD_CAM, T_ee_board=GT_T_EE_BOARD)
            cam = CameraModel(scene.K, (WIDTH, HEIGHT))
            plan = plan_eye_to_hand(cam, GT_T_WORLD_CAM, GT_T_EE_BOARD, board, WORKSPACE, n_views=15)
        scenes.append(scene)
        images = [scene.render(p.T_base_ee) for p in plan.poses]
        cache[key] = {"scene": scene, "plan": plan, "images": images, "ee_poses": plan.ee_poses(), "board": board, "dir": tmp}
        return cache[key]

    yield get
    for s in scenes:
        s.close()
