"""MCAP recordings of the ROS 2 topic contract, written and read without ROS.

File layout (what ``ros2 bag record -s mcap`` writes, so ``rosbags``, ``ros2 bag`` and Foxglove
open it):

- header profile ``ros2``; one channel per topic, named as on the wire (``/joint_states``,
  ``/camera/front/image_raw``...), message encoding ``cdr``;
- one schema per message type, named ``pkg/msg/Type``, encoding ``ros2msg``: the ROS 2 Jazzy
  message definition with its dependencies appended (``====`` separated ``MSG: pkg/Type``
  blocks), taken from the Jazzy type store that ships with ``rosbags``;
- each message is the exact CDR bytes rclpy received (the recorder subscribes raw), so nothing
  is re-encoded; ``log_time`` is when DDS received it (ns, system clock),
  ``publish_time`` the message's own stamp (``header.stamp``, or ``clock`` for ``/clock``)
  where it has one, else the receive time;
- a metadata record ``robot_rl`` with the recording's start time, the robot_rl version and the
  effective configuration (YAML), so an importer knows the cameras, joints and rates.

Topics and types of the contract are in :data:`CONTRACT_TYPES` (cameras and tactile sensors
are added per configured name by :func:`contract_topics`).

Crash safety: a recording is written as ``<name>.mcap.partial`` and renamed to ``<name>.mcap``
only once the summary and footer are written, so a file named ``.mcap`` is always complete.
The data are in compressed chunks (1 MiB by default); a recorder killed mid-run leaves the
``.partial`` file, whose complete chunks :func:`recover` rewrites into a finished recording
(what is lost: the chunk being filled, at most ``chunk_size`` bytes of messages).
"""
from __future__ import annotations

import io
import os
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from robot_rl import topics as T

MAGIC = b"\x89MCAP0\r\n"
PROFILE = "ros2"
MESSAGE_ENCODING = "cdr"
SCHEMA_ENCODING = "ros2msg"
PARTIAL_SUFFIX = ".partial"
METADATA_NAME = "robot_rl"

# Topic -> ROS 2 type of the contract (docs/architecture.md, README "Topics and services").
CONTRACT_TYPES: dict[str, str] = {
    T.CLOCK: "rosgraph_msgs/msg/Clock",
    T.JOINT_STATES: "sensor_msgs/msg/JointState",
    T.EE_POSE: "geometry_msgs/msg/PoseStamped",
    T.EE_TWIST: "geometry_msgs/msg/TwistStamped",
    T.EE_TARGET: "geometry_msgs/msg/PoseStamped",
    T.JOINT_TARGET: "sensor_msgs/msg/JointState",
    T.GRIPPER_TARGET: "std_msgs/msg/Float64",
    T.DRIVER_STATUS: "std_msgs/msg/String",
    T.OBJECT_POSE: "geometry_msgs/msg/PoseStamped",
    T.EPISODE_EVENT: "std_msgs/msg/String",
    T.INTERVENTION: "sensor_msgs/msg/Joy",
    T.CONTROLLER_STATUS: "std_msgs/msg/String",
    T.TASK_SUCCESS: "std_msgs/msg/Bool",
    T.TASK_REWARD: "std_msgs/msg/Float32",
    T.ACTOR_STATUS: "std_msgs/msg/String",
    T.LEARNER_STATUS: "std_msgs/msg/String",
    # The actor's transitions (robot_rl/transport.py format): what the learner trains on, so a
    # recording can be imported as demonstrations (robot_rl/data/lerobot.py).
    T.TRANSITIONS: "std_msgs/msg/UInt8MultiArray",
    T.DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class RecordingError(ValueError):
    """A recording that cannot be read or written: names the file and what was expected."""


def contract_topics(cfg, cameras: bool = True) -> dict[str, str]:
    """Every topic of the contract for this configuration, with its type."""
    topics = dict(CONTRACT_TYPES)
    if cfg.hil.topic != T.INTERVENTION:
        topics[cfg.hil.topic] = topics.pop(T.INTERVENTION)
    if cameras:
        for cam in cfg.cameras:
            topics[T.camera_image_topic(cam.name)] = IMAGE_TYPE
            topics[T.camera_info_topic(cam.name)] = CAMERA_INFO_TYPE
    for sensor in cfg.tactile:
        topics[T.tactile_topic(sensor.name)] = IMAGE_TYPE
    return topics


def default_recording_name() -> str:
    return time.strftime("recording_%Y%m%dT%H%M%SZ.mcap", time.gmtime())


def recording_topics(cfg) -> dict[str, str]:
    """The topics ``cfg.recording`` selects: the contract (or ``recording.topics``), minus
    ``recording.exclude``."""
    rc = cfg.recording
    contract = contract_topics(cfg, cameras=rc.cameras)
    everything = contract_topics(cfg, cameras=True)
    if rc.topics:
        unknown = sorted(set(rc.topics) - set(everything))
        if unknown:
            raise RecordingError(f"recording.topics: {unknown} are not topics of the contract; "
                                 f"expected some of {sorted(everything)}")
        contract = {t: everything[t] for t in rc.topics}
    unknown = sorted(set(rc.exclude) - set(everything))
    if unknown:
        raise RecordingError(f"recording.exclude: {unknown} are not topics of the contract; "
                             f"expected some of {sorted(everything)}")
    return {t: ty for t, ty in contract.items() if t not in set(rc.exclude)}


def downscale_frame(frame, factor: int):
    """An image (H, W[, C]) shrunk by an integer factor, averaging each factor x factor block."""
    import cv2
    if factor == 1:
        return frame
    height, width = frame.shape[0] // factor, frame.shape[1] // factor
    if height < 1 or width < 1:
        raise RecordingError(f"camera_downscale {factor} leaves nothing of a "
                             f"{frame.shape[1]}x{frame.shape[0]} frame")
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=None)
def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


