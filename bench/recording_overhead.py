"""Does recording disturb the control loop? And how big are recordings?

    python bench/recording_overhead.py [--rounds 3] [--duration 20] [--camera-hz 10]
    python bench/recording_overhead.py --sim-seconds 60      # MCAP bytes per minute, sim graph

Overhead: ``bench/controller_latency.py``'s set-up at 100 Hz (controller node process, a sensor
publisher process at 1 kHz state / 100 Hz tactile), plus a camera publisher process sending two
128x128 rgb8 images at ``--camera-hz`` in every run; the runs alternate without and with the
recorder process (``robot_rl/ros/recorder_node.py``, every contract topic, zstd). Printed per
run: the controller's obs->command latency p50/p99, jitter p99, deadline misses, and what the
recorder wrote; at the end the medians of both arms and the ratio of p99s. The load average is
printed at the start and with every run.

Size: the MuJoCo stand-in as a process at real time (10 Hz control, two 128x128 cameras at
10 Hz, tactile, joints, poses...) driven by the scripted expert (RosRobotEnv, so the images
change as in a session), recorded for ``--sim-seconds``; printed as MB per minute of
the file (zstd chunks) and of the raw CDR payload.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(181, 220)))


def load_controller_bench():
    spec = importlib.util.spec_from_file_location("controller_latency",
                                                  REPO / "bench" / "controller_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def camera_publisher(rate_hz: float) -> None:
    """Two 128x128 rgb8 cameras (a rendered-looking gradient with moving noise)."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from robot_rl.ros import messages as m
    rclpy.init()
    node = rclpy.create_node("bench_cameras")
    pubs = [node.create_publisher(Image, m.camera_image_topic(n), m.SENSOR_QOS)
            for n in ("front", "wrist")]
    rng = np.random.default_rng(0)
    base = np.linspace(0, 200, 128 * 128 * 3).reshape(128, 128, 3).astype(np.uint8)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    nxt = time.perf_counter()
    try:
        while not stop:
            t = time.time()
            for pub in pubs:
                frame = base + rng.integers(0, 8, base.shape, dtype=np.uint8)
                pub.publish(m.image_to_msg(frame, t, "cam", "rgb8"))
            nxt += 1.0 / rate_hz
            time.sleep(max(0.0, nxt - time.perf_counter()))
    except KeyboardInterrupt:
        pass
    node.destroy_node()
    rclpy.try_shutdown()


def start_recorder(work: Path, output: Path, config: dict | None = None, logs: str = "logs"):
    from robot_rl.config import load_config, save_config
    from robot_rl.graph import recorder_node
    from robot_rl.launcher import NodeGraph
    cfg_path = work / "recorder.yaml"
    save_config(load_config(None, config or {}), cfg_path)
    graph = NodeGraph([recorder_node(str(cfg_path), str(output))], log_dir=work / logs).start()
    deadline = time.monotonic() + 60
    while not output.with_name(output.name + ".partial").exists():
        if graph.failed() or time.monotonic() > deadline:
            graph.stop()
            raise RuntimeError(f"recorder did not start; see {work / 'logs' / 'recorder.log'}")
        time.sleep(0.1)
    return graph


def recording_summary(path: Path) -> dict:
    from robot_rl.data.mcap_io import open_recording
    with open_recording(path) as rec:
        seconds = (rec.end_ns - rec.start_ns) / 1e9
        payload = sum(len(m.data) for m in rec.messages())
        return {"messages": rec.message_count, "seconds": seconds,
                "file_bytes": path.stat().st_size, "payload_bytes": payload,
                "counts": {t: c.count for t, c in rec.channels.items() if c.count}}


