"""Actor <-> learner wire format: versioned, size-checked, pickle-free.

Every message is one ``std_msgs/UInt8MultiArray`` whose ``data`` is::

    header (24 bytes, little endian)
        magic      4s   b"RRLT"
        version    u16  FORMAT_VERSION
        kind       u8   KIND_TRANSITIONS | KIND_WEIGHTS
        flags      u8   FLAG_SIGNED or 0 (was "reserved, 0": unsigned frames are unchanged)
        meta_len   u32  bytes of the JSON metadata
        blob_len   u32  bytes of the safetensors blob
        crc32      u32  zlib.crc32 of (metadata + blob)
        trailer    u32  bytes after the blob: 72 when signed, else 0
    metadata   meta_len bytes of UTF-8 JSON
    blob       blob_len bytes of safetensors (``safetensors.numpy.save``)
    signature trailer (signed frames only)
        key_id     8 bytes  SHA-256(signer's raw Ed25519 public key)[:8]
        signature  64 bytes Ed25519 over "robot_rl-frame-v1:" + SHA-512(header + metadata +
                            blob + key_id)

Signing (``robot_rl.security``): a receiver given a ``keyring`` refuses, before parsing the
payload, frames that are unsigned (``unsigned``), signed by a key it does not know
(``unknown_key``), whose signature does not verify (``bad_signature``), signed by a key of the
wrong role (``wrong_role``: weights only from a learner key, transitions only from actor keys),
and transition batches whose ``actor_id`` is not the one the signing key is bound to
(``actor_id_mismatch``). Without a keyring, signatures are not checked.

Transition batches (one actor, consecutive steps, possibly spanning episodes): images stay
uint8 and every frame travels once. ``next_obs.<key>`` [T, ...] holds the next observation of
every step; ``obs.<key>`` [F, ...] holds the first observation of the F episodes that start in
this batch, at the rows listed in ``first`` (int64 [F]). The learner rebuilds the other
``obs`` from the previous step's ``next_obs`` (``TransitionAssembler``). Per-step arrays:
``action`` f32 [T, A], ``reward`` f32 [T], ``terminated``/``truncated``/``intervened`` bool
[T], ``episode``/``step``/``weights_version``/``steps_since_intervention`` int64 [T].
Metadata: ``actor_id``, ``seq`` (message counter), ``first_step`` (actor-wide transition
counter of row 0), ``keys`` (name -> dtype and shape), ``count``, optionally ``outbox_from``
(the oldest actor-wide step the actor still holds unacknowledged; see
``robot_rl.learning.outbox`` for the acknowledgement kind ``KIND_ACK`` and the resend rules).

Actor weights: ``RLPDAgent.actor_state_dict()`` flattened to ``<module>/<param>`` tensors,
metadata ``version`` (the learner's publication counter), ``updates`` and ``learner`` (a
random id of the learner process) and ``run`` (the id of the learner's run folder, kept
across restarts: versions never go backwards within a run, and an actor refuses a lower
version of the run it follows).

Decoding never trusts the sender: size limit first, then magic, version, kind, lengths, CRC,
JSON, safetensors, then key names, dtypes and shapes against what the receiver expects, then
values: no NaN/inf, integers in range, actions inside the receiver's action bounds, rewards
inside the task's declared reward range (``reward_range``; ``MAX_ABS_REWARD`` when none is
given: one finite 1e30 action or reward would still turn every weight NaN at the first update). Every failure raises ``TransportError`` whose ``reason`` is a short
category for counting.
"""
from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

