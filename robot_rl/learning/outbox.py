"""At-least-once delivery of transitions, the actor's side (ROS-free).

An actor numbers its transitions with an actor-wide counter (``actor_step``; the transport's
``first_step`` of a message is the counter of its row 0) and keeps every message it sent in an
:class:`Outbox` until the learner acknowledges it. An acknowledgement (``KIND_ACK``, see
:func:`encode_ack`) says, per actor, how many of its transitions the learner holds durably:
``acks[actor_id] = n`` means every transition with ``actor_step < n`` is in the learner's
write-ahead log or replay chunks (``robot_rl.learning.intake``). The actor then forgets those.

Resending (go-back-N, :class:`Resender`): from the oldest unacknowledged message, in order,
when a new learner process appears (acks or weights under a new learner id: it lost whatever
was in flight) and when acknowledgements flow but stop advancing for ``resend_after`` seconds
(a message was lost). A resend keeps at most ``RESEND_WINDOW`` messages beyond the acknowledged
point in flight and sends more as the acknowledgements advance: a longer burst overflows the
learner's subscription queue (``TRANSITIONS_QOS`` depth 200), which drops the oldest, the very
message the learner waits for, so an unbounded resend repeats forever (seen in the chaos bench
under load). While a resend runs, new messages only join the outbox; the resend sends them in
order, so the learner never sees a newer message before an older one it lacks. The learner
drops what it already holds, so a message sent twice is stored once.

Messages are self-contained (row 0 always carries its observation), so any of them can be
resent on its own after a restart of either side.

Persistence: every message is appended to a segment file under the outbox folder before it is
published (``write`` without ``fsync``: a killed actor process loses nothing, a power loss may
lose the last seconds of an actor's unacknowledged data). A segment whose messages are all
acknowledged is deleted, except the newest, which tells a restarted actor where its step and
episode numbering stands. Record layout (little endian): ``u32 length, u64 first_step,
u32 count, i64 last_episode`` then ``length`` bytes of transport message. A torn last record
(killed mid-write) is ignored: it was never published.
"""
from __future__ import annotations

import collections
import itertools
import os
import re
import struct
import time
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Tuple

from robot_rl import transport

_RECORD = struct.Struct("<IQIq")
_SEGMENT_RE = re.compile(r"^outbox_(\d{16})\.bin$")
SEGMENT_MESSAGES = 256  # messages per segment file
RESEND_WINDOW = 100  # unacknowledged messages a resend keeps in flight (< the QoS depth 200)


# --------------------------------------------------------------------------------------------
# acknowledgements
# --------------------------------------------------------------------------------------------
@dataclass
class Ack:
    learner: str  # learner process id
    run: str  # run id (robot_rl.learning.intake.RunState)
    acks: Dict[int, int]  # actor_id -> transitions durable (actor_step < n)


def encode_ack(learner: str, run: str, acks: Dict[int, int], signer=None) -> bytes:
    """An acknowledgement, signed by ``signer`` (``robot_rl.security.Signer``) if given."""
    meta = {"learner": str(learner), "run": str(run),
            "acks": {str(int(a)): int(n) for a, n in acks.items()}}
    return transport.pack(transport.KIND_ACK, meta, {}, signer)


def decode_ack(data: bytes, max_bytes: int = 1 << 20, keyring=None) -> Ack:
    """Decode and check an acknowledgement (given a ``keyring``, its learner signature: a forged
    ack would make actors forget transitions); raises ``transport.TransportError``."""
    frame = transport.read_frame(data, max_bytes, transport.KIND_ACK, keyring)
    meta, tensors = frame.meta, frame.tensors
    if tensors:
        raise transport.TransportError("unknown_keys", f"an ack carries no tensors, got "
                                                       f"{sorted(tensors)[:5]}")
    for key in ("learner", "run"):
        v = meta.get(key)
        if not isinstance(v, str) or len(v) > 64:
            raise transport.TransportError("bad_metadata", f"ack {key!r} must be a string of at "
                                                           f"most 64 characters, got {str(v)[:40]!r}")
    raw = meta.get("acks")
    if not isinstance(raw, dict):
        raise transport.TransportError("bad_metadata", "ack 'acks' must be an object "
                                                       "{actor_id: count}")
    acks: Dict[int, int] = {}
    for k, v in raw.items():
        if (not k.isdigit() or int(k) > transport.INT32_MAX or not isinstance(v, int)
                or isinstance(v, bool) or not 0 <= v <= transport.INT64_MAX):
            raise transport.TransportError("bad_metadata", f"ack entry {k[:20]!r}: {str(v)[:20]!r} "
                                                           f"is not actor_id: count >= 0")
        acks[int(k)] = v
    return Ack(meta["learner"], meta["run"], acks)


