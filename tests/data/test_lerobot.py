"""LeRobot v3.0 export/import: LeRobot's own loader reads our export, a round trip gives back the
same transitions bit for bit, and bad datasets are refused with the file and field named."""
from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.data.lerobot import (DatasetError, expected_spec, export_lerobot, import_dataset)
from robot_rl.learning.replay import ReplayBuffer

IMAGE_OBS = {"task.observations": ["state", "tactile", "images"]}
FPS = 10


@pytest.fixture(scope="module")
def image_config():
    return load_config(None, IMAGE_OBS)


@pytest.fixture(scope="module")
def demos(tmp_path_factory, image_config):
    """Two real scripted-expert demonstrations with both 128x128 cameras (MuJoCo renders)."""
    from robot_rl.learning.record_demos import record

    out = tmp_path_factory.mktemp("demos") / "pick"
    record(image_config, str(out), episodes=2, verbose=False)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demos, image_config):
    _, _, names = expected_spec(image_config)
    out = tmp_path_factory.mktemp("lerobot") / "pick_ds"
    summary = export_lerobot(str(demos), str(out), fps=FPS, action_names=names)
    return out, summary


def _all_transitions(path) -> dict:
    buf = ReplayBuffer.load(str(path), capacity=10_000, resume=False, verbose=False)
    return buf.get(np.arange(len(buf)))


def _assert_same_transitions(a_dir, b_dir) -> int:
    a, b = _all_transitions(a_dir), _all_transitions(b_dir)
    assert len(a["action"]) == len(b["action"])
    for field in ("action", "reward", "terminated", "truncated", "actor_id", "intervened"):
        assert np.array_equal(a[field].numpy(), b[field].numpy()), field
    for side in ("obs", "next_obs"):
        assert a[side].keys() == b[side].keys()
        for key in a[side]:
            assert np.array_equal(a[side][key].numpy(), b[side][key].numpy()), f"{side}[{key}]"
    return len(a["action"])


def _synthetic_replay(path: Path, seed: int = 0) -> int:
    """Episodes with interventions, a time-limit truncation, an episode broken off without a done
    flag, and two interleaved actors: every way a replay directory chains its frames."""
    rng = np.random.default_rng(seed)
    space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (8,), np.float32),
                         "image_front": spaces.Box(0, 255, (16, 12, 3), np.uint8)})
    buf = ReplayBuffer(space, 4, capacity=1000, persist_dir=str(path), flush_every=7, verbose=False)

    def obs():
        return {"state": rng.normal(size=8).astype(np.float32),
                "image_front": rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)}

    def act():
        return rng.uniform(-1, 1, 4).astype(np.float32)

    n = 0
    for length, end in ((9, "terminated"), (5, "truncated"), (4, "cut")):
        o = obs()
        for t in range(length):
            nxt = obs()
            last = t == length - 1
            buf.add(o, act(), float(rng.normal()), nxt, last and end == "terminated",
                    last and end == "truncated", actor_id=0, intervened=bool(t % 3 == 1))
            o, n = nxt, n + 1
        if end == "cut":
            buf.end_episode()
    chains = {0: obs(), 1: obs()}
    for t in range(6):  # two actors alternate: no transition continues the previous one
        actor = t % 2
        nxt = obs()
        buf.add(chains[actor], act(), 0.5, nxt, False, t >= 4, actor_id=actor, intervened=actor == 1)
        chains[actor], n = nxt, n + 1
    buf.close()
    return n


# --------------------------------------------------------------------------------------------
# LeRobot's own loader
# --------------------------------------------------------------------------------------------
def _torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        return False


