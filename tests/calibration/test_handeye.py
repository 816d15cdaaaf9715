"""Hand-eye calibration against MuJoCo ground truth (mocap gripper), plus degenerate inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from robot_rl.calibration import handeye as he
from robot_rl.calibration.errors import (
    BlurredImageError,
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    DegenerateMotionError,
    InconsistentDataError,
    InsufficientViewsError,
)
from robot_rl.calibration.handeye import METHODS, HandEyeConfig, calibrate_hand_eye, solve_hand_eye, solve_ax_xb
from robot_rl.calibration.intrinsics import write_camera_info
from robot_rl.calibration.transforms import (
    euler_xyz_to_matrix,
    invert_T,
    make_T,
    pose_error,
    rotvec_to_matrix,
)

from .conftest import GT_T_EE_CAM, GT_T_WORLD_CAM

TOL_MM, TOL_DEG = 2.0, 0.5


@pytest.mark.parametrize("kind", ["checkerboard", "charuco"])
@pytest.mark.parametrize("mode", ["eye_in_hand", "eye_to_hand"])
def test_hand_eye_recovers_ground_truth(sim_dataset, kind, mode, capsys):
    ds = sim_dataset(kind, mode)
    K = ds["scene"].K
    res = calibrate_hand_eye(ds["images"], ds["ee_poses"], ds["board"], K, np.zeros(5), mode=mode, log=None)
    gt = GT_T_EE_CAM if mode == "eye_in_hand" else GT_T_WORLD_CAM
    assert res.n_views == len(ds["images"]) and not res.rejected_views
    lines = []
    for name in METHODS:
        dt, dr = pose_error(res.methods[name].T, gt)
        lines.append(f"{name}={dt * 1000:.3f}mm/{dr:.4f}deg")
        assert dt * 1000 < TOL_MM and dr < TOL_DEG, (name, dt, dr)
    with capsys.disabled():
        print(f"\n[{kind} {mode}] best={res.method} " + " ".join(lines))
    dt, dr = pose_error(res.T, gt)
    assert dt * 1000 < TOL_MM and dr < TOL_DEG
    best = res.methods[res.method]
    assert best.residual_mm < 1.0 and best.reprojection_px < 0.5


def test_solvers_exact_on_noise_free_synthetic_data():
    rng = np.random.default_rng(3)

    def rand_T(deg, t):
        return make_T(rotvec_to_matrix(rng.normal(size=3) * np.radians(deg)), rng.normal(size=3) * t)

    X = rand_T(70, 0.1)
    T_base_board = rand_T(150, 0.5)
    G = [rand_T(30, 0.2) for _ in range(8)]
    C = [invert_T(g @ X) @ T_base_board for g in G]
    for m in METHODS:
        dt, dr = pose_error(solve_ax_xb(G, C, m), X)
        assert dt < 1e-9 and dr < 1e-6, m
    # eye-to-hand through the public API (robot poses inverted internally)
    T_base_cam, T_ee_board = rand_T(150, 0.6), rand_T(30, 0.1)
    C2 = [invert_T(T_base_cam) @ g @ T_ee_board for g in G]
    res = solve_hand_eye(G, C2, mode="eye_to_hand")
    for m in METHODS:
        dt, dr = pose_error(res.methods[m].T, T_base_cam)
        assert dt < 1e-9 and dr < 1e-6, m
    assert pose_error(res.T_target, T_ee_board)[0] < 1e-9


def _render_views(ds, ee_poses):
    return [ds["scene"].render(T) for T in ee_poses]


def _about_optical_axis(ds, n=8):
    """Gripper poses that only rotate about the camera's optical axis (one rotation axis)."""
    T_base_cam0 = ds["plan"].poses[4].T_base_ee @ GT_T_EE_CAM
    poses = []
    for k, ang in enumerate(np.linspace(-30, 30, n)):
        shift = make_T(rotvec_to_matrix([0, 0, np.radians(ang)]), [0.01 * (k % 3 - 1), 0.01 * (k % 2), 0.0])
        poses.append(T_base_cam0 @ shift @ invert_T(GT_T_EE_CAM))
    return poses


def test_single_rotation_axis_is_degenerate(sim_dataset):
    ds = sim_dataset("checkerboard")
    poses = _about_optical_axis(ds)
    imgs = _render_views(ds, poses)
    with pytest.raises(DegenerateMotionError, match="1 distinct axis"):
        calibrate_hand_eye(imgs, poses, ds["board"], ds["scene"].K, None, log=None)


