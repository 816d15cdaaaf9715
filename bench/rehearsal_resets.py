"""The dress rehearsal's costs without teleport: reset durations and demonstration recording.

    PYTHONPATH=. python bench/rehearsal_resets.py [--resets 5] [--episodes 3] [--lockstep-timeout 0.5]

Starts `robot-rl up --profile demos`'s graph in rehearsal (MuJoCo stand-in with the simulated
operator demonstrating on /joy, the intervention node, the reset node; state observations, no
cameras), then

1. calls /scene/reset --resets times after driving the arm 15 cm away from home, timing each
   call and its phases from /scene/reset_state (moving, awaiting_confirmation: the operator's
   turn), against the plain stand-in's teleport reset;
2. runs `robot-rl record-demos --device joy` for --episodes episodes and prints its wall time
   per kept episode;
3. runs the graph audit once and prints its duration and result.

Prints the 1-minute load average: every figure here depends on it (2 shared cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "77")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from robot_rl.config import load_config, save_config  # noqa: E402
from robot_rl.graph import graph  # noqa: E402
from robot_rl.hil.reset import home_pose  # noqa: E402
from robot_rl.launcher import NodeGraph  # noqa: E402
from robot_rl.ros import messages as m  # noqa: E402
from robot_rl.ros.graph_audit import privileged_links, wait_for_nodes  # noqa: E402

SETTINGS = {"sim.rehearsal": True, "sim.operator": "demonstrate", "hil.device": "joy",
            "hil.reset.mode": "move_then_human", "task.observations": ["state"],
            "cameras": [], "tactile": []}

def _hardware_like_reward() -> dict:
    """The reward source "topic" (no simulator state) where the tree has the reward sources."""
    import typing

    from robot_rl.hil.config import RewardConfig
    sources = typing.get_args(typing.get_type_hints(RewardConfig)["source"])
    return {"hil.reward.source": "topic"} if "topic" in sources else {}


SETTINGS.update(_hardware_like_reward())


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"median {statistics.median(values):.2f} s, min {min(values):.2f}, "
            f"max {max(values):.2f} (n={len(values)})")


def timed_resets(node, cfg, n: int, rehearsal: bool) -> tuple[list[float], list[float]]:
    """(call durations, durations of the operator's turn) of ``n`` resets."""
    marks: list[tuple[float, str]] = []
    if rehearsal:
        node.create_subscription(String, m.RESET_STATE,
                                 lambda msg: marks.append((time.monotonic(),
                                                           json.loads(msg.data)["state"])),
                                 m.RESET_STATE_QOS)
    client = node.create_client(Trigger, m.SCENE_RESET)
    target = node.create_publisher(m.PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    assert client.wait_for_service(timeout_sec=60.0), "no /scene/reset"
    home_pos, home_quat = home_pose(cfg)
    calls, turns = [], []
    for i in range(n):
        away = home_pos + [0.06, 0.1 if i % 2 else -0.1, -0.1]
        for _ in range(40):  # each command advances the lockstep sim one period
            target.publish(m.pose_msg(away, home_quat, 0.0, cfg.robot.base_frame))
            time.sleep(0.02)
        marks.clear()
        t0 = time.monotonic()
        future = client.call_async(Trigger.Request())
        while not future.done():
            time.sleep(0.005)
        calls.append(time.monotonic() - t0)
        assert future.result().success, future.result().message
        waits = [t for t, s in marks if s == "awaiting_confirmation"]
        if waits:
            turns.append(t0 + calls[-1] - waits[0])
    executor.shutdown(timeout_sec=1.0)
    thread.join(timeout=2.0)
    return calls, turns


def start(tmp: Path, settings: dict, profile: str):
    cfg = load_config(None, settings)
    path = tmp / "config.yaml"
    save_config(cfg, path)
    return cfg, path, NodeGraph(graph(cfg, str(path), profile), log_dir=tmp / "logs").start()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--resets", type=int, default=5)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--lockstep-timeout", type=float, default=0.5)
    args = p.parse_args()
    settings = {**SETTINGS, "sim.lockstep_timeout": args.lockstep_timeout}
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory() as plain_dir:
            plain = {k: v for k, v in settings.items()
                     if not k.startswith(("sim.rehearsal", "sim.operator", "hil.reset",
                                          "hil.reward"))}
            cfg, _, nodes = start(Path(plain_dir), {**plain, "hil.device": "sim_human"}, "robot")
            try:
                teleport, _ = timed_resets(rclpy.create_node("bench_plain"), cfg,
                                           args.resets, False)
            finally:
                nodes.stop()
        print(f"plain stand-in, teleport /scene/reset: {stats(teleport)}")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            cfg, path, nodes = start(tmp, settings, "demos")
            try:
                node = rclpy.create_node("bench_rehearsal")
                calls, turns = timed_resets(node, cfg, args.resets, True)
                print(f"rehearsal /scene/reset (move home + operator): {stats(calls)}")
                print(f"  of which the operator's turn (awaiting_confirmation -> answer): "
                      f"{stats(turns)}; sim.lockstep_timeout {args.lockstep_timeout} s")
                t0 = time.monotonic()
                proc = subprocess.run(
                    [sys.executable, "-m", "robot_rl.cli", "record-demos", "--device", "joy",
                     "--config", str(path), "--out", str(tmp / "demos"), "--episodes",
                     str(args.episodes)], capture_output=True, text=True)
                wall = time.monotonic() - t0
                print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else
                      proc.stderr.strip())
                print(f"record-demos --device joy: {wall:.1f} s for {args.episodes} episodes "
                      f"({wall / args.episodes:.1f} s per episode, process start included)")
                audit = rclpy.create_node("bench_audit")
                wait_for_nodes(audit, ["mujoco_sim", "sim_operator", "intervention", "reset"])
                t0 = time.monotonic()
                links = privileged_links(audit)
                print(f"graph audit: {len(links)} link(s) in {1000 * (time.monotonic() - t0):.1f}"
                      f" ms over {len(audit.get_node_names_and_namespaces())} nodes")
            finally:
                nodes.stop()
    finally:
        rclpy.try_shutdown()
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