@pytest.fixture
def lerobot_dataset_class(tmp_path, monkeypatch):
    """``LeRobotDataset`` from lerobot-dataset (a standalone copy of LeRobot's datasets package).

    Its modules import torchvision at the top; the PyPI torchvision wheels are built against a
    CUDA torch and fail to import beside the pinned CPU torch 2.13.0. LeRobot's image path uses
    only ``torchvision.transforms.ToTensor`` (uint8 H x W x C -> float C x H x W / 255), so where
    torchvision cannot be imported this provides that one transform, with torchvision's
    semantics, and nothing else (a video feature would fail loudly).
    """
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if not _torchvision_importable():
        import torch

        class ToTensor:
            def __call__(self, pic):
                array = np.array(pic, dtype=np.uint8, copy=True)
                if array.ndim == 2:
                    array = array[:, :, None]
                return torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div(255)

        fake = types.ModuleType("torchvision")
        fake.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
        fake.transforms = types.ModuleType("torchvision.transforms")
        fake.transforms.__spec__ = importlib.machinery.ModuleSpec("torchvision.transforms", None)
        fake.transforms.ToTensor = ToTensor
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "torchvision", fake)
        monkeypatch.setitem(sys.modules, "torchvision.transforms", fake.transforms)
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset


def test_lerobot_loader_reads_the_export(exported, demos, lerobot_dataset_class):
    root, summary = exported
    ds = lerobot_dataset_class("robot_rl/pick_cube", root=root,
                               delta_timestamps={"action": [0.0, 1.0 / FPS]})
    assert ds.num_episodes == summary["episodes"] == 2
    assert len(ds) == summary["frames"] == summary["transitions"] + summary["episodes"]
    assert ds.fps == FPS
    assert set(ds.meta.camera_keys) == {"observation.images.front", "observation.images.wrist"}
    assert ds.meta.stats["observation.images.front"]["mean"].shape == (3, 1, 1)

    replay = _all_transitions(demos)
    item = ds[3]  # frame 3 of episode 0 = transition 3 of the demonstrations
    assert item["task"] == "pick up the cube and lift it"
    assert int(item["episode_index"]) == 0 and int(item["frame_index"]) == 3
    front = replay["obs"]["image_front"][3].numpy()
    assert item["observation.images.front"].shape == (3, 128, 128)
    assert np.array_equal(np.round(item["observation.images.front"].numpy() * 255).astype(np.uint8),
                          front.transpose(2, 0, 1))
    assert np.array_equal(item["observation.state"].numpy(), replay["obs"]["state"][3].numpy())
    assert np.array_equal(item["observation.tactile.left"].numpy().reshape(4, 4), replay["obs"]["tactile_left"][3].numpy())
    assert np.array_equal(item["action"][0].numpy(), replay["action"][3].numpy())
    assert np.array_equal(item["action"][1].numpy(), replay["action"][4].numpy())
    assert bool(item["intervention"]) is False

    first_len = ds.meta.episodes[0]["length"]
    final = ds[first_len - 1]
    assert bool(final["is_final_observation"]) and bool(final["next.done"])
    assert bool(final["action_is_pad"][1])  # LeRobot pads past the episode end
    assert int(ds[first_len]["episode_index"]) == 1