# --------------------------------------------------------------------------------------------
# the outbox
# --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    first_step: int
    count: int
    last_episode: int
    data: bytes

    @property
    def end(self) -> int:
        return self.first_step + self.count


class Outbox:
    """Sent but unacknowledged transition messages of one actor, oldest first.

    ``path``: folder for the segment files (None: memory only). ``max_bytes``: beyond it the
    oldest messages are dropped and counted in ``dropped_steps`` (the learner learns of the gap
    from ``oldest`` in the next message and moves on instead of waiting for them).
    """

    def __init__(self, path: Optional[str] = None, max_bytes: int = 1 << 30,
                 segment_messages: int = SEGMENT_MESSAGES):
        if max_bytes <= 0:
            raise ValueError(f"outbox max_bytes must be > 0, got {max_bytes}")
        self.path = path
        self.max_bytes = int(max_bytes)
        self.segment_messages = int(segment_messages)
        self.entries: Deque[Entry] = collections.deque()
        self.bytes = 0
        self.acked = 0  # every actor_step below is durable at the learner
        self.next_step = 0  # actor_step of the next transition
        self.next_episode = 0  # first episode index a (re)started actor may use
        self.dropped_steps = 0
        self.recovered = 0  # messages read back from disk at start
        self._segments: List[Tuple[int, int]] = []  # (first_step, last end) per segment file
        self._file = None
        self._in_segment = 0
        if path:
            os.makedirs(path, exist_ok=True)
            self._load()

    # -- disk ------------------------------------------------------------------------------------
    def _segment_path(self, first_step: int) -> str:
        return os.path.join(self.path, f"outbox_{first_step:016d}.bin")

    def _load(self) -> None:
        names = sorted(n for n in os.listdir(self.path) if _SEGMENT_RE.match(n))
        for name in names:
            fname = os.path.join(self.path, name)
            with open(fname, "rb") as f:
                blob = f.read()
            pos, seg_first, seg_end = 0, None, None
            while pos + _RECORD.size <= len(blob):
                length, first, count, episode = _RECORD.unpack_from(blob, pos)
                if pos + _RECORD.size + length > len(blob):
                    break  # torn record of a killed actor: never published
                data = blob[pos + _RECORD.size:pos + _RECORD.size + length]
                pos += _RECORD.size + length
                seg_first = first if seg_first is None else seg_first
                seg_end = first + count
                if first + count > self.next_step:
                    self.entries.append(Entry(first, count, episode, data))
                    self.bytes += len(data)
                    self.next_step = first + count
                    self.next_episode = max(self.next_episode, episode + 1)
            if pos < len(blob):  # cut the torn tail so appends start on a record boundary
                with open(fname, "r+b") as f:
                    f.truncate(pos)
            if seg_first is not None:
                self._segments.append((seg_first, seg_end))
            else:
                os.remove(fname)
        self.recovered = len(self.entries)

    def _append_to_disk(self, entry: Entry) -> None:
        if self._file is None or self._in_segment >= self.segment_messages:
            if self._file is not None:
                self._file.close()
            self._file = open(self._segment_path(entry.first_step), "ab")
            self._segments.append((entry.first_step, entry.end))
            self._in_segment = 0
        self._file.write(_RECORD.pack(len(entry.data), entry.first_step, entry.count,
                                      entry.last_episode))
        self._file.write(entry.data)
        self._file.flush()  # in the OS now: survives this process being killed
        self._in_segment += 1
        self._segments[-1] = (self._segments[-1][0], entry.end)

    def _forget_segments(self) -> None:
        """Delete segment files wholly below ``acked``, never the newest (it holds the numbering)."""
        while len(self._segments) > 1 and self._segments[0][1] <= self.acked:
            first, _ = self._segments.pop(0)
            try:
                os.remove(self._segment_path(first))
            except FileNotFoundError:
                pass

    # -- use ---------------------------------------------------------------------------------------
    def add(self, first_step: int, count: int, last_episode: int, data: bytes) -> Entry:
        """Keep a message (call before publishing it)."""
        if first_step != self.next_step:
            raise ValueError(f"outbox: message starts at actor step {first_step}, expected "
                             f"{self.next_step} (steps must be numbered without gaps)")
        entry = Entry(int(first_step), int(count), int(last_episode), bytes(data))
        if self.path:
            self._append_to_disk(entry)
        self.entries.append(entry)
        self.bytes += len(entry.data)
        self.next_step = entry.end
        self.next_episode = max(self.next_episode, entry.last_episode + 1)
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            old = self.entries.popleft()
            self.bytes -= len(old.data)
            self.dropped_steps += old.count
        return entry

    def ack(self, durable: int) -> int:
        """The learner holds every step below ``durable``; returns how many messages were freed."""
        freed = 0
        if durable <= self.acked:
            return 0
        self.acked = durable
        while self.entries and self.entries[0].end <= durable:
            self.bytes -= len(self.entries.popleft().data)
            freed += 1
        if self.path:
            self._forget_segments()
        return freed

    @property
    def oldest(self) -> int:
        """The oldest actor_step still held (``next_step`` when nothing is unacknowledged)."""
        return self.entries[0].first_step if self.entries else self.next_step

    @property
    def unacked_steps(self) -> int:
        return sum(e.count for e in self.entries)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Resender:
    """When and what to resend (go-back-N over an :class:`Outbox`; see the module docstring).
    The caller serialises calls (one lock around the outbox, publishing included)."""

    def __init__(self, outbox: Outbox, resend_after: float, burst: int = 50,
                 window: int = RESEND_WINDOW):
        self.outbox = outbox
        self.resend_after = float(resend_after)
        self.burst = int(burst)
        self.window = int(window)
        self.learner: Optional[str] = None
        self.cursor: Optional[int] = None  # actor_step of the next message to resend
        self.resent = 0  # messages
        self.resends = 0  # times a resend started
        self._progress_at = time.monotonic()  # last time the ack advanced (or nothing was owed)
        self._acked = outbox.acked
        if outbox.entries:  # recovered from disk: the learner may lack all of it
            self.start()

    @property
    def active(self) -> bool:
        return self.cursor is not None

    def start(self) -> None:
        if self.outbox.entries:
            self.cursor = self.outbox.oldest
            self.resends += 1

    def on_learner(self, learner: str) -> bool:
        """A message (ack or weights) from learner process ``learner``; True if it is new."""
        if learner == self.learner:
            return False
        self.learner = learner
        # A restarted learner lost what was in flight; a first one may have missed what was
        # sent before it subscribed. Resending a few messages it holds costs only bandwidth.
        self.start()
        return True

    def on_ack(self, durable: int, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self.outbox.ack(durable)
        if durable > self._acked or not self.outbox.entries:
            self._acked = max(self._acked, durable)
            self._progress_at = now
        elif now - self._progress_at > self.resend_after and self.outbox.entries:
            self.start()  # acks arrive but do not advance: something was lost on the way
            self._progress_at = now
        if self.cursor is not None and self.cursor < self.outbox.oldest:
            self.cursor = self.outbox.oldest

    def due(self) -> List[Entry]:
        """Up to ``burst`` messages to resend now, oldest first, within ``window`` of the oldest
        unacknowledged; ends the resend at the newest."""
        if self.cursor is None:
            return []
        if self.cursor >= self.outbox.next_step:
            self.cursor = None
            return []
        out = [e for e in itertools.islice(self.outbox.entries, self.window)
               if e.first_step >= self.cursor][:self.burst]
        if out:
            self.cursor = out[-1].end
        if self.cursor >= self.outbox.next_step:
            self.cursor = None
        self.resent += len(out)
        return out