@lru_cache(maxsize=None)
def message_definition(type_name: str) -> str:
    """The ``ros2msg`` schema text of a ROS 2 Jazzy type (``sensor_msgs/msg/Image``)."""
    store = _typestore()
    if type_name not in store.fielddefs:
        raise RecordingError(f"message type {type_name!r} is not a ROS 2 Jazzy type known to "
                             f"rosbags; expected e.g. 'sensor_msgs/msg/Image'")
    text, _ = store.generate_msgdef(type_name, ros_version=2)
    return text


def _starts_with_stamp(type_name: str) -> bool:
    # std_msgs/Header and rosgraph_msgs/Clock both begin with a builtin_interfaces/Time, which
    # CDR lays out as int32 sec, uint32 nanosec right after the 4-byte encapsulation header.
    return (type_name == "rosgraph_msgs/msg/Clock"
            or message_definition(type_name).startswith("std_msgs/Header header"))


def cdr_stamp_ns(data: bytes | memoryview) -> int | None:
    """The leading ``builtin_interfaces/Time`` of a CDR message, in ns (None if unreadable)."""
    if len(data) < 12:
        return None
    little = data[1] == 1  # encapsulation kind: 0 = CDR_BE, 1 = CDR_LE
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


class RecordingWriter:
    """Writes one MCAP recording; thread-safe callers hold their own lock (the recorder node
    writes from one executor thread).

    The file is ``path + '.partial'`` until :meth:`close` finishes it and renames it to
    ``path``; :meth:`abort` keeps the partial file for :func:`recover`.
    """

    def __init__(self, path: str | os.PathLike, compression: str = "zstd",
                 chunk_size: int = 1 << 20, metadata: dict[str, str] | None = None):
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        if self.path.suffix != ".mcap":
            raise RecordingError(f"recording path {self.path} must end in .mcap")
        kinds = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                 "none": CompressionType.NONE}
        if compression not in kinds:
            raise RecordingError(f"compression {compression!r}: expected one of {sorted(kinds)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        for existing in (self.path, self.partial_path):  # never overwrite a recording
            if existing.exists():
                raise RecordingError(f"{existing} already exists; expected a new recording name "
                                     f"(move or delete the old file first)")
        self._stream = open(self.partial_path, "xb")
        self._writer = Writer(self._stream, chunk_size=chunk_size,
                              compression=kinds[compression])
        from robot_rl import __version__
        self._writer.start(profile=PROFILE, library=f"robot_rl {__version__}")
        self._writer.add_metadata(METADATA_NAME, {
            "started_unix_ns": str(time.time_ns()), "robot_rl_version": __version__,
            **(metadata or {})})
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, bool]] = {}
        self._sequence: dict[int, int] = {}
        self.counts: dict[str, int] = {}
        self.bytes_written = 0
        self.closed = False

    def add_channel(self, topic: str, type_name: str) -> None:
        if topic in self._channels:
            return
        if type_name not in self._schemas:
            self._schemas[type_name] = self._writer.register_schema(
                type_name, SCHEMA_ENCODING, message_definition(type_name).encode())
        channel_id = self._writer.register_channel(topic, MESSAGE_ENCODING,
                                                   self._schemas[type_name])
        self._channels[topic] = (channel_id, _starts_with_stamp(type_name))
        self._sequence[channel_id] = 0
        self.counts[topic] = 0

    def write(self, topic: str, data: bytes, log_time_ns: int | None = None) -> None:
        """Append one CDR-encoded message of a channel added before."""
        if self.closed:
            raise RecordingError(f"recording {self.path} is closed; no more messages")
        try:
            channel_id, stamped = self._channels[topic]
        except KeyError:
            raise RecordingError(f"topic {topic!r} has no channel in {self.path}; call "
                                 f"add_channel first (channels: {sorted(self._channels)})") from None
        log_time = time.time_ns() if log_time_ns is None else log_time_ns
        publish_time = (cdr_stamp_ns(data) if stamped else None) or log_time
        self._writer.add_message(channel_id, log_time=log_time, data=bytes(data),
                                 publish_time=publish_time,
                                 sequence=self._sequence[channel_id])
        self._sequence[channel_id] += 1
        self.counts[topic] += 1
        self.bytes_written += len(data)

    def close(self) -> Path:
        """Write the summary and footer, flush to disk, and give the file its final name."""
        if not self.closed:
            self.closed = True
            self._writer.finish()
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            os.replace(self.partial_path, self.path)
        return self.path

    def abort(self) -> Path:
        """Stop without finishing: the ``.partial`` file stays for :func:`recover`."""
        if not self.closed:
            self.closed = True
            self._stream.close()
        return self.partial_path


