"""How long the simulated human takes to answer an observation, over real DDS.

    python bench/sim_human_latency.py [--steps 300]

Processes: the MuJoCo stand-in (lockstep) and the intervention node (``hil.device: sim_human``);
this script steps a ``RosRobotEnv`` with zero actions (so the human keeps taking over) and, for
each observation, waits (at most 1 s) for a ``/intervention/action`` stamped with that
observation's time, as the actor does. Prints the wait p50/p90/p99/max and how many took longer
than one control period. The actor's own counts of answers on time / late are in its log.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(181, 220)))
os.environ.setdefault("MUJOCO_GL", "egl")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Joy

    from robot_rl.config import load_config, save_config
    from robot_rl.envs.ros_env import RosRobotEnv
    from robot_rl.graph import NodeSpec
    from robot_rl.launcher import NodeGraph
    from robot_rl.ros.messages import INTERVENTION_QOS

    cfg = load_config(None, {"task.observations": ["state", "object", "tactile"],
                             "hil.device": "sim_human", "task.max_episode_steps": 50})
    for cam in cfg.cameras:
        cam.fps = 1
    period = 1.0 / cfg.control_rate_hz
    with tempfile.TemporaryDirectory(prefix="human_bench_") as tmp:
        save_config(cfg, Path(tmp) / "config.yaml")
        base = {"config_file": str(Path(tmp) / "config.yaml")}
        graph = NodeGraph([NodeSpec("mujoco_sim", "mujoco_sim", "robot_rl.ros.sim_node", dict(base)),
                           NodeSpec("intervention", "intervention", "robot_rl.ros.intervention_node",
                                    dict(base))], log_dir=Path(tmp) / "logs").start()
        rclpy.init()
        node = rclpy.create_node("sim_human_latency")
        answered = threading.Condition()
        latest = [-np.inf]

        def on_joy(msg):
            with answered:
                latest[0] = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
                answered.notify_all()

        node.create_subscription(Joy, cfg.hil.topic, on_joy, INTERVENTION_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        env = RosRobotEnv(cfg, timeout=10.0, startup_timeout=60.0)
        waits = []
        try:
            env.reset()
            for _ in range(args.steps):
                stamp, start = env.snapshot.stamp, time.monotonic()
                with answered:
                    while latest[0] < stamp - 0.25 * period and time.monotonic() - start < 1.0:
                        answered.wait(0.01)
                waits.append(time.monotonic() - start)
                _, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
                if terminated or truncated:
                    env.reset()
        finally:
            env.close()
            executor.shutdown()
            node.destroy_node()
            graph.stop()
            rclpy.try_shutdown()
    w = np.array(waits) * 1e3
    print(f"simulated human's answer, {len(w)} observations: wait p50 {np.percentile(w, 50):.1f} "
          f"p90 {np.percentile(w, 90):.1f} p99 {np.percentile(w, 99):.1f} max {w.max():.0f} ms; "
          f"later than one control period ({1e3 * period:.0f} ms): {int((w > 1e3 * period).sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
