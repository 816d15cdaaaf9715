"""Replay storage: frame-sharing ring buffer, demo/online routing, on-disk chunks.

Memory layout (why): a transition ``(o_t, a_t, r_t, o_{t+1})`` with two
128x128x3 cameras costs 192 KB if both observations are stored, 768 KB as
float32. Consecutive transitions of an episode share ``o_{t+1} == o_{t+1}``,
so we store every *frame* once (uint8 images, float32 vectors) in a frame
ring and let each transition hold two frame ids (its obs frame and its
next-obs frame). An episode of L steps stores L+1 frames, so the cost is
~1 frame (96 KB) per transition.

Frame ids are *global* (monotonic) counters; position = id % frame_capacity.
A transition is valid while its obs frame has not been overwritten; because
ids grow with insertion order, the valid transitions are always a contiguous
suffix of the transition ring, tracked by ``_oldest`` (amortised O(1)). The
frame ring gets ``capacity // 100 + 2`` spare slots for the extra first frame
of each episode, so ``capacity`` transitions fit as long as episodes average
>= 100 steps; with shorter episodes the oldest few transitions are evicted
early (never served with a wrong frame).

Continuation is detected, not assumed: when ``add`` is called with an ``obs``
equal to the previous transition's ``next_obs`` (and the previous transition
did not end the episode) the frame is reused; otherwise a new frame is written.
Interleaving actors or sparse interventions therefore stay correct. The chain is kept per
``actor_id`` (a vector env's sub-env index, or an actor node's id), so the interleaved
episodes of several sub-envs or actors still share their frames in memory; on disk a frame is
shared only with the transition recorded just before it.

On-disk format (pickle-free, also the demo file format) -- a directory:

* ``manifest.json``: ``{"format": "robot_rl.replay", "version": 1,
  "observation": {key: {"shape": [...], "dtype": "uint8"|"float32"}},
  "action_dim": A, "flush_every": K}``
* ``chunk_00000000.safetensors``, ``chunk_00000001.safetensors`` ... each
  holding K transitions (the last one possibly fewer) with tensors
  ``frame_id`` (int64, Fc), ``obs.<key>`` (Fc x shape), ``obs_frame`` and
  ``next_frame`` (int64, Tc; frame ids, which refer to frames in this chunk or
  the previous one), ``action`` (float32 Tc x A), ``reward`` (float32),
  ``terminated``/``truncated``/``intervened`` (bool), ``actor_id`` (int32), and, where
  the transitions came from actors over the wire, their origin ``episode``, ``step`` and
  ``actor_step`` (int64; the actor's episode index, step in it and actor-wide transition
  counter, -1 when unknown): the learner rebuilds its per-actor dedupe state from them.
  Chunks are written to a temp file, fsynced and atomically renamed, so a
  crash loses at most the transitions not yet flushed.
* Each chunk's safetensors metadata holds ``crc32``: zlib.crc32 (8 hex digits)
  over the bytes of every tensor, in sorted tensor-name order. It is verified
  on read, so a bit flip or a partial overwrite is reported instead of trained
  on. Chunks written before the checksum existed have no ``crc32`` entry; they
  are still read, unverified.

Validation: ``add`` rejects non-finite actions, rewards and float observations
and images that are not uint8; reading chunks rejects the same, so a demo file
written by another tool cannot smuggle NaN/inf into training. A directory with
chunk files but no ``manifest.json`` is refused (its data could be neither
checked nor resumed; appending to it would mix it with new data).
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from gymnasium import spaces

from robot_rl.paths import atomic_write_bytes

from .networks import as_dict_space, classify_observation_space

__all__ = ["ReplayBuffer", "DemoOnlineBuffers", "ChunkWriter", "read_manifest", "iter_chunks",
           "read_origins"]
ORIGIN_FIELDS = ("episode", "step", "actor_step")  # optional chunk tensors, int64

FORMAT_NAME = "robot_rl.replay"
FORMAT_VERSION = 1
_CHUNK_RE = re.compile(r"^chunk_(\d{8})\.safetensors$")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _chunk_name(i: int) -> str:
    return f"chunk_{i:08d}.safetensors"


def _chunk_crc32(tensors: Mapping[str, np.ndarray]) -> str:
    """CRC32 of a chunk's tensors; sorted names so writer and reader agree on the order."""
    crc = 0
    for name in sorted(tensors):
        crc = zlib.crc32(np.ascontiguousarray(tensors[name]), crc)
    return f"{crc:08x}"


