"""LeRobot datasets (format v3.0) from and to the project's replay/demonstration directories.

Export: any replay directory (``record-demos`` output, a learner's ``run_dir/replay``) becomes
a LeRobot v3.0 dataset folder::

    meta/info.json                       codebase_version "v3.0", fps, features, paths, totals
    meta/tasks.parquet                   task string (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet
                                         one row per episode: episode_index, tasks, length,
                                         dataset_from_index/to_index, data/chunk_index/file_index,
                                         meta/episodes/chunk_index/file_index
    meta/stats.json                      min/max/mean/std/count per feature (images: per channel,
                                         scaled to [0, 1], as LeRobot normalises them)
    data/chunk-000/file-000.parquet      one row per frame; a new file past
                                         ``data_files_size_in_mb`` (always at an episode boundary)

Images are stored as PNG inside the parquet rows (LeRobot's ``image`` feature: a struct of
``bytes`` and ``path``), so they come back bit-exact; no video codec is involved.

Frames and transitions: an episode of L transitions has L + 1 observations. Frame t (t < L)
holds ``o_t``, ``a_t`` and the outcome of that step (``next.reward``, ``next.done``,
``next.terminated``, ``next.truncated``, ``intervention``); frame L holds the final observation
``o_L`` with a zero action and ``is_final_observation`` true. Consumers that expect one frame per
action drop the frames with ``is_final_observation``. An "episode" is a chain of transitions
where each starts from the previous one's next observation; interleaved actors or a broken
chain therefore give shorter episodes, never wrong pairs.

Feature names: ``state`` -> ``observation.state``, ``object`` -> ``observation.environment_state``,
``tactile_<n>`` -> ``observation.tactile.<n>``, ``image_<n>`` -> ``observation.images.<n>``, any
other key ``k`` -> ``observation.k``; ``action`` carries the action names of the task.
Multi-dimensional vectors (the 4x4 taxel arrays) are written flattened, row-major, with element
names ``r0_c0``...: LeRobot's readers (and Rerun's) expect 1-D state features; the import
accepts a feature flattened or in the configuration's shape.

Import: a LeRobot v3.0 dataset (ours or anyone's) or an MCAP recording of ``/rl/transitions``
(the actor's transition stream, ``robot_rl/transport.py``) becomes a replay directory that the
learner reads as demonstrations (``learner.demos``). Every feature the configuration's
observation needs must be present with the configured shape; anything else is refused with the
file, the field and what was expected. Datasets without ``is_final_observation`` are read the
LeRobot way: consecutive frames of an episode form the transitions, the last frame's action is
unused, the last transition is terminal when ``next.done`` is set on either of the last two
frames (else truncated).

Both directions write into a temporary sibling folder and rename it at the end, so a failure
leaves nothing half-written under the target name.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from robot_rl.topics import TRANSITIONS

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILE_SIZE_MB = 100
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + FILE_PATTERN + ".parquet"
EPISODES_PATH = "meta/episodes/" + FILE_PATTERN + ".parquet"
DEFAULT_TASK = "pick up the cube and lift it"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
STEP_FEATURES = {  # per-frame outcome fields, all shape (1,)
    "next.reward": "float32",
    "next.done": "bool",
    "next.terminated": "bool",
    "next.truncated": "bool",
    "intervention": "bool",
    "actor_id": "int64",
    "is_final_observation": "bool",
}


class DatasetError(ValueError):
    """A dataset that cannot be exported or imported: names the file, the field, what was expected."""


@dataclass
class Episode:
    """One chain of transitions: ``len(actions) + 1`` observations."""
    observations: Dict[str, List[np.ndarray]]
    actions: List[np.ndarray]
    rewards: List[float]
    terminated: List[bool]
    truncated: List[bool]
    intervened: List[bool]
    actor_ids: List[int]

    @property
    def length(self) -> int:
        return len(self.actions)


def feature_name(obs_key: str) -> str:
    if obs_key == "state":
        return "observation.state"
    if obs_key == "object":
        return "observation.environment_state"
    for prefix, group in (("tactile_", "tactile"), ("image_", "images")):
        if obs_key.startswith(prefix):
            return f"observation.{group}.{obs_key[len(prefix):]}"
    return f"observation.{obs_key}"


def _element_names(shape: Sequence[int]) -> Optional[List[str]]:
    """Names of a flattened multi-dimensional feature's elements, row-major: ``r0_c1``..."""
    if len(shape) < 2:
        return None
    return ["_".join(f"{axis}{i}" for axis, i in zip("rcdefgh", index)) for index in np.ndindex(*shape)]


