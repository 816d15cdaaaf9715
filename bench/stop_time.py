"""How long SIGTERM (or SIGINT) takes to stop `robot-rl up --profile train`, per node.

    PYTHONPATH=. python bench/stop_time.py [--runs 3] [--signal TERM] [--train-s 10]

Each run starts the training graph (MuJoCo stand-in, learner, actor, simulated human; state
observations, small networks, a run keystore), waits until the learner trains, lets it train
for --train-s seconds, sends the signal to `robot-rl up`'s main process and polls /proc until
every process of the graph is gone. Prints, per run, the 1-minute load average, the time until
each node process exited and until everything was gone, and whether the 5 s target was met
(issue 19). Timing depends on load: the test suite only guards against hangs
(tests/ros/test_signals.py), this script measures.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robot_rl.launcher import alive, descendants  # noqa: E402

TARGET_S = 5.0
LIGHT = ["--set", "cameras=[]", "--set", "task.observations=[state,object,tactile]",
         "--set", "agent.num_critics=2", "--set", "agent.utd_ratio=2",
         "--set", "learner.min_online=64"]


def children(pid: int) -> dict[int, str]:
    """Descendants of ``pid``: pid -> node module name."""
    out = {}
    for child in descendants(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        out[child] = next((c.decode().rsplit(".", 1)[-1] for c in cmd
                           if c.startswith(b"robot_rl.ros.")), str(child))
    return out


def one_run(sig: int, train_s: float, work: Path) -> dict:
    log = work / "up.log"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "up", "--profile", "train",
                             "--run-dir", str(work / "run"), *LIGHT,
                             "--set", f"learner.run_dir={work / 'run' / 'train'}"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=work)
    deadline = time.monotonic() + 300
    while "training starts" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"graph did not start training; see {log}")
        time.sleep(0.5)
    time.sleep(train_s)
    family = children(proc.pid)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    os.kill(proc.pid, sig)
    exited: dict[str, float] = {}
    while any(alive(p) for p in family) or proc.poll() is None:
        for pid, name in family.items():
            if name not in exited and not alive(pid):
                exited[name] = time.monotonic() - t0
        if time.monotonic() - t0 > 120:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    total = time.monotonic() - t0
    for pid, name in family.items():
        exited.setdefault(name, total)
    proc.wait()
    return {"load": load, "total": total, "nodes": exited, "code": proc.returncode,
            "traceback": "Traceback" in log.read_text(errors="replace")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signal", choices=["TERM", "INT"], default="TERM")
    parser.add_argument("--train-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    sig = getattr(signal, f"SIG{args.signal}")
    totals = []
    for i in range(args.runs):
        r = one_run(sig, args.train_s, Path(tempfile.mkdtemp(prefix="stop_time_")))
        totals.append(r["total"])
        nodes = ", ".join(f"{n} {t:.1f} s" for n, t in sorted(r["nodes"].items(),
                                                              key=lambda kv: kv[1]))
        print(f"run {i + 1}: load {r['load']:.1f}, SIG{args.signal} -> all gone in "
              f"{r['total']:.1f} s ({nodes}); exit code {r['code']}; "
              f"traceback {'YES' if r['traceback'] else 'no'}", flush=True)
    print(f"median {statistics.median(totals):.1f} s, max {max(totals):.1f} s; target "
          f"{TARGET_S:g} s met in {sum(t < TARGET_S for t in totals)}/{len(totals)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