def _first_nonfinite_row(a: np.ndarray) -> Optional[int]:
    if a.size == 0:
        return None
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def _as_float32(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == np.float32:  # the usual case, called per step: skip the errstate cost
        return a
    # Values beyond float32's range become inf here, which the caller rejects as non-finite.
    with np.errstate(over="ignore"):
        return a.astype(np.float32)


# --------------------------------------------------------------------------- #
# Disk format
# --------------------------------------------------------------------------- #
def read_manifest(path: str) -> Dict[str, Any]:
    mpath = os.path.join(path, "manifest.json")
    if not os.path.isfile(mpath):
        raise ValueError(f"replay directory {path!r} has no manifest.json (expected a robot_rl.replay directory)")
    try:
        with open(mpath, "r") as f:
            man = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt manifest {mpath!r}: {e}") from e
    if man.get("format") != FORMAT_NAME or man.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{mpath!r}: expected format {FORMAT_NAME!r} version {FORMAT_VERSION}, got {man.get('format')!r} version {man.get('version')!r}"
        )
    for field in ("observation", "action_dim", "flush_every"):
        if field not in man:
            raise ValueError(f"{mpath!r}: manifest is missing field {field!r}")
    return man


def _list_chunks(path: str) -> List[Tuple[int, str]]:
    found = []
    for name in os.listdir(path):
        m = _CHUNK_RE.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(path, name)))
    found.sort()
    for expect, (idx, fname) in enumerate(found):
        if idx != expect:
            raise ValueError(f"replay directory {path!r}: chunk numbering has a gap, expected {_chunk_name(expect)} but found {os.path.basename(fname)}")
    return found


def iter_chunks(path: str, manifest: Dict[str, Any]):
    """Yield chunk dicts of numpy arrays, validated against the manifest."""
    from safetensors import safe_open

    obs_spec = manifest["observation"]
    adim = int(manifest["action_dim"])
    for _, fname in _list_chunks(path):
        try:
            with safe_open(fname, framework="numpy") as f:
                meta = f.metadata() or {}
                c = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise ValueError(f"corrupt replay chunk {fname!r}: {e}") from e
        stored = meta.get("crc32")
        if stored is not None:  # absent in chunks from builds before the checksum: read unverified
            actual = _chunk_crc32(c)
            if stored != actual:
                raise ValueError(
                    f"corrupt replay chunk {fname!r}: checksum mismatch (metadata says crc32 {stored}, "
                    f"the data has {actual}); the file was damaged or modified after it was written"
                )
        need = ["frame_id", "obs_frame", "next_frame", "action", "reward", "terminated", "truncated", "actor_id", "intervened"]
        need += [f"obs.{k}" for k in obs_spec]
        missing = [k for k in need if k not in c]
        if missing:
            raise ValueError(f"corrupt replay chunk {fname!r}: missing tensors {missing}")
        nf, nt = len(c["frame_id"]), len(c["obs_frame"])
        for k, spec in obs_spec.items():
            a = c[f"obs.{k}"]
            if a.shape != (nf, *spec["shape"]) or str(a.dtype) != spec["dtype"]:
                raise ValueError(
                    f"corrupt replay chunk {fname!r}: obs.{k} has shape {a.shape} dtype {a.dtype}, expected {(nf, *spec['shape'])} {spec['dtype']}"
                )
        if c["action"].shape != (nt, adim):
            raise ValueError(f"corrupt replay chunk {fname!r}: action shape {c['action'].shape}, expected {(nt, adim)}")
        for k in ("next_frame", "reward", "terminated", "truncated", "actor_id", "intervened",
                  *(f for f in ORIGIN_FIELDS if f in c)):
            if c[k].shape != (nt,):
                raise ValueError(f"corrupt replay chunk {fname!r}: {k} shape {c[k].shape}, expected ({nt},)")
        floats = ["action", "reward"] + [f"obs.{k}" for k, spec in obs_spec.items() if spec["dtype"] == "float32"]
        for k in floats:
            row = _first_nonfinite_row(c[k])
            if row is not None:
                raise ValueError(
                    f"replay chunk {fname!r}: tensor {k!r} has NaN or inf in row {row}, expected finite values "
                    f"(training on it would poison the networks)"
                )
        yield fname, c


