from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from tests.deploy._policies import IMAGE_SHAPE, STATE_DIM, single_obs
from robot_rl.deploy.errors import (
    MetadataNotFoundError,
    ModelMismatchError,
    PolicyInputError,
    PolicyLoadError,
    PolicyNotFoundError,
    ProviderUnavailableError,
)
from robot_rl.deploy.metadata import RobotSpec
from robot_rl.deploy.onnx_policy import CPU, CUDA, TRT, OnnxPolicy, select_providers


@pytest.fixture(scope="module")
def policy(exported):
    return OnnxPolicy(exported.onnx_path)


def test_matches_torch_for_single_observation(policy, torch_policy):
    for seed in range(5):
        obs = single_obs(seed)
        with torch.no_grad():
            want = torch_policy({k: torch.from_numpy(v[None]) for k, v in obs.items()})[0].numpy()
        got = policy(obs)
        assert got.dtype == np.float32 and got.shape == (7,)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        # a leading batch dim of 1 is accepted too
        np.testing.assert_array_equal(policy({k: v[None] for k, v in obs.items()}), got)


def test_returned_action_is_not_a_view_of_the_buffer(policy):
    a = policy(single_obs(0))
    b = policy(single_obs(1))
    assert not np.shares_memory(a, b)
    assert not np.array_equal(a, b)


def test_cpu_default_provider_logged(exported, caplog):
    with caplog.at_level(logging.INFO, logger="robot_rl.deploy.onnx_policy"):
        p = OnnxPolicy(exported.onnx_path)
    assert p.provider == CPU
    assert "running on CPUExecutionProvider" in caplog.text
    p.warmup()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda o: o.pop("wrist_rgb"), r"missing \['wrist_rgb'\]"),
        (lambda o: o.update(extra=np.zeros(1, np.float32)), r"unexpected \['extra'\]"),
        (lambda o: o.update(state=np.zeros(STATE_DIM + 1, np.float32)), r"'state' has shape \(13,\), expected \(12,\)"),
        (lambda o: o.update(state=np.zeros(STATE_DIM, np.float64)), "'state' has dtype float64, expected float32"),
        (lambda o: o.update(wrist_rgb=np.zeros(IMAGE_SHAPE, np.float32)), "'wrist_rgb' has dtype float32, expected uint8"),
        (lambda o: o.update(state=[0.0] * STATE_DIM), "'state' must be a numpy array, got list"),
    ],
)
def test_input_validation(policy, mutate, expected):
    obs = single_obs(0)
    mutate(obs)
    with pytest.raises(PolicyInputError, match=expected):
        policy(obs)


def test_check_against(policy):
    robot = RobotSpec(joint_names=policy.metadata.joint_names,
                      observation_shapes={"state": (STATE_DIM,), "wrist_rgb": IMAGE_SHAPE}, control_rate_hz=20.0)
    policy.check_against(robot)
    robot.control_rate_hz = 10.0
    with pytest.raises(ModelMismatchError, match="control_rate_hz: expected 20.0, found 10.0"):
        policy.check_against(robot)


def _copy(exported, tmp_path):
    onnx_path = tmp_path / "policy.onnx"
    shutil.copy(exported.onnx_path, onnx_path)
    shutil.copy(exported.metadata_path, tmp_path / "policy.json")
    return onnx_path


def test_missing_files(exported, tmp_path):
    with pytest.raises(PolicyNotFoundError, match="not found"):
        OnnxPolicy(tmp_path / "absent.onnx")
    p = _copy(exported, tmp_path)
    (tmp_path / "policy.json").unlink()
    with pytest.raises(MetadataNotFoundError, match="policy.json"):
        OnnxPolicy(p)


def test_corrupt_model(exported, tmp_path):
    p = _copy(exported, tmp_path)
    p.write_bytes(b"\x00garbage, not a protobuf" * 10)
    # the hash check catches a swapped / truncated file first ...
    with pytest.raises(ModelMismatchError, match="model_sha256"):
        OnnxPolicy(p)
    # ... and without it onnxruntime's failure is wrapped with the path
    with pytest.raises(PolicyLoadError, match="cannot load ONNX model"):
        OnnxPolicy(p, verify_hash=False)


def test_metadata_disagreeing_with_graph(exported, tmp_path):
    p = _copy(exported, tmp_path)
    meta = json.loads((tmp_path / "policy.json").read_text())
    meta["observations"][0]["shape"] = [STATE_DIM + 2]
    meta["action"] = {"names": ["a", "b"]}
    (tmp_path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError) as ei:
        OnnxPolicy(p)
    fields = [m.field for m in ei.value.mismatches]
    assert fields == ["graph input 'state' shape", "graph output 'action' shape"]


def test_select_providers_cpu_only_machine(tmp_path):
    avail = ["AzureExecutionProvider", CPU]
    assert select_providers("auto", avail, tmp_path) == [(CPU, {})]
    assert select_providers("cpu", avail, tmp_path) == [(CPU, {})]
    with pytest.raises(ProviderUnavailableError, match="TensorrtExecutionProvider is not available"):
        select_providers("tensorrt", avail, tmp_path)
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider is not available"):
        select_providers("cuda", avail, tmp_path)
    with pytest.raises(ValueError, match="providers must be"):
        select_providers("gpu", avail, tmp_path)


def test_select_providers_gpu_machine(tmp_path):
    avail = [TRT, CUDA, CPU]
    chain = select_providers("auto", avail, tmp_path / "cache", {"state": (1, 12), "img": (1, 32, 32, 3)})
    assert [n for n, _ in chain] == [TRT, CUDA, CPU]
    trt = chain[0][1]
    assert trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path / "cache")
    assert trt["trt_profile_opt_shapes"] == "state:1x12,img:1x32x32x3"
    assert [n for n, _ in select_providers("tensorrt", avail, tmp_path)] == [TRT, CUDA, CPU]
    assert [n for n, _ in select_providers("cuda", avail, tmp_path)] == [CUDA, CPU]
    assert select_providers([CUDA, (CPU, {"x": "1"})], avail, tmp_path) == [(CUDA, {}), (CPU, {"x": "1"})]
    # TensorRT-only builds (no CUDA EP) still end in CPU
    assert [n for n, _ in select_providers("auto", [TRT, CPU], tmp_path)] == [TRT, CPU]
