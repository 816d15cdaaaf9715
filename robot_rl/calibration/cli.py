"""``robot-rl calibrate <step> ...`` dispatcher and the commands of the capture/solve flows.

The top-level ``robot-rl`` entry point (robot_rl.cli) forwards the arguments
after ``calibrate`` here: ``main(["intrinsics", "--images", ...])``. The offline steps
(intrinsics, handeye, tactile) are the library modules' own ``main``; the flows over a capture
folder (capture, guided, solve, tactile-capture, board-image) are below. The three live ones
(capture, guided, tactile-capture) reach the robot over ROS 2 through
:mod:`robot_rl.ros.calibration_client`, imported by name only when such a step runs, so this
package stays importable and testable without rclpy (``robot_rl.ros`` depends on it, not the
reverse).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from .errors import CalibrationError
from .transforms import make_T, quat_to_matrix

#: The ROS 2 transport of the live steps (a RobotLink node and the tactile subscriber).
ROS_CLIENT_MODULE = "robot_rl.ros.calibration_client"


def _parse_T(text: str, what: str) -> np.ndarray:
    """``x,y,z,qx,qy,qz,qw`` or an extrinsic YAML (parent/child/translation/rotation)."""
    p = Path(text)
    if p.is_file():
        from .handeye import load_extrinsic

        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "pose_in_base" in data:
            data = data["pose_in_base"]
        return load_extrinsic(data).T
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 7:
        raise CalibrationError(f"{what}: expected x,y,z,qx,qy,qz,qw or an extrinsic YAML file, got {text!r}")
    q = np.array(v[3:])
    if abs(np.linalg.norm(q) - 1) > 1e-3:
        raise CalibrationError(f"{what}: quaternion (xyzw) must be unit length, got |q|={np.linalg.norm(q):.4f}")
    return make_T(quat_to_matrix(q), v[:3])


def _parse_roi(text: str | None, image_size=None):
    if not text:
        return None
    v = [float(x) for x in text.split(",")]
    if len(v) != 4:
        raise CalibrationError(f"--roi needs x0,y0,x1,y1, got {text!r}")
    return tuple(int(x) for x in v)


def _config(args):
    from robot_rl.cli import parse_sets
    from robot_rl.config import load_config

    return load_config(args.config or None, parse_sets(args.set))


def _common(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", default="", help="robot_rl YAML configuration (default: built-in)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def _ros_client():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return importlib.import_module(ROS_CLIENT_MODULE)


def _run(fn) -> int:
    from robot_rl.schema import ConfigError

    try:
        return fn() or 0
    except (CalibrationError, ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"calibration failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main_capture(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate capture --camera wrist --board ... --out DIR``."""
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate capture",
                                 description="Capture board views + joint states from a live camera topic.")
    ap.add_argument("--camera", required=True)
    add_board_arguments(ap)
    ap.add_argument("--out", required=True, help="capture folder (PNG + capture.json)")
    ap.add_argument("--views", type=int, default=20, help="stop after this many views once every region is covered")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--roi", default=None, help="usable image rectangle x0,y0,x1,y1 (px) for coverage")
    ap.add_argument("--max-speed", type=float, nargs=2, default=(0.002, 0.01), metavar=("M_PER_S", "RAD_PER_S"),
                    help="end-effector speed above which a frame is skipped (robot moving)")
    ap.add_argument("--solve", action="store_true", help="solve intrinsics + hand-eye afterwards")
    ap.add_argument("--mode", default="eye_in_hand", choices=["eye_in_hand", "eye_to_hand", "none"])
    ap.add_argument("--out-dir", default="calibration")
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        from .capture_flow import interactive_capture
        from .solve import solve_capture

        cfg = _config(args)
        board = board_from_args(args)
        client = _ros_client().RobotCameraClient(cfg, args.camera)
        try:
            interactive_capture(client, board, args.out, args.views, args.timeout, _parse_roi(args.roi),
                                tuple(args.max_speed))
        finally:
            client.close()
        if args.solve:
            solve_capture(args.out, args.out_dir, args.mode)
        return 0

    return _run(go)


