"""Guided capture planner: workspace checks, visibility, motion diversity, human prompts."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.calibration.errors import WorkspaceError
from robot_rl.calibration.guided import CameraModel, HumanPrompt, WorkspaceBox, plan_eye_in_hand, plan_eye_to_hand
from robot_rl.calibration.handeye import check_motion_diversity
from robot_rl.calibration.transforms import invert_T, pose_error, rotation_angle

from .conftest import BOARDS, GT_T_EE_BOARD, GT_T_EE_CAM, GT_T_WORLD_BOARD, GT_T_WORLD_CAM, WORKSPACE
from .sim_scene import gt_intrinsics

CAM = CameraModel(gt_intrinsics(640, 480, 50.0), (640, 480))
BOARD = BOARDS["checkerboard"]


def _corners_in_image(T_cb):
    w, h = BOARD.size_m
    pts = np.array([[0, 0, 0], [w, 0, 0], [w, h, 0], [0, h, 0]])
    uv = CAM.project((T_cb[:3, :3] @ pts.T).T + T_cb[:3, 3])
    return np.all(uv >= 0) and np.all(uv[:, 0] < 640) and np.all(uv[:, 1] < 480)


def test_eye_in_hand_plan_is_consistent_and_diverse():
    plan = plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, WORKSPACE, n_views=15)
    assert len(plan) == 15
    regions = {p.region for p in plan.poses}
    assert {"top-left", "top-right", "bottom-left", "bottom-right", "centre"} <= regions
    tilts = [max(abs(p.tilt_deg[0]), abs(p.tilt_deg[1])) for p in plan.poses]
    assert max(tilts) == pytest.approx(25.0) and all(t <= 25.0 for t in tilts)
    for p in plan.poses:
        assert WORKSPACE.contains(p.T_base_ee[:3, 3])
        assert _corners_in_image(p.T_cam_board)
        # the plan's board pose is what the camera will really see
        T_cb = invert_T(p.T_base_ee @ GT_T_EE_CAM) @ GT_T_WORLD_BOARD
        assert pose_error(T_cb, p.T_cam_board)[0] < 1e-9
    # the planned motions pass the hand-eye degeneracy checks
    diag = check_motion_diversity(plan.ee_poses(), [p.T_cam_board for p in plan.poses])
    assert diag["distinct_axes"] >= 3 and diag["max_rotation_deg"] >= 25


def test_eye_to_hand_plan():
    plan = plan_eye_to_hand(CAM, GT_T_WORLD_CAM, GT_T_EE_BOARD, BOARD, WORKSPACE, n_views=12)
    assert len(plan) == 12 and plan.mode == "eye_to_hand"
    for p in plan.poses:
        assert pose_error(GT_T_WORLD_CAM @ p.T_cam_board, p.T_base_ee @ GT_T_EE_BOARD)[0] < 1e-9


def test_workspace_limits_filter_and_fail_clearly():
    free = plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, WORKSPACE, n_views=15)
    z_cap = float(np.median([p.T_base_ee[2, 3] for p in free.poses]))
    # cut off the higher half of the poses: those are rejected with a reason naming the axis
    tight = WorkspaceBox((-0.2, -1.0, -0.1), (1.2, 1.0, z_cap))
    plan = plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, tight, n_views=10, min_views=3)
    assert plan.rejected and all(why.startswith("end-effector outside workspace") for _, why in plan.rejected)
    assert any("z=" in why and "> max" in why for _, why in plan.rejected)
    assert all(tight.contains(p.T_base_ee[:3, 3]) for p in plan.poses)
    tiny = WorkspaceBox((2.0, 2.0, 2.0), (2.1, 2.1, 2.1))
    with pytest.raises(WorkspaceError, match="only 0 of the planned eye_in_hand poses lie inside the workspace"):
        plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, tiny)
    with pytest.raises(ValueError, match="min_xyz < max_xyz"):
        WorkspaceBox((0, 0, 0), (1, -1, 1))


def test_human_prompt():
    plan = plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, WORKSPACE, n_views=6)
    lines = list(HumanPrompt(plan))
    assert len(lines) == 6
    assert lines[0].startswith("View 1/6: Jog the arm so the wrist camera sees the board")
    assert "Target end-effector position" in lines[0]
    intr = list(HumanPrompt.for_intrinsics(CAM, BOARD, n_views=9))
    assert len(intr) == 9 and any("top-left" in s for s in intr) and any("tilt 25 deg" in s for s in intr)
    assert HumanPrompt.for_missing_regions(["top-left"]) == ["Add a view with the board in the top-left of the image (tilted ~20 deg)."]


def test_tilts_are_real_rotations():
    plan = plan_eye_in_hand(CAM, GT_T_WORLD_BOARD, GT_T_EE_CAM, BOARD, WORKSPACE, n_views=9)
    for p in plan.poses:
        ang = np.degrees(rotation_angle(p.T_cam_board[:3, :3]))
        assert ang <= 36.0  # combined tilt + roll from the default tilt table