def test_export_follows_the_v3_layout(exported):
    """Checked with pyarrow alone against LeRobot's documented v3.0 layout."""
    root, summary = exported
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_frames"] == summary["frames"] and info["total_episodes"] == 2
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index",
                 "intervention", "next.reward", "next.done", "action"):
        assert name in info["features"], name
    assert info["features"]["action"]["names"] == ["dx", "dy", "dz", "gripper"]
    data = pq.read_table(root / info["data_path"].format(chunk_index=0, file_index=0))
    assert data.num_rows == summary["frames"]
    assert data.column("index").to_pylist() == list(range(summary["frames"]))
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_to_index"] - e["dataset_from_index"] for e in episodes] == \
        [e["length"] for e in episodes]
    assert episodes[0]["tasks"] == ["pick up the cube and lift it"]
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pandas()
    assert tasks.loc["pick up the cube and lift it", "task_index"] == 0
    png = data.column("observation.images.front")[0].as_py()["bytes"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------------
def test_round_trip_of_real_demonstrations_is_bit_exact(exported, demos, image_config, tmp_path):
    root, summary = exported
    spec, adim, _ = expected_spec(image_config)
    back = tmp_path / "back"
    result = import_dataset(str(root), str(back), spec, adim)
    assert result["transitions"] == summary["transitions"]
    assert _assert_same_transitions(demos, back) == summary["transitions"]


def test_round_trip_keeps_interventions_truncation_and_actors(tmp_path):
    src = tmp_path / "replay"
    n = _synthetic_replay(src)
    ds = tmp_path / "ds"
    summary = export_lerobot(str(src), str(ds), fps=FPS)
    assert summary["transitions"] == n
    assert summary["episodes"] == 3 + 6  # three chains, then six single interleaved steps
    from robot_rl.learning.replay import read_manifest

    man = read_manifest(str(src))
    back = tmp_path / "back"
    import_dataset(str(ds), str(back), man["observation"], man["action_dim"])
    assert _assert_same_transitions(src, back) == n
    demo_only = tmp_path / "interventions"
    result = import_dataset(str(ds), str(demo_only), man["observation"], man["action_dim"],
                            intervened_only=True)
    kept = _all_transitions(demo_only)
    assert result["transitions"] == len(kept["action"]) > 0
    assert bool(kept["intervened"].all())


def test_learner_buffer_reads_an_import_as_demonstrations(exported, image_config, tmp_path):
    from robot_rl.envs.task import PickCubeTask

    root, summary = exported
    spec, adim, _ = expected_spec(image_config)
    import_dataset(str(root), str(tmp_path / "demos"), spec, adim)
    task = PickCubeTask(image_config, np.array([0.0, 0.0, 0.0, 1.0]))
    demo = ReplayBuffer(task.observation_space, adim, capacity=1000, verbose=False)
    assert demo.extend_from_disk(str(tmp_path / "demos")) == summary["transitions"]


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def _copy_dataset(root: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(root, dst)
    return dst


def test_missing_feature_is_named_and_nothing_is_written(exported, image_config, tmp_path):
    root, _ = exported
    bad = _copy_dataset(root, tmp_path / "bad")
    info = json.loads((bad / "meta/info.json").read_text())
    del info["features"]["observation.images.wrist"]
    (bad / "meta/info.json").write_text(json.dumps(info))
    spec, adim, _ = expected_spec(image_config)
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as err:
        import_dataset(str(bad), str(out), spec, adim)
    msg = str(err.value)
    assert str(bad / "meta/info.json") in msg and "observation.images.wrist" in msg
    assert "[128, 128, 3]" in msg
    assert not out.exists() and os.listdir(tmp_path) == ["bad"]


def test_other_shape_than_the_config_is_refused(exported, tmp_path):
    root, _ = exported
    cfg = load_config(None, {**IMAGE_OBS, "cameras": [
        {"name": "front", "width": 64, "height": 64, "fps": 10},
        {"name": "wrist", "width": 128, "height": 128, "fps": 10}]})
    spec, adim, _ = expected_spec(cfg)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"observation\.images\.front.*shape \[128, 128, 3\], "
                                           r"expected \[64, 64, 3\]"):
        import_dataset(str(root), str(out), spec, adim)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_rows_that_disagree_with_info_json_are_refused_midway(exported, image_config, tmp_path):
    root, summary = exported
    bad = _copy_dataset(root, tmp_path / "bad")
    data_file = bad / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_file)
    states = table.column("observation.state").to_pylist()
    states[40] = states[40][:5]  # one row deep in the second episode: a 5-vector
    column = pa.array(states, pa.list_(pa.float32()))
    table = table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column)
    pq.write_table(table, data_file)
    spec, adim, _ = expected_spec(image_config)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"file-000\.parquet, row 40, field 'observation\.state': "
                                           r"shape \[5\], expected \[8\]"):
        import_dataset(str(bad), str(out), spec, adim)
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["bad"]


