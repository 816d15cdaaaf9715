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
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        print(
            "usage: robot-rl calibrate {intrinsics,handeye,tactile} [options]\n"
            "  intrinsics  camera matrix + distortion -> ROS camera_info YAML\n"
            "  handeye     eye-in-hand / eye-to-hand extrinsic -> static-transform YAML\n"
            "  tactile     no-contact baseline per sensor serial -> .npz + index.yaml",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    return importlib.import_module(STEPS[argv[0]]).main(argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