class ChunkWriter:
    """Appends transitions to a replay directory, one chunk per ``flush_every``."""

    def __init__(self, path: str, obs_spec: Dict[str, Dict[str, Any]], action_dim: int, flush_every: int):
        if flush_every <= 0:
            raise ValueError(f"flush_every must be > 0, got {flush_every}")
        self.path = path
        self.obs_spec = obs_spec
        self.action_dim = action_dim
        self.flush_every = int(flush_every)
        os.makedirs(path, exist_ok=True)
        mpath = os.path.join(path, "manifest.json")
        orphans = [n for n in os.listdir(path) if _CHUNK_RE.match(n)]
        if orphans and not os.path.isfile(mpath):
            # A fresh manifest would adopt chunks of unknown spec, and new chunks would be
            # numbered after (and later read together with) that unchecked old data.
            raise ValueError(
                f"replay directory {path!r} holds {len(orphans)} chunk file(s) but no manifest.json, so "
                f"the data can be neither checked nor resumed; restore its manifest.json or move the "
                f"chunk files elsewhere"
            )
        for name in os.listdir(path):  # leftovers of a crash mid-write
            if name.endswith(".tmp"):
                os.remove(os.path.join(path, name))
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "observation": obs_spec,
            "action_dim": action_dim,
            "flush_every": self.flush_every,
        }
        if os.path.isfile(mpath):
            old = read_manifest(path)
            if old["observation"] != obs_spec or int(old["action_dim"]) != action_dim:
                raise ValueError(
                    f"replay directory {path!r} holds data for observation={old['observation']} action_dim={old['action_dim']}, "
                    f"which does not match this buffer (observation={obs_spec} action_dim={action_dim})"
                )
        else:
            atomic_write_bytes(mpath, json.dumps(manifest, indent=1).encode())
        chunks = _list_chunks(path)
        self.next_chunk = len(chunks)
        self.next_fid = 0
        if chunks:
            from safetensors import safe_open

            with safe_open(chunks[-1][1], framework="numpy") as f:
                fids = f.get_tensor("frame_id")
            self.next_fid = int(fids.max()) + 1 if len(fids) else 0
        self._last_next_fid: Optional[int] = None  # chain never continues across a (re)open
        self._reset_pending()

    def _reset_pending(self) -> None:
        self._frames: Dict[str, List[np.ndarray]] = {k: [] for k in self.obs_spec}
        self._fids: List[int] = []
        self._tr: Dict[str, List[Any]] = {k: [] for k in ("obs_frame", "next_frame", "action", "reward", "terminated", "truncated", "actor_id", "intervened")}
        self._origins: List[Tuple[int, int, int]] = []

    def _new_frame(self, frame: Mapping[str, np.ndarray]) -> int:
        fid = self.next_fid
        self.next_fid += 1
        self._fids.append(fid)
        for k in self.obs_spec:
            self._frames[k].append(np.array(frame[k], copy=True))
        return fid

    def record(self, obs_shared: bool, obs, next_obs, action, reward, terminated, truncated, actor_id, intervened,
               origin: Optional[Tuple[int, int, int]] = None) -> None:
        if obs_shared and self._last_next_fid is not None:
            ofid = self._last_next_fid
        else:
            ofid = self._new_frame(obs)
        nfid = self._new_frame(next_obs)
        self._last_next_fid = None if (terminated or truncated) else nfid
        t = self._tr
        t["obs_frame"].append(ofid)
        t["next_frame"].append(nfid)
        t["action"].append(np.array(action, np.float32))  # a copy: the caller may reuse its array
        t["reward"].append(float(reward))
        t["terminated"].append(bool(terminated))
        t["truncated"].append(bool(truncated))
        t["actor_id"].append(int(actor_id))
        t["intervened"].append(bool(intervened))
        self._origins.append(tuple(int(v) for v in origin) if origin is not None else (-1, -1, -1))
        if len(t["obs_frame"]) >= self.flush_every:
            self.flush()

    @property
    def pending(self) -> int:
        return len(self._tr["obs_frame"])

    def flush(self) -> None:
        if self.pending == 0:
            return
        from safetensors.numpy import save

        t = self._tr
        tensors = {
            "frame_id": np.asarray(self._fids, np.int64),
            "obs_frame": np.asarray(t["obs_frame"], np.int64),
            "next_frame": np.asarray(t["next_frame"], np.int64),
            "action": np.stack(t["action"]).reshape(-1, self.action_dim).astype(np.float32),
            "reward": np.asarray(t["reward"], np.float32),
            "terminated": np.asarray(t["terminated"], np.bool_),
            "truncated": np.asarray(t["truncated"], np.bool_),
            "actor_id": np.asarray(t["actor_id"], np.int32),
            "intervened": np.asarray(t["intervened"], np.bool_),
        }
        for k, spec in self.obs_spec.items():
            tensors[f"obs.{k}"] = np.ascontiguousarray(np.stack(self._frames[k]).astype(spec["dtype"]))
        if any(o[2] >= 0 for o in self._origins):
            origins = np.asarray(self._origins, np.int64).reshape(-1, 3)
            for j, name in enumerate(ORIGIN_FIELDS):
                tensors[name] = np.ascontiguousarray(origins[:, j])
        meta = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "crc32": _chunk_crc32(tensors)}
        data = save(tensors, metadata=meta)
        atomic_write_bytes(os.path.join(self.path, _chunk_name(self.next_chunk)), data)
        self.next_chunk += 1
        self._reset_pending()


