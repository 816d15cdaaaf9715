"""How much of a deployed policy's success is lost to time: the same exported model through the
controller node on the MuJoCo stand-in, once with the sim paced by the wall clock (a real robot:
the world moves while the controller waits for its tick and runs the policy) and once in
lockstep (the world waits for each command: what the actor saw while training in lockstep), and
paced by the wall clock with the controller's tick grid locked to the stand-in's once-per-period
state stream (``deploy.sync_equal_rate``, ``deploy.sync_age_s``; control_loop.PhaseLock).

The run folder is a finished ``robot-rl demo [--rehearsal]`` run: its ``policy.onnx`` and its
deployment configuration (``config_deploy.yaml``; else ``config.yaml``). Each pacing runs
``--episodes`` episodes, ``--repeat`` times, interleaved (a load spike hits both alike); the
controller's latency and clamp counts come from its final figures line.

    ROS_DOMAIN_ID=77 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST MUJOCO_GL=egl \\
        python bench/deploy_timing.py --run-dir runs/reh13 [--episodes 50] [--repeat 1] \\
            [--variants realtime realtime:lock lockstep] [--lock-age 0.02]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robot_rl.config import load_config  # noqa: E402
from robot_rl.ros.controller_eval import evaluate_deployed_ros  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["realtime", "realtime:lock", "lockstep"],
                        help="sim pacing, ':lock' for the equal-rate phase lock")
    parser.add_argument("--lock-age", type=float, default=0.02, help="deploy.sync_age_s with ':lock'")
    parser.add_argument("--lock-input", default="",
                        help="deploy.sync_input with ':lock' (default: the last camera the stand-in "
                             "renders each period when images are observed, else ee_pose)")
    args = parser.parse_args()
    run = Path(args.run_dir)
    config = run / "config_deploy.yaml" if (run / "config_deploy.yaml").exists() else run / "config.yaml"
    cfg = load_config(str(config))
    lock_input = args.lock_input or (f"image_{cfg.cameras[-1].name}"
                                     if "images" in cfg.task.observations and cfg.cameras else "ee_pose")
    print(f"model {run / 'policy.onnx'}, config {config}, {args.episodes} episodes per pacing, "
          f"load {os.getloadavg()[0]:.1f}")
    results: dict[str, list[float]] = {variant: [] for variant in args.variants}
    for repeat in range(args.repeat):
        for variant in args.variants:
            rate, _, lock = variant.partition(":")
            deploy = replace(cfg.deploy, sync_equal_rate=True, sync_age_s=args.lock_age,
                             sync_input=lock_input) if lock else cfg.deploy
            work = run / "bench_deploy_timing" / f"{rate}{'_lock' if lock else ''}_{repeat}"
            episodes, figures = [], []
            start = time.monotonic()
            success = evaluate_deployed_ros(replace(cfg, deploy=deploy), run / "policy.onnx", args.episodes, work_dir=work,
                                            sim_rate=rate, episode_log=episodes,
                                            figures=figures)
            results[variant].append(success)
            steps = [s * cfg.control_rate_hz for outcome, s in episodes if outcome == "success"]
            mean_steps = sum(steps) / len(steps) if steps else float("nan")
            print(f"{variant:14s} run {repeat}: success {success:.2f}, mean steps to success "
                  f"{mean_steps:.1f}, {time.monotonic() - start:.0f} s wall, load "
                  f"{os.getloadavg()[0]:.1f}\n    controller: {figures[0] if figures else '-'}",
                  flush=True)
    for variant, values in results.items():
        print(f"{variant:14s}: " + " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
