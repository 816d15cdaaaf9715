"""Crash-safe intake of actor transitions, the learner's side (ROS-free).

What a learner acknowledges it never loses, and what it holds it stores once:

* **Dedupe by origin.** Every actor numbers its transitions (``actor_step``, actor-wide and
  kept across actor restarts; ``robot_rl.learning.outbox``) and sends them in order. Per actor
  the intake keeps ``expected``: the next ``actor_step`` it lacks. A message is admitted from
  ``expected`` on (rows below it are duplicates, dropped and counted); a message that starts
  beyond it is early (an older one was lost) and waits for the actor's resend. Since steps,
  episodes and ``actor_step`` grow together, this stores each (actor id, episode, step) once.
  An actor that gave up on old data (its outbox overflowed) says so in ``outbox_from``; the
  intake then skips ahead and counts the skipped steps as lost.
* **Write-ahead log.** An admitted message is appended, as received, to ``replay/wal.bin``
  (``u32 length, u32 crc32, message``) before its transitions enter the buffers. After a drained
  group of messages :meth:`Intake.commit` fsyncs the log (``learner.wal_fsync: batch``; ``none``
  skips the fsync: a killed learner loses nothing, an OS crash or power loss may lose the last
  unsynced messages, which the actors no longer hold) and only then do the acknowledgements
  advance. The log is cut when the replay writes a chunk: it then holds only messages with
  rows not yet in a chunk. A restarted learner reads the chunks (their origin tensors give
  ``expected`` back) and replays the log through the same dedupe.
* **Liveness.** The time each actor last delivered anything; actors silent for longer than
  ``quiet_after`` seconds are reported quiet.

``RunState`` (``run_dir/run.json``) holds the run id and the highest weight version ever
published, written durably before each publication, so versions never go backwards across
learner restarts, whether or not a checkpoint was written in between.
"""
from __future__ import annotations

import json
import os
import struct
import time
import uuid
import zlib
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from robot_rl import transport
from robot_rl.paths import atomic_write_bytes

_WAL_RECORD = struct.Struct("<II")
WAL_NAME = "wal.bin"
FSYNC_POLICIES = ("batch", "none")

Arrival = Tuple[transport.Transition, int]  # a transition and its actor_step


