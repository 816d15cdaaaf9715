"""The success classifier trained on rendered sim frames: held-out accuracy and false
positives, save/load without pickle, the CLI, and the frame recorder."""
import json
import time
import zipfile

import numpy as np
import pytest

from robot_rl.hil import reward_classifier as rc


@pytest.fixture(scope="module")
def frames():
    """Train and held-out episodes rendered with different seeds (different cube poses)."""
    start = time.perf_counter()
    train_set = rc.collect_sim_frames(24, camera="front", size=64, seed=0)
    held_out = rc.collect_sim_frames(10, camera="front", size=64, seed=1)
    print(f"rendered {len(train_set['labels']) + len(held_out['labels'])} frames in "
          f"{time.perf_counter() - start:.1f} s")
    return train_set, held_out


@pytest.fixture(scope="module")
def classifier(frames):
    train_set, _ = frames
    start = time.perf_counter()
    clf = rc.train(train_set, steps=500, log=None)
    clf.meta["train_seconds"] = time.perf_counter() - start
    return clf


def test_frames_cover_success_and_hard_negatives(frames):
    train_set, held_out = frames
    for d in (train_set, held_out):
        assert d["images_front"].shape[1:] == (64, 64, 3) and d["images_front"].dtype == np.uint8
        assert 0.1 < d["labels"].mean() < 0.4
    # Near-miss episodes (every third: empty gripper lifted beside the cube) have no success.
    near_miss = train_set["labels"][train_set["episode"] % 3 == 2]
    assert len(near_miss) and near_miss.sum() == 0


def test_held_out_accuracy_and_false_positive_rate(classifier, frames):
    _, held_out = frames
    result = rc.evaluate(classifier, held_out)
    print(f"held-out: {result}, training took {classifier.meta['train_seconds']:.1f} s")
    assert result["accuracy"] >= 0.95, result
    assert result["false_positive_rate"] <= 0.02, result
    assert classifier.meta["train_seconds"] < 60


def test_save_load_predicts_the_same_without_pickle(classifier, frames, tmp_path):
    _, held_out = frames
    folder = classifier.save(tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["cameras"] == ["front"] and meta["image_shape"] == [64, 64, 3]
    raw = (folder / "model.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])  # safetensors layout
    assert "head.0.weight" in header and "feat_mean" in header
    loaded = rc.RewardClassifier.load(folder)
    images = held_out["images_front"][:40]
    np.testing.assert_allclose(loaded.predict(images), classifier.predict(images), atol=1e-6)
    single = loaded.predict(images[0])
    assert single.shape == (1,) and 0.0 <= single[0] <= 1.0
    with pytest.raises(ValueError, match="expected uint8 N×64×64×3"):
        loaded.predict(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="model.json"):
        rc.RewardClassifier.load(tmp_path / "nothing")


def test_recorder_writes_npz_readable_without_pickle(tmp_path):
    rec = rc.FrameRecorder(["front", "wrist"])
    img = np.zeros((8, 8, 3), np.uint8)
    for i in range(4):
        rec.add({"front": img + i, "wrist": img}, label=i == 3, episode=i // 2, stamp=0.1 * i)
    with pytest.raises(ValueError, match="lacks camera"):
        rec.add({"front": img}, True)
    with pytest.raises(ValueError, match="uint8"):
        rec.add({"front": img.astype(float), "wrist": img}, True)
    path = rec.save(tmp_path / "a.npz")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["episode.npy", "images_front.npy", "images_wrist.npy",
                                        "labels.npy", "stamp.npy"]
    data = rc.load_frames([path, path])  # a second file gets episode ids of its own
    assert data["labels"].tolist() == [0, 0, 0, 1] * 2
    assert data["episode"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert data["images_front"][3, 0, 0, 0] == 3


def test_cli_trains_and_evaluates(frames, tmp_path, capsys):
    train_set, held_out = frames
    small = {k: v[train_set["episode"] < 6] for k, v in train_set.items()}
    np.savez_compressed(tmp_path / "train.npz", **small)
    np.savez_compressed(tmp_path / "held.npz", **{k: v[:60] for k, v in held_out.items()})
    out = tmp_path / "model"
    assert rc.main(["train", "--data", str(tmp_path / "train.npz"), "--out", str(out),
                    "--steps", "50", "--val-fraction", "0.34"]) == 0
    text = capsys.readouterr().out
    assert "held-out: accuracy" in text and "false-positive rate" in text
    assert json.loads((out / "model.json").read_text())["held_out"]["n"] > 0
    assert rc.main(["eval", "--model", str(out), "--data", str(tmp_path / "held.npz")]) == 0
    assert "evaluation: accuracy" in capsys.readouterr().out
    assert rc.main(["eval", "--model", str(tmp_path / "none"), "--data",
                    str(tmp_path / "held.npz")]) == 2