MAGIC = b"RRLT"
FORMAT_VERSION = 1
KIND_TRANSITIONS = 1
KIND_WEIGHTS = 2
KIND_ACK = 3  # learner -> actors: transitions durable so far (robot_rl.learning.outbox)
KINDS = {KIND_TRANSITIONS: "transitions", KIND_WEIGHTS: "weights", KIND_ACK: "ack"}
KIND_ROLES = {KIND_TRANSITIONS: "actor", KIND_WEIGHTS: "learner", KIND_ACK: "learner"}  # signers
FLAG_SIGNED = 1
KEY_ID_BYTES, SIGNATURE_BYTES = 8, 64
SIGNED_TRAILER = KEY_ID_BYTES + SIGNATURE_BYTES
SIGNATURE_CONTEXT = b"robot_rl-frame-v1:"
_HEADER = struct.Struct("<4sHBBIIII")
HEADER_SIZE = _HEADER.size  # 24
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_ABS_REWARD = 1e6  # far beyond any sane reward scale, far below float32 overflow in a TD loss
ACTION_TOLERANCE = 1e-5  # float rounding of a tanh-squashed, rescaled action at its bounds
INT64_MAX, INT32_MAX = 2**63 - 1, 2**31 - 1

_STEP_FIELDS = {  # per-step arrays of a transition batch: name -> dtype
    "reward": np.float32, "terminated": np.bool_, "truncated": np.bool_, "intervened": np.bool_,
    "episode": np.int64, "step": np.int64, "weights_version": np.int64,
    "steps_since_intervention": np.int64,
}