def overhead(args) -> None:
    import rclpy
    bench = load_controller_bench()
    cargs = argparse.Namespace(state_hz=1000.0, tactile_hz=100.0, hidden=[256, 256],
                               providers="cpu", set=[], rt_priority=0, duration=args.duration)
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
    results = {False: [], True: []}
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory(prefix="rec_bench_") as tmp:
            work = Path(tmp)
            for round_ in range(args.rounds):
                for recording in (False, True):
                    cams = subprocess.Popen([sys.executable, __file__, "--camera-publisher",
                                             "--camera-hz", str(args.camera_hz)], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
                    recorder, output = None, work / f"run{round_}.mcap"
                    try:
                        if recording:
                            recorder = start_recorder(
                                work, output, {"recording.exclude": args.exclude},
                                logs=f"logs_{round_}")
                        s = bench.run_rate(100.0, cargs, work)
                    finally:
                        if recorder is not None:
                            recorder.stop()
                        cams.send_signal(signal.SIGINT)
                        cams.wait(10)
                    lat, jit = s["latency_ms"], s["jitter_ms"]
                    results[recording].append(s)
                    line = (f"round {round_ + 1} {'WITH recording   ' if recording else 'without recording'}"
                            f" load {os.getloadavg()[0]:.2f}: obs->command p50 {lat['p50']:.3f} "
                            f"p99 {lat['p99']:.3f} ms (n={lat['n']}), jitter p99 {jit['p99']:.3f} ms, "
                            f"deadline misses {s['deadline_misses']}")
                    if recording:
                        r = recording_summary(output)
                        lost = [ln.split("lost before they were taken: ")[-1] for ln in
                                (work / f"logs_{round_}" / "recorder.log").read_text().splitlines()
                                if "lost before they were taken" in ln]
                        line += (f"; recorded {r['messages']} messages in {r['seconds']:.1f} s "
                                 f"({r['file_bytes'] / 1e6:.1f} MB), lost "
                                 f"{lost[-1].rstrip(')') if lost else 'none'}")
                        output.unlink()
                    print(line, flush=True)
    finally:
        rclpy.try_shutdown()
    med = {k: statistics.median(s["latency_ms"]["p99"] for s in v) for k, v in results.items()}
    med50 = {k: statistics.median(s["latency_ms"]["p50"] for s in v) for k, v in results.items()}
    jit = {k: statistics.median(s["jitter_ms"]["p99"] for s in v) for k, v in results.items()}
    print(f"median over {args.rounds} rounds: p99 obs->command without {med[False]:.3f} ms, with "
          f"{med[True]:.3f} ms (ratio {med[True] / med[False]:.2f}); p50 {med50[False]:.3f} vs "
          f"{med50[True]:.3f} ms; jitter p99 {jit[False]:.3f} vs {jit[True]:.3f} ms")


def sim_size(args) -> None:
    from robot_rl.config import load_config, save_config
    from robot_rl.graph import graph
    from robot_rl.launcher import NodeGraph
    with tempfile.TemporaryDirectory(prefix="rec_size_") as tmp:
        work = Path(tmp)
        cfg = load_config(None, {"sim.rate": "realtime"})
        cfg_path = work / "sim.yaml"
        save_config(cfg, cfg_path)
        sim = NodeGraph(graph(cfg, str(cfg_path)), log_dir=work / "logs").start()
        output = work / "sim.mcap"
        env = None
        try:
            import numpy as np

            from robot_rl.envs.expert import PickExpert
            from robot_rl.envs.ros_env import RosRobotEnv
            # The scripted expert picks cubes meanwhile, so the images change as in a session.
            env = RosRobotEnv(cfg, timeout=10.0, startup_timeout=60.0)
            expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height, noise=0.05,
                                rng=np.random.default_rng(0))
            recorder = start_recorder(work, output, {"sim.rate": "realtime"})
            end, episode = time.monotonic() + args.sim_seconds, 0
            while time.monotonic() < end:
                env.reset(seed=episode)
                expert.reset()
                episode += 1
                done = False
                while not done and time.monotonic() < end:
                    _, _, terminated, truncated, _ = env.step(
                        expert.act(env.snapshot, env.action_space.shape[0]))
                    done = terminated or truncated
            recorder.stop()
        finally:
            if env is not None:
                env.close()
            sim.stop()
        r = recording_summary(output)
        minutes = r["seconds"] / 60
        cams = {t: n for t, n in r["counts"].items() if t.endswith("image_raw")}
        print(f"sim graph at real time driven by the scripted expert ({episode} episodes), two "
              f"128x128 cameras at {cfg.cameras[0].fps} Hz: "
              f"{r['messages']} messages in {r['seconds']:.1f} s (camera frames {cams}); "
              f"file {r['file_bytes'] / 1e6 / minutes:.1f} MB/min (zstd), raw CDR payload "
              f"{r['payload_bytes'] / 1e6 / minutes:.1f} MB/min; load {os.getloadavg()[0]:.2f}")
        # A loaded machine runs the sim below real time: per control period, then scaled to
        # the nominal rate, the figure does not depend on how far behind it fell.
        periods = r["counts"].get("/clock", 0)
        per_minute = 60 * cfg.control_rate_hz
        if periods:
            print(f"per control period: file {r['file_bytes'] / periods / 1e3:.1f} kB, payload "
                  f"{r['payload_bytes'] / periods / 1e3:.1f} kB ({periods} periods) -> at "
                  f"{cfg.control_rate_hz:g} Hz: file {r['file_bytes'] / periods * per_minute / 1e6:.1f} "
                  f"MB/min, payload {r['payload_bytes'] / periods * per_minute / 1e6:.1f} MB/min")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camera-publisher", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20.0, help="engaged seconds per run")
    ap.add_argument("--camera-hz", type=float, default=10.0)
    ap.add_argument("--exclude", nargs="*", default=[], metavar="TOPIC",
                    help="topics the recorder leaves out (recording.exclude)")
    ap.add_argument("--sim-seconds", type=float, default=0.0,
                    help="measure MCAP size on the sim graph instead of the overhead")
    args = ap.parse_args()
    if args.camera_publisher:
        camera_publisher(args.camera_hz)
        return 0
    print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f}", flush=True)
    if args.sim_seconds > 0:
        sim_size(args)
    else:
        overhead(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