def _spec_features(obs_spec: Mapping[str, Mapping[str, Any]], action_dim: int,
                   action_names: Optional[Sequence[str]]) -> Dict[str, Dict[str, Any]]:
    features: Dict[str, Dict[str, Any]] = {}
    for key, spec in obs_spec.items():
        shape = list(spec["shape"])
        if spec["dtype"] == "uint8":
            if len(shape) != 3 or shape[2] not in (1, 3):
                raise DatasetError(f"observation {key!r}: uint8 image of shape {shape} cannot be a "
                                   f"LeRobot image; expected (height, width, 3) or (height, width, 1)")
            features[feature_name(key)] = {"dtype": "image", "shape": shape,
                                           "names": ["height", "width", "channels"]}
        else:
            features[feature_name(key)] = {"dtype": "float32", "shape": [int(np.prod(shape))],
                                           "names": _element_names(shape)}
    names = list(action_names) if action_names and len(action_names) == action_dim else None
    features["action"] = {"dtype": "float32", "shape": [action_dim], "names": names}
    for name, dtype in STEP_FEATURES.items():
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    for name in INDEX_FEATURES:
        features[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1],
                          "names": None}
    return features


# --------------------------------------------------------------------------------------------
# replay directory -> episodes
# --------------------------------------------------------------------------------------------
def iter_replay_episodes(path: str) -> Iterator[Episode]:
    """The transitions of a replay directory, grouped into frame chains (see module doc)."""
    from robot_rl.learning.replay import iter_chunks, read_manifest

    manifest = read_manifest(path)
    keys = list(manifest["observation"])
    episode: Optional[Episode] = None
    last_next: Optional[int] = None
    prev_ids: Dict[int, int] = {}
    prev_chunk: Optional[Dict[str, np.ndarray]] = None
    for fname, chunk in iter_chunks(path, manifest):
        ids = {int(f): i for i, f in enumerate(chunk["frame_id"])}

        def frame(fid: int) -> Dict[str, np.ndarray]:
            if fid in ids:
                return {k: chunk[f"obs.{k}"][ids[fid]] for k in keys}
            if prev_chunk is not None and fid in prev_ids:
                return {k: prev_chunk[f"obs.{k}"][prev_ids[fid]] for k in keys}
            raise DatasetError(f"replay chunk {fname}: frame id {fid} is in neither this chunk nor "
                               f"the previous one (a chunk is missing or damaged)")

        for j in range(len(chunk["obs_frame"])):
            obs_id, next_id = int(chunk["obs_frame"][j]), int(chunk["next_frame"][j])
            if episode is None or obs_id != last_next:
                if episode is not None:
                    yield episode
                first = frame(obs_id)
                episode = Episode({k: [first[k]] for k in keys}, [], [], [], [], [], [])
            nxt = frame(next_id)
            for k in keys:
                episode.observations[k].append(nxt[k])
            episode.actions.append(chunk["action"][j])
            episode.rewards.append(float(chunk["reward"][j]))
            episode.terminated.append(bool(chunk["terminated"][j]))
            episode.truncated.append(bool(chunk["truncated"][j]))
            episode.intervened.append(bool(chunk["intervened"][j]))
            episode.actor_ids.append(int(chunk["actor_id"][j]))
            ended = episode.terminated[-1] or episode.truncated[-1]
            last_next = None if ended else next_id
        prev_ids, prev_chunk = ids, chunk
    if episode is not None:
        yield episode


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
def _png(image: np.ndarray) -> bytes:
    import cv2

    bgr = image if image.shape[2] == 1 else np.ascontiguousarray(image[..., ::-1])
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DatasetError(f"PNG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def _unpng(data: bytes, where: str) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{where}: the image bytes are not a decodable PNG/JPEG image")
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 4:  # RGBA -> RGB
        image = image[..., :3]
    return np.ascontiguousarray(image[..., ::-1])