def test_pure_translations_are_degenerate(sim_dataset):
    ds = sim_dataset("checkerboard")
    T0 = ds["plan"].poses[4].T_base_ee
    poses = [T0 @ make_T(np.eye(3), [0.02 * (k % 3 - 1), 0.02 * (k // 3 - 1), 0.01 * (k % 2)]) for k in range(8)]
    imgs = _render_views(ds, poses)
    with pytest.raises(DegenerateMotionError, match="Pure translations"):
        calibrate_hand_eye(imgs, poses, ds["board"], ds["scene"].K, None, log=None)


def test_too_few_views(sim_dataset):
    ds = sim_dataset("checkerboard")
    with pytest.raises(InsufficientViewsError, match="at least 5 views"):
        calibrate_hand_eye(ds["images"][:3], ds["ee_poses"][:3], ds["board"], ds["scene"].K, None, log=None)


def test_no_board_in_any_image(sim_dataset):
    ds = sim_dataset("checkerboard")
    # point the camera away from the board: 180 deg about the gripper x axis
    away = [T @ make_T(euler_xyz_to_matrix(np.pi, 0, 0), [0, 0, 0]) for T in ds["ee_poses"][:6]]
    imgs = _render_views(ds, away)
    with pytest.raises(BoardNotFoundError, match="board not found in any of the 6 images"):
        calibrate_hand_eye(imgs, away, ds["board"], ds["scene"].K, None, log=None)


def test_blurred_views_refused(sim_dataset):
    ds = sim_dataset("checkerboard")
    blurred = [cv2.GaussianBlur(im, (0, 0), 2.5) for im in ds["images"]]
    with pytest.raises(BlurredImageError, match="too blurred"):
        calibrate_hand_eye(blurred, ds["ee_poses"], ds["board"], ds["scene"].K, None, log=None)


def test_mispaired_poses_detected(sim_dataset):
    ds = sim_dataset("checkerboard")
    poses = list(ds["ee_poses"])
    poses[2], poses[9] = poses[9], poses[2]  # two images swapped
    with pytest.raises(InconsistentDataError, match="view_002.*view_009"):
        calibrate_hand_eye(ds["images"], poses, ds["board"], ds["scene"].K, None, log=None)


def test_inverted_robot_poses_refused(sim_dataset):
    ds = sim_dataset("checkerboard")
    wrong = [invert_T(T) for T in ds["ee_poses"]]  # ee<-base passed by mistake
    with pytest.raises(CalibrationError, match="base<-ee"):
        calibrate_hand_eye(ds["images"], wrong, ds["board"], ds["scene"].K, None, log=None)


def test_symmetric_checkerboard_refused_for_pose(sim_dataset):
    from robot_rl.calibration.board import BoardConfig

    ds = sim_dataset("checkerboard")
    sym = BoardConfig("checkerboard", rows=6, cols=8, square_size=0.03)
    with pytest.raises(CalibrationError, match="rotated by 180 deg"):
        calibrate_hand_eye(ds["images"], ds["ee_poses"], sym, ds["scene"].K, None, log=None)


def test_extrinsic_yaml_roundtrip_and_static_tf(tmp_path):
    T = make_T(euler_xyz_to_matrix(0.1, -0.2, 0.3), [0.01, 0.02, 0.03])
    p = he.write_extrinsic(tmp_path / "wrist.yaml", T, "panda_hand", "wrist_camera_optical_frame", {"method": "TSAI"})
    data = yaml.safe_load(p.read_text())
    assert set(data) >= {"parent_frame", "child_frame", "translation", "rotation"}
    assert set(data["rotation"]) == {"x", "y", "z", "w"}
    ext = he.load_extrinsic(p)
    assert pose_error(ext.T, T)[0] < 1e-12 and pose_error(ext.T, T)[1] < 1e-6
    args = he.static_transform_args(ext)
    assert args[args.index("--frame-id") + 1] == "panda_hand"
    bad = dict(data, rotation={"x": 0, "y": 0, "z": 0, "w": 2})
    with pytest.raises(CalibrationFileError, match="unit length"):
        he.load_extrinsic(bad)
    with pytest.raises(CalibrationFileError, match="missing keys"):
        he.load_extrinsic({"parent_frame": "a"})
    with pytest.raises(CalibrationFileError, match="does not exist"):
        he.load_extrinsic(tmp_path / "none.yaml")


def test_handeye_cli(tmp_path, sim_dataset, capsys):
    ds = sim_dataset("checkerboard")
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    poses = {}
    for i, (im, T) in enumerate(zip(ds["images"], ds["ee_poses"])):
        name = f"shot_{i:02d}.png"
        cv2.imwrite(str(img_dir / name), im)
        poses[name] = T.tolist()
    (tmp_path / "poses.yaml").write_text(yaml.safe_dump({"poses": poses}))
    write_camera_info(tmp_path / "cam.yaml", ds["scene"].K, np.zeros(5), (640, 480), "wrist")
    out = tmp_path / "ext.yaml"
    rc = he.main(["--images", str(img_dir), "--poses", str(tmp_path / "poses.yaml"), "--camera-info", str(tmp_path / "cam.yaml"),
                  "--board", "checkerboard", "--rows", "7", "--cols", "10", "--square-size", "0.03", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    ext = he.load_extrinsic(out)
    assert ext.parent_frame == "panda_hand"
    dt, dr = pose_error(ext.T, GT_T_EE_CAM)
    assert dt < 2e-3 and dr < 0.5
    meta = yaml.safe_load(out.read_text())["calibration"]
    assert set(meta["residuals"]) == set(METHODS)


def test_config_thresholds_are_respected():
    cfg = HandEyeConfig(min_views=20)
    G = [make_T(euler_xyz_to_matrix(0.3 * k, 0.2 * k, 0.1 * k), [0.1 * k, 0, 0]) for k in range(6)]
    with pytest.raises(InsufficientViewsError, match="at least 20"):
        solve_hand_eye(G, G, config=cfg)


def test_full_pipeline_with_calibrated_intrinsics(sim_dataset, capsys):
    """Intrinsics from the images themselves (not ground truth) feeding hand-eye."""
    from robot_rl.calibration.intrinsics import calibrate_intrinsics

    ds = sim_dataset("checkerboard")
    intr = calibrate_intrinsics(ds["images"], ds["board"], log=None)
    res = calibrate_hand_eye(ds["images"], ds["ee_poses"], ds["board"], intr.K, intr.D, log=None)
    dt, dr = pose_error(res.T, GT_T_EE_CAM)
    with capsys.disabled():
        print(f"\n[pipeline eye_in_hand, calibrated K] {res.method}: {dt * 1000:.3f} mm / {dr:.4f} deg")
    assert dt * 1000 < TOL_MM and dr < TOL_DEG
