"""Sensor -> subscriber latency over DDS between two processes (p50/p99), per message type.

A publisher process sends JointState, a 32FC1 tactile grid and 128x128 rgb8 images stamped with
the host clock at publish time; this process subscribes and records receive - stamp. Both use
the same QoS as the robot contract. Run: python bench/dds_latency.py [--rate 100] [--seconds 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))

PUBLISHER = r"""
import sys, time, numpy as np, rclpy
from sensor_msgs.msg import Image, JointState
from robot_rl.ros import messages as m
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
rclpy.init(); node = rclpy.create_node("latency_publisher")
pubs = {"joint_states": node.create_publisher(JointState, "/bench/joint_states", m.SENSOR_QOS),
        "tactile_4x4": node.create_publisher(Image, "/bench/tactile", m.SENSOR_QOS),
        "image_128x128": node.create_publisher(Image, "/bench/image", m.SENSOR_QOS)}
image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
taxels = np.zeros((4, 4), np.float32)
names = [f"panda_joint{i}" for i in range(1, 8)]
time.sleep(2.0)  # discovery
end = time.time() + seconds
while time.time() < end:
    now = time.time()
    pubs["joint_states"].publish(m.joint_state_msg(names, np.zeros(7), np.zeros(7), np.zeros(7), time.time()))
    pubs["tactile_4x4"].publish(m.image_to_msg(taxels, time.time(), "t", "32FC1"))
    pubs["image_128x128"].publish(m.image_to_msg(image, time.time(), "c", "rgb8"))
    time.sleep(max(0.0, 1.0 / rate - (time.time() - now)))
node.destroy_node(); rclpy.shutdown()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    import rclpy
    from sensor_msgs.msg import Image, JointState

    from robot_rl.ros import messages as m
    rclpy.init()
    node = rclpy.create_node("latency_subscriber")
    samples: dict[str, list[float]] = {"joint_states": [], "tactile_4x4": [], "image_128x128": []}

    def record(key):
        return lambda msg: samples[key].append(time.time() - m.from_time(msg.header.stamp))

    node.create_subscription(JointState, "/bench/joint_states", record("joint_states"), m.SENSOR_QOS)
    node.create_subscription(Image, "/bench/tactile", record("tactile_4x4"), m.SENSOR_QOS)
    node.create_subscription(Image, "/bench/image", record("image_128x128"), m.SENSOR_QOS)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(args.rate), str(args.seconds)])
    spin = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spin.start()
    proc.wait()
    time.sleep(0.3)
    node.destroy_node()
    rclpy.try_shutdown()
    print(f"DDS latency publisher->subscriber, two processes, {args.rate:g} Hz each stream "
          f"(Fast DDS, localhost):")
    for key, values in samples.items():
        ms = np.array(values) * 1e3
        if len(ms) == 0:
            print(f"  {key:14s} no messages received")
            continue
        print(f"  {key:14s} n={len(ms):5d}  p50={np.percentile(ms, 50):6.3f} ms  "
              f"p99={np.percentile(ms, 99):6.3f} ms  max={ms.max():6.3f} ms")


if __name__ == "__main__":
    main()
