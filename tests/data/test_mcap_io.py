"""MCAP recordings without DDS: real rclpy CDR bytes in, read back by robot_rl, rosbags and
mcap_ros2; truncated, foreign and unfinished files."""
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from robot_rl.config import load_config
from robot_rl.data import mcap_io
from robot_rl.data.mcap_io import RecordingError, RecordingWriter, open_recording, recover


# rclpy leaves CDR alignment padding uninitialised, so two serialisations of one message may
# differ in those bytes: each sample message is serialised once and the same bytes compared.
@lru_cache(maxsize=None)
def joint_state(i: int) -> bytes:
    msg = JointState(name=["a", "b"], position=[0.1 * i, -0.2], velocity=[0.0, 0.0],
                     effort=[1.0, 2.0])
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + i, 5
    return serialize_message(msg)


@lru_cache(maxsize=None)
def image(i: int) -> bytes:
    msg = Image(height=4, width=6, encoding="rgb8", step=18,
                data=bytes((np.arange(72) + i) % 256))
    msg.header.stamp.sec = 100 + i
    return serialize_message(msg)


def write_sample(path: Path, n: int = 20, chunk_size: int = 1 << 20) -> Path:
    writer = RecordingWriter(path, chunk_size=chunk_size, metadata={"config": "task: x"})
    writer.add_channel("/joint_states", "sensor_msgs/msg/JointState")
    writer.add_channel("/camera/front/image_raw", "sensor_msgs/msg/Image")
    writer.add_channel("/episode/event", "std_msgs/msg/String")
    writer.add_channel("/clock", "rosgraph_msgs/msg/Clock")
    for i in range(n):
        t = 1_000_000_000 + i * 10_000_000
        writer.write("/clock", serialize_message(Clock(clock=JointState().header.stamp)), t)
        writer.write("/joint_states", joint_state(i), t + 1)
        writer.write("/camera/front/image_raw", image(i), t + 2)
    writer.write("/episode/event", serialize_message(String(data='{"event": "success"}')),
                 2_000_000_000)
    assert writer.partial_path.exists() and not path.exists()  # not final until closed
    return writer.close()


def test_round_trip_keeps_bytes_stamps_and_counts(tmp_path):
    path = write_sample(tmp_path / "run.mcap")
    assert path.exists() and not (tmp_path / "run.mcap.partial").exists()
    with pytest.raises(RecordingError, match=r"run\.mcap already exists; expected a new"):
        RecordingWriter(path)  # a finished recording is never overwritten
    with open_recording(path) as rec:
        channels = rec.channels
        assert {t: (c.type, c.count) for t, c in channels.items()} == {
            "/joint_states": ("sensor_msgs/msg/JointState", 20),
            "/camera/front/image_raw": ("sensor_msgs/msg/Image", 20),
            "/episode/event": ("std_msgs/msg/String", 1),
            "/clock": ("rosgraph_msgs/msg/Clock", 20)}
        assert rec.metadata()["config"] == "task: x"
        joints = list(rec.messages(["/joint_states"], decode=True))
    assert [m.data for m in joints] == [joint_state(i) for i in range(20)]
    # publish_time is the header stamp, log_time the receive time
    assert [m.publish_time_ns for m in joints] == [(100 + i) * 10**9 + 5 for i in range(20)]
    assert joints[3].log_time_ns == 1_000_000_000 + 30_000_000 + 1
    assert list(joints[3].msg.position) == pytest.approx([0.3, -0.2])
    back = deserialize_message(joints[3].data, JointState)  # rclpy reads its own bytes back
    assert back.name == ["a", "b"]


