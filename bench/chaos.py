"""Chaos run of the training graph: kill -9 the learner, the simulator and actors at random
moments and count what was lost.

    PYTHONPATH=. nice -n 10 python bench/chaos.py [--minutes 10] [--learner-kills 5]
        [--sim-kills 3] [--actor-kills 3] [--seed 0] [--out chaos.json]

Run it from the checkout under test (to measure another build: ``cd`` there, set PYTHONPATH to
it and give this script's path): nodes start as ``python -m`` and import ``robot_rl`` from the
current folder first.

Graph: the MuJoCo stand-in (sim.rate realtime, 10 Hz), a learner and two actors (actor ids 0
and 1, sharing the simulated robot), each its own process on a private DDS domain, state-only
pick task with small networks so the 2-core machine keeps up. Kills (SIGKILL) are spread
uniformly at random over 10-85 % of the run; a killed node is started again after
``--restart-delay`` s, as a supervisor would (the learner with ``--resume``). A node that exits
by itself is counted and restarted too. At the end the simulator is stopped, the actors are
given time to get everything acknowledged, then every node gets SIGINT.

Prints: transitions produced by the actors (their outbox numbering, or, for builds without
outboxes, the highest ``sent`` each actor process reported) vs transitions in the replay
(distinct (actor, actor step) pairs and duplicates where the chunks record origins), weight-
version regressions (a lower version of the same run on /rl/actor_weights, and an actor
applying a lower version than it held within one process), the time from each kill until the
learner trains on fresh data again (its update count and env-step count both rising; median,
p95, max, per kind), node exits during the run, and nodes left hanging after SIGINT at the end
(alive 30 s later, or processes of this run still present).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 200)))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String, UInt8MultiArray  # noqa: E402

from robot_rl import transport  # noqa: E402
from robot_rl.config import load_config, save_config  # noqa: E402
from robot_rl.graph import NodeSpec, graph  # noqa: E402
from robot_rl.launcher import NodeGraph  # noqa: E402
from robot_rl.learning.replay import count_transitions  # noqa: E402

CONFIG = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
          "task.max_episode_steps": 50, "sim.rate": "realtime", "hil.device": "none",
          "agent.hidden_dims": [64, 64], "agent.num_critics": 2, "agent.batch_size": 64,
          "agent.utd_ratio": 1, "learner.min_online": 100, "learner.log_every": 1.0,
          "learner.tensorboard": False,
          # a simulator down for a while (or starting slowly on a loaded machine) is waited for
          "actor.max_reset_failures": 1000}
ACTORS = (0, 1)


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


class Monitor:
    def __init__(self):
        self.node = rclpy.create_node("chaos_monitor")
        self.learner = []  # (t, updates, env_steps, learner_id)
        self.actor_max_sent = {}  # (actor, incarnation) -> max "sent"
        self.actor_status = {}
        self.actor_versions = {}  # (actor, incarnation) -> last applied (run, version)
        self.incarnation = {a: 0 for a in ACTORS}
        self.applied_regressions = 0
        self.weights = []  # (t, run, version)
        self.node.create_subscription(String, "/rl/learner_status", self._on_learner, 50)
        self.node.create_subscription(String, "/rl/actor_status", self._on_actor, 50)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(UInt8MultiArray, "/rl/actor_weights", self._on_weights, qos)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)

    def _on_learner(self, msg):
        try:
            s = json.loads(msg.data)
            self.learner.append((time.monotonic(), s["updates"], s["env_steps"], s["learner_id"]))
        except (ValueError, KeyError):
            pass

    def _on_actor(self, msg):
        try:
            s = json.loads(msg.data)
        except ValueError:
            return
        a = s.get("actor_id")
        if a not in self.incarnation:
            return
        key = (a, self.incarnation[a])
        self.actor_status[a] = s
        self.actor_max_sent[key] = max(self.actor_max_sent.get(key, 0), int(s.get("sent", 0)))
        # builds before run ids: one run (a restarted learner's lower version is a regression)
        run, version = s.get("weights_run", ""), s.get("weights_version", 0)
        prev = self.actor_versions.get(key)
        if prev is not None and version < prev[1] and run == prev[0] and version > 0:
            self.applied_regressions += 1
        self.actor_versions[key] = (run, version)

    def _on_weights(self, msg):
        try:
            _, meta, _ = transport.unpack(transport.from_msg(msg))
            self.weights.append((time.monotonic(), meta.get("run", ""),
                                 int(meta["version"])))
        except (transport.TransportError, KeyError, ValueError):
            pass

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.05)

    def version_regressions(self):
        best, n = {}, 0
        for _, run, v in self.weights:
            if v < best.get(run, 0):
                n += 1
            best[run] = max(best.get(run, 0), v)
        return n

    def resumed_at(self, t_kill):
        """First time after ``t_kill`` the learner's updates and env steps both rose."""
        after = [s for s in self.learner if s[0] > t_kill]
        for i, s in enumerate(after):
            for s0 in after[:i]:
                if s0[3] == s[3] and s[1] > s0[1] and s[2] > s0[2]:
                    return s[0]
        return None

    def close(self):
        self.ex.shutdown()
        self.node.destroy_node()