class TransportError(ValueError):
    """A message was rejected; ``reason`` is a short category (for counting), the text says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# --------------------------------------------------------------------------------------------
# framing
# --------------------------------------------------------------------------------------------
def _signed_digest(parts) -> bytes:
    # Ed25519 signs SHA-512(frame): one hashing pass (OpenSSL's Ed25519 over a 0.5 MB message
    # took 18 ms, its SHA-512 0.7 ms); the prefix keeps these signatures apart from any other.
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return SIGNATURE_CONTEXT + h.digest()


def pack(kind: int, meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray],
         signer=None) -> bytes:
    """Frame a message; ``signer`` (``robot_rl.security.Signer``) appends the signature trailer."""
    from safetensors.numpy import save

    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind}")
    meta_b = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    blob = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    crc = zlib.crc32(blob, zlib.crc32(meta_b))
    flags, trailer = (FLAG_SIGNED, SIGNED_TRAILER) if signer is not None else (0, 0)
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION, kind, flags, len(meta_b), len(blob), crc,
                          trailer), meta_b, blob]
    if signer is not None:
        key_id = bytes(signer.key_id)
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError(f"signer key id has {len(key_id)} bytes, expected {KEY_ID_BYTES}")
        parts.append(key_id)
        signature = signer.sign(_signed_digest(parts))
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature has {len(signature)} bytes, expected {SIGNATURE_BYTES}")
        parts.append(signature)
    return b"".join(parts)


@dataclass
class Frame:
    kind: int
    meta: Dict[str, Any]
    tensors: Dict[str, np.ndarray]
    signer: Any = None  # robot_rl.security.KeyInfo of a verified signature, else None


def unpack(data: bytes | bytearray | memoryview, max_bytes: int = DEFAULT_MAX_BYTES,
           kind: Optional[int] = None) -> Tuple[int, Dict[str, Any], Dict[str, np.ndarray]]:
    """Check the framing and return ``(kind, metadata, tensors)``; raises ``TransportError``."""
    frame = read_frame(data, max_bytes, kind)
    return frame.kind, frame.meta, frame.tensors


def _verify(data, got_kind: int, flags: int, trailer: int, signed_len: int, keyring) -> Any:
    if not flags & FLAG_SIGNED:
        raise TransportError("unsigned", f"unsigned {KINDS[got_kind]} message; this receiver "
                                         f"accepts only frames signed by a key of its keyring")
    view = memoryview(data)
    key_id = bytes(view[signed_len - KEY_ID_BYTES:signed_len])
    key = keyring.lookup(key_id)
    if key is None:
        raise TransportError("unknown_key", f"signed by key {key_id.hex()}, which is not in the "
                                            f"keyring")
    if not key.verify(bytes(view[signed_len:]), _signed_digest([view[:signed_len]])):
        raise TransportError("bad_signature", f"signature of key {key_id.hex()} ({key.name}) "
                                              f"does not verify: altered or forged message")
    if key.role != KIND_ROLES[got_kind]:
        raise TransportError("wrong_role", f"{KINDS[got_kind]} signed by {key.role} key "
                                           f"{key.name!r}; only {KIND_ROLES[got_kind]} keys may "
                                           f"sign them")
    return key


def read_frame(data: bytes | bytearray | memoryview, max_bytes: int = DEFAULT_MAX_BYTES,
               kind: Optional[int] = None, keyring=None) -> Frame:
    """Check the framing (and, given a ``keyring``, the signature before anything else of the
    payload is parsed) and return the ``Frame``; raises ``TransportError``."""
    n = len(data)
    if n > max_bytes:
        raise TransportError("oversize", f"message of {n} bytes exceeds the limit of {max_bytes}")
    if n < HEADER_SIZE:
        raise TransportError("truncated", f"message of {n} bytes is shorter than the "
                                          f"{HEADER_SIZE}-byte header")
    magic, version, got_kind, flags, meta_len, blob_len, crc, trailer = \
        _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise TransportError("bad_magic", f"magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise TransportError("bad_version", f"format version {version}, this build reads "
                                            f"{FORMAT_VERSION}")
    if got_kind not in KINDS:
        raise TransportError("bad_kind", f"unknown message kind {got_kind}")
    if kind is not None and got_kind != kind:
        raise TransportError("bad_kind", f"got a {KINDS[got_kind]} message, expected "
                                         f"{KINDS[kind]}")
    if HEADER_SIZE + meta_len + blob_len + trailer != n:
        raise TransportError("length_mismatch", f"header announces {meta_len} + {blob_len} + "
                                                f"{trailer} payload bytes, message carries "
                                                f"{n - HEADER_SIZE}")
    if flags & ~FLAG_SIGNED or (trailer, bool(flags & FLAG_SIGNED)) not in ((0, False),
                                                                            (SIGNED_TRAILER, True)):
        raise TransportError("bad_header", f"flags {flags:#x} with a {trailer}-byte trailer; "
                                           f"expected 0 and 0, or {FLAG_SIGNED} (signed) and "
                                           f"{SIGNED_TRAILER}")
    signed_len = HEADER_SIZE + meta_len + blob_len + (KEY_ID_BYTES if trailer else 0)
    signer = None
    if keyring is not None:
        signer = _verify(data, got_kind, flags, trailer, signed_len, keyring)
    body = memoryview(data)[HEADER_SIZE:HEADER_SIZE + meta_len + blob_len]
    meta_b, blob = bytes(body[:meta_len]), bytes(body[meta_len:])
    if zlib.crc32(blob, zlib.crc32(meta_b)) != crc:
        raise TransportError("crc_mismatch", "payload CRC32 does not match the header")
    try:
        meta = json.loads(meta_b)
    except (ValueError, RecursionError) as exc:  # not UTF-8/JSON, nested too deep, huge numbers
        raise TransportError("bad_metadata", f"metadata is not readable JSON: "
                                             f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(meta, dict):
        raise TransportError("bad_metadata", "metadata is not a JSON object")
    try:
        from safetensors.numpy import load

        tensors = load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise TransportError("bad_payload", f"payload is not a safetensors blob: {exc}") from None
    return Frame(got_kind, meta, tensors, signer)


def to_msg(data: bytes):
    """Bytes -> ``std_msgs/UInt8MultiArray`` (imported lazily: the codec itself is ROS-free)."""
    from std_msgs.msg import UInt8MultiArray

    msg = UInt8MultiArray()
    msg.data = data
    return msg


def from_msg(msg) -> bytes:
    data = msg.data
    return data.tobytes() if hasattr(data, "tobytes") else bytes(data)


def obs_spec_of(space) -> Dict[str, Dict[str, Any]]:
    """``{key: {"shape": [...], "dtype": "uint8"|"float32"}}`` like the replay manifest."""
    from robot_rl.spaces import as_dict_space, classify_observation_space

    space = as_dict_space(space)
    kinds = classify_observation_space(space)
    return {k: {"shape": list(space[k].shape),
                "dtype": "uint8" if kinds[k] == "image" else "float32"} for k in space.spaces}


# --------------------------------------------------------------------------------------------
# transitions
# --------------------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One env step as the actor saw it. ``obs`` only for the first step of an episode."""
    action: np.ndarray
    reward: float
    next_obs: Mapping[str, np.ndarray]
    terminated: bool
    truncated: bool
    intervened: bool = False
    episode: int = 0
    step: int = 0
    weights_version: int = 0
    steps_since_intervention: int = -1
    obs: Optional[Mapping[str, np.ndarray]] = None