def test_rosbags_and_mcap_ros2_read_it(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    path = write_sample(tmp_path / "run.mcap")
    with AnyReader([path]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/camera/front/image_raw"] == "sensor_msgs/msg/Image"
        frames = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/camera/front/image_raw"]
    assert len(frames) == 20
    assert frames[7].encoding == "rgb8" and frames[7].data.tobytes() == bytes((np.arange(72) + 7) % 256)
    with open(path, "rb") as f:
        decoded = [(c.topic, m) for _, c, _, m in
                   make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert sum(t == "/joint_states" for t, _ in decoded) == 20
    assert [m.data for t, m in decoded if t == "/episode/event"] == ['{"event": "success"}']


def test_truncated_file_names_the_file_and_the_fix(tmp_path):
    path = write_sample(tmp_path / "run.mcap")
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RecordingError, match=r"cut\.mcap: truncated MCAP file.*--recover"):
        open_recording(cut)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.mcap"
    text.write_text("hello, not a recording\n")
    with pytest.raises(RecordingError, match=r"notes\.mcap: not an MCAP file.*expected the MCAP magic"):
        open_recording(text)
    from mcap.writer import Writer
    json_file = tmp_path / "json.mcap"
    with open(json_file, "wb") as f:
        writer = Writer(f)
        writer.start(profile="", library="test")
        schema = writer.register_schema("Thing", "jsonschema", b"{}")
        channel = writer.register_channel("/thing", "json", schema)
        writer.add_message(channel, 1, b"{}", 1)
        writer.finish()
    with pytest.raises(RecordingError, match=r"json\.mcap: MCAP profile is ''.*expected 'ros2'"):
        open_recording(json_file)
    with pytest.raises(RecordingError, match=r"missing\.mcap does not exist"):
        open_recording(tmp_path / "missing.mcap")


def test_killed_writer_leaves_a_partial_file_that_recovers(tmp_path):
    path = tmp_path / "run.mcap"
    writer = RecordingWriter(path, chunk_size=4096)  # small chunks: many complete ones
    writer.add_channel("/joint_states", "sensor_msgs/msg/JointState")
    for i in range(500):
        writer.write("/joint_states", joint_state(i), 10**9 + i)
    writer._stream.flush()  # what the OS has when the process dies (no summary, no footer)
    partial = writer.abort()
    assert partial.name == "run.mcap.partial" and not path.exists()
    with pytest.raises(RecordingError, match=r"run\.mcap\.partial already exists"):
        RecordingWriter(path)  # nor is an unfinished one that could still be recovered
    with pytest.raises(RecordingError, match=r"run\.mcap\.partial exists.*--recover"):
        open_recording(path)
    out, count = recover(partial)
    assert out.name == "run.recovered.mcap"
    with pytest.raises(RecordingError, match="run.recovered.mcap already exists"):
        recover(partial)
    assert 0 < count <= 500
    with open_recording(out) as rec:
        got = list(rec.messages())
    assert len(got) == count
    # what is kept is a prefix of what was written, byte for byte
    assert [m.data for m in got] == [joint_state(i) for i in range(count)]


def test_recording_topics_follow_the_config():
    cfg = load_config(None, {"recording.exclude": ["/diagnostics"],
                             "recording.camera_downscale": 2})
    topics = mcap_io.recording_topics(cfg)
    assert topics["/camera/wrist/image_raw"] == "sensor_msgs/msg/Image"
    assert topics["/tactile/left/image"] == "sensor_msgs/msg/Image"
    assert "/diagnostics" not in topics and topics["/intervention/action"] == "sensor_msgs/msg/Joy"
    cfg = load_config(None, {"recording.cameras": False})
    assert not any(t.startswith("/camera/") for t in mcap_io.recording_topics(cfg))
    cfg = load_config(None, {"recording.topics": ["/joint_states", "/camera/top/image_raw"]})
    with pytest.raises(RecordingError, match=r"recording.topics: \['/camera/top/image_raw'\]"):
        mcap_io.recording_topics(cfg)


def test_every_contract_type_has_a_jazzy_schema():
    cfg = load_config(None)
    for type_name in set(mcap_io.contract_topics(cfg).values()):
        text = mcap_io.message_definition(type_name)
        assert text.strip(), type_name
    assert mcap_io.message_definition("sensor_msgs/msg/Image").startswith("std_msgs/Header header")
    with pytest.raises(RecordingError, match="not a ROS 2 Jazzy type"):
        mcap_io.message_definition("my_msgs/msg/Thing")


def test_downscale_averages_blocks():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[:2, :2] = 200
    small = mcap_io.downscale_frame(frame, 2)
    assert small.shape == (2, 3, 3)
    assert small[0, 0].tolist() == [200, 200, 200] and small[1, 2].tolist() == [0, 0, 0]
    with pytest.raises(RecordingError, match="leaves nothing"):
        mcap_io.downscale_frame(frame, 8)
