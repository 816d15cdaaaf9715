"""Cost of the learner's write-ahead log per received message: ``learner.wal_fsync: batch``
(fsync before acknowledging) vs ``none`` (write only), and the actor outbox's append.

    PYTHONPATH=. python bench/wal_fsync.py [--messages 300] [--repeats 3] [--dir /path/on/disk]

Each message is one transition (``actor.send_every: 1``, the default) of the state-only pick
task, or of a task with two 128x128 cameras. Worst case for ``batch``: one message per
drained group, so one fsync per message (a busy learner drains several per fsync). Times are
per message, the median of ``--repeats`` runs, on the disk holding ``--dir`` (default: a
temporary folder). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from robot_rl import transport
from robot_rl.learning.intake import Intake
from robot_rl.learning.outbox import Outbox

SPECS = {
    "state-only": {"state": {"shape": [8], "dtype": "float32"},
                   "object": {"shape": [6], "dtype": "float32"}},
    "2x128x128 cameras": {"state": {"shape": [8], "dtype": "float32"},
                          "front": {"shape": [128, 128, 3], "dtype": "uint8"},
                          "wrist": {"shape": [128, 128, 3], "dtype": "uint8"}},
}


def message(spec, step):
    def frame(v):
        return {k: np.full(s["shape"], v % 200, s["dtype"]) for k, s in spec.items()}
    rec = transport.StepRecord(np.zeros(4, np.float32), 0.0, frame(step + 1), False, False,
                               episode=0, step=step, obs=frame(step))
    data = transport.encode_transitions([rec], 0, step, step, spec, step)
    return data, transport.decode_transitions(data, spec, 4)


def run_intake(folder, spec, n, fsync):
    msgs = [message(spec, i) for i in range(n)]
    intake = Intake(folder, lambda: (0, 0), None, fsync)
    t = time.perf_counter()
    for data, batch in msgs:
        intake.ingest(data, batch, lambda arrivals: None)
        intake.commit()
    dt = (time.perf_counter() - t) / n
    intake.close()
    return dt, len(msgs[0][0])


def run_outbox(folder, spec, n):
    msgs = [message(spec, i)[0] for i in range(n)]
    box = Outbox(folder)
    t = time.perf_counter()
    for i, data in enumerate(msgs):
        box.add(i, 1, 0, data)
    dt = (time.perf_counter() - t) / n
    box.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="wal_bench_")
    print(f"disk of {root}; {args.messages} messages x {args.repeats} runs; load average "
          f"{os.getloadavg()[0]:.2f}")
    for name, spec in SPECS.items():
        res = {}
        for policy in ("none", "batch"):
            times = []
            for r in range(args.repeats):
                d = tempfile.mkdtemp(dir=root)
                dt, size = run_intake(d, spec, args.messages, policy)
                times.append(dt)
            res[policy] = statistics.median(times)
            spread = f"{min(times) * 1e6:.0f}-{max(times) * 1e6:.0f}"
            print(f"  {name:18s} ({size / 1024:6.1f} KiB/msg) learner WAL fsync={policy:5s}: "
                  f"{res[policy] * 1e6:8.0f} us/message (runs {spread})")
        print(f"  {name:18s} fsync per message costs {res['batch'] / res['none']:.1f}x the "
              f"write-only log (+{(res['batch'] - res['none']) * 1e3:.2f} ms)")
        ob = statistics.median(run_outbox(tempfile.mkdtemp(dir=root), spec, args.messages)
                               for _ in range(args.repeats))
        print(f"  {name:18s} actor outbox append (write, no fsync): {ob * 1e6:.0f} us/message")


if __name__ == "__main__":
    main()