class _RunningStats:
    """min/max/mean/std/count of a feature over frames (images per channel in [0, 1])."""

    def __init__(self, image: bool):
        self.image = image
        self.n = 0
        self.sum = self.sumsq = self.min = self.max = None

    def add(self, values: np.ndarray) -> None:  # values: frames x ...
        x = values.astype(np.float64)
        if self.image:  # N x H x W x C -> per channel, shape (C, 1, 1) like LeRobot
            x = x / 255.0
            axes = (0, 1, 2)
            count = x.shape[0]
            s, ss = x.sum(axis=axes), (x * x).sum(axis=axes)
            lo, hi = x.min(axis=axes), x.max(axis=axes)
            per = x.shape[1] * x.shape[2]
        else:
            count, per = x.shape[0], 1
            s, ss, lo, hi = x.sum(axis=0), (x * x).sum(axis=0), x.min(axis=0), x.max(axis=0)
        if self.n == 0:
            self.sum, self.sumsq, self.min, self.max, self.per = s, ss, lo, hi, per
        else:
            self.sum, self.sumsq = self.sum + s, self.sumsq + ss
            self.min, self.max = np.minimum(self.min, lo), np.maximum(self.max, hi)
        self.n += count

    def result(self) -> Dict[str, Any]:
        samples = self.n * self.per
        mean = self.sum / samples
        std = np.sqrt(np.maximum(self.sumsq / samples - mean * mean, 0.0))
        shape = (-1, 1, 1) if self.image else np.shape(mean)
        return {"min": np.reshape(self.min, shape).tolist(), "max": np.reshape(self.max, shape).tolist(),
                "mean": np.reshape(mean, shape).tolist(), "std": np.reshape(std, shape).tolist(),
                "count": [self.n]}


