"""models/: the default deploy.model resolves (working directory, then the share folder) to a
policy the runtime loads, and the files an export writes are readable by other users."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from robot_rl.deploy.config import DeployConfig
from robot_rl.deploy.metadata import metadata_path_for
from robot_rl.paths import atomic_write_text, find_user_file, share_dir


def test_default_model_resolves_in_the_working_directory_and_loads(exported, tmp_path, monkeypatch):
    from robot_rl.deploy.onnx_policy import OnnxPolicy

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(exported.onnx_path, models / "policy.onnx")
    shutil.copy(exported.metadata_path, models / "policy.json")
    monkeypatch.chdir(tmp_path)
    path = DeployConfig().model_file()
    assert path == tmp_path / "models" / "policy.onnx"
    policy = OnnxPolicy(path, providers="cpu")
    assert policy.metadata.observation_names == exported.metadata.observation_names


def test_relative_paths_fall_back_to_the_share_folder_and_errors_name_both_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The checkout (or the installed share/robot_rl) ships models/README.md.
    assert find_user_file("models/README.md") == share_dir() / "models" / "README.md"
    with pytest.raises(FileNotFoundError) as info:
        DeployConfig(model="models/no-such-policy.onnx").model_file()
    text = str(info.value)
    assert "deploy.model (exported policy)" in text
    assert str(tmp_path / "models" / "no-such-policy.onnx") in text
    assert str(share_dir() / "models" / "no-such-policy.onnx") in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_user_file(tmp_path / "absent.onnx", "model")


def test_atomic_writes_get_the_permissions_a_plain_write_would(tmp_path, exported):
    mask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.json", "{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        os.chmod(fresh, 0o640)
        atomic_write_text(fresh, "{\"a\": 1}")  # a replaced file keeps its mode
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
    finally:
        os.umask(mask)
    # An export's metadata (written with the process umask) is readable like its .onnx.
    meta = metadata_path_for(exported.onnx_path)
    onnx_mode = stat.S_IMODE(exported.onnx_path.stat().st_mode)
    assert stat.S_IMODE(meta.stat().st_mode) & 0o044 == onnx_mode & 0o044
