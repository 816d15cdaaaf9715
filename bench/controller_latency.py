"""Controller node latency/jitter over real DDS, against a sensor-publisher process.

    python bench/controller_latency.py [--rates 100 500] [--duration 10] [--state-hz 1000]
                                       [--tactile-hz 100] [--hidden 256 256]

Three processes on one machine: this script (orchestration: engage, read /controller/status),
``robot_rl.ros.controller_node`` (the node under test, RLPD policy exported from an agent with
``--hidden`` MLPs, CPU provider, 1 intra-op thread) and a sensor publisher (this file with
``--publisher``) sending /joint_states, /robot/ee_pose, /robot/ee_twist at ``--state-hz`` (a
robot driver's state rate; a Franka publishes at 1 kHz) and both tactile images at
``--tactile-hz``. The figures are the controller's own measurements:

* obs->command latency: receipt by DDS (the reader's receive timestamp) of the newest input
  message used by a tick -> its /robot/ee_target publish returned; so it includes the age of
  the newest sample at tick time (bounded by the fastest stream's period) plus the tick's
  compute;
* compute: tick start -> publish returned;
* period and jitter: RateLoop tick starts (jitter = lateness vs the absolute deadline);
* deadline misses (a tick > half a period late) and skipped ticks.

It also prints the sensor publisher's own loop period (p50/p99/max, gaps > 5 ms): a stall of
the publisher ages every input, so a latency outlier can be told from a controller fault.

Targets (100 Hz, 2-core machine): p99 latency <= 2 ms, p99 jitter <= 1 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(181, 220)))


def publisher(state_hz: float, tactile_hz: float, config: str) -> None:
    import numpy as np
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from sensor_msgs.msg import Image, JointState

    from robot_rl.config import load_config
    from robot_rl.ros import messages as m
    from robot_rl.deploy.controller_core import home_quat

    cfg = load_config(config)
    rclpy.init()
    node = rclpy.create_node("bench_sensors")
    pj = node.create_publisher(JointState, m.JOINT_STATES, m.SENSOR_QOS)
    pp = node.create_publisher(PoseStamped, m.EE_POSE, m.SENSOR_QOS)
    pt = node.create_publisher(TwistStamped, m.EE_TWIST, m.SENSOR_QOS)
    ptac = [node.create_publisher(Image, m.tactile_topic(t.name), m.SENSOR_QOS) for t in cfg.tactile]
    names = [*cfg.robot.arm_joints, *cfg.robot.gripper_joints]
    q = [*cfg.robot.home, 0.04, 0.04]
    quat = home_quat(cfg)
    rng = np.random.default_rng(0)
    period = 1.0 / state_hz
    every = max(1, round(state_hz / tactile_hz))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    k = 0
    nxt = time.perf_counter()
    gaps, last = [], None  # the publisher's own timing: its stalls are the inputs' age
    try:
        while not stop:
            now = time.perf_counter()
            if last is not None:
                gaps.append(now - last)
            last = now
            t = time.time()
            pos = np.array([0.5, 0.0, 0.3]) + rng.normal(0, 1e-3, 3)
            pj.publish(m.joint_state_msg(names, q, [0.0] * len(q), [0.0] * len(q), t))
            pp.publish(m.pose_msg(pos, quat, t, cfg.robot.base_frame))
            pt.publish(m.twist_msg(np.zeros(6), t, cfg.robot.base_frame))
            if k % every == 0:
                for tc, pub in zip(cfg.tactile, ptac):
                    pub.publish(m.image_to_msg(rng.uniform(0, 1, tc.shape).astype(np.float32), t, "f", "32FC1"))
            k += 1
            nxt += period
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.perf_counter()
    except KeyboardInterrupt:
        pass
    g = np.array(gaps[1000:] or [0.0]) * 1e3  # after the first second (discovery, engaging)
    print("PUBLISHER " + json.dumps({"p50": float(np.percentile(g, 50)), "p99": float(np.percentile(g, 99)),
                                     "max": float(g.max()), "over_5ms": int((g > 5).sum())}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def run_rate(rate: float, args, work: Path) -> dict:
    import rclpy
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_rl.cli import parse_sets
    from robot_rl.config import load_config, save_config
    from robot_rl.deploy.agent_export import export_agent, make_agent
    from robot_rl.ros import messages as m
    from robot_rl.ros.controller_node import ENGAGE, STATUS

    cfg = load_config(None, {"cameras": [], "control_rate_hz": rate,
                             "deploy.providers": args.providers, "agent.hidden_dims": list(args.hidden),
                             "agent.num_critics": 2, "deploy.stats_log_period_s": 5.0,
                             "deploy.rt_priority": args.rt_priority,
                             **parse_sets(args.set)})
    model = work / f"policy_{int(rate)}.onnx"
    export_agent(make_agent(cfg), cfg, model, f"bench-{int(rate)}", exporter="torchscript", parity_samples=8)
    cfg.deploy.model = str(model)
    cfg_path = work / f"config_{int(rate)}.yaml"
    save_config(cfg, cfg_path)
    logs = work / f"logs_{int(rate)}"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
    ctl = subprocess.Popen([sys.executable, "-m", "robot_rl.ros.controller_node", "--ros-args",
                            "-p", f"config_file:={cfg_path}"], env=env,
                           stdout=open(logs / "controller.log", "wb"), stderr=subprocess.STDOUT)
    pub = subprocess.Popen([sys.executable, __file__, "--publisher", "--state-hz", str(args.state_hz),
                            "--tactile-hz", str(args.tactile_hz), "--config", str(cfg_path)], env=env,
                           stdout=open(logs / "publisher.log", "wb"), stderr=subprocess.STDOUT)
    node = rclpy.create_node(f"bench_{int(rate)}")
    status: dict = {}
    node.create_subscription(String, STATUS, lambda msg: status.update(json.loads(msg.data)), m.COMMAND_QOS)
    client = node.create_client(Trigger, ENGAGE)
    try:
        deadline = time.monotonic() + 60
        engaged = False
        while time.monotonic() < deadline and not engaged:
            rclpy.spin_once(node, timeout_sec=0.1)
            if ctl.poll() is not None:
                raise RuntimeError((logs / "controller.log").read_text())
            if status.get("mode") in ("IDLE", "HOLD") and not status.get("stale_sensors") and client.service_is_ready():
                fut = client.call_async(Trigger.Request())
                rclpy.spin_until_future_complete(node, fut, timeout_sec=5)
                engaged = bool(fut.result() and fut.result().success)
        if not engaged:
            raise RuntimeError(f"could not engage; status {status}")
        end = time.monotonic() + args.duration
        while time.monotonic() < end:  # sleep in small steps, spinning lightly
            rclpy.spin_once(node, timeout_sec=0.5)
        status.clear()
        while not status:
            rclpy.spin_once(node, timeout_sec=0.5)
        return status  # the finally block adds the publisher's own timing
    finally:
        node.destroy_node()
        for p in (pub, ctl):
            p.send_signal(signal.SIGINT)
        for p in (pub, ctl):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for line in (logs / "publisher.log").read_text(errors="replace").splitlines():
            if line.startswith("PUBLISHER "):
                status["publisher"] = json.loads(line[len("PUBLISHER "):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    ap.add_argument("--duration", type=float, default=10.0, help="engaged seconds per rate")
    ap.add_argument("--state-hz", type=float, default=1000.0, help="joint state / pose / twist rate")
    ap.add_argument("--tactile-hz", type=float, default=100.0)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--providers", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the controller, e.g. deploy.warm_s=0")
    ap.add_argument("--log-dir", default="", help="keep the node logs here (default: discarded)")
    ap.add_argument("--rt-priority", type=int, default=0, help="deploy.rt_priority of the control thread")
    args = ap.parse_args()
    if args.publisher:
        publisher(args.state_hz, args.tactile_hz, args.config)
        return 0
    import rclpy

    rclpy.init()
    print(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} "
          f"state streams {args.state_hz:g} Hz, tactile {args.tactile_hz:g} Hz, MLP {args.hidden}, "
          f"rt_priority {args.rt_priority}")
    try:
        with tempfile.TemporaryDirectory(prefix="ctl_bench_") as tmp:
            work = Path(args.log_dir or tmp)
            work.mkdir(parents=True, exist_ok=True)
            for rate in args.rates:
                s = run_rate(rate, args, work)
                lat, jit, per, comp = s["latency_ms"], s["jitter_ms"], s["period_ms"], s["compute_ms"]
                ok = "" if rate != 100 else (
                    f"  [targets p99 latency <= 2 ms: {'OK' if lat['p99'] <= 2 else 'MISSED'}, "
                    f"p99 jitter <= 1 ms: {'OK' if jit['p99'] <= 1 else 'MISSED'}]")
                print(f"{rate:5.0f} Hz  provider {s['provider']}  mode {s['mode']}  ticks {s['ticks']}  "
                      f"phase-locked {s.get('phase_locked')}\n"
                      f"        obs->command latency p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} ms (n={lat['n']})\n"
                      f"        compute (tick->publish) p50 {comp['p50']:.3f} p99 {comp['p99']:.3f} ms\n"
                      f"        period p50 {per['p50']:.3f} p99 {per['p99']:.3f} ms, jitter p50 {jit['p50']:.3f} "
                      f"p99 {jit['p99']:.3f} ms, deadline misses {s['deadline_misses']}, skipped {s['skipped_ticks']}"
                      f"{ok}", flush=True)
                if "publisher" in s:
                    g = s["publisher"]
                    print(f"        sensor publisher loop (its stalls age every input): period p50 {g['p50']:.3f} "
                          f"p99 {g['p99']:.3f} max {g['max']:.1f} ms, {g['over_5ms']} gaps > 5 ms", flush=True)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