@dataclass
class ChannelInfo:
    topic: str
    type: str
    count: int


@dataclass
class RecordedMessage:
    topic: str
    type: str
    log_time_ns: int
    publish_time_ns: int
    data: bytes          # CDR, as published
    msg: object = None   # decoded (mcap_ros2 dynamic type) when asked for


class Recording:
    """A finished MCAP recording opened for reading (use :func:`open_recording`)."""

    def __init__(self, path: Path):
        from mcap.exceptions import McapError
        from mcap.reader import make_reader

        self.path = path
        self._file = open(path, "rb")
        try:
            self._check_ends()
            self._reader = make_reader(self._file)
            header = self._reader.get_header()
            if header.profile != PROFILE:
                raise RecordingError(f"{path}: MCAP profile is {header.profile!r}, expected "
                                     f"{PROFILE!r} (a ROS 2 recording with CDR messages)")
            summary = self._reader.get_summary()
            if summary is None:
                raise RecordingError(f"{path}: MCAP file has no summary section; expected a "
                                     f"finished recording (robot-rl record writes one)")
            self._summary = summary
            for channel in summary.channels.values():
                schema = summary.schemas.get(channel.schema_id)
                if channel.message_encoding != MESSAGE_ENCODING or schema is None \
                        or schema.encoding != SCHEMA_ENCODING:
                    raise RecordingError(
                        f"{path}: channel {channel.topic!r} has message encoding "
                        f"{channel.message_encoding!r} and schema encoding "
                        f"{getattr(schema, 'encoding', None)!r}; expected {MESSAGE_ENCODING!r} "
                        f"and {SCHEMA_ENCODING!r} (ROS 2 messages)")
        except McapError as exc:
            self._file.close()
            raise RecordingError(f"{path}: not a readable MCAP recording ({exc}); expected a "
                                 f"finished ROS 2 MCAP file") from None
        except BaseException:
            self._file.close()
            raise

    def _check_ends(self) -> None:
        size = self._file.seek(0, io.SEEK_END)
        self._file.seek(0)
        start = self._file.read(len(MAGIC))
        if start != MAGIC:
            raise RecordingError(f"{self.path}: not an MCAP file (starts with {start[:8]!r}, "
                                 f"expected the MCAP magic {MAGIC!r})")
        self._file.seek(max(0, size - len(MAGIC)))
        if size < 2 * len(MAGIC) or self._file.read(len(MAGIC)) != MAGIC:
            raise RecordingError(
                f"{self.path}: truncated MCAP file ({size} bytes, no footer); expected a "
                f"finished recording. If a recorder was killed, `robot-rl record --recover "
                f"{self.path}` rewrites its complete chunks into a readable file")
        self._file.seek(0)

    @property
    def channels(self) -> dict[str, ChannelInfo]:
        counts = self._summary.statistics.channel_message_counts if self._summary.statistics \
            else {}
        out = {}
        for channel_id, channel in self._summary.channels.items():
            schema = self._summary.schemas[channel.schema_id]
            out[channel.topic] = ChannelInfo(channel.topic, schema.name,
                                             counts.get(channel_id, 0))
        return out

    @property
    def message_count(self) -> int:
        return sum(c.count for c in self.channels.values())

    @property
    def start_ns(self) -> int:
        stats = self._summary.statistics
        return stats.message_start_time if stats else 0

    @property
    def end_ns(self) -> int:
        stats = self._summary.statistics
        return stats.message_end_time if stats else 0

    def metadata(self) -> dict[str, str]:
        for record in self._reader.iter_metadata():
            if record.name == METADATA_NAME:
                return dict(record.metadata)
        return {}

    def messages(self, topics: Iterable[str] | None = None,
                 decode: bool = False) -> Iterator[RecordedMessage]:
        """Messages in log-time order, optionally only ``topics``; ``decode`` also parses
        them (ROS-free, from the schemas in the file)."""
        topics = list(topics) if topics is not None else None
        if topics:
            unknown = sorted(set(topics) - set(self.channels))
            if unknown:
                raise RecordingError(f"{self.path}: no channel for topic(s) {unknown}; the "
                                     f"recording has {sorted(self.channels)}")
        decoder = _ros2_decoder() if decode else None
        for schema, channel, message in self._reader.iter_messages(topics=topics,
                                                                   log_time_order=True):
            decoded = decoder(schema)(message.data) if decoder else None
            yield RecordedMessage(channel.topic, schema.name, message.log_time,
                                  message.publish_time, message.data, decoded)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ros2_decoder():
    from mcap_ros2.decoder import DecoderFactory
    factory, cache = DecoderFactory(), {}

    def for_schema(schema):
        if schema.id not in cache:
            cache[schema.id] = factory.decoder_for(MESSAGE_ENCODING, schema)
        return cache[schema.id]
    return for_schema


