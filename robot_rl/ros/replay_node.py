"""Plays an MCAP recording back into a graph (``robot-rl replay BAG``).

Every recorded message is published again on its topic, byte for byte (so header stamps are
the recorded ones), paced by the recorded receive times scaled by ``rate``. ``/clock`` carries
the recording's time so nodes started with ``use_sim_time:=true`` run on it: the recorded
``/clock`` when the recording has one (the sim's time), otherwise the recorded receive time
of each message (what ``ros2 bag play --clock`` does). The node exits when the recording ends.

Parameters: ``bag`` (the .mcap), ``rate`` (1.0 = as recorded; 0 = as fast as possible),
``topics`` (default: all), ``start_delay_s`` (time for subscribers to be discovered before the
first message, default 1.0), ``clock`` (publish /clock, default true).
"""
from __future__ import annotations

import threading
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from robot_rl.data.mcap_io import open_recording
from robot_rl.ros.diagnostics_topic import resolve_type
from robot_rl.topics import CLOCK
from robot_rl.ros.node_utils import run_nodes

REPLAY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE)


class ReplayNode(Node):
    def __init__(self, name: str = "replay"):
        super().__init__(name)
        bag = self.declare_parameter("bag", "").value
        self.rate = float(self.declare_parameter("rate", 1.0).value)
        topics = list(self.declare_parameter("topics", [""]).value)
        self.start_delay_s = float(self.declare_parameter("start_delay_s", 1.0).value)
        publish_clock = bool(self.declare_parameter("clock", True).value)
        if self.rate < 0:
            raise ValueError(f"replay rate {self.rate} must be >= 0 (0: as fast as possible)")
        self.recording = open_recording(bag)
        channels = self.recording.channels
        self.topics = [t for t in topics if t] or sorted(channels)
        unknown = sorted(set(self.topics) - set(channels))
        if unknown:
            raise ValueError(f"{bag}: no channel for topic(s) {unknown}; it has {sorted(channels)}")
        self.recorded_clock = CLOCK in self.topics
        self.synth_clock = publish_clock and not self.recorded_clock
        if not publish_clock and self.recorded_clock:
            self.topics.remove(CLOCK)
            self.recorded_clock = False
        self.pubs = {t: self.create_publisher(resolve_type(channels[t].type), t, REPLAY_QOS)
                     for t in self.topics}
        self.pub_clock = self.create_publisher(Clock, CLOCK, 10) if self.synth_clock else None
        self.published = 0
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="replay", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"replaying {sum(channels[t].count for t in self.topics)} messages on "
            f"{len(self.topics)} topics from {bag} at rate {self.rate:g}; /clock "
            f"{'as recorded' if self.recorded_clock else 'from receive times' if self.synth_clock else 'off'}")

    def _play(self) -> None:
        try:
            if self._stop.wait(self.start_delay_s):
                return
            first_ns, start = None, time.monotonic()
            for message in self.recording.messages(self.topics):
                if first_ns is None:
                    first_ns = message.log_time_ns
                if self.rate > 0:
                    due = start + (message.log_time_ns - first_ns) * 1e-9 / self.rate
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                elif self._stop.is_set():
                    return
                if self.pub_clock is not None:
                    clock = Clock()
                    clock.clock.sec, clock.clock.nanosec = divmod(message.log_time_ns,
                                                                  1_000_000_000)
                    self.pub_clock.publish(clock)
                self.pubs[message.topic].publish(message.data)  # CDR bytes, as recorded
                self.published += 1
            self.get_logger().info(f"replay finished: {self.published} messages")
        except Exception as exc:
            self.get_logger().error(f"replay failed: {exc!r}")
        finally:
            self.done.set()
            # Leave the readers time to take the last samples before the node goes away.
            if not self._stop.wait(0.5):
                rclpy.try_shutdown()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.recording.close()


def main(args=None) -> int:
    return run_nodes(lambda: [ReplayNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
