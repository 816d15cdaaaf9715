"""Workspace box on joint targets: TCP excursion outside the box, before and after the path check.

For N random joint targets (uniform over the joint ranges widened by half a range on each side,
then clamped to the limits as the controller does) from random starting postures whose TCP is
inside the box, prints:
  before -- limit clamp only: the TCP's worst excursion along the straight joint-space path;
  after  -- robot_rl.robot.workspace.check_joint_path: the worst excursion along the admitted
            path, re-checked at ``--density`` times the density the check uses;
and the time one check takes. Real pinocchio kinematics of the configured arm. Then, closed
loop on the MuJoCo arm (``--sim`` targets, 3 s each, cube parked), the worst excursion of the
real TCP at any physics step: what tracking adds to the kinematic figure.

    python bench/workspace_box.py [--n 10000] [--density 8] [--sim 200] [--seed 0]
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
    parser.add_argument("--sim", type=int, default=200)
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
          f"worst excursion along the admitted path {after.max() * 1e6:.1f} µm "
          f"(p99.9 {np.percentile(after, 99.9) * 1e6:.1f} µm)")
    print(f"one check: {check_s / args.n * 1000:.2f} ms mean; bench wall "
          f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f}")
    if args.sim:
        closed_loop(cfg, box, args.sim, rng)


def closed_loop(cfg, box, n, rng) -> None:
    from robot_rl.robot.controller import CommandError
    from robot_rl.sim.world import SimWorld

    world = SimWorld(cfg)
    lo, hi = world.kin.limits.lower, world.kin.limits.upper
    worst, refused = [], 0
    for _ in range(n):
        world.reset()
        adr = world._cube_qpos
        world.data.qpos[adr:adr + 3] = [2.0, 2.0, 0.02]  # parked out of reach
        target = rng.uniform(lo - (hi - lo) / 2, hi + (hi - lo) / 2)
        try:
            world.controller.set_joint_target(target)
        except CommandError:
            refused += 1
        out = 0.0
        for _ in range(1500):
            world.step_physics(1)
            out = max(out, box.excursion(world.ee_pose()[0]))
        worst.append(out)
    worst = np.array(worst)
    print(f"closed loop (MuJoCo, {n} targets from home, 3 s each): worst real TCP excursion "
          f"{worst.max() * 1000:.2f} mm, p99 {np.percentile(worst, 99) * 1000:.2f} mm, "
          f"refused {refused}")
    world.close()


if __name__ == "__main__":
    main()