class RunState:
    """``run_dir/run.json``: ``{"run_id": str, "version": int}`` (see the module docstring)."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, "run.json")
        self.run_id = uuid.uuid4().hex[:16]
        self.version = 0
        if os.path.isfile(self.path):
            try:
                with open(self.path) as f:
                    doc = json.load(f)
                self.run_id = str(doc["run_id"])
                self.version = int(doc["version"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{self.path} is not a readable run state ({exc}); expected "
                                 f'{{"run_id": str, "version": int}}') from None
        else:
            self._write()

    def _write(self) -> None:
        atomic_write_bytes(self.path, json.dumps({"run_id": self.run_id,
                                                  "version": self.version}).encode())

    def next_version(self, at_least: int = 0) -> int:
        """Reserve (durably) and return the next weight version."""
        self.version = max(self.version, int(at_least)) + 1
        self._write()
        return self.version


def _read_wal(path: str) -> Tuple[List[bytes], int]:
    """Records of a WAL file and the byte length of its intact prefix."""
    if not os.path.isfile(path):
        return [], 0
    with open(path, "rb") as f:
        blob = f.read()
    out, pos = [], 0
    while pos + _WAL_RECORD.size <= len(blob):
        length, crc = _WAL_RECORD.unpack_from(blob, pos)
        data = blob[pos + _WAL_RECORD.size:pos + _WAL_RECORD.size + length]
        if len(data) != length or zlib.crc32(data) != crc:
            break  # torn tail of a crash mid-append: never acknowledged
        out.append(data)
        pos += _WAL_RECORD.size + length
    return out, pos


def _frame(data: bytes) -> bytes:
    return _WAL_RECORD.pack(len(data), zlib.crc32(data)) + data


class Intake:
    """Dedupe, write-ahead log, acknowledgements and actor liveness (module docstring).

    ``chunks``: returns ``(chunks written, transitions pending)`` of the replay writer, so the
    log is cut when a chunk is written. ``origins``: ``actor_id``/``actor_step`` arrays of what
    the replay chunks already hold (``robot_rl.learning.replay.read_origins``).
    """

    def __init__(self, replay_dir: str, chunks: Callable[[], Tuple[int, int]],
                 origins: Optional[Dict[str, np.ndarray]] = None, fsync: str = "batch",
                 quiet_after: float = 10.0, clock: Callable[[], float] = time.monotonic):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"learner.wal_fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.wal_path = os.path.join(replay_dir, WAL_NAME)
        self.chunks = chunks
        self.fsync = fsync
        self.quiet_after = float(quiet_after)
        self.clock = clock
        self.expected: Dict[int, int] = {}
        if origins is not None and len(origins.get("actor_step", ())):
            known = origins["actor_step"] >= 0
            for actor in np.unique(origins["actor_id"][known]):
                steps = origins["actor_step"][known & (origins["actor_id"] == actor)]
                self.expected[int(actor)] = int(steps.max()) + 1
        self.durable: Dict[int, int] = dict(self.expected)  # acknowledged (replaced, not mutated)
        self._chain: Dict[int, Tuple[int, Optional[Dict[str, np.ndarray]]]] = {}
        self.duplicates = 0  # steps received again and dropped
        self.early = 0  # messages that arrived before an older one the intake lacks
        self.lost = 0  # steps an actor gave up on (outbox overflow)
        self.dropped_no_obs = 0
        self.wal_syncs = 0
        self.last_seen: Dict[int, float] = {}
        self.quiet: set = set()
        self._dirty = False
        os.makedirs(replay_dir, exist_ok=True)
        self.recovered, intact = _read_wal(self.wal_path)
        self._wal = open(self.wal_path, "ab")
        self._wal.truncate(intact)  # drop a torn tail so appends start on a record boundary

    # -- admitting ---------------------------------------------------------------------------------
    def admit(self, batch: transport.TransitionBatch, now: Optional[float] = None) -> List[Arrival]:
        """The transitions of ``batch`` this learner does not hold yet, with their actor_step."""
        actor, first, count = batch.actor_id, batch.first_step, len(batch.steps)
        self.last_seen[actor] = self.clock() if now is None else now
        self.quiet.discard(actor)
        expected = self.expected.get(actor)
        if expected is None:  # first contact: from the oldest step the actor still holds
            expected = batch.outbox_from if batch.outbox_from >= 0 else first
        if batch.outbox_from > expected:
            self.lost += batch.outbox_from - expected
            expected = batch.outbox_from
            self._chain.pop(actor, None)
        self.expected[actor] = expected
        if first + count <= expected:
            self.duplicates += count
            return []
        if first > expected:
            self.early += 1
            return []
        skip = expected - first
        self.duplicates += skip
        end, prev = self._chain.get(actor, (None, None))
        if end != first:
            prev = None
        out: List[Arrival] = []
        for i, rec in enumerate(batch.steps):
            obs = rec.obs if rec.obs is not None else prev
            if i >= skip:
                if obs is None:
                    self.dropped_no_obs += 1
                else:
                    out.append((transport.Transition(dict(obs), rec, actor), first + i))
            prev = None if (rec.terminated or rec.truncated) else dict(rec.next_obs)
        self._chain[actor] = (first + count, prev)
        self.expected[actor] = first + count
        return out

    def ingest(self, data: bytes, batch: transport.TransitionBatch,
               store: Callable[[List[Arrival]], None], log: bool = True) -> int:
        """Admit ``batch`` (bytes ``data`` as received), log it, ``store`` its new transitions;
        returns how many were stored."""
        arrivals = self.admit(batch)
        if not arrivals:
            return 0
        if log:
            self._wal.write(_frame(data))
            self._dirty = True
        written = self.chunks()[0]
        store(arrivals)
        chunks, pending = self.chunks()
        if log and chunks != written:
            # Rows of earlier messages are all in chunks now; keep this one if some are not.
            self.restart_wal([data] if pending else [])
        return len(arrivals)

    def replay_wal(self, decode: Callable[[bytes], transport.TransitionBatch],
                   store: Callable[[List[Arrival]], None]) -> int:
        """Resume: replay the log left by the previous learner process; returns steps stored."""
        records, stored, keep_from = self.recovered, 0, 0
        for i, data in enumerate(records):
            written = self.chunks()[0]
            try:
                batch = decode(data)
            except transport.TransportError as exc:  # e.g. the task's observations changed
                raise ValueError(f"{self.wal_path}: logged message {i} does not fit this learner "
                                 f"({exc}); resume with the configuration the run was started "
                                 f"with, or move {self.wal_path} away to drop its "
                                 f"{len(records) - i} messages") from None
            stored += self.ingest(data, batch, store, log=False)
            if self.chunks()[0] != written:
                keep_from = i if self.chunks()[1] else i + 1
        if keep_from:
            self.restart_wal(records[keep_from:])
        self.durable = dict(self.expected)
        self.recovered = []
        return stored

    # -- durability ----------------------------------------------------------------------------------
    def restart_wal(self, records: List[bytes]) -> None:
        """Replace the log by ``records`` (atomically)."""
        self._wal.close()
        atomic_write_bytes(self.wal_path, b"".join(_frame(r) for r in records))
        self._wal = open(self.wal_path, "ab")
        self._dirty = False

    def commit(self) -> Optional[Dict[int, int]]:
        """Make what was logged durable; returns the acknowledgements that advanced (or None)."""
        if self._dirty:
            self._wal.flush()
            if self.fsync == "batch":
                os.fsync(self._wal.fileno())
                self.wal_syncs += 1
            self._dirty = False
        changed = {a: n for a, n in self.expected.items() if self.durable.get(a) != n}
        if not changed:
            return None
        self.durable = dict(self.expected)
        return changed

    def close(self) -> None:
        self.commit()
        self._wal.close()

    # -- liveness ------------------------------------------------------------------------------------
    def newly_quiet(self, now: Optional[float] = None) -> List[int]:
        """Actors that just went quiet (each reported once until it delivers again)."""
        now = self.clock() if now is None else now
        out = [a for a, t in self.last_seen.items()
               if now - t > self.quiet_after and a not in self.quiet]
        self.quiet.update(out)
        return out

    def actors(self, now: Optional[float] = None) -> Dict[str, Dict[str, float]]:
        now = self.clock() if now is None else now
        return {str(a): {"acked": self.durable.get(a, 0), "silent_s": round(now - t, 1),
                         "quiet": a in self.quiet} for a, t in sorted(self.last_seen.items())}

    def stats(self) -> Dict[str, int]:
        return {"duplicate_steps": self.duplicates, "early_messages": self.early,
                "lost_steps": self.lost, "dropped_no_obs": self.dropped_no_obs,
                "wal_syncs": self.wal_syncs}
