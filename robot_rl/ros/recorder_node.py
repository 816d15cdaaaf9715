"""Records the topic contract to an MCAP file (``robot-rl record``, ``--record``).

Subscriptions are raw: the CDR bytes rclpy receives go to the file as they are, so recording
costs no deserialisation (except camera frames when ``recording.camera_downscale`` > 1). A
thread of its own takes them from DDS every ``TAKE_PERIOD_S`` (no executor dispatch per
message: a fifth of the CPU per message of rclpy's executor, measured at 3 kHz), with the
DDS receive time as the message's log time. The file layout, crash behaviour and the topics
are described in :mod:`robot_rl.data.mcap_io`.

Parameters: ``config_file`` (+ overrides) and ``output`` (the .mcap path; default
``recording.path``, else ``recording_<UTC time>.mcap`` in the working directory).
"""
from __future__ import annotations

import os
import threading
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from robot_rl.config import config_to_yaml
from robot_rl.data.mcap_io import (CAMERA_INFO_TYPE, IMAGE_TYPE, RecordingWriter, cdr_stamp_ns,
                                   default_recording_name, downscale_frame,
                                   recording_topics)
from robot_rl.diagnostics import HealthTracker
from robot_rl.ros.diagnostics_topic import Diagnostics, resolve_type
from robot_rl.ros.node_utils import declare_config, run_nodes

TAKE_PERIOD_S = 0.005  # 100 queued samples per topic: 20 kHz of one stream between takes
# Deep enough that a burst (a reset, a slow disk) queues instead of dropping; the recorder's
# own reader never slows the publishers (keep-last, volatile).
RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                        reliability=ReliabilityPolicy.RELIABLE)