def open_recording(path: str | os.PathLike) -> Recording:
    """Open a finished recording, or raise :class:`RecordingError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        if partial.is_file():
            hint = (f"; {partial} exists (an unfinished recording): `robot-rl record --recover "
                    f"{partial}` makes it readable")
        raise RecordingError(f"recording {path} does not exist; expected an .mcap file{hint}")
    return Recording(path)


def recover(partial: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Rewrite the complete chunks of an unfinished recording into a finished one.

    Returns the new file and how many messages it holds. The input is left as it was.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Metadata, Schema
    from mcap.stream_reader import StreamReader
    from mcap.writer import Writer

    partial = Path(partial)
    if out is None:
        name = partial.name[:-len(PARTIAL_SUFFIX)] if partial.name.endswith(PARTIAL_SUFFIX) \
            else partial.stem + ".mcap"
        stem = name[:-len(".mcap")] if name.endswith(".mcap") else name
        out = partial.with_name(stem + ".recovered.mcap")
    out = Path(out)
    if out.exists():
        raise RecordingError(f"{out} already exists; expected a new name for the recovered "
                             f"recording (move or delete the old file first)")
    with open(partial, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise RecordingError(f"{partial}: not an MCAP file (expected the MCAP magic "
                                 f"{MAGIC!r}); nothing to recover")
    tmp = out.with_name(out.name + PARTIAL_SUFFIX)
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    count = 0
    with open(partial, "rb") as src, open(tmp, "wb") as dst:
        writer = Writer(dst)
        writer.start(profile=PROFILE, library="robot_rl recover")
        try:
            for record in StreamReader(src).records:
                if isinstance(record, Schema) and record.id not in schemas:
                    schemas[record.id] = writer.register_schema(record.name, record.encoding,
                                                                record.data)
                elif isinstance(record, Channel) and record.id not in channels:
                    channels[record.id] = writer.register_channel(
                        record.topic, record.message_encoding, schemas.get(record.schema_id, 0),
                        record.metadata)
                elif isinstance(record, Metadata):
                    writer.add_metadata(record.name, dict(record.metadata))
                elif isinstance(record, Message) and record.channel_id in channels:
                    writer.add_message(channels[record.channel_id], record.log_time,
                                       record.data, record.publish_time, record.sequence)
                    count += 1
        except (McapError, EOFError, struct.error, ValueError):
            pass  # the unfinished chunk at the end: everything before it is kept
        writer.finish()
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, out)
    return out, count