@dataclass
class TransitionBatch:
    actor_id: int
    seq: int
    first_step: int
    steps: List[StepRecord] = field(default_factory=list)
    outbox_from: int = -1  # oldest actor-wide step the actor still holds unacknowledged


def encode_transitions(steps: Sequence[StepRecord], actor_id: int, seq: int, first_step: int,
                       obs_spec: Mapping[str, Mapping[str, Any]],
                       outbox_from: Optional[int] = None, signer=None) -> bytes:
    if not steps:
        raise ValueError("encode_transitions: empty batch")
    t: Dict[str, np.ndarray] = {}
    first = [i for i, s in enumerate(steps) if s.obs is not None]
    for k, spec in obs_spec.items():
        dt = np.dtype(spec["dtype"])
        t[f"next_obs.{k}"] = np.stack([np.asarray(s.next_obs[k], dt) for s in steps])
        if first:
            t[f"obs.{k}"] = np.stack([np.asarray(steps[i].obs[k], dt) for i in first])
    t["first"] = np.asarray(first, np.int64)
    t["action"] = np.stack([np.asarray(s.action, np.float32).reshape(-1) for s in steps])
    for name, dt in _STEP_FIELDS.items():
        t[name] = np.asarray([getattr(s, name) for s in steps], dt)
    meta = {"actor_id": int(actor_id), "seq": int(seq), "first_step": int(first_step),
            "count": len(steps),
            **({"outbox_from": int(outbox_from)} if outbox_from is not None else {}),
            "keys": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in t.items()}}
    return pack(KIND_TRANSITIONS, meta, t, signer)


def _int(meta: Mapping[str, Any], key: str, hi: int = INT64_MAX, default: Optional[int] = None) -> int:
    """A metadata integer in ``[0, hi]`` (``default`` when absent, if one is given)."""
    v = meta.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
        raise TransportError("bad_metadata", f"metadata {key!r} must be an integer in "
                                             f"[0, {hi}], got {str(v)[:40]!r}")
    return v


