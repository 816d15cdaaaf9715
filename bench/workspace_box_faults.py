"""The issue-18 fault cases: joint targets sent to the MuJoCo arm, worst TCP distance outside the
workspace box over 4 s (every 2 ms physics step), and what the controller reported.

Works with whichever robot_rl is importable, so the "before" column is reproduced with an older
checkout on PYTHONPATH (the script itself only uses APIs both have):

    python bench/workspace_box_faults.py                  # this checkout
    git worktree add /tmp/before 198bbaf
    PYTHONPATH=/tmp/before python bench/workspace_box_faults.py
"""
import numpy as np

from robot_rl.config import load_config
from robot_rl.sim.world import SimWorld

CASES = {  # offsets from home; the same targets as FAULTS in tests/test_workspace_box.py
    "inside limits: joint4 -2.4 -> -1.75": [0, 0, 0, 0.65, 0, 0, 0],
    "out of range: joint4 -2.4 -> +0.5 (limit -0.07)": [0, 0, 0, 2.9, 0, 0, 0],
    "out of range: joint2 -0.4 -> +2.5 (limit 1.76)": [0, 2.9, 0, 0, 0, 0, 0],
}


def main() -> None:
    cfg = load_config(None)
    lo, hi = np.array(cfg.controller.workspace_min), np.array(cfg.controller.workspace_max)
    world = SimWorld(cfg)
    for name, offset in CASES.items():
        world.reset(seed=0)
        adr = world._cube_qpos
        world.data.qpos[adr:adr + 3] = [2.0, 2.0, 0.02]  # cube parked out of reach
        try:
            report = world.controller.set_joint_target(np.array(cfg.robot.home) + offset)
            status = "; ".join(report.clamped) or "(no status)"
        except ValueError as exc:
            status = f"REJECTED: {exc}"
        worst = 0.0
        for _ in range(2000):
            world.step_physics(1)
            p = world.ee_pose()[0]
            worst = max(worst, float(np.linalg.norm(np.maximum(lo - p, 0) + np.maximum(p - hi, 0))))
        print(f"{name}: max TCP excursion {worst:.3f} m | {status[:240]}")
    world.close()


if __name__ == "__main__":
    main()
