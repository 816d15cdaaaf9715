"""Intrinsic calibration against MuJoCo ground truth, plus file-format and failure-mode tests."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import yaml

from robot_rl.calibration import intrinsics as intr
from robot_rl.calibration.board import BoardConfig, detect_board
from robot_rl.calibration.errors import (
    BlurredImageError,
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    InsufficientViewsError,
    PoorCoverageError,
)
from robot_rl.calibration.handeye import board_pose
from robot_rl.calibration.intrinsics import QualityConfig, calibrate_intrinsics, load_camera_info, write_camera_info
from robot_rl.calibration.transforms import pose_error

from .conftest import FOVY, GT_T_EE_CAM, HEIGHT, WIDTH


def _pct_errors(K, K_gt):
    return {
        name: abs(K[i, j] - K_gt[i, j]) / K_gt[i, j] * 100.0
        for name, (i, j) in {"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}.items()
    }


def test_mujoco_camera_convention_matches_ground_truth(sim_dataset):
    """fy = (h/2)/tan(fovy/2), principal point at the centre, and the -z/+y-up -> +z/+y-down
    conversion: PnP with the ground-truth K must reproduce the planned board pose."""
    ds = sim_dataset("checkerboard")
    scene, plan = ds["scene"], ds["plan"]
    assert scene.K[1, 1] == pytest.approx((HEIGHT / 2) / math.tan(math.radians(FOVY) / 2))
    for k in (0, 4, 7):
        scene.set_ee(plan.poses[k].T_base_ee)
        dt, dr = pose_error(scene.camera_pose_world(), plan.poses[k].T_base_ee @ GT_T_EE_CAM)
        assert dt < 1e-6 and dr < 1e-4
        det = detect_board(ds["images"][k], ds["board"])
        T_cb, rms = board_pose(det, scene.K, None)
        dt, dr = pose_error(T_cb, plan.poses[k].T_cam_board)
        assert rms < 0.3, rms
        assert dt < 1e-3 and dr < 0.2, (dt, dr)


@pytest.mark.parametrize("kind", ["checkerboard", "charuco"])
def test_intrinsics_recovered_within_1_percent(sim_dataset, kind, capsys):
    ds = sim_dataset(kind)
    res = calibrate_intrinsics(ds["images"], ds["board"], camera_name=f"sim_{kind}", log=print)
    err = _pct_errors(res.K, ds["scene"].K)
    with capsys.disabled():
        print(f"\n[{kind}] intrinsics % error: " + " ".join(f"{k}={v:.4f}%" for k, v in err.items()) + f"  RMS={res.rms:.4f}px")
    assert all(v < 1.0 for v in err.values()), err
    assert res.rms < 0.3
    assert len(res.per_view_errors) == len(ds["images"])
    assert np.all(np.abs(res.D[:2]) < 0.05)  # the renderer is an ideal pinhole
    out = capsys.readouterr().out
    assert "RMS reprojection error" in out and "view view_000" in out


def test_camera_info_yaml_roundtrip(tmp_path, sim_dataset):
    ds = sim_dataset("checkerboard")
    res = calibrate_intrinsics(ds["images"], ds["board"], camera_name="wrist", log=None)
    path = write_camera_info(tmp_path / "wrist.yaml", res)
    data = yaml.safe_load(path.read_text())
    for key in ("image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
                "distortion_coefficients", "rectification_matrix", "projection_matrix"):
        assert key in data
    assert data["distortion_model"] == "plumb_bob"
    assert data["camera_matrix"]["rows"] == 3 and len(data["camera_matrix"]["data"]) == 9
    assert data["projection_matrix"]["cols"] == 4 and len(data["projection_matrix"]["data"]) == 12
    K, D, size = intr.load_intrinsics(path)
    np.testing.assert_allclose(K, res.K)
    np.testing.assert_allclose(D, res.D)
    assert size == (WIDTH, HEIGHT)
    assert load_camera_info(path).camera_name == "wrist"


def _valid_info():
    return intr.camera_info_dict(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), np.zeros(5), (640, 480), "cam")


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda d: d.pop("camera_matrix"), "camera_matrix"),
        (lambda d: d["camera_matrix"].update(data=[1.0] * 8), "has 8 values"),
        (lambda d: d["camera_matrix"].update(rows=2), "must be 3x3"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(0, -500.0), "focal lengths must be positive"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(2, 900.0), "outside the 640x480 image"),
        (lambda d: d.update(distortion_model="fisheye_xyz"), "distortion_model must be one of"),
        (lambda d: d["distortion_coefficients"].update(cols=4, data=[0.0] * 4), "needs 5 coefficients"),
        (lambda d: d.update(image_width="640"), "image_width"),
        (lambda d: d.pop("image_height"), "image_height"),
        (lambda d: d["camera_matrix"]["data"].__setitem__(4, "abc"), "non-numeric"),
    ],
)
def test_camera_info_loader_rejects_malformed(tmp_path, mutate, expect):
    d = _valid_info()
    mutate(d)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(CalibrationFileError, match=expect):
        load_camera_info(p)


def test_camera_info_loader_missing_and_garbage(tmp_path):
    with pytest.raises(CalibrationFileError, match="does not exist"):
        load_camera_info(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(CalibrationFileError, match="expected a YAML mapping"):
        load_camera_info(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("camera_matrix: [1, 2\n")
    with pytest.raises(CalibrationFileError, match="not valid YAML"):
        load_camera_info(tmp_path / "broken.yaml")


def test_no_board_found(sim_dataset):
    ds = sim_dataset("checkerboard")
    blank = [np.full((HEIGHT, WIDTH, 3), 90, np.uint8) for _ in range(10)]
    with pytest.raises(BoardNotFoundError, match="only 0 usable views"):
        calibrate_intrinsics(blank, ds["board"], log=None)
    wrong = BoardConfig("checkerboard", rows=6, cols=8, square_size=0.03)  # not the board in the images
    with pytest.raises(BoardNotFoundError, match="no 6x8-square checkerboard"):
        detect_board(ds["images"][0], wrong, source="img0")


def test_too_few_views(sim_dataset):
    ds = sim_dataset("checkerboard")
    with pytest.raises(InsufficientViewsError, match="only 3 usable views, need at least 8"):
        calibrate_intrinsics(ds["images"][:3], ds["board"], log=None)


def test_blurred_views_rejected(sim_dataset):
    ds = sim_dataset("checkerboard")
    blurred = [cv2.GaussianBlur(im, (0, 0), 2.5) for im in ds["images"]]
    assert detect_board(blurred[0], ds["board"]).n_corners == ds["board"].n_corners  # still detectable...
    with pytest.raises(BlurredImageError, match="blurred: Laplacian variance"):  # ...but refused
        calibrate_intrinsics(blurred, ds["board"], log=None)
    # A few blurred frames in a sharp sequence are dropped by the relative test; the rest calibrates.
    mixed = list(ds["images"]) + [cv2.GaussianBlur(im, (0, 0), 1.5) for im in ds["images"][:3]]
    res = calibrate_intrinsics(mixed, ds["board"], log=None)
    assert sorted(r.source for r in res.rejected) == ["view_015", "view_016", "view_017"]
    assert all("blurred" in r.reason for r in res.rejected)


def test_poor_coverage_names_missing_regions(sim_dataset):
    ds = sim_dataset("checkerboard")
    left = [im for im, p in zip(ds["images"], ds["plan"].poses) if p.region.endswith("left")]
    assert len(left) >= 3
    q = QualityConfig(min_views=3)
    with pytest.raises(PoorCoverageError, match="missing regions: top-right, middle-right, bottom-right"):
        calibrate_intrinsics(left, ds["board"], quality=q, log=None)


def test_fronto_parallel_only_refused(sim_dataset):
    ds = sim_dataset("checkerboard")
    flat = [im for im, p in zip(ds["images"], ds["plan"].poses) if p.tilt_deg[:2] == (0.0, 0.0)]
    q = QualityConfig(min_views=1, min_coverage=0.0)
    with pytest.raises(CalibrationError, match="fronto-parallel"):
        calibrate_intrinsics(flat, ds["board"], quality=q, log=None)


def test_mixed_image_sizes_refused(sim_dataset):
    ds = sim_dataset("checkerboard")
    imgs = list(ds["images"][:8]) + [cv2.resize(ds["images"][8], (320, 240))]
    with pytest.raises(CalibrationError, match="same resolution"):
        calibrate_intrinsics(imgs, ds["board"], log=None)


def test_cli_main(tmp_path, sim_dataset, capsys):
    ds = sim_dataset("checkerboard")
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for i, im in enumerate(ds["images"]):
        cv2.imwrite(str(img_dir / f"frame_{i:02d}.png"), im)
    out = tmp_path / "cams" / "wrist.yaml"
    rc = intr.main(["--images", str(img_dir), "--board", "checkerboard", "--rows", "7", "--cols", "10",
                    "--square-size", "0.03", "--out", str(out)])
    assert rc == 0
    K, _, size = intr.load_intrinsics(out)
    assert size == (WIDTH, HEIGHT)
    assert abs(K[0, 0] - ds["scene"].K[0, 0]) / ds["scene"].K[0, 0] < 0.01
    assert "frame_00.png" in capsys.readouterr().out
    rc = intr.main(["--images", str(img_dir), "--board", "checkerboard", "--rows", "7", "--out", str(out)])
    assert rc == 2
    assert "--cols" in capsys.readouterr().err


def test_board_config_validation():
    with pytest.raises(ValueError, match="metres"):
        BoardConfig("checkerboard", 7, 10, 30.0)
    with pytest.raises(ValueError, match="board type"):
        BoardConfig("circles", 7, 10, 0.03)
    with pytest.raises(ValueError, match=">= 3"):
        BoardConfig("checkerboard", 2, 10, 0.03)
    b = BoardConfig("checkerboard", 7, 10, 0.03)
    assert b.inner_corners == (9, 6) and b.orientation_unique
    assert not BoardConfig("checkerboard", 6, 8, 0.03).orientation_unique
    assert BoardConfig.from_dict(b.to_dict()) == b
    with pytest.raises(CalibrationFileError, match="missing keys"):
        BoardConfig.from_dict({"type": "checkerboard"})
