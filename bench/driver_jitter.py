"""The ros2_control driver's 1 kHz impedance loop, in Python over DDS, against stand-in hardware.

Starts the real ``joint_driver`` (``driver.adapter: ros2_control``) and 18b's ``standin_hardware``
process (a MuJoCo arm publishing the joint_state_broadcaster JointState every 1 ms and taking
effort commands), as separate processes on a private DDS domain, and for ``--seconds`` after
the first command records, in this process, the DDS *source* timestamp of every effort command
(when the driver wrote it), so the figures are the driver's send timing, not this observer's.
Per run it prints:
  period     -- time between consecutive commands: p50 / p99 / max, and p99 |period - 1 ms|;
  missed     -- 1 ms slots with no command (a gap of n periods counts n - 1);
  at the hardware -- commands the stand-in received per second, and its torque-rate counter;
  the driver's own RateLoop figures (lateness behind its deadline grid, deadline misses,
  skipped ticks), from the line it logs when it stops;
and the load average. Use ``--runs`` for the spread.

    python bench/driver_jitter.py [--runs 3] [--seconds 10] [--rate 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(120, 200)))

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from robot_rl.config import load_config, save_config  # noqa: E402
from robot_rl.graph import graph, standin_hardware_nodes  # noqa: E402
from robot_rl.launcher import NodeGraph  # noqa: E402


def one_run(rate: float, seconds: float, workdir: Path) -> dict:
    cfg = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": "human",
                             "cameras": [], "tactile": [],
                             "driver.loop_rate_hz": rate, "sim.physics_dt": 1.0 / rate})
    path = workdir / "config.yaml"
    save_config(cfg, path)
    nodes = NodeGraph(graph(cfg, str(path)) + standin_hardware_nodes(cfg, str(path)),
                      log_dir=workdir / "logs").start()
    node = rclpy.create_node("driver_jitter_observer")
    stamps: list[int] = []
    hardware: list[dict] = []
    recording = threading.Event()

    def on_effort(msg, info):
        if recording.is_set():
            stamps.append(info["source_timestamp"])

    # Deep reliable queue: the observer must not be the one that drops commands.
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5000,
                     reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Float64MultiArray, cfg.driver.effort_command_topic, on_effort, qos)
    node.create_subscription(String, "/standin_hardware/status",
                             lambda msg: hardware.append(json.loads(msg.data)), 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    first: list[int] = []
    node.create_subscription(Float64MultiArray, cfg.driver.effort_command_topic,
                             lambda msg: first.append(1), 1)
    try:
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        if not first:
            raise RuntimeError("no effort command within 60 s; see " + str(workdir / "logs"))
        time.sleep(1.0)  # past start-up
        recording.set()
        start_status = len(hardware)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        recording.clear()
        load = os.getloadavg()[0]
        window = hardware[start_status:] or hardware[-1:]
    finally:
        executor.shutdown()
        node.destroy_node()
        nodes.stop()
    log = (workdir / "logs" / "joint_driver.log").read_text()
    loop_line = re.findall(r"control loop at .*", log)
    period_ns = 1e9 / rate
    t = np.sort(np.array(stamps, dtype=np.int64))
    intervals = np.diff(t).astype(np.float64)
    slots = np.round(intervals / period_ns)
    commands = [h.get("commands", 0) for h in window]
    return {
        "n": int(t.size),
        "span_s": float((t[-1] - t[0]) / 1e9) if t.size > 1 else 0.0,
        "period_ms": np.percentile(intervals, [50, 99]).tolist() + [float(intervals.max())],
        "jitter_p99_ms": float(np.percentile(np.abs(intervals - period_ns), 99)) / 1e6,
        "missed": int(np.sum(np.maximum(slots - 1, 0))),
        "longest_gap_ms": float(intervals.max()) / 1e6,
        "hw_commands_per_s": (commands[-1] - commands[0]) / max(len(commands) - 1, 1)
        if len(commands) > 1 else float("nan"),
        "hw_rate_violations": window[-1].get("torque_rate_violations") if window else None,
        "hw_period_p99_ms": window[-1].get("period_p99_ms") if window else None,
        "driver_loop": loop_line[-1] if loop_line else "(driver log has no loop line)",
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    rclpy.init()
    try:
        print(f"driver loop {args.rate:g} Hz, {args.seconds:g} s per run, {os.cpu_count()} CPUs, "
              f"ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}")
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                r = one_run(args.rate, args.seconds, Path(tmp))
            p50, p99, worst = (v / 1e6 for v in r["period_ms"])
            expected = args.seconds * args.rate
            print(f"run {run + 1}: {r['n']} commands in {r['span_s']:.2f} s "
                  f"({r['n'] / expected:.1%} of {expected:.0f}); period p50 {p50:.3f} "
                  f"p99 {p99:.3f} max {worst:.1f} ms; |period - {1000 / args.rate:g} ms| p99 "
                  f"{r['jitter_p99_ms']:.3f} ms; missed slots {r['missed']} "
                  f"({r['missed'] / expected:.1%}); at the hardware "
                  f"{r['hw_commands_per_s']:.0f} commands/s, torque-rate violations "
                  f"{r['hw_rate_violations']}, its own tick p99 {r['hw_period_p99_ms']} ms; "
                  f"load average {r['load']:.2f}")
            print(f"        driver's {r['driver_loop']}")
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