def _temporary_sibling(out: Path) -> Path:
    if out.exists():
        raise DatasetError(f"{out} already exists; the target of an export or import must be a new "
                           f"folder (remove it or choose another name)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _finish(tmp: Path, out: Path) -> None:
    os.replace(tmp, out)


@dataclass
class _ExportLayout:
    """What every episode of one export is written with."""

    obs_spec: Dict[str, Dict[str, Any]]
    action_dim: int
    image_keys: List[str]
    schema: Any  # pyarrow.Schema of a data file's rows (frames)
    fps: float
    task: str


def _arrow_schema(obs_spec: Mapping[str, Mapping[str, Any]], image_keys: Sequence[str], action_dim: int):
    """The parquet schema of the data files: one column per LeRobot feature."""
    import pyarrow as pa

    fields = []
    for key, spec in obs_spec.items():
        name = feature_name(key)
        if key in image_keys:
            fields.append(pa.field(name, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
        else:
            fields.append(pa.field(name, _list_type([int(np.prod(spec["shape"]))])))
    fields.append(pa.field("action", pa.list_(pa.float32(), action_dim)))
    arrow = {"float32": pa.float32(), "bool": pa.bool_(), "int64": pa.int64()}
    for name, dtype in STEP_FEATURES.items():
        fields.append(pa.field(name, arrow[dtype]))
    for name in INDEX_FEATURES:
        fields.append(pa.field(name, pa.float32() if name == "timestamp" else pa.int64()))
    return pa.schema(fields)


class _DataFiles:
    """The export's parquet data files: episodes are appended to the current file, and a new
    one starts once it holds more than ``size_mb`` (an episode is never split)."""

    def __init__(self, root: Path, schema, size_mb: float):
        self.root, self.schema, self.limit = root, schema, size_mb * 2**20
        self.writer = None
        self.index, self.bytes = 0, 0

    def start_episode(self) -> None:
        import pyarrow.parquet as pq

        if self.writer is not None and self.bytes > self.limit:
            self.close()
            self.index, self.bytes = self.index + 1, 0
        if self.writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.index // CHUNKS_SIZE,
                                                file_index=self.index % CHUNKS_SIZE)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")

    def write(self, columns: Dict[str, Any], nbytes: int) -> None:
        import pyarrow as pa

        self.writer.write_table(pa.table(columns, schema=self.schema))
        self.bytes += nbytes

    def location(self) -> Dict[str, int]:
        return {"data/chunk_index": self.index // CHUNKS_SIZE, "data/file_index": self.index % CHUNKS_SIZE}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _observation_columns(ep: Episode, layout: _ExportLayout, stats: Dict[str, _RunningStats],
                         encoder: ThreadPoolExecutor, first_index: int) -> tuple[Dict[str, Any], int]:
    """The observation columns of one episode (images as PNG) and their size in bytes."""
    import pyarrow as pa

    columns: Dict[str, Any] = {}
    nbytes = 0
    for key in layout.obs_spec:
        name = feature_name(key)
        stacked = np.stack(ep.observations[key])
        if key not in layout.image_keys:  # 1-D, as LeRobot's (and Rerun's) readers expect
            stacked = stacked.reshape(len(stacked), -1)
        stats[name].add(stacked)
        if key in layout.image_keys:
            pngs = list(encoder.map(_png, stacked))
            nbytes += sum(len(b) for b in pngs)
            columns[name] = pa.array(
                [{"bytes": b, "path": f"frame-{first_index + i:09d}.png"} for i, b in enumerate(pngs)],
                type=layout.schema.field(name).type)
        else:
            nbytes += stacked.nbytes
            columns[name] = pa.array(stacked.astype(np.float32).tolist(), type=layout.schema.field(name).type)
    return columns, nbytes


def _step_columns(ep: Episode, layout: _ExportLayout, stats: Dict[str, _RunningStats], ep_index: int,
                  first_index: int) -> Dict[str, Any]:
    """Action, reward, flags and index columns of one episode; the final observation frame
    gets a zero action and no reward."""
    import pyarrow as pa

    frames, adim = ep.length + 1, layout.action_dim
    actions = np.concatenate([np.stack(ep.actions).astype(np.float32), np.zeros((1, adim), np.float32)])
    stats["action"].add(actions[:-1])
    stats["next.reward"].add(np.asarray(ep.rewards, np.float32)[:, None])

    def pad(values, fill):  # the final frame's value
        return list(values) + [fill]

    done = [t or u for t, u in zip(ep.terminated, ep.truncated)]
    frame_index = np.arange(frames, dtype=np.int64)
    return {
        "action": pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), adim),
        "next.reward": pa.array(pad(ep.rewards, 0.0), pa.float32()),
        "next.done": pa.array(pad(done, True), pa.bool_()),
        "next.terminated": pa.array(pad(ep.terminated, False), pa.bool_()),
        "next.truncated": pa.array(pad(ep.truncated, False), pa.bool_()),
        "intervention": pa.array(pad(ep.intervened, False), pa.bool_()),
        "actor_id": pa.array(pad(ep.actor_ids, ep.actor_ids[-1]), pa.int64()),
        "is_final_observation": pa.array([False] * ep.length + [True], pa.bool_()),
        "timestamp": pa.array((frame_index / layout.fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.full(frames, ep_index, np.int64)),
        "index": pa.array(first_index + frame_index),
        "task_index": pa.array(np.zeros(frames, np.int64)),
    }


def _write_episodes(src: str, tmp: Path, layout: _ExportLayout, stats: Dict[str, _RunningStats],
                    data_file_size_mb: float, workers: int) -> List[Dict[str, Any]]:
    """Every episode of replay directory ``src`` into the data files; their metadata rows."""
    episodes_meta: List[Dict[str, Any]] = []
    files = _DataFiles(tmp, layout.schema, data_file_size_mb)
    total = 0
    # PNG encoding is most of the export's time; OpenCV releases the GIL while it encodes.
    encoder = ThreadPoolExecutor(max_workers=workers or max(1, min(4, os.cpu_count() or 1)))
    try:
        for ep_index, ep in enumerate(iter_replay_episodes(src)):
            files.start_episode()
            columns, nbytes = _observation_columns(ep, layout, stats, encoder, total)
            columns.update(_step_columns(ep, layout, stats, ep_index, total))
            files.write(columns, nbytes)
            frames = ep.length + 1
            episodes_meta.append({
                "episode_index": ep_index, "tasks": [layout.task], "length": frames, **files.location(),
                "dataset_from_index": total, "dataset_to_index": total + frames,
                "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                "transitions": ep.length, "success": bool(ep.terminated[-1]),
                "return": float(np.sum(ep.rewards)), "intervened_steps": int(np.sum(ep.intervened)),
            })
            total += frames
    finally:
        encoder.shutdown()
        files.close()
    if not episodes_meta:
        raise DatasetError(f"replay directory {src} holds no transitions; nothing to export")
    return episodes_meta


def _write_metadata(tmp: Path, src: str, layout: _ExportLayout, features: Dict[str, Any],
                    episodes_meta: List[Dict[str, Any]], stats: Dict[str, _RunningStats],
                    robot_type: str, data_file_size_mb: float) -> int:
    """The episodes, tasks, info and stats files; returns the number of frames."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = episodes_meta[-1]["dataset_to_index"]
    episodes_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episodes_meta), episodes_path)
    pd.DataFrame({"task_index": [0]}, index=pd.Index([layout.task], name="task")).to_parquet(tmp / TASKS_PATH)
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
        "total_episodes": len(episodes_meta), "total_frames": total, "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": int(data_file_size_mb),
        "video_files_size_in_mb": 200, "fps": layout.fps, "splits": {"train": f"0:{len(episodes_meta)}"},
        "data_path": DATA_PATH, "video_path": None, "features": features,
        "robot_rl": {"source": os.path.abspath(src), "observation": layout.obs_spec,
                     "action_dim": layout.action_dim, "frame_layout": "final observation frame per episode"},
    }
    (tmp / INFO_PATH).write_text(json.dumps(info, indent=2))
    (tmp / STATS_PATH).write_text(json.dumps({k: s.result() for k, s in stats.items() if s.n}, indent=2))
    return total


def export_lerobot(src: str, out: str, fps: float, task: str = DEFAULT_TASK,
                   action_names: Optional[Sequence[str]] = None, robot_type: str = "franka_panda",
                   data_file_size_mb: float = DATA_FILE_SIZE_MB, workers: int = 0) -> Dict[str, Any]:
    """Write replay directory ``src`` as a LeRobot v3.0 dataset at ``out`` (a new folder).
    ``workers``: PNG-encoding threads (0: one per core, at most 4). Written into a temporary
    sibling folder that becomes ``out`` only when complete."""
    from robot_rl.learning.replay import read_manifest

    start = time.perf_counter()
    if not fps > 0:
        raise DatasetError(f"fps must be > 0 (the control rate of the run), got {fps}")
    manifest = read_manifest(src)
    obs_spec, action_dim = manifest["observation"], int(manifest["action_dim"])
    features = _spec_features(obs_spec, action_dim, action_names)
    image_keys = [k for k, s in obs_spec.items() if s["dtype"] == "uint8"]
    layout = _ExportLayout(obs_spec, action_dim, image_keys, _arrow_schema(obs_spec, image_keys, action_dim),
                           fps, task)
    out_path = Path(out)
    tmp = _temporary_sibling(out_path)
    try:
        stats = {feature_name(k): _RunningStats(k in image_keys) for k in obs_spec}
        stats.update({n: _RunningStats(False) for n in ("action", "next.reward")})
        episodes_meta = _write_episodes(src, tmp, layout, stats, data_file_size_mb, workers)
        total = _write_metadata(tmp, src, layout, features, episodes_meta, stats, robot_type,
                                data_file_size_mb)
        _finish(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    transitions = sum(e["transitions"] for e in episodes_meta)
    return {"out": str(out_path), "episodes": len(episodes_meta), "frames": total,
            "transitions": transitions, "bytes": _folder_bytes(out_path),
            "wall_s": time.perf_counter() - start}


def _list_type(shape: Sequence[int]):
    import pyarrow as pa

    t = pa.float32()
    for n in reversed(list(shape)):
        t = pa.list_(t, int(n))
    return t


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------
def expected_spec(cfg) -> tuple[Dict[str, Dict[str, Any]], int, List[str]]:
    """The observation spec, action size and action names the configured task uses."""
    from robot_rl.envs.task import make_task
    from robot_rl.transport import obs_spec_of

    task = make_task(cfg, np.array([0.0, 0.0, 0.0, 1.0]), check_graph=False)
    return obs_spec_of(task.observation_space), int(task.action_space.shape[0]), list(task.action_names)


def _replay_writer(out_tmp: Path, obs_spec, action_dim: int):
    from gymnasium import spaces

    from robot_rl.learning.replay import ReplayBuffer

    space = spaces.Dict({
        k: spaces.Box(0 if s["dtype"] == "uint8" else -np.inf, 255 if s["dtype"] == "uint8" else np.inf,
                      tuple(s["shape"]), np.uint8 if s["dtype"] == "uint8" else np.float32)
        for k, s in obs_spec.items()})
    # capacity 1: the buffer only validates, shares frames and persists; nothing is sampled.
    return ReplayBuffer(space, action_dim, capacity=1, persist_dir=str(out_tmp), flush_every=1000,
                        verbose=False, name="import")


def _accepted_shapes(spec: Mapping[str, Any]) -> List[List[int]]:
    """A vector feature as the configuration shapes it, or flattened (how we write 2-D ones)."""
    shape = [int(n) for n in spec["shape"]]
    if spec["dtype"] == "uint8" or len(shape) < 2:
        return [shape]
    return [[int(np.prod(shape))], shape]


def _check_features(info_file: Path, features: Mapping[str, Any], obs_spec, action_dim: int) -> None:
    problems = []
    for key, spec in obs_spec.items():
        name = feature_name(key)
        want_dtype = "image" if spec["dtype"] == "uint8" else "float32"
        ft = features.get(name)
        if ft is None:
            problems.append(f"feature {name!r} is missing (expected {want_dtype} of shape {list(spec['shape'])}, "
                            f"the configuration's observation {key!r})")
            continue
        dtype = ft.get("dtype")
        if want_dtype == "image" and dtype == "video":
            problems.append(f"feature {name!r} is a video; this importer reads image features (PNG/JPEG "
                            f"in the parquet rows), expected dtype 'image'")
        elif (want_dtype == "image") != (dtype == "image") or (want_dtype != "image" and dtype not in ("float32", "float64")):
            problems.append(f"feature {name!r} has dtype {dtype!r}, expected {want_dtype!r}")
        accepted = _accepted_shapes(spec)
        if list(ft.get("shape", [])) not in accepted:
            problems.append(f"feature {name!r} has shape {list(ft.get('shape', []))}, expected "
                            f"{' or '.join(map(str, accepted))} (observation {key!r} of the configuration)")
    act = features.get("action")
    if act is None:
        problems.append(f"feature 'action' is missing (expected float32 of shape [{action_dim}])")
    elif list(act.get("shape", [])) != [action_dim]:
        problems.append(f"feature 'action' has shape {list(act.get('shape', []))}, expected [{action_dim}]")
    for name in ("next.reward", "episode_index", "frame_index"):
        if name not in features:
            problems.append(f"feature {name!r} is missing (needed to rebuild transitions)")
    if problems:
        raise DatasetError(f"{info_file}: " + "; ".join(problems))


def _import_lerobot_dataset(root: Path, writer, obs_spec, action_dim: int, intervened_only: bool) -> Dict[str, int]:
    import pyarrow.parquet as pq

    info_file = root / INFO_PATH
    try:
        info = json.loads(info_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{info_file}: cannot read the dataset description ({e}); expected LeRobot "
                           f"v3.0 meta/info.json") from e
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise DatasetError(f"{info_file}: codebase_version is {version!r}, expected 'v3.x' (convert older "
                           f"datasets with LeRobot's convert_dataset_v21_to_v30 first)")
    features = info.get("features") or {}
    _check_features(info_file, features, obs_spec, action_dim)
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root / 'data'}: no parquet files (expected data/chunk-XXX/file-YYY.parquet)")
    columns = [feature_name(k) for k in obs_spec] + ["action", "next.reward", "episode_index", "frame_index"]
    optional = [c for c in ("next.done", "next.terminated", "next.truncated", "intervention", "actor_id",
                            "is_final_observation") if c in features]
    counts = {"episodes": 0, "transitions": 0, "frames": 0}
    pending: List[Dict[str, Any]] = []  # frames of the current episode
    current = None

    def flush_episode() -> None:
        if len(pending) >= 2:
            _add_episode(pending, writer, obs_spec, intervened_only, counts)
        pending.clear()

    for file in files:
        try:
            table = pq.read_table(file)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise DatasetError(f"{file}: not a readable parquet file ({e})") from e
        missing = [c for c in columns + optional if c not in table.column_names]
        if missing:
            raise DatasetError(f"{file}: columns {missing} are missing, expected by {info_file}")
        data = {c: table.column(c).to_pylist() for c in columns + optional}
        for row in range(table.num_rows):
            frame = {c: data[c][row] for c in data}
            frame["_where"] = f"{file}, row {row}"
            if frame["episode_index"] != current:
                flush_episode()
                current = frame["episode_index"]
                counts["episodes"] += 1
            pending.append(frame)
            counts["frames"] += 1
    flush_episode()
    return counts


def _decode_obs(frame: Mapping[str, Any], obs_spec) -> Dict[str, np.ndarray]:
    obs = {}
    for key, spec in obs_spec.items():
        name, value = feature_name(key), frame[feature_name(key)]
        where = f"{frame['_where']}, field {name!r}"
        if spec["dtype"] == "uint8":
            data = value.get("bytes") if isinstance(value, dict) else None
            if not data:
                raise DatasetError(f"{where}: no embedded image bytes (expected a PNG in the row)")
            image = _unpng(data, where)
            if list(image.shape) != list(spec["shape"]):
                raise DatasetError(f"{where}: image of shape {list(image.shape)}, expected {list(spec['shape'])}")
            obs[key] = image
        else:
            arr = np.asarray(value, np.float32)
            accepted = _accepted_shapes(spec)
            if list(arr.shape) not in accepted:
                raise DatasetError(f"{where}: shape {list(arr.shape)}, expected {' or '.join(map(str, accepted))}")
            obs[key] = arr.reshape(spec["shape"])
    return obs


def _add_episode(frames: List[Dict[str, Any]], buf, obs_spec, intervened_only: bool, counts) -> None:
    ours = "is_final_observation" in frames[0]
    if ours and not frames[-1]["is_final_observation"]:
        raise DatasetError(f"{frames[-1]['_where']}: the episode's last frame is not marked "
                           f"is_final_observation; the episode is cut short")
    steps = len(frames) - 1
    obs = _decode_obs(frames[0], obs_spec)
    buf.end_episode()
    for t in range(steps):
        cur, nxt = frames[t], frames[t + 1]
        next_obs = _decode_obs(nxt, obs_spec)
        if ours:
            terminated, truncated = bool(cur["next.terminated"]), bool(cur["next.truncated"])
        else:
            last = t == steps - 1
            done = bool(cur.get("next.done")) or bool(nxt.get("next.done"))
            terminated = last and done
            truncated = last and not done
        intervened = bool(cur.get("intervention", False))
        if not intervened_only or intervened:
            try:
                buf.add(obs, np.asarray(cur["action"], np.float32), float(cur["next.reward"]), next_obs,
                        terminated, truncated, int(cur.get("actor_id") or 0), intervened)
            except ValueError as e:
                raise DatasetError(f"{cur['_where']}: {e}") from e
            counts["transitions"] += 1
        else:
            buf.end_episode()
        obs = next_obs


def _import_mcap(path: Path, buf, obs_spec, action_dim: int, intervened_only: bool) -> Dict[str, int]:
    from robot_rl.data.mcap_io import open_recording
    from robot_rl.transport import TransitionAssembler, TransportError, decode_transitions

    topic = TRANSITIONS
    counts = {"episodes": 0, "transitions": 0, "frames": 0}
    assembler = TransitionAssembler()
    with open_recording(path) as rec:
        if topic not in rec.channels:
            raise DatasetError(f"{path}: no {topic} channel; importing a recording as demonstrations "
                               f"needs the actor's transition stream (recorded channels: {sorted(rec.channels)})")
        for n, message in enumerate(rec.messages(topics=[topic], decode=True)):
            try:
                batch = decode_transitions(bytes(message.msg.data), obs_spec, action_dim)
            except TransportError as e:
                raise DatasetError(f"{path}: {topic} message {n}: {e} (expected transitions for observation "
                                   f"{ {k: s['shape'] for k, s in obs_spec.items()} } and {action_dim} actions)") from e
            for tr in assembler.feed(batch):
                rec_ = tr.record
                counts["frames"] += 1
                if intervened_only and not rec_.intervened:
                    buf.end_episode()
                    continue
                buf.add(tr.obs, rec_.action, rec_.reward, rec_.next_obs, rec_.terminated, rec_.truncated,
                        tr.actor_id, rec_.intervened)
                counts["transitions"] += 1
                counts["episodes"] += int(rec_.terminated or rec_.truncated)
    return counts


def import_dataset(src: str, out: str, obs_spec: Mapping[str, Mapping[str, Any]], action_dim: int,
                   intervened_only: bool = False) -> Dict[str, Any]:
    """Write LeRobot dataset folder or MCAP recording ``src`` as a replay directory ``out``."""
    start = time.perf_counter()
    src_path, out_path = Path(src), Path(out)
    if src_path.is_file() and src_path.suffix == ".mcap":
        kind = "mcap"
    elif (src_path / INFO_PATH).is_file():
        kind = "lerobot"
    else:
        raise DatasetError(f"{src}: neither a LeRobot dataset folder (no {INFO_PATH}) nor an .mcap recording")
    tmp = _temporary_sibling(out_path)
    try:
        buf = _replay_writer(tmp, dict(obs_spec), action_dim)
        if kind == "mcap":
            counts = _import_mcap(src_path, buf, obs_spec, action_dim, intervened_only)
        else:
            counts = _import_lerobot_dataset(src_path, buf, obs_spec, action_dim, intervened_only)
        buf.close()
        if counts["transitions"] == 0:
            raise DatasetError(f"{src}: no transitions to import"
                               + (" (none is marked as an intervention)" if intervened_only else ""))
        _finish(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out_path), "kind": kind, **counts, "bytes": _folder_bytes(out_path),
            "wall_s": time.perf_counter() - start}
