"""Tactile baseline capture / storage / normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from robot_rl.calibration import tactile
from robot_rl.calibration.errors import CalibrationError, CalibrationFileError
from robot_rl.calibration.tactile import capture_baseline, list_baselines, load_baseline, save_baseline


def _frames(n=50, shape=(4, 6), seed=0):
    rng = np.random.default_rng(seed)
    offset = rng.uniform(100, 200, size=shape)
    noise = rng.uniform(0.5, 2.0, size=shape)
    return offset, noise, offset + rng.normal(size=(n, *shape)) * noise


def test_capture_statistics_and_apply():
    offset, noise, frames = _frames(400)
    b = capture_baseline(frames, "GS-0001")
    assert b.shape == (4, 6) and b.n_frames == 400
    np.testing.assert_allclose(b.mean, offset, atol=0.4)
    np.testing.assert_allclose(b.std, noise, rtol=0.15)
    press = b.mean + 10 * b.std
    np.testing.assert_allclose(b.apply(press), 10.0)
    batch = b.apply(np.stack([b.mean, press]))
    assert batch.shape == (2, 4, 6) and np.allclose(batch[0], 0)
    assert np.all(b.apply(b.mean + 0.5 * b.std, deadband=3.0) == 0)
    with pytest.raises(ValueError, match=r"does not match baseline \(4, 6\)"):
        b.apply(np.zeros((5, 5)))


def test_noise_floor_protects_dead_taxels():
    _, _, frames = _frames(50)
    frames[:, 0, 0] = 123.0  # dead taxel: zero variance
    b = capture_baseline(frames, "dead-taxel", noise_floor=0.5)
    out = b.apply(b.mean + 1.0)
    assert out[0, 0] == pytest.approx(2.0)  # divided by the floor, not by ~0
    assert np.all(np.isfinite(out))


def test_save_load_roundtrip_by_serial(tmp_path):
    _, _, f1 = _frames(40, (4, 6), 1)
    _, _, f2 = _frames(40, (16, 16, 3), 2)
    save_baseline(capture_baseline(f1, "left_finger"), tmp_path)
    save_baseline(capture_baseline(f2, "right_finger"), tmp_path)
    assert list_baselines(tmp_path) == ["left_finger", "right_finger"]
    index = yaml.safe_load((tmp_path / "index.yaml").read_text())
    assert index["sensors"]["right_finger"]["shape"] == [16, 16, 3]
    b = load_baseline(tmp_path, "right_finger", expected_shape=(16, 16, 3))
    assert b.shape == (16, 16, 3) and b.n_frames == 40
    with np.load(tmp_path / "left_finger.npz", allow_pickle=False) as z:  # plain arrays, no pickle
        assert set(z.files) == {"mean", "std"}


def test_load_errors(tmp_path):
    _, _, f = _frames(40)
    save_baseline(capture_baseline(f, "SN1"), tmp_path)
    with pytest.raises(CalibrationFileError, match="no tactile baseline for sensor 'SN2'.*known: SN1"):
        load_baseline(tmp_path, "SN2")
    with pytest.raises(CalibrationFileError, match=r"has shape \(4, 6\) but the sensor reports \(8, 8\)"):
        load_baseline(tmp_path, "SN1", expected_shape=(8, 8))
    (tmp_path / "SN1.npz").unlink()
    with pytest.raises(CalibrationFileError, match="file is missing"):
        load_baseline(tmp_path, "SN1")
    with pytest.raises(CalibrationFileError, match="no tactile baseline"):
        load_baseline(tmp_path / "empty", "SN1")


def test_capture_rejections():
    _, _, f = _frames(50)
    with pytest.raises(CalibrationError, match="need >= 10"):
        capture_baseline(f[:5], "SN")
    touched = f.copy()
    touched[25:] += 30.0  # someone pressed the sensor half-way through
    with pytest.raises(CalibrationError, match="not stationary"):
        capture_baseline(touched, "SN")
    with pytest.raises(ValueError, match="file name"):
        capture_baseline(f, "../../etc/passwd")
    with pytest.raises(CalibrationError, match="differing shapes"):
        capture_baseline([np.zeros((2, 2))] * 10 + [np.zeros((3, 3))], "SN")
    bad = f.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(CalibrationError, match="NaN"):
        capture_baseline(bad, "SN")


def test_cli(tmp_path, capsys):
    _, _, f = _frames(30)
    np.save(tmp_path / "frames.npy", f)
    rc = tactile.main(["--frames", str(tmp_path / "frames.npy"), "--serial", "DIGIT-D20001", "--out-dir", str(tmp_path / "tac")])
    assert rc == 0
    assert load_baseline(tmp_path / "tac", "DIGIT-D20001").shape == (4, 6)


def test_calibrate_dispatcher(tmp_path, capsys):
    from robot_rl.calibration import cli

    assert cli.main(["bogus"]) == 2
    assert cli.main(["--help"]) == 0
    _, _, f = _frames(20)
    np.save(tmp_path / "f.npy", f)
    assert cli.main(["tactile", "--frames", str(tmp_path / "f.npy"), "--serial", "X1", "--out-dir", str(tmp_path)]) == 0