def test_existing_target_and_foreign_source_are_refused(exported, demos, image_config, tmp_path):
    root, _ = exported
    spec, adim, _ = expected_spec(image_config)
    with pytest.raises(DatasetError, match="already exists"):
        export_lerobot(str(demos), str(root), fps=FPS)
    with pytest.raises(DatasetError, match="neither a LeRobot dataset folder"):
        import_dataset(str(demos), str(tmp_path / "x"), spec, adim)
    with pytest.raises(ValueError, match="no manifest.json"):
        export_lerobot(str(tmp_path), str(tmp_path / "y"), fps=FPS)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# --------------------------------------------------------------------------------------------
# MCAP recordings of /rl/transitions, and the command line
# --------------------------------------------------------------------------------------------
def _record_transitions(demos: Path, path: Path, batch: int = 8) -> int:
    """The demonstrations as the actor streams them: transport-encoded batches in rclpy's CDR
    bytes of std_msgs/UInt8MultiArray, written by the project's MCAP recorder."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import UInt8MultiArray

    from robot_rl.data.mcap_io import RecordingWriter
    from robot_rl.learning.replay import read_manifest
    from robot_rl.transport import StepRecord, encode_transitions

    spec = read_manifest(str(demos))["observation"]
    tr = _all_transitions(demos)
    steps, starts = [], True
    for i in range(len(tr["action"])):
        steps.append(StepRecord(
            action=tr["action"][i].numpy(), reward=float(tr["reward"][i]),
            next_obs={k: v[i].numpy() for k, v in tr["next_obs"].items()},
            terminated=bool(tr["terminated"][i]), truncated=bool(tr["truncated"][i]),
            intervened=bool(tr["intervened"][i]),
            obs={k: v[i].numpy() for k, v in tr["obs"].items()} if starts else None))
        starts = steps[-1].terminated or steps[-1].truncated
    writer = RecordingWriter(path)
    writer.add_channel("/rl/transitions", "std_msgs/msg/UInt8MultiArray")
    writer.add_channel("/task/success", "std_msgs/msg/Bool")
    for seq, first in enumerate(range(0, len(steps), batch)):
        data = encode_transitions(steps[first:first + batch], 0, seq, first, spec)
        writer.write("/rl/transitions", serialize_message(UInt8MultiArray(data=list(data))))
    writer.close()
    return len(steps)


def test_mcap_recording_of_transitions_imports_as_the_same_demonstrations(demos, image_config, tmp_path):
    recording = tmp_path / "session.mcap"
    n = _record_transitions(demos, recording)
    spec, adim, _ = expected_spec(image_config)
    result = import_dataset(str(recording), str(tmp_path / "demos"), spec, adim)
    assert result["kind"] == "mcap" and result["transitions"] == n
    assert _assert_same_transitions(demos, tmp_path / "demos") == n


def test_mcap_without_transitions_or_with_other_shapes_is_refused(demos, tmp_path):
    from robot_rl.data.mcap_io import RecordingWriter

    bare = tmp_path / "bare.mcap"
    writer = RecordingWriter(bare)
    writer.add_channel("/task/success", "std_msgs/msg/Bool")
    writer.close()
    cfg = load_config(None, IMAGE_OBS)
    spec, adim, _ = expected_spec(cfg)
    with pytest.raises(DatasetError, match=r"bare\.mcap: no /rl/transitions channel"):
        import_dataset(str(bare), str(tmp_path / "a"), spec, adim)
    recording = tmp_path / "session.mcap"
    _record_transitions(demos, recording)
    small = dict(spec, image_front={"shape": [64, 64, 3], "dtype": "uint8"})
    with pytest.raises(DatasetError, match=r"session\.mcap: /rl/transitions message 0: .*next_obs\.image_front"):
        import_dataset(str(recording), str(tmp_path / "b"), small, adim)
    assert sorted(os.listdir(tmp_path)) == ["bare.mcap", "session.mcap"]


def test_dataset_command_exports_and_imports(demos, tmp_path, capsys):
    from robot_rl.cli import main

    sets = ["--set", "task.observations=[state,tactile,images]"]
    run_dir = tmp_path / "run"  # a learner's run_dir holds its online experience in replay/
    run_dir.mkdir()
    shutil.copytree(demos, run_dir / "replay")
    assert main(["dataset", "export", str(run_dir), str(tmp_path / "ds"), *sets]) == 0
    assert "exported" in capsys.readouterr().out
    assert main(["dataset", "import", str(tmp_path / "ds"), str(tmp_path / "back"), *sets]) == 0
    _assert_same_transitions(demos, tmp_path / "back")
    assert main(["dataset", "import", str(tmp_path / "ds"), str(tmp_path / "bad"),
                 "--set", "cameras=[{name: front, width: 64, height: 64}]", *sets]) == 2
    err = capsys.readouterr().err
    assert "observation.images.front" in err and "expected [64, 64, 3]" in err


def test_dataset_in_lerobots_own_frame_layout_imports_consecutive_frames(exported, demos, image_config, tmp_path):
    """A dataset as other LeRobot tools write it: one frame per action, no final-observation
    frame, no terminated/truncated/actor columns. Consecutive frames make the transitions."""
    import pyarrow.compute as pc

    root, summary = exported
    foreign = _copy_dataset(root, tmp_path / "foreign")
    data_file = foreign / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data_file)
    table = table.filter(pc.invert(table.column("is_final_observation")))
    dropped = ["is_final_observation", "next.terminated", "next.truncated", "actor_id"]
    pq.write_table(table.drop_columns(dropped), data_file)
    info = json.loads((foreign / "meta/info.json").read_text())
    for name in dropped:
        del info["features"][name]
    (foreign / "meta/info.json").write_text(json.dumps(info))

    spec, adim, _ = expected_spec(image_config)
    result = import_dataset(str(foreign), str(tmp_path / "demos"), spec, adim)
    original, imported = _all_transitions(demos), _all_transitions(tmp_path / "demos")
    lengths = [int(n) for n in np.diff(np.flatnonzero(np.r_[True, original["terminated"].numpy()[:-1] > 0, True]))]
    assert result["transitions"] == summary["transitions"] - summary["episodes"] == sum(n - 1 for n in lengths)
    keep = np.concatenate([np.arange(start, start + n - 1) for start, n in zip(np.cumsum([0] + lengths[:-1]), lengths)])
    for field in ("action", "reward", "intervened"):
        assert np.array_equal(imported[field].numpy(), original[field].numpy()[keep]), field
    for side in ("obs", "next_obs"):
        for key in original[side]:
            assert np.array_equal(imported[side][key].numpy(), original[side][key].numpy()[keep]), key
    ends = np.cumsum([n - 1 for n in lengths]) - 1  # an episode's last transition ends it (next.done)
    assert np.flatnonzero(imported["terminated"].numpy()).tolist() == ends.tolist()
    assert not imported["truncated"].numpy().any()


def test_rerun_reads_the_export_as_a_lerobot_dataset(exported):
    """A second, independent LeRobot reader (Rerun's, in Rust) streams an episode of the export."""
    from rerun.experimental import LeRobotReader

    root, summary = exported
    reader = LeRobotReader(root)
    assert len(reader.episodes()) == summary["episodes"]
    rows: dict = {}
    for chunk in reader.stream(reader.episodes()[0]):
        frames = chunk.to_record_batch().to_pydict().get("frame_index")
        if frames is not None:  # temporal rows; static ones carry names (action, taxels)
            rows.setdefault(chunk.entity_path, []).extend(frames)
    rows = {entity: sorted(frames) for entity, frames in rows.items()}
    first_length = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").column("length")[0].as_py()
    for entity in ("/observation.images.front", "/observation.images.wrist", "/observation.state",
                   "/observation.tactile.left", "/action"):
        assert rows.get(entity) == list(range(first_length)), entity
