"""The controller's robot inputs, taken from DDS at its tick instead of delivered by callbacks.

Each input's subscription lives on a helper node that no executor spins, with keep-last 1: at
each tick (and its rehearsal) the control thread takes the newest sample of every input, decodes
it with the contract's reader (``messages.decode_input``) and caches it; the loop never waits
for data. A 1 kHz robot driver sends ~3,000 joint/pose/twist messages a second, and a Python
callback for each one competed with the tick for the interpreter (docs/deployment.md).

Freshness (the watchdog's age) counts from the DDS receipt time of a message with a *new*
stamp: a repeated stamp is not new data, and a non-finite stamp never counts as fresh.
"""
from __future__ import annotations

import copy
import math
import threading
import time

import rclpy

from robot_rl.envs.task import Snapshot
from robot_rl.ros import messages as m

# Only the newest sample of an input matters to the tick; the reader keeps nothing older.
POLLED_QOS = copy.copy(m.SENSOR_QOS)
POLLED_QOS.depth = 1


class _Input:
    __slots__ = ("value", "stamp", "fresh_s", "recv_ns")

    def __init__(self, value, stamp: float, fresh_s: float, recv_ns: int):
        self.value, self.stamp, self.fresh_s, self.recv_ns = value, stamp, fresh_s, recv_ns


class PolledInputs:
    """Newest decoded sample of each of ``names`` (see the module docstring). An input whose
    message does not decode is kept out of the cache and its error put in ``errors[name]`` (the
    controller core refuses to engage / faults while any is set); ``sync`` names the input
    whose DDS sequence number the phase lock reads."""

    def __init__(self, context, node_name: str, names: list[str], gripper_joints, errors: dict[str, str],
                 log, sync: str = ""):
        if sync and sync not in names:
            raise ValueError(f"deploy.sync_input {sync!r} is not an input of this controller; "
                             f"expected one of {list(names)} or '' (no phase lock)")
        self.node = rclpy.create_node(node_name, context=context)
        self.names = list(names)
        self._gripper_joints = list(gripper_joints)
        self._errors = errors
        self._log = log
        self._lock = threading.Lock()
        self._inputs: dict[str, _Input] = {}
        self._subs = []
        self._sync_sub = None
        self.sync_seq: int | None = None  # DDS publication sequence number of the sync sample
        for name in self.names:
            msg_type, topic = m.input_topic(name)
            sub = self.node.create_subscription(msg_type, topic, lambda msg, n=name: None, POLLED_QOS)
            self._subs.append((name, sub))
            if name == sync:
                self._sync_sub = sub

    def get(self, name: str) -> _Input | None:
        return self._inputs.get(name)

    def poll(self) -> None:
        """Take the newest sample of every input from DDS and cache it. The readers keep only
        the last sample (depth 1), so one take per reader gets the newest or nothing."""
        for name, sub in self._subs:
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
            if taken is None:
                continue
            msg, info = taken
            if sub is self._sync_sub:
                self.sync_seq = info.get("publication_sequence_number")
            # DDS stamps the receipt on the system clock, the loop measures on perf_counter;
            # an rmw that gives no receipt time (0) counts the take as the receipt.
            age_ns = time.time_ns() - int(info.get("received_timestamp") or 0)
            recv_ns = time.perf_counter_ns() - (age_ns if 0 <= age_ns < 10**9 else 0)
            try:
                value = m.decode_input(name, msg, self._gripper_joints)
            except ValueError as exc:
                self._errors[name] = str(exc)
                self._log.error(str(exc), throttle_duration_sec=2.0)
                continue
            self._errors.pop(name, None)
            self._store(name, value, m.from_time(msg.header.stamp), recv_ns)

    def _store(self, name: str, value, stamp: float, now_ns: int) -> None:
        with self._lock:
            prev = self._inputs.get(name)
            if not math.isfinite(stamp):
                # A non-finite stamp never counts as fresh data (but the value is kept, so a
                # NaN payload still reaches the NaN guard).
                fresh, stamp = (float("nan"), stamp) if prev is None else (prev.fresh_s, prev.stamp)
            elif prev is not None and stamp == prev.stamp:
                fresh = prev.fresh_s  # a repeated stamp is not new data: the input ages out
            else:
                fresh = now_ns * 1e-9
            self._inputs[name] = _Input(value, stamp, fresh, now_ns)

    def snapshot(self) -> tuple[Snapshot | None, dict[str, float], int, float]:
        """(snapshot or None if an input is missing, freshness per sensor, newest receipt ns,
        pose stamp)."""
        with self._lock:
            inputs = dict(self._inputs)
        stamps = {k: v.fresh_s for k, v in inputs.items()}
        newest = max((v.recv_ns for v in inputs.values()), default=0)
        if any(s not in inputs for s in self.names):
            return None, stamps, newest, 0.0
        stamp = inputs["ee_pose"].stamp
        return m.snapshot_from_inputs({k: v.value for k, v in inputs.items()}, stamp), stamps, newest, stamp

    def destroy(self) -> None:
        self.node.destroy_node()