def decode_transitions(data: bytes, obs_spec: Mapping[str, Mapping[str, Any]], action_dim: int,
                       max_bytes: int = DEFAULT_MAX_BYTES,
                       action_bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                       keyring=None,
                       reward_range: Optional[Tuple[float, float]] = None) -> TransitionBatch:
    """Decode and validate a transition batch against the observation spec, the action size
    and, if given, the action space's ``(low, high)``, the task's reward ``(low, high)`` and the
    keyring its signature must verify against (the actor id must be the signing key's)."""
    frame = read_frame(data, max_bytes, KIND_TRANSITIONS, keyring)
    meta, t = frame.meta, frame.tensors
    actor_id = _int(meta, "actor_id", INT32_MAX)  # the replay stores it as int32
    if frame.signer is not None and frame.signer.actor_id != actor_id:
        raise TransportError("actor_id_mismatch", f"batch claims actor id {actor_id}, but it is "
                                                  f"signed by {frame.signer.name!r}, the key of "
                                                  f"actor {frame.signer.actor_id}")
    seq, first_step, count = (_int(meta, k) for k in ("seq", "first_step", "count"))
    if count < 1:
        raise TransportError("bad_shape", f"batch announces {count} transitions")
    first = t.get("first")
    if first is None or first.dtype != np.int64 or first.ndim != 1:
        raise TransportError("unknown_keys", "missing or malformed 'first' index array")
    expected: Dict[str, Tuple[Tuple[int, ...], np.dtype]] = {
        "first": ((len(first),), np.dtype(np.int64)),
        "action": ((count, action_dim), np.dtype(np.float32)),
    }
    for name, dt in _STEP_FIELDS.items():
        expected[name] = ((count,), np.dtype(dt))
    for k, spec in obs_spec.items():
        shape, dt = tuple(spec["shape"]), np.dtype(spec["dtype"])
        expected[f"next_obs.{k}"] = ((count, *shape), dt)
        if len(first):
            expected[f"obs.{k}"] = ((len(first), *shape), dt)
    unknown, missing = sorted(set(t) - set(expected)), sorted(set(expected) - set(t))
    if unknown or missing:
        raise TransportError("unknown_keys", f"unexpected keys {unknown}, missing keys {missing} "
                                             f"(observation keys expected: {sorted(obs_spec)})")
    for name, (shape, dt) in expected.items():
        arr = t[name]
        if arr.shape != shape or arr.dtype != dt:
            raise TransportError("bad_shape", f"{name!r} is {arr.dtype}{list(arr.shape)}, "
                                              f"expected {dt}{list(shape)}")
    if len(first) and (np.any(np.diff(first) <= 0) or first[0] < 0 or first[-1] >= count):
        raise TransportError("bad_shape", f"'first' rows {first.tolist()} are not increasing "
                                          f"rows of a {count}-step batch")
    for name in ["action", "reward"] + [f"{p}.{k}" for p in ("obs", "next_obs")
                                        for k, s in obs_spec.items() if s["dtype"] == "float32"]:
        if name in t and not np.all(np.isfinite(t[name])):
            raise TransportError("non_finite", f"{name!r} contains NaN or inf")
    r_low, r_high = reward_range if reward_range is not None else (-MAX_ABS_REWARD, MAX_ABS_REWARD)
    r_tol = 0.0 if reward_range is None else ACTION_TOLERANCE * max(1.0, r_high - r_low)
    outside_r = (t["reward"] < r_low - r_tol) | (t["reward"] > r_high + r_tol)
    if outside_r.any():
        i = int(np.argmax(outside_r))
        raise TransportError("out_of_range", f"reward {float(t['reward'][i]):.6g} of step {i} lies "
                                             f"outside the task's reward range [{r_low:g}, "
                                             f"{r_high:g}]")
    if action_bounds is not None:
        low, high = (np.asarray(b, np.float32).reshape(-1) for b in action_bounds)
        tol = ACTION_TOLERANCE * np.maximum(1.0, high - low)
        outside = np.any((t["action"] < low - tol) | (t["action"] > high + tol), axis=1)
        if outside.any():
            i = int(np.argmax(outside))
            raise TransportError("out_of_range", f"action of step {i} {t['action'][i].tolist()} lies "
                                                 f"outside the action space {low.tolist()} .. "
                                                 f"{high.tolist()}")
    firsts = {int(r): j for j, r in enumerate(first)}
    batch = TransitionBatch(actor_id, seq, first_step,
                            outbox_from=_int(meta, "outbox_from") if "outbox_from" in meta else -1)
    for i in range(count):
        j = firsts.get(i)
        batch.steps.append(StepRecord(
            action=t["action"][i], reward=float(t["reward"][i]),
            next_obs={k: t[f"next_obs.{k}"][i] for k in obs_spec},
            terminated=bool(t["terminated"][i]), truncated=bool(t["truncated"][i]),
            intervened=bool(t["intervened"][i]), episode=int(t["episode"][i]),
            step=int(t["step"][i]), weights_version=int(t["weights_version"][i]),
            steps_since_intervention=int(t["steps_since_intervention"][i]),
            obs=None if j is None else {k: t[f"obs.{k}"][j] for k in obs_spec}))
    return batch


@dataclass
class Transition:
    obs: Dict[str, np.ndarray]
    record: StepRecord
    actor_id: int


