"""``robot-rl calibrate <step> ...`` dispatcher.

The top-level ``robot-rl`` entry point (robot_rl.cli) forwards the arguments
after ``calibrate`` here: ``main(["intrinsics", "--images", ...])``.
"""

from __future__ import annotations

import sys
from typing import Sequence

STEPS = {
    "intrinsics": "robot_rl.calibration.intrinsics",
    "handeye": "robot_rl.calibration.handeye",
    "tactile": "robot_rl.calibration.tactile",
    # ROS 2 flows (robot_rl.calibration.ros_flow): module:function
    "capture": "robot_rl.calibration.ros_flow:main_capture",
    "guided": "robot_rl.calibration.ros_flow:main_guided",
    "solve": "robot_rl.calibration.ros_flow:main_solve",
    "tactile-capture": "robot_rl.calibration.ros_flow:main_tactile_capture",
    "board-image": "robot_rl.calibration.ros_flow:main_board_image",
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
    import importlib

    module, _, function = STEPS[argv[0]].partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