def main_guided(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate guided --camera wrist --board ... --nominal-mount ... --out DIR [--solve]``."""
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate guided",
                                 description="Drive the arm through planned views (eye-in-hand), capture, solve.")
    ap.add_argument("--camera", required=True)
    add_board_arguments(ap)
    ap.add_argument("--nominal-mount", required=True,
                    help="rough T_ee_cam (optical frame) relative to robot.ee_frame: x,y,z,qx,qy,qz,qw or an extrinsic YAML")
    ap.add_argument("--board-pose", default=None,
                    help="T_base_board (x,y,z,qx,qy,qz,qw or YAML with pose_in_base); default: from the first view")
    ap.add_argument("--out", required=True)
    ap.add_argument("--views", type=int, default=15)
    ap.add_argument("--min-views", type=int, default=8)
    ap.add_argument("--roi", default=None, help="usable image rectangle x0,y0,x1,y1 (px)")
    ap.add_argument("--roll", type=float, default=0.0, help="board roll in the image, deg (90 fits a tall --roi)")
    ap.add_argument("--fill", type=float, default=0.6, help="board width / roi width in the image")
    ap.add_argument("--move-timeout", type=float, default=20.0)
    ap.add_argument("--solve", action="store_true")
    ap.add_argument("--out-dir", default="calibration")
    ap.add_argument("--parent-frame", default=None, help="extrinsic parent (default robot.ee_frame), e.g. panda_hand")
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        from .capture_flow import guided_capture
        from .solve import solve_capture

        cfg = _config(args)
        board = board_from_args(args)
        T_ee_cam = _parse_T(args.nominal_mount, "--nominal-mount")
        T_base_board = _parse_T(args.board_pose, "--board-pose") if args.board_pose else None
        client = _ros_client().RobotCameraClient(cfg, args.camera)
        try:
            guided_capture(client, board, args.out, T_ee_cam, T_base_board, args.views, _parse_roi(args.roi),
                           args.roll, args.fill, args.move_timeout, min_views=args.min_views)
        finally:
            client.close()
        if args.solve:
            solve_capture(args.out, args.out_dir, "eye_in_hand", parent_frame=args.parent_frame)
        return 0

    return _run(go)


def main_solve(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate solve --capture DIR [--mode eye_in_hand] [--out-dir calibration]``."""
    ap = argparse.ArgumentParser(prog="robot-rl calibrate solve",
                                 description="Intrinsics + hand-eye (FK of the stored joint states) from a capture folder.")
    ap.add_argument("--capture", required=True)
    ap.add_argument("--mode", default="eye_in_hand", choices=["eye_in_hand", "eye_to_hand", "none"])
    ap.add_argument("--out-dir", default="calibration")
    ap.add_argument("--parent-frame", default=None)
    ap.add_argument("--child-frame", default=None, help="default: the image frame_id (<camera>_optical_frame)")
    ap.add_argument("--use-camera-info", action="store_true", help="trust the captured camera_info, skip intrinsics")
    ap.add_argument("--estimate-k3", action="store_true", help="also estimate k3 (default fixed at 0)")
    args = ap.parse_args(argv)
    from .solve import solve_capture

    return _run(lambda: (solve_capture(args.capture, args.out_dir, args.mode, args.parent_frame, args.child_frame,
                                       fix_k3=not args.estimate_k3, use_camera_info=args.use_camera_info), 0)[1])


def main_tactile_capture(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate tactile-capture --sensor left [--frames 100] [--serial SN]``."""
    ap = argparse.ArgumentParser(prog="robot-rl calibrate tactile-capture",
                                 description="No-contact baseline of a tactile sensor from its live topic.")
    ap.add_argument("--sensor", required=True)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--serial", default=None, help="default: tactile[].serial from the configuration")
    ap.add_argument("--out-dir", default="calibration/tactile")
    ap.add_argument("--timeout", type=float, default=60.0)
    _common(ap)
    args = ap.parse_args(argv)

    def go():
        _ros_client().tactile_capture(_config(args), args.sensor, args.frames, args.serial, args.out_dir, args.timeout)
        return 0

    return _run(go)


def main_board_image(argv: Sequence[str] | None = None) -> int:
    """``robot-rl calibrate board-image --board ... --out board.png`` (print or sim texture)."""
    import cv2

    from .board import render_board_image
    from .intrinsics import add_board_arguments, board_from_args

    ap = argparse.ArgumentParser(prog="robot-rl calibrate board-image")
    add_board_arguments(ap)
    ap.add_argument("--out", required=True)
    ap.add_argument("--px-per-square", type=int, default=80)
    ap.add_argument("--margin-px", type=int, default=None, help="white margin (default one square)")
    args = ap.parse_args(argv)

    def go():
        board = board_from_args(args)
        img = render_board_image(board, args.px_per_square, args.margin_px)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(args.out, img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise CalibrationError(f"could not write {args.out}")
        h, w = img.shape[:2]
        s = board.square_size / args.px_per_square
        print(f"wrote {args.out}: {w}x{h} px = {w * s:.4f} x {h * s:.4f} m at {board.square_size} m per square")
        return 0

    return _run(go)


STEPS = {
    "intrinsics": "robot_rl.calibration.intrinsics",
    "handeye": "robot_rl.calibration.handeye",
    "tactile": "robot_rl.calibration.tactile",
    "capture": main_capture,
    "guided": main_guided,
    "solve": main_solve,
    "tactile-capture": main_tactile_capture,
    "board-image": main_board_image,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        print(
            "usage: robot-rl calibrate {" + ",".join(STEPS) + "} [options]\n"
            "  intrinsics       camera matrix + distortion -> ROS camera_info YAML (from an image folder)\n"
            "  handeye          eye-in-hand / eye-to-hand extrinsic -> static-transform YAML (images + poses file)\n"
            "  tactile          no-contact baseline per sensor serial -> .npz + index.yaml (from a .npy)\n"
            "  capture          live: keep sharp board views + joint states from /camera/<name>/image_raw\n"
            "  guided           live: drive the arm through planned views (/robot/ee_target), capture, [--solve]\n"
            "  solve            capture folder -> camera_info + extrinsic (pinocchio FK of the joint states) + config snippet\n"
            "  tactile-capture  live: N no-contact frames of /tactile/<name>/image -> baseline by serial\n"
            "  board-image      board PNG for printing or a simulator texture",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    step = STEPS[argv[0]]
    if callable(step):
        return step(argv[1:])
    return importlib.import_module(step).main(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