class TransitionAssembler:
    """Learner side: rebuilds ``obs`` of each step from the previous step's ``next_obs``.

    Kept per actor. A step whose ``obs`` cannot be rebuilt (the learner joined mid-episode, or
    a message was lost: a gap in ``first_step``) is dropped and counted in ``dropped``; the
    chain restarts from that step's ``next_obs``.
    """

    def __init__(self):
        self._last: Dict[int, Tuple[int, Optional[Dict[str, np.ndarray]]]] = {}
        self.dropped = 0
        self.gaps = 0

    def feed(self, batch: TransitionBatch) -> List[Transition]:
        out: List[Transition] = []
        expect, prev = self._last.get(batch.actor_id, (None, None))
        if expect is not None and batch.first_step != expect:
            self.gaps += 1
            prev = None
        for i, rec in enumerate(batch.steps):
            obs = rec.obs if rec.obs is not None else prev
            if obs is None:
                self.dropped += 1
            else:
                out.append(Transition(dict(obs), rec, batch.actor_id))
            prev = None if (rec.terminated or rec.truncated) else dict(rec.next_obs)
        self._last[batch.actor_id] = (batch.first_step + len(batch.steps), prev)
        return out


# --------------------------------------------------------------------------------------------
# actor weights
# --------------------------------------------------------------------------------------------
def flatten_state(sd: Mapping[str, Any], prefix: str = "") -> Dict[str, np.ndarray]:
    out: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_state(v, name + "/"))
        else:
            out[name] = v.detach().cpu().contiguous().numpy() if hasattr(v, "detach") \
                else np.asarray(v)
    return out


def encode_weights(actor_state: Mapping[str, Any], version: int, updates: int = 0,
                   learner: str = "", run: str = "", signer=None) -> bytes:
    """``RLPDAgent.actor_state_dict()`` -> message bytes."""
    t = flatten_state(actor_state)
    meta = {"version": int(version), "updates": int(updates), "learner": str(learner),
            "run": str(run),
            "keys": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in t.items()}}
    return pack(KIND_WEIGHTS, meta, t, signer)


def decode_weights(data: bytes, reference: Mapping[str, Any],
                   max_bytes: int = DEFAULT_MAX_BYTES,
                   keyring=None) -> Tuple[Dict[str, Any], int, Dict[str, Any]]:
    """Decode weights and check every name, dtype and shape against ``reference`` (this agent's
    ``actor_state_dict()``) and, given a ``keyring``, that a learner key signed them. Returns
    ``(state_dict of torch tensors, version, metadata)``, where ``metadata["updates"]`` is a
    checked integer and ``metadata["learner"]`` a string."""
    import torch

    frame = read_frame(data, max_bytes, KIND_WEIGHTS, keyring)
    meta, t = frame.meta, frame.tensors
    version = _int(meta, "version")
    meta["updates"] = _int(meta, "updates", default=0)
    meta.setdefault("learner", "")
    if not isinstance(meta["learner"], str) or len(meta["learner"]) > 64:
        raise TransportError("bad_metadata", f"metadata 'learner' must be a string of at most 64 "
                                             f"characters, got {str(meta['learner'])[:40]!r}")
    meta.setdefault("run", "")
    if not isinstance(meta["run"], str) or len(meta["run"]) > 64:
        raise TransportError("bad_metadata", f"metadata 'run' must be a string of at most 64 "
                                             f"characters, got {str(meta['run'])[:40]!r}")
    ref = flatten_state(reference)
    unknown, missing = sorted(set(t) - set(ref)), sorted(set(ref) - set(t))
    if unknown or missing:
        raise TransportError("unknown_keys", f"weights have unexpected tensors {unknown[:5]} and "
                                             f"lack {missing[:5]} (different architecture?)")
    for k, r in ref.items():
        if t[k].shape != r.shape or t[k].dtype != r.dtype:
            raise TransportError("bad_shape", f"weight {k!r} is {t[k].dtype}{list(t[k].shape)}, "
                                              f"this agent has {r.dtype}{list(r.shape)}")
        if t[k].dtype.kind == "f" and not np.all(np.isfinite(t[k])):
            raise TransportError("non_finite", f"weight {k!r} contains NaN or inf")
    sd: Dict[str, Any] = {k: {} for k, v in reference.items() if isinstance(v, Mapping)}
    for k, v in t.items():
        node = sd
        parts = k.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = torch.from_numpy(np.array(v))
    return sd, version, meta
