"""Workspace box on joint targets: TCP excursion outside the box, before and after the path check.

For N random joint targets (uniform over the joint ranges widened by half a range on each side,
then clamped to the limits as the controller does) from random starting postures whose TCP is
inside the box, prints:
  before -- limit clamp only: the TCP's worst excursion along the straight joint-space path;
  after  -- robot_rl.robot.workspace.check_joint_path: the worst excursion along the admitted
            path, re-checked at ``--density`` times the density the check uses;
and the time one check takes. Real pinocchio kinematics of the configured arm.

    python bench/workspace_box.py [--n 10000] [--density 8] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from robot_rl.config import Config
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.robot.workspace import MAX_JOINT_STEP, WorkspaceBox, check_joint_path, path_points


def worst_excursion(kin, box, q_start, q_end, step):
    return max(box.excursion(kin.forward(q).translation) for q in path_points(q_start, q_end, step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--density", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = Config()
    kin = ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)
    box = WorkspaceBox(cfg.controller.workspace_min, cfg.controller.workspace_max)
    lo, hi = kin.limits.lower, kin.limits.upper
    home = np.array(cfg.robot.home)
    rng = np.random.default_rng(args.seed)
    before, after, at_target = [], [], []
    changed = refused = 0
    check_s = 0.0
    fine = MAX_JOINT_STEP / args.density
    started = time.perf_counter()
    for _ in range(args.n):
        while True:
            start = np.clip(home + rng.normal(0.0, 0.5, 7), lo, hi)
            if box.excursion(kin.forward(start).translation) == 0.0:
                break
        target = np.clip(rng.uniform(lo - (hi - lo) / 2, hi + (hi - lo) / 2), lo, hi)
        t0 = time.perf_counter()
        result = check_joint_path(kin, box, start, target)
        check_s += time.perf_counter() - t0
        changed += result.changed
        refused += result.refused
        at_target.append(box.excursion(kin.forward(target).translation))
        before.append(worst_excursion(kin, box, start, target, MAX_JOINT_STEP))
        after.append(worst_excursion(kin, box, start, result.target, fine))
    before, after, at_target = map(np.array, (before, after, at_target))
    print(f"{args.n} random joint targets, box {box.describe()} m, check step "
          f"{MAX_JOINT_STEP} rad, re-checked at {fine:.5f} rad")
    print(f"before (joint limits only): TCP outside the box at the target for "
          f"{np.mean(at_target > 0):.1%}; worst excursion at the target {at_target.max():.3f} m, "
          f"along the path {before.max():.3f} m (median of those that leave "
          f"{np.median(before[before > 0]):.3f} m)")
    print(f"after (path check): changed {changed} ({changed / args.n:.1%}), refused {refused}; "
          f"worst excursion along the admitted path {after.max() * 1000:.3f} mm "
          f"(p99.9 {np.percentile(after, 99.9) * 1000:.3f} mm)")
    print(f"one check: {check_s / args.n * 1000:.2f} ms mean; bench wall "
          f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