# --------------------------------------------------------------------------- #
# Ring buffer
# --------------------------------------------------------------------------- #
class ReplayBuffer:
    """Frame-sharing replay buffer (see module docstring).

    ``add`` takes single numpy transitions; ``sample`` returns a dict of torch
    tensors: ``obs``/``next_obs`` (dicts; images uint8 B x H x W x C),
    ``action`` (float32 B x A), ``reward``, ``terminated``, ``truncated``
    (float32 B), ``actor_id`` (int64 B), ``intervened`` (bool B).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_dim: int,
        capacity: int,
        persist_dir: Optional[str] = None,
        flush_every: int = 1000,
        seed: Optional[int] = None,
        frame_slack: Optional[int] = None,
        verbose: bool = True,
        name: str = "replay",
    ):
        if capacity <= 0:
            raise ValueError(f"ReplayBuffer capacity must be > 0, got {capacity}")
        if action_dim <= 0:
            raise ValueError(f"ReplayBuffer action_dim must be > 0, got {action_dim}")
        self.name = name
        self.space = as_dict_space(observation_space)
        self.kinds = classify_observation_space(self.space)
        self.capacity = int(capacity)
        self.action_dim = int(action_dim)
        self.frame_capacity = self.capacity + (self.capacity // 100 + 2 if frame_slack is None else int(frame_slack))
        if self.frame_capacity < self.capacity + 1:
            raise ValueError("frame_slack must be >= 1 (each episode needs one extra frame)")
        self.obs_spec = {
            k: {"shape": list(self.space[k].shape), "dtype": "uint8" if self.kinds[k] == "image" else "float32"} for k in self.space.spaces
        }
        F, T = self.frame_capacity, self.capacity
        # np.zeros is lazily committed by the OS: memory grows as data arrives.
        self.frames = {k: np.zeros((F, *s["shape"]), dtype=s["dtype"]) for k, s in self.obs_spec.items()}
        self.action = np.zeros((T, self.action_dim), np.float32)
        self.reward = np.zeros(T, np.float32)
        self.terminated = np.zeros(T, np.bool_)
        self.truncated = np.zeros(T, np.bool_)
        self.actor_id = np.zeros(T, np.int32)
        self.intervened = np.zeros(T, np.bool_)
        self.obs_gid = np.zeros(T, np.int64)
        self.next_gid = np.zeros(T, np.int64)
        self.n_frames = 0  # global frame counter
        self.n_added = 0  # global transition counter
        self._oldest = 0  # global id of oldest valid transition
        # Per actor_id: gid of the last next_obs frame while that actor's episode continues.
        self._chains: Dict[int, int] = {}
        self._last_actor: Optional[int] = None  # actor of the last add (the writer's chain)
        self.rng = np.random.default_rng(seed)
        self.writer: Optional[ChunkWriter] = None
        if persist_dir is not None:
            self.writer = ChunkWriter(persist_dir, self.obs_spec, self.action_dim, flush_every)
        if verbose:
            m = self.memory_report()
            print(
                f"[{name}] {m['bytes_per_transition'] / 1024:.1f} KiB/transition, "
                f"{m['total_bytes'] / 2**30:.2f} GiB for capacity {self.capacity} "
                f"(frames {m['frame_bytes']} B each x {self.frame_capacity} slots)"
            )

    # -- memory ------------------------------------------------------------- #
    def memory_report(self) -> Dict[str, float]:
        """Bytes per transition and for the configured capacity (fully filled)."""
        frame_bytes = sum(a.itemsize * int(np.prod(a.shape[1:])) for a in self.frames.values())
        trans_bytes = (
            self.action.itemsize * self.action_dim
            + sum(a.itemsize for a in (self.reward, self.terminated, self.truncated, self.actor_id, self.intervened, self.obs_gid, self.next_gid))
        )
        total = frame_bytes * self.frame_capacity + trans_bytes * self.capacity
        return {
            "frame_bytes": frame_bytes,
            "transition_meta_bytes": trans_bytes,
            "bytes_per_transition": total / self.capacity,
            "total_bytes": total,
            "capacity": self.capacity,
        }

    # -- adding ------------------------------------------------------------- #
    def _checked_obs(self, obs: Mapping[str, Any], what: str) -> Dict[str, np.ndarray]:
        """``obs`` as arrays of the stored dtypes; ValueError for anything that would be stored wrong."""
        if not isinstance(obs, Mapping):
            raise ValueError(f"{self.name}.add: {what} must be a dict with keys {sorted(self.obs_spec)}, got {type(obs).__name__}")
        out = {}
        for k, s in self.obs_spec.items():
            if k not in obs:
                raise ValueError(f"{self.name}.add: {what} is missing key {k!r}; expected keys {sorted(self.obs_spec)}")
            a = np.asarray(obs[k])
            if a.shape != tuple(s["shape"]):
                raise ValueError(f"{self.name}.add: {what}[{k!r}] has shape {a.shape}, expected {tuple(s['shape'])}")
            if s["dtype"] == "uint8":
                # Casting would be silently wrong: a [0, 1] float image becomes all zeros, 300 wraps to 44.
                if a.dtype != np.uint8:
                    raise ValueError(f"{self.name}.add: image {what}[{k!r}] has dtype {a.dtype}, expected uint8 (0..255)")
            else:
                if a.dtype.kind not in "fiu":  # bool/complex/object/str are not measurements
                    raise ValueError(f"{self.name}.add: {what}[{k!r}] has dtype {a.dtype}, expected real numbers (stored as float32)")
                a = _as_float32(a)
                if not np.isfinite(a).all():
                    raise ValueError(
                        f"{self.name}.add: {what}[{k!r}] contains NaN or inf (or values beyond float32), expected finite values"
                    )
            out[k] = a
        return out

    def _as_dict(self, obs: Any) -> Mapping[str, Any]:
        if isinstance(obs, Mapping):
            return obs
        if len(self.obs_spec) == 1:  # flat Box env
            return {next(iter(self.obs_spec)): obs}
        raise ValueError(f"{self.name}.add: expected a dict observation with keys {sorted(self.obs_spec)}")

    def _write_frame(self, frame: Mapping[str, Any]) -> int:
        gid = self.n_frames
        pos = gid % self.frame_capacity
        for k, arr in self.frames.items():
            arr[pos] = frame[k]
        self.n_frames += 1
        return gid

    def _frame_alive(self, gid: int) -> bool:
        return gid >= self.n_frames - self.frame_capacity

    def _same_frame(self, gid: int, obs: Mapping[str, Any]) -> bool:
        pos = gid % self.frame_capacity
        for k, arr in self.frames.items():
            if not np.array_equal(arr[pos], np.asarray(obs[k], dtype=arr.dtype)):
                return False
        return True

    def add(
        self,
        obs: Any,
        action: Any,
        reward: float,
        next_obs: Any,
        terminated: bool,
        truncated: bool,
        actor_id: int = 0,
        intervened: bool = False,
        origin: Optional[Tuple[int, int, int]] = None,
    ) -> None:
        """Append one transition. ``terminated`` and ``truncated`` are kept
        separate: only ``terminated`` stops bootstrapping (time limits must
        bootstrap, Pardo et al. 2018). ``origin`` = (episode, step, actor_step) of a
        transition streamed by an actor, persisted with it (see the module docstring)."""
        # Everything is checked before anything is stored: a rejected transition leaves no trace.
        obs = self._checked_obs(self._as_dict(obs), "obs")
        next_obs = self._checked_obs(self._as_dict(next_obs), "next_obs")
        action = _as_float32(action).reshape(-1)
        if action.shape != (self.action_dim,):
            raise ValueError(f"{self.name}.add: action has {action.shape[0]} elements, expected {self.action_dim}")
        if not np.isfinite(action).all():
            raise ValueError(f"{self.name}.add: action {action.tolist()} contains NaN or inf, expected finite values")
        reward = float(reward)
        if not abs(reward) <= _FLOAT32_MAX:  # also False for NaN
            raise ValueError(f"{self.name}.add: reward is {reward}, expected a finite float32 value")
        chain = self._chains.get(int(actor_id))
        shared = chain is not None and self._frame_alive(chain) and self._same_frame(chain, obs)
        ogid = chain if shared else self._write_frame(obs)
        ngid = self._write_frame(next_obs)
        i = self.n_added % self.capacity
        self.obs_gid[i] = ogid
        self.next_gid[i] = ngid
        self.action[i] = action
        self.reward[i] = reward
        self.terminated[i] = bool(terminated)
        self.truncated[i] = bool(truncated)
        self.actor_id[i] = actor_id
        self.intervened[i] = bool(intervened)
        self.n_added += 1
        if terminated or truncated:
            self._chains.pop(int(actor_id), None)
        else:
            self._chains[int(actor_id)] = ngid
        if self.writer is not None:
            # The on-disk chain links only consecutive records: another actor's transition between
            # two of this actor's means a new frame there.
            on_disk_shared = shared and self._last_actor == int(actor_id)
            self.writer.record(on_disk_shared, obs, next_obs, action, reward, terminated, truncated, actor_id,
                               intervened, origin)
        self._last_actor = int(actor_id)

    def end_episode(self) -> None:
        """Break the frame chains of all actors (e.g. after an env reset without a done flag)."""
        self._chains.clear()

    # -- reading ------------------------------------------------------------ #
    def _advance_oldest(self) -> int:
        self._oldest = max(self._oldest, self.n_added - self.capacity)
        limit = self.n_frames - self.frame_capacity
        while self._oldest < self.n_added and self.obs_gid[self._oldest % self.capacity] < limit:
            self._oldest += 1
        return self._oldest

    def __len__(self) -> int:
        return self.n_added - self._advance_oldest()

    def _gather(self, gidx: np.ndarray) -> Dict[str, Any]:
        pos = gidx % self.capacity
        ofr = self.obs_gid[pos] % self.frame_capacity
        nfr = self.next_gid[pos] % self.frame_capacity
        t = torch.from_numpy
        return {
            "obs": {k: t(a[ofr]) for k, a in self.frames.items()},
            "next_obs": {k: t(a[nfr]) for k, a in self.frames.items()},
            "action": t(self.action[pos]),
            "reward": t(self.reward[pos]),
            "terminated": t(self.terminated[pos].astype(np.float32)),
            "truncated": t(self.truncated[pos].astype(np.float32)),
            "actor_id": t(self.actor_id[pos].astype(np.int64)),
            "intervened": t(self.intervened[pos]),
        }

    def sample(self, batch_size: int) -> Dict[str, Any]:
        """Uniformly sample ``batch_size`` valid transitions (with replacement)."""
        n = len(self)
        if n == 0:
            raise ValueError(f"{self.name}.sample: buffer is empty")
        if batch_size <= 0:
            raise ValueError(f"{self.name}.sample: batch_size must be > 0, got {batch_size}")
        gidx = self._oldest + self.rng.integers(0, n, size=batch_size)
        return self._gather(gidx)

    def get(self, indices: Union[np.ndarray, List[int]]) -> Dict[str, Any]:
        """Transitions by position 0..len-1 (0 = oldest valid). For tests/export."""
        n = len(self)
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{self.name}.get: indices must be in [0, {n}), got range [{idx.min()}, {idx.max()}]")
        return self._gather(self._oldest + idx)

    def observations(self, max_count: int = 5000) -> Dict[str, torch.Tensor]:
        """Up to ``max_count`` observations spread evenly over the buffer (no RNG draw, so
        fitting statistics does not change what training samples next)."""
        n = len(self)
        if n == 0:
            raise ValueError(f"{self.name}.observations: buffer is empty")
        return self.get(np.linspace(0, n - 1, min(n, max_count)).round().astype(np.int64))["obs"]

    # -- persistence -------------------------------------------------------- #
    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.flush()

    def state_dict(self) -> Dict[str, Any]:
        """Only the sampling RNG state (data lives on disk or is re-collected)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, sd: Dict[str, Any]) -> None:
        self.rng.bit_generator.state = sd["rng"]

    def extend_from_disk(self, path: str, intervened_only: bool = False) -> int:
        """Append all transitions stored in replay directory ``path``.

        Returns the number of transitions added. Frames shared on disk are
        shared again in memory (continuation detection).
        """
        man = read_manifest(path)
        if man["observation"] != self.obs_spec or int(man["action_dim"]) != self.action_dim:
            raise ValueError(
                f"replay data in {path!r} has observation={man['observation']} action_dim={man['action_dim']}, "
                f"expected observation={self.obs_spec} action_dim={self.action_dim}"
            )
        writer, self.writer = self.writer, None  # do not re-persist what we read
        added = 0
        prev: Dict[int, int] = {}
        prev_chunk: Optional[Dict[str, np.ndarray]] = None
        try:
            for fname, c in iter_chunks(path, man):
                cur = {int(f): i for i, f in enumerate(c["frame_id"])}

                def frame(fid: int) -> Dict[str, np.ndarray]:
                    if fid in cur:
                        return {k: c[f"obs.{k}"][cur[fid]] for k in self.obs_spec}
                    if fid in prev and prev_chunk is not None:
                        return {k: prev_chunk[f"obs.{k}"][prev[fid]] for k in self.obs_spec}
                    raise ValueError(f"corrupt replay chunk {fname!r}: frame id {fid} not found in this or the previous chunk")

                for j in range(len(c["obs_frame"])):
                    if intervened_only and not c["intervened"][j]:
                        self._chains.pop(int(c["actor_id"][j]), None)
                        continue
                    self.add(
                        frame(int(c["obs_frame"][j])), c["action"][j], float(c["reward"][j]), frame(int(c["next_frame"][j])),
                        bool(c["terminated"][j]), bool(c["truncated"][j]), int(c["actor_id"][j]), bool(c["intervened"][j]),
                    )
                    added += 1
                prev, prev_chunk = cur, c
        finally:
            self.writer = writer
            self._chains.clear()
        return added

    @classmethod
    def load(
        cls,
        path: str,
        capacity: Optional[int] = None,
        resume: bool = True,
        flush_every: Optional[int] = None,
        seed: Optional[int] = None,
        verbose: bool = True,
        name: str = "replay",
    ) -> "ReplayBuffer":
        """Rebuild a buffer from replay directory ``path``.

        ``resume=True`` keeps appending new transitions to the same directory.
        ``capacity`` defaults to the number of stored transitions (min 1).
        """
        man = read_manifest(path)
        obs_space = spaces.Dict(
            {
                k: spaces.Box(
                    low=0 if s["dtype"] == "uint8" else -np.inf,
                    high=255 if s["dtype"] == "uint8" else np.inf,
                    shape=tuple(s["shape"]),
                    dtype=np.uint8 if s["dtype"] == "uint8" else np.float32,
                )
                for k, s in man["observation"].items()
            }
        )
        frame_slack = None
        if capacity is None:
            transitions, frames = stored_counts(path)
            capacity = max(1, transitions)
            # Every stored episode holds one frame more than its transitions: room for all of
            # them, or the first transitions of a many-episode demo set would be evicted.
            frame_slack = max(capacity // 100 + 2, frames - transitions + 1)
        buf = cls(obs_space, int(man["action_dim"]), capacity, seed=seed, frame_slack=frame_slack,
                  verbose=verbose, name=name)
        buf.extend_from_disk(path)
        if resume:
            buf.writer = ChunkWriter(path, buf.obs_spec, buf.action_dim, flush_every or int(man["flush_every"]))
        return buf


def read_origins(path: str) -> Dict[str, np.ndarray]:
    """``actor_id``, ``episode``, ``step``, ``actor_step`` of every stored transition, oldest
    first (int64; -1 where a chunk predates origins). Reads only those tensors."""
    from safetensors import safe_open

    read_manifest(path)
    parts: Dict[str, List[np.ndarray]] = {k: [] for k in ("actor_id", *ORIGIN_FIELDS)}
    for _, fname in _list_chunks(path):
        try:
            with safe_open(fname, framework="numpy") as f:
                names = set(f.keys())
                actor = f.get_tensor("actor_id").astype(np.int64)
                parts["actor_id"].append(actor)
                for name in ORIGIN_FIELDS:
                    parts[name].append(f.get_tensor(name).astype(np.int64) if name in names
                                       else np.full(len(actor), -1, np.int64))
        except Exception as e:
            raise ValueError(f"corrupt replay chunk {fname!r}: {e}") from e
    return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}


