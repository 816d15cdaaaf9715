"""The calibration ROS 2 flow end to end against the MuJoCo stand-in's ground truth.

The sim runs as its own process (``sim.scene: calibration``, wrist camera 640x480) on a private
DDS domain; guided capture drives the arm over DDS through the joint driver, then intrinsics and
the wrist hand-eye are solved from the stored images + joint states (pinocchio FK) and compared
with the MJCF: f = (h/2)/tan(fovy/2), principal point ((w-1)/2, (h-1)/2), and the camera
mounted on panda_hand at pos [0.06, 0, 0.03], quat (w,x,y,z) [0, 0.9659258, 0, 0.258819].
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time

# Before rclpy is first imported anywhere: DDS on this machine, a private domain.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid() + 7).randint(150, 200)))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

rclpy = pytest.importorskip("rclpy")

from robot_rl.calibration.capture_flow import guided_capture, interactive_capture  # noqa: E402
from robot_rl.calibration.capture_set import CaptureSet  # noqa: E402
from robot_rl.calibration.coverage import SIM_WRIST_ROI_FRACTION, roi_pixels  # noqa: E402
from robot_rl.calibration.board import BoardConfig  # noqa: E402
from robot_rl.calibration.cli import main as calibrate_main  # noqa: E402
from robot_rl.calibration.errors import (  # noqa: E402
    BoardNotFoundError,
    CalibrationError,
    CalibrationFileError,
    DegenerateMotionError,
    InsufficientViewsError,
)
from robot_rl.calibration.handeye import load_extrinsic  # noqa: E402
from robot_rl.calibration.intrinsics import load_camera_info  # noqa: E402
from robot_rl.calibration.solve import fk_poses, rigid_offset, solve_capture  # noqa: E402
from robot_rl.calibration.transforms import (  # noqa: E402
    T_MJCAM_CVCAM,
    euler_xyz_to_matrix,
    make_T,
    pose_error,
    quat_to_matrix,
    wxyz_to_xyzw,
)
from robot_rl.config import load_config, save_config  # noqa: E402
from robot_rl.paths import shared_file  # noqa: E402
from robot_rl.ros.calibration_client import RobotCameraClient, tactile_capture  # noqa: E402

WIDTH, HEIGHT, FOVY = 640, 480, 70.0
MOUNT_POS = [0.06, 0.0, 0.03]
MOUNT_QUAT_WXYZ = [0.0, 0.9659258, 0.0, 0.258819]
BOARD_YAML = str(shared_file("sim", "assets", "calibration_board.yaml"))


def gt_K() -> np.ndarray:
    f = (HEIGHT / 2) / math.tan(math.radians(FOVY) / 2)
    return np.array([[f, 0, (WIDTH - 1) / 2], [0, f, (HEIGHT - 1) / 2], [0, 0, 1]])


def gt_T_hand_cam() -> np.ndarray:
    """The MJCF mounting as an OpenCV optical frame (MuJoCo cameras look along -z, y up)."""
    q = np.array(wxyz_to_xyzw(MOUNT_QUAT_WXYZ))
    return make_T(quat_to_matrix(q / np.linalg.norm(q)), MOUNT_POS) @ T_MJCAM_CVCAM


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from robot_rl.graph import graph
    from robot_rl.launcher import NodeGraph

    tmp = tmp_path_factory.mktemp("calib_sim")
    cfg = load_config(None, {
        "sim.scene": "calibration",
        "cameras": [{"name": "wrist", "width": WIDTH, "height": HEIGHT, "fps": 10}],
    })
    path = tmp / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)), log_dir=tmp / "logs").start()
    rclpy.init()
    client = RobotCameraClient(cfg, "wrist", node_name="calibration_test")
    try:
        client.wait_ready(timeout=60.0)
    except CalibrationError:
        client.close()
        nodes.stop()
        raise
    yield cfg, client, tmp
    client.close()
    nodes.stop()
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def guided(sim):
    """Guided capture over DDS (nominal mount deliberately 1 cm / 3 deg off, board pose
    estimated from the first view), then solved; shared by the tests below."""
    cfg, client, tmp = sim
    board = BoardConfig.from_dict(yaml.safe_load(open(BOARD_YAML))["board"])
    T_tcp_hand = rigid_offset(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame, "panda_hand",
                              np.array([cfg.robot.home]))
    nominal = T_tcp_hand @ gt_T_hand_cam() @ make_T(euler_xyz_to_matrix(*np.radians([2.0, -2.0, 1.0])),
                                                    [0.008, -0.005, 0.004])
    out = tmp / "capture_wrist"
    roi = roi_pixels(SIM_WRIST_ROI_FRACTION, (WIDTH, HEIGHT))
    t0 = time.monotonic()
    log: list[str] = []
    cap = guided_capture(client, board, out, nominal, None, n_views=15, roi=roi, roll_deg=90.0,
                         fill=0.6, log=log.append)
    t_capture = time.monotonic() - t0
    result = solve_capture(out, tmp / "calibration", "eye_in_hand", parent_frame="panda_hand", log=None)
    return {"cfg": cfg, "cap": cap, "out": out, "result": result, "log": log, "t_capture": t_capture,
            "T_tcp_hand": T_tcp_hand, "board": board, "dir": tmp}


def test_guided_capture_over_dds_recovers_mujoco_ground_truth(guided, capsys):
    res, cap = guided["result"], guided["cap"]
    K, Kgt = res.intrinsics.K, gt_K()
    rel = {n: abs(K[i, j] / Kgt[i, j] - 1) for n, (i, j) in
           {"fx": (0, 0), "fy": (1, 1), "cx": (0, 2), "cy": (1, 2)}.items()}
    # Hand-eye in the frame it was solved in (panda_hand_tcp) and as written (panda_hand).
    T_gt_hand = gt_T_hand_cam()
    T_gt_tcp = guided["T_tcp_hand"] @ T_gt_hand
    dt_tcp, dr_tcp = pose_error(res.handeye.T, T_gt_tcp)
    dt_hand, dr_hand = pose_error(res.T_parent_cam, T_gt_hand)
    with capsys.disabled():
        print(f"\n[ros flow] {len(cap.views)} views captured in {guided['t_capture']:.1f} s, skipped {cap.skipped}")
        print("[ros flow] intrinsics rel. error " + " ".join(f"{k}={v * 100:.3f}%" for k, v in rel.items())
              + f" rms={res.intrinsics.rms:.3f}px")
        print(f"[ros flow] hand-eye {res.handeye.method}: tcp->cam {dt_tcp * 1000:.3f} mm / {dr_tcp:.4f} deg, "
              f"hand->cam {dt_hand * 1000:.3f} mm / {dr_hand:.4f} deg")
    assert len(cap.views) >= 12
    assert all(v < 0.01 for v in rel.values()), rel
    assert dt_tcp * 1000 < 2.0 and dr_tcp < 0.5
    assert dt_hand * 1000 < 2.0 and dr_hand < 0.5
    # Files the rest of the stack consumes.
    info = load_camera_info(res.camera_info_file)
    assert info.image_size == (WIDTH, HEIGHT) and np.allclose(info.K, K)
    ext = load_extrinsic(res.extrinsic_file)
    assert (ext.parent_frame, ext.child_frame) == ("panda_hand", "wrist_optical_frame")
    assert np.allclose(ext.T, res.T_parent_cam, atol=1e-6)
    snippet = yaml.safe_load(res.snippet_file.read_text())
    assert snippet["cameras"][0] == {"name": "wrist", "info_file": res.camera_info_file.as_posix()}
    assert "static_transform_publisher" in res.snippet_file.read_text()
    # The capture is pickle-free: PNG + JSON with joint positions by name and the image stamp.
    data = json.loads((guided["out"] / "capture.json").read_text())
    v0 = data["views"][0]
    assert set(v0["joints"]) == set(guided["cfg"].robot.arm_joints)
    assert v0["stamp"] == pytest.approx(v0["joint_stamp"], abs=1e-9)  # sim: one stamp per period
    assert (guided["out"] / v0["image"]).is_file()


def test_solve_cli_and_refusals_on_corrupt_captures(guided, tmp_path):
    src = guided["out"]
    # The CLI solves the same folder (intrinsics + hand-eye) and exits 0.
    assert calibrate_main(["solve", "--capture", str(src), "--out-dir", str(tmp_path / "cal")]) == 0
    assert (tmp_path / "cal" / "extrinsics" / "wrist.yaml").is_file()

    def variant(name, edit):
        dst = tmp_path / name
        shutil.copytree(src, dst)
        data = json.loads((dst / "capture.json").read_text())
        edit(data)
        (dst / "capture.json").write_text(json.dumps(data))
        return dst

    few = variant("few", lambda d: d.update(views=d["views"][:3]))
    with pytest.raises(InsufficientViewsError, match="usable views"):
        solve_capture(few, tmp_path / "o1", log=None)
    assert calibrate_main(["solve", "--capture", str(few), "--out-dir", str(tmp_path / "o1")]) == 2

    # Degenerate poses: every view claims the same joint positions (robot never rotated).
    same = variant("same", lambda d: [v.update(joints=d["views"][0]["joints"]) for v in d["views"]])
    with pytest.raises(DegenerateMotionError):
        solve_capture(same, tmp_path / "o2", use_camera_info=True, log=None)

    # Wrong board definition: no board found in any image.
    wrong = variant("wrong", lambda d: d.update(board={"type": "checkerboard", "rows": 5, "cols": 6,
                                                       "square_size": 0.03}))
    with pytest.raises(BoardNotFoundError):
        solve_capture(wrong, tmp_path / "o3", log=None)

    bad = variant("bad", lambda d: d["views"][1]["joints"].pop("panda_joint4"))
    with pytest.raises(CalibrationFileError, match="panda_joint4"):
        CaptureSet.load(bad)
    (bad / "capture.json").write_text("{not json")
    with pytest.raises(CalibrationFileError, match="not valid JSON"):
        CaptureSet.load(bad)
    with pytest.raises(CalibrationFileError, match="does not exist"):
        CaptureSet.load(tmp_path / "nowhere")


def test_live_capture_keeps_sharp_new_views_and_reports_missing_regions(sim, guided, tmp_path):
    cfg, client, _ = sim
    board = guided["board"]
    roi = roi_pixels(SIM_WRIST_ROI_FRACTION, (WIDTH, HEIGHT))
    # Park the arm at the first captured view, then capture live for a few seconds: one view is
    # kept, repeats of the same pose are refused, missing regions are reported.
    q = guided["cap"].joint_array()[0]
    T = fk_poses(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame, q)[0]
    client.move_to(T)
    client.hold(T)  # keep the lockstep sim stepping while capturing
    log: list[str] = []
    try:
        cap = interactive_capture(client, board, tmp_path / "live", views=5, timeout=4.0, roi=roi,
                                  log=log.append)
    finally:
        client.hold(None)
    assert len(cap.views) == 1, log
    text = "\n".join(log)
    assert "kept view_000.png" in text and "still missing:" in text
    assert "repeats an earlier board pose" in text
    assert (tmp_path / "live" / "view_000.png").is_file()
    # A board that is not there: nothing is kept and the error says why.
    with pytest.raises(BoardNotFoundError, match="no usable view"):
        client.hold(T)
        try:
            interactive_capture(client, BoardConfig("checkerboard", 5, 6, 0.03), tmp_path / "none",
                                views=3, timeout=2.0, log=lambda s: None)
        finally:
            client.hold(None)


def test_tactile_capture_saves_a_baseline_by_serial_and_the_node_applies_it(sim, tmp_path):
    from sensor_msgs.msg import Image

    from robot_rl.calibration.tactile import load_baseline
    from robot_rl.config import TactileConfig
    from robot_rl.ros import messages as m
    from robot_rl.ros.tactile_node import TactileNode

    cfg, client, _ = sim
    client.hold(client.pose()[1])  # lockstep: keep the sim stepping so frames keep coming
    try:
        baseline, path = tactile_capture(cfg, "left", 12, "SIM-LEFT-01", tmp_path / "tactile",
                                         timeout=30.0, log=lambda s: None)
    finally:
        client.hold(None)
    assert path.name == "SIM-LEFT-01.npz" and baseline.shape == (4, 4) and baseline.n_frames == 12
    assert load_baseline(tmp_path / "tactile", "SIM-LEFT-01", (4, 4)).shape == (4, 4)
    with pytest.raises(CalibrationError, match="no serial"):
        tactile_capture(cfg, "left", 12, None, tmp_path / "t2", timeout=1.0)
    with pytest.raises(CalibrationError, match="not configured"):
        tactile_capture(cfg, "middle", 12, "X", tmp_path / "t2", timeout=1.0)

    # The tactile node publishes (raw - mean) / max(std, noise_floor) with a stored baseline.
    from robot_rl.calibration.tactile import capture_baseline, save_baseline

    rng = np.random.default_rng(0)
    frames = 2.0 + 0.1 * rng.standard_normal((50, 4, 4))
    b = capture_baseline(frames, "DEMO-7")
    save_baseline(b, tmp_path / "tactile")
    node = TactileNode(TactileConfig(name="demo", serial="DEMO-7", backend="serial_taxel", shape=(4, 4)),
                       baseline_dir=str(tmp_path / "tactile"))
    got = []
    sub = client.node.create_subscription(Image, m.tactile_topic("demo"), got.append, m.SENSOR_QOS)
    raw = np.full((4, 4), 2.5, np.float32)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        node.publish_reading(raw, 1.0)
        time.sleep(0.1)
    client.node.destroy_subscription(sub)
    node.destroy_node()
    assert got, "no tactile message received"
    assert np.allclose(m.msg_to_image(got[-1]), b.apply(raw), atol=1e-5)
    with pytest.raises(CalibrationFileError, match="no tactile baseline"):
        TactileNode(TactileConfig(name="demo2", serial="UNKNOWN-1", shape=(4, 4)), baseline_dir=str(tmp_path / "tactile"))


def test_board_image_cli_writes_the_sim_texture(tmp_path):
    out = tmp_path / "board.png"
    assert calibrate_main(["board-image", "--board", BOARD_YAML, "--px-per-square", "64", "--margin-px", "32",
                           "--out", str(out)]) == 0
    assert out.read_bytes() == shared_file("sim", "assets", "calibration_board.png").read_bytes()
