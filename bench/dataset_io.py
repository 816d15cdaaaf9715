"""LeRobot v3.0 export/import of a 5,000-step run: time, size, round-trip equality.

The run: scripted-expert episodes of the MuJoCo pick task with both 128x128 cameras, state and
tactile (what `robot-rl record-demos` writes), until at least --steps transitions. It is
recorded once into --work (reused by later invocations). Then, --runs times each:
`export_lerobot` (replay directory -> LeRobot dataset, PNG images in parquet) and
`import_dataset` (-> replay directory), and a full comparison of every transition of the
import with the original (images bit for bit).

Usage: nice -n 10 python bench/dataset_io.py [--steps 5000] [--runs 3] [--work /tmp/dataset_io]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from robot_rl.config import load_config  # noqa: E402
from robot_rl.data.lerobot import expected_spec, export_lerobot, import_dataset  # noqa: E402
from robot_rl.learning.replay import ReplayBuffer, count_transitions  # noqa: E402


def folder_mib(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20


def record_run(cfg, out: str, steps: int) -> None:
    from robot_rl.learning.record_demos import record

    # Episodes are ~28 steps; record enough and trim nothing (whole episodes).
    episodes = max(1, int(np.ceil(steps / 26)))
    res = record(cfg, out, episodes, verbose=False)
    print(f"recorded {res['transitions']} transitions in {res['episodes']} episodes "
          f"({res['wall_s']:.0f} s)")


def same_transitions(a_dir: str, b_dir: str) -> tuple[bool, int]:
    n = count_transitions(a_dir)
    a = ReplayBuffer.load(a_dir, capacity=2 * n, resume=False, verbose=False)
    b = ReplayBuffer.load(b_dir, capacity=2 * n, resume=False, verbose=False)
    if len(a) != n or len(b) != n:
        return False, min(len(a), len(b))
    for start in range(0, n, 500):
        idx = np.arange(start, min(n, start + 500))
        x, y = a.get(idx), b.get(idx)
        for key in ("action", "reward", "terminated", "truncated", "actor_id", "intervened"):
            if not np.array_equal(x[key].numpy(), y[key].numpy()):
                return False, start
        for side in ("obs", "next_obs"):
            for key in x[side]:
                if not np.array_equal(x[side][key].numpy(), y[side][key].numpy()):
                    return False, start
    return True, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--work", default="/tmp/robot_rl_dataset_io")
    args = p.parse_args(argv)
    cfg = load_config(None, {"task.observations": ["state", "tactile", "images"]})
    spec, action_dim, names = expected_spec(cfg)
    src = os.path.join(args.work, "run")
    if not os.path.isdir(src) or count_transitions(src) < args.steps:
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(args.work, exist_ok=True)
        record_run(cfg, src, args.steps)
    n = count_transitions(src)
    print(f"source: {n} transitions, replay directory {folder_mib(src):.1f} MiB "
          f"(observation {', '.join(k + str(s['shape']) for k, s in spec.items())})")
    export_s, import_s = [], []
    for run in range(args.runs):
        ds, back = os.path.join(args.work, "lerobot"), os.path.join(args.work, "imported")
        shutil.rmtree(ds, ignore_errors=True)
        shutil.rmtree(back, ignore_errors=True)
        t0 = time.perf_counter()
        out = export_lerobot(src, ds, fps=cfg.control_rate_hz, action_names=names)
        export_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        imp = import_dataset(ds, back, spec, action_dim)
        import_s.append(time.perf_counter() - t0)
        ok, count = same_transitions(src, back)
        print(f"run {run + 1}: export {export_s[-1]:.1f} s ({out['frames']} frames, "
              f"{out['episodes']} episodes, {folder_mib(ds):.1f} MiB), import {import_s[-1]:.1f} s "
              f"({imp['transitions']} transitions, {folder_mib(back):.1f} MiB), round trip "
              f"{'identical' if ok else 'DIFFERS at ' + str(count)} ({count} transitions compared)")
        if not ok:
            return 1
    per_k = lambda s: 1000 * s / n  # noqa: E731
    print(f"export: {min(export_s):.1f}-{max(export_s):.1f} s ({per_k(min(export_s)):.2f}-"
          f"{per_k(max(export_s)):.2f} s per 1,000 steps); import: {min(import_s):.1f}-{max(import_s):.1f} s; "
          f"dataset {folder_mib(ds):.1f} MiB vs replay {folder_mib(src):.1f} MiB "
          f"({folder_mib(ds) / folder_mib(src):.2f}x); load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