def count_delivery(work: Path) -> dict:
    """Transitions the actors numbered vs those in the replay folder (chunks + write-ahead
    log) and those still held unacknowledged in the actors' outboxes."""
    replay = str(work / "run" / "replay")
    stored = count_transitions(replay)
    produced, distinct, duplicates, held, origins, lost = None, None, None, 0, False, None
    outbox_root = work / "run" / "actors"
    if outbox_root.is_dir():
        from robot_rl.learning.intake import WAL_NAME, _read_wal
        from robot_rl.learning.outbox import Outbox
        from robot_rl.learning.replay import read_origins

        o = read_origins(replay)
        known = o["actor_step"] >= 0
        rows = list(zip(o["actor_id"][known].tolist(), o["actor_step"][known].tolist()))
        pairs = set(rows)
        duplicates = len(rows) - len(pairs)
        for data in _read_wal(os.path.join(replay, WAL_NAME))[0]:  # logged, not yet in a chunk
            _, meta, _ = transport.unpack(data)
            pairs.update((meta["actor_id"], meta["first_step"] + i) for i in range(meta["count"]))
        produced_pairs, held_pairs = set(), set()
        for a in ACTORS:
            box = Outbox(str(outbox_root / f"actor_{a}"))
            produced_pairs.update((a, i) for i in range(box.next_step))
            held_pairs.update((a, e.first_step + i) for e in box.entries for i in range(e.count))
        produced, distinct, origins = len(produced_pairs), len(pairs), True
        held = len((produced_pairs - pairs) & held_pairs)  # unacknowledged, still in an outbox
        lost = len(produced_pairs - pairs - held_pairs)
    wal_rows = (distinct - len(rows) + duplicates) if origins else 0
    return {"produced": produced, "stored": stored, "distinct": distinct,
            "duplicates": duplicates, "held": held, "lost": lost, "origins": origins,
            "wal_rows": wal_rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--learner-kills", type=int, default=5)
    ap.add_argument("--sim-kills", type=int, default=3)
    ap.add_argument("--actor-kills", type=int, default=3)
    ap.add_argument("--restart-delay", type=float, default=2.0)
    ap.add_argument("--drain", type=float, default=300.0,
                    help="s at the end for the actors to get everything acknowledged")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="chaos_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, {**CONFIG, "learner.run_dir": str(work / "run")})
    path = str(work / "config.yaml")
    save_config(cfg, path)
    logs = work / "logs"
    base = {"config_file": path}
    specs = {"sim": graph(cfg, path)[0],
             "learner": NodeSpec("learner", "learner", "robot_rl.ros.learner_node", dict(base))}
    for a in ACTORS:
        specs[f"actor_{a}"] = NodeSpec(f"actor_{a}", "actor", "robot_rl.ros.actor_node",
                                       {**base, "actor.actor_id": a})
    running = {}
    started_learner = [False]

    def start(name):
        spec = specs[name]
        if name == "learner" and started_learner[0]:
            spec = NodeSpec(spec.name, spec.executable, spec.module,
                            {**spec.parameters, "learner.resume": True})
        running[name] = NodeGraph([spec], log_dir=logs).start()
        started_learner[0] |= name == "learner"
        if name.startswith("actor_"):
            mon.incarnation[int(name.split("_")[1])] += 1

    duration = args.minutes * 60.0
    kinds = (["learner"] * args.learner_kills + ["sim"] * args.sim_kills
             + ["actor"] * args.actor_kills)
    times = sorted(rng.uniform(0.10, 0.85) * duration for _ in kinds)
    rng.shuffle(kinds)
    schedule = list(zip(times, kinds))
    print(f"chaos: {args.minutes:g} min, workdir {work}, ROS_DOMAIN_ID "
          f"{os.environ['ROS_DOMAIN_ID']}, kills at "
          + ", ".join(f"{t:.0f}s {k}" for t, k in schedule), flush=True)

    rclpy.init()
    mon = Monitor()
    kills, exits = [], []
    for name in specs:
        start(name)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < duration:
            mon.spin(0.2)
            now = time.monotonic() - t0
            for name, g in list(running.items()):  # a node that exited by itself
                if g.failed():
                    code = g.processes[specs[name].name].returncode
                    exits.append((round(now, 1), name, code))
                    print(f"  {now:6.1f}s {name} exited by itself with code {code}; restarting",
                          flush=True)
                    g.stop()
                    start(name)
            if schedule and now >= schedule[0][0]:
                _, kind = schedule.pop(0)
                name = {"learner": "learner", "sim": "sim"}.get(kind) or f"actor_{rng.choice(ACTORS)}"
                g = running[name]
                proc = g.processes[specs[name].name]
                proc.kill()
                proc.wait()
                g.stop()
                t_kill = time.monotonic()
                kills.append({"t": round(now, 1), "node": name, "kind": kind, "t_mono": t_kill})
                print(f"  {now:6.1f}s kill -9 {name}", flush=True)
                mon.spin(args.restart_delay)
                start(name)
        # drain: no more steps, give the actors time to get every transition acknowledged
        running["sim"].stop()
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            mon.spin(0.5)
            st = [mon.actor_status.get(a, {}) for a in ACTORS]
            if all(s.get("unacked_steps", 1) == 0 and s.get("state") != "running" for s in st):
                break
    finally:
        hanging = 0
        for name, g in running.items():
            for p in g.processes.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        for name, g in running.items():
            for p in g.processes.values():
                try:
                    p.wait(30.0)
                except Exception:
                    hanging += 1
                    print(f"  {name} still running 30 s after SIGINT", flush=True)
            g.stop()
        mon.spin(0.5)
        mon.close()
        rclpy.try_shutdown()
    leftovers = 0
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit():
            try:
                if path.encode() in (proc_dir / "cmdline").read_bytes():
                    leftovers += 1
            except OSError:
                pass

    d = count_delivery(work)
    produced, stored, distinct, duplicates, held, lost, origins, wal_rows = (
        d[k] for k in ("produced", "stored", "distinct", "duplicates", "held", "lost", "origins",
                       "wal_rows"))
    if not origins:  # builds without outboxes: what the actors said they sent
        produced = sum(mon.actor_max_sent.values())
        lost = produced - stored
    resume = {}
    for k in kills:
        t = mon.resumed_at(k["t_mono"])
        k["resume_s"] = round(t - k["t_mono"], 1) if t is not None else None
        resume.setdefault(k["kind"], []).append(k["resume_s"])
    all_resume = [v for k in kills for v in [k["resume_s"]] if v is not None]
    never = sum(1 for k in kills if k["resume_s"] is None)
    result = {
        "minutes": args.minutes, "kills": [{x: k[x] for x in ("t", "node", "resume_s")}
                                           for k in kills],
        "produced": produced, "stored": stored, "distinct_stored": distinct,
        "duplicates": duplicates, "still_in_outboxes": held, "lost": lost,
        "weight_version_regressions_published": mon.version_regressions(),
        "weight_version_regressions_applied": mon.applied_regressions,
        "resume_s": {"median": percentile(all_resume, 50), "p95": percentile(all_resume, 95),
                     "max": max(all_resume) if all_resume else float("nan"),
                     "never": never, "by_kind": resume},
        "exits_during_run": exits, "hanging_after_sigint": hanging,
        "processes_left": leftovers, "load_avg": os.getloadavg(), "workdir": str(work),
    }
    print(f"\nchaos summary ({args.minutes:g} min, {len(kills)} kills: "
          + ", ".join(f"{kind} {len(v)}" for kind, v in resume.items()) + ")")
    print(f"  transitions produced by the actors {produced}, in the replay {stored}"
          + (f" chunks + {wal_rows} in the write-ahead log ({distinct} "
             f"distinct (actor, step), {duplicates} duplicates), {held} still in actor outboxes "
             f"(delivered at their next start)" if origins else
             " (chunks without origins: counted, not deduped; produced = highest 'sent' each "
             "actor process reported)")
          + f", lost {result['lost']}")
    print(f"  weight-version regressions: published {result['weight_version_regressions_published']}"
          f", applied by an actor {result['weight_version_regressions_applied']}")
    print(f"  time to train on fresh data after a kill: median {result['resume_s']['median']:.1f} s,"
          f" p95 {result['resume_s']['p95']:.1f} s, max {result['resume_s']['max']:.1f} s, never "
          f"{never}; by kind " + ", ".join(f"{k}: {v}" for k, v in resume.items()))
    print(f"  nodes that exited by themselves during the run: {len(exits)} {exits}")
    print(f"  nodes hanging 30 s after the final SIGINT: {hanging}; processes of this run left: "
          f"{leftovers}; load average {os.getloadavg()[0]:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