class RecorderNode(Node):
    def __init__(self, name: str = "recorder", context=None):
        super().__init__(name, context=context)
        self.cfg = cfg = declare_config(self)
        rc = cfg.recording
        output = self.declare_parameter("output", rc.path).value or default_recording_name()
        self.topics = recording_topics(cfg)
        self._min_gap_ns = int(1e9 / rc.camera_rate_hz) if rc.camera_rate_hz > 0 else 0
        self._last_frame_ns: dict[str, int] = {}
        self.dropped_by_rate = 0
        self.errors = 0
        self.lost: dict[str, int] = {}  # samples missing from a publisher's sequence numbers
        self._last_seq: dict[str, int] = {}
        self._single_publisher: set[str] = set()
        # Subscribed on a node no executor spins: only the take thread reads them.
        self._inputs = rclpy.create_node(f"{name}_inputs", context=self.context)
        self._subs = []
        for topic, type_name in self.topics.items():
            handler = (self._camera_handler(topic, type_name) if topic.startswith("/camera/")
                       else self._plain_handler(topic))
            self._subs.append((topic, self._inputs.create_subscription(
                resolve_type(type_name), topic, handler, RECORD_QOS, raw=True)))
        self._tracker = HealthTracker(warn=("lost",), error=("write_errors",),
                                      alive=("messages",))
        self.diagnostics = Diagnostics(self, self._health)
        # The writer (and with it the .partial file, which tells `robot-rl record` the recorder
        # is ready) comes last, then the take thread.
        self.writer = RecordingWriter(output, rc.compression, rc.chunk_kib * 1024,
                                      metadata={"config": config_to_yaml(cfg)})
        try:
            for topic, type_name in self.topics.items():
                self.writer.add_channel(topic, type_name)
            lower_priority(rc.nice)
        except BaseException:  # Ctrl-C during start-up still leaves a finished file
            self.writer.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._take_loop, name="recorder_take",
                                        daemon=True)
        self._thread.start()
        self.get_logger().info(f"recording {len(self.topics)} topics to "
                               f"{self.writer.partial_path} (renamed to {self.writer.path} "
                               f"when it stops)")

    def _take_loop(self) -> None:
        while not self._stop.is_set():
            self.take_all()
            self._stop.wait(TAKE_PERIOD_S)
        self.take_all()  # what arrived before the stop

    def take_all(self) -> None:
        """Take every queued message of every topic and record it."""
        for topic, sub in self._subs:
            for _ in range(RECORD_QOS.depth):
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, True)
                if taken is None:
                    break
                data, info = taken
                self._count_gap(topic, info.get("publication_sequence_number"))
                sub.callback(data, int(info.get("received_timestamp") or time.time_ns()))

    def _count_gap(self, topic: str, seq) -> None:
        # A publisher numbers its samples 1, 2, 3...: a jump is samples DDS dropped before the
        # recorder took them. Only meaningful with one publisher on the topic.
        if seq is None:
            return
        last = self._last_seq.get(topic)
        self._last_seq[topic] = seq
        if last is not None and seq > last + 1 and topic in self._single_publisher:
            self.lost[topic] = self.lost.get(topic, 0) + seq - last - 1

    def _plain_handler(self, topic: str):
        def on_message(data: bytes, log_time_ns: int) -> None:
            self._write(topic, data, log_time_ns)
        return on_message

    def _camera_handler(self, topic: str, type_name: str):
        from rclpy.serialization import deserialize_message, serialize_message
        if type_name not in (IMAGE_TYPE, CAMERA_INFO_TYPE):
            raise ValueError(f"{topic}: camera topics carry {IMAGE_TYPE} or {CAMERA_INFO_TYPE}, "
                             f"not {type_name}")
        factor = self.cfg.recording.camera_downscale
        msg_type = resolve_type(type_name)
        is_image = type_name == IMAGE_TYPE

        def on_message(data: bytes, log_time_ns: int) -> None:
            if is_image and self._min_gap_ns:
                stamp = cdr_stamp_ns(data) or log_time_ns
                last = self._last_frame_ns.get(topic)
                if last is not None and 0 <= stamp - last < self._min_gap_ns:
                    self.dropped_by_rate += 1
                    return
                self._last_frame_ns[topic] = stamp
            if factor > 1:
                msg = deserialize_message(data, msg_type)
                (_downscale_image if is_image else _downscale_info)(msg, factor)
                data = serialize_message(msg)
            self._write(topic, data, log_time_ns)
        return on_message

    def _write(self, topic: str, data: bytes, log_time_ns: int) -> None:
        try:
            self.writer.write(topic, data, log_time_ns)
        except Exception as exc:  # a full disk must be reported, not kill the graph
            self.errors += 1
            self.get_logger().error(f"writing {topic} failed: {exc!r}",
                                    throttle_duration_sec=5.0)

    def _health(self):
        self._single_publisher = {t for t, _ in self._subs if self.count_publishers(t) == 1}
        counts = self.writer.counts
        return self._tracker.assess(
            {"messages": sum(counts.values()), "lost": sum(self.lost.values()),
             "write_errors": self.errors},
            values={"file": str(self.writer.partial_path), "bytes": self.writer.bytes_written,
                    "dropped_by_camera_rate": self.dropped_by_rate,
                    "count": dict(counts), "lost_by_topic": dict(self.lost)})

    def close(self) -> None:
        self.diagnostics.close()
        self._stop.set()
        self._thread.join(timeout=10.0)
        path = self.writer.close()
        self._inputs.destroy_node()
        lost = f"; lost before they were taken: {self.lost}" if self.lost else ""
        self.get_logger().info(f"recording finished: {path} ({sum(self.writer.counts.values())} "
                               f"messages, {path.stat().st_size / 1e6:.1f} MB){lost}")


def lower_priority(nice: int) -> None:
    """Raise the niceness of every thread of this process by ``nice`` (Linux applies nice per
    thread, and DDS started its threads before this node existed)."""
    if nice <= 0:
        return
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)  # relative to how it was started
    for task in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        try:
            tid = int(task)
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), target))
        except (OSError, ValueError):
            pass


def _downscale_image(msg, factor: int) -> None:
    import numpy as np

    from robot_rl.ros.messages import image_to_msg, msg_to_image
    small = downscale_frame(np.asarray(msg_to_image(msg)), factor)
    scaled = image_to_msg(small, 0.0, msg.header.frame_id, msg.encoding)
    msg.height, msg.width, msg.step, msg.data = scaled.height, scaled.width, scaled.step, scaled.data


def _downscale_info(msg, factor: int) -> None:
    # Pixel coordinates shrink by the factor: fx, fy, cx, cy and the projection's first rows.
    k, p = list(msg.k), list(msg.p)
    for i in (0, 2, 4, 5):
        k[i] /= factor
    for i in (0, 2, 3, 5, 6, 7):
        p[i] /= factor
    msg.k, msg.p = k, p
    msg.width, msg.height = msg.width // factor, msg.height // factor


def main(args=None) -> int:
    return run_nodes(lambda: [RecorderNode()], args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