def stored_counts(path: str) -> Tuple[int, int]:
    """Transitions and frames stored in a replay directory (reads headers only)."""
    from safetensors import safe_open

    read_manifest(path)
    transitions = frames = 0
    for _, fname in _list_chunks(path):
        try:
            with safe_open(fname, framework="numpy") as f:
                transitions += int(f.get_slice("obs_frame").get_shape()[0])
                frames += int(f.get_slice("frame_id").get_shape()[0])
        except Exception as e:
            raise ValueError(f"corrupt replay chunk {fname!r}: {e}") from e
    return transitions, frames


def count_transitions(path: str) -> int:
    """Number of transitions stored in a replay directory (reads headers only)."""
    return stored_counts(path)[0]


# --------------------------------------------------------------------------- #
# Demo / online routing
# --------------------------------------------------------------------------- #
class DemoOnlineBuffers:
    """Demo + online buffers: HIL-SERL routing and RLPD sampling, the one implementation
    (the learner's ``LearnerCore`` and ``train-gym`` use it).

    Every transition goes to the online buffer; human-intervened transitions are *also* added
    to the demo buffer (HIL-SERL, Luo et al. 2024), so corrections are replayed at the demo
    rate. A batch takes ``round(batch_size * demo_ratio)`` rows from the demonstrations while
    there are any (RLPD's symmetric sampling at the default 0.5), the rest from online data.
    """

    def __init__(self, demo: Optional[ReplayBuffer], online: ReplayBuffer, demo_ratio: float = 0.5):
        if demo is not None and (demo.obs_spec != online.obs_spec or demo.action_dim != online.action_dim):
            raise ValueError("DemoOnlineBuffers: demo and online buffers must have the same observation spec and action_dim")
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"DemoOnlineBuffers: demo_ratio must be in [0, 1], got {demo_ratio}")
        self.demo = demo
        self.online = online
        self.demo_ratio = float(demo_ratio)

    def add(self, obs, action, reward, next_obs, terminated, truncated, actor_id: int = 0,
            intervened: bool = False, origin: Optional[Tuple[int, int, int]] = None) -> None:
        """Store one transition; ``origin`` (episode, step, actor_step) goes to the online copy."""
        self.online.add(obs, action, reward, next_obs, terminated, truncated, actor_id, intervened, origin)
        if intervened and self.demo is not None:
            self.demo.add(obs, action, reward, next_obs, terminated, truncated, actor_id, intervened)

    def split(self, batch_size: int) -> Tuple[int, int]:
        """``(demo rows, online rows)`` of one minibatch of ``batch_size``."""
        has_demo = self.demo is not None and len(self.demo) > 0
        n_demo = int(round(batch_size * self.demo_ratio)) if has_demo else 0
        return n_demo, batch_size - n_demo

    def sample(self, batch_size: int, minibatches: int = 1) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any]]:
        """``(demo_batch, online_batch)`` for ``minibatches`` stacked minibatches (the agent's
        ``utd_ratio``) of ``batch_size``; demo is None while there are no demonstrations."""
        n_demo, n_online = self.split(batch_size)
        demo_batch = self.demo.sample(minibatches * n_demo) if n_demo > 0 else None
        return demo_batch, self.online.sample(minibatches * n_online)

    def flush(self) -> None:
        if self.demo is not None:
            self.demo.flush()
        self.online.flush()

    def close(self) -> None:
        self.flush()
