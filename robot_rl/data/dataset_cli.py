"""``robot-rl dataset export|import``: LeRobot v3.0 datasets from and to replay directories.

    robot-rl dataset export runs/train/replay datasets/pick      # any replay dir or demos folder
    robot-rl dataset import datasets/pick demos/imported         # LeRobot dataset -> demonstrations
    robot-rl dataset import runs/rec/session.mcap demos/from_rec # /rl/transitions of a recording

The configuration (``--config``/``--set``) gives the expected observation shapes and action
size for imports and the frame rate and action names for exports.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from robot_rl.cli import parse_sets
    from robot_rl.config import load_config
    from robot_rl.data.lerobot import DEFAULT_TASK, expected_spec, export_lerobot, import_dataset
    from robot_rl.schema import ConfigError

    parser = argparse.ArgumentParser(prog="robot-rl dataset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    export = sub.add_parser("export", help="replay/demonstration directory -> LeRobot v3.0 dataset")
    export.add_argument("src", help="replay directory (with manifest.json), or a learner run_dir")
    export.add_argument("out", help="new dataset folder")
    export.add_argument("--fps", type=float, default=0.0,
                        help="frame rate (default: control_rate_hz of the configuration)")
    export.add_argument("--task", default=DEFAULT_TASK, help="task description stored per episode")
    imp = sub.add_parser("import", help="LeRobot v3.0 dataset or .mcap recording -> demonstrations")
    imp.add_argument("src", help="dataset folder (meta/info.json) or .mcap file with /rl/transitions")
    imp.add_argument("out", help="new replay directory (use it as learner.demos)")
    imp.add_argument("--intervened-only", action="store_true",
                     help="keep only the steps a human drove (intervention true)")
    for p in (export, imp):
        p.add_argument("--config", default="", help="YAML configuration (default: built-in)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config or None, parse_sets(args.set))
        spec, action_dim, action_names = expected_spec(cfg)
        if args.action == "export":
            src = args.src
            if not os.path.isfile(os.path.join(src, "manifest.json")) and \
                    os.path.isfile(os.path.join(src, "replay", "manifest.json")):
                src = os.path.join(src, "replay")  # a learner's run_dir: its online replay
                print(f"[dataset] exporting {src}")
            res = export_lerobot(src, args.out, fps=args.fps or cfg.control_rate_hz,
                                 task=args.task, action_names=action_names)
            print(f"[dataset] exported {res['transitions']} transitions in {res['episodes']} episodes "
                  f"({res['frames']} frames, {res['bytes'] / 2**20:.1f} MiB, {res['wall_s']:.1f} s) "
                  f"to {res['out']}")
        else:
            res = import_dataset(args.src, args.out, spec, action_dim,
                                 intervened_only=args.intervened_only)
            print(f"[dataset] imported {res['transitions']} transitions ({res['episodes']} episodes) "
                  f"from {args.src} ({res['kind']}) to {res['out']} in {res['wall_s']:.1f} s")
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"[dataset] error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
