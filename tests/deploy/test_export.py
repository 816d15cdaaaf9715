from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from tests.deploy._policies import ExportModeDiffers, NonFinitePolicy, example_obs, make_metadata, make_policy
from robot_rl.deploy.errors import ExportError, ExportParityError
from robot_rl.deploy.export import main
from robot_rl.deploy.onnx_export import check_parity, export_onnx
from robot_rl.deploy.metadata import PolicyMetadata, sha256_of


def test_export_writes_one_onnx_and_metadata(exported, torch_policy):
    assert exported.onnx_path.exists() and exported.metadata_path.exists()
    # single self-contained file: no external-data sidecar, no staging leftovers
    assert sorted(p.name for p in exported.onnx_path.parent.iterdir()) == ["policy.json", "policy.onnx"]
    model = onnx.load(str(exported.onnx_path))
    assert [i.name for i in model.graph.input] == ["state", "wrist_rgb"]
    assert [o.name for o in model.graph.output] == ["action"]
    for v in (*model.graph.input, *model.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = PolicyMetadata.load(exported.metadata_path)
    assert meta.export is not None
    assert meta.export.model_sha256 == sha256_of(exported.onnx_path)
    assert meta.export.parity_max_abs_diff <= 1e-5
    assert meta.export.exporter == "torchscript"


def test_exported_graph_has_dynamic_batch_and_matches_torch(exported, torch_policy):
    sess = ort.InferenceSession(str(exported.onnx_path), providers=["CPUExecutionProvider"])
    obs = {k: v.numpy() for k, v in example_obs(batch=5, seed=3).items()}
    got = sess.run(["action"], obs)[0]
    with torch.no_grad():
        want = torch_policy({k: torch.from_numpy(v) for k, v in obs.items()}).numpy()
    assert got.shape == (5, 7)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None, reason="dynamo exporter needs onnxscript")
def test_dynamo_exporter(tmp_path, torch_policy, metadata):
    res = export_onnx(torch_policy, example_obs(), metadata, tmp_path / "d.onnx", exporter="dynamo")
    assert res.metadata.export.exporter == "dynamo"
    assert res.max_abs_diff <= 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.onnx"]


def test_parity_checker_flags_perturbed_model(exported, torch_policy, metadata, tmp_path):
    model = onnx.load(str(exported.onnx_path))
    # Perturb the largest float weight tensor slightly: a "silently wrong" model.
    init = max((i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT),
               key=lambda i: int(np.prod(i.dims)))
    w = numpy_helper.to_array(init).copy()
    w += 1e-2
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    # the unperturbed model passes ...
    assert check_parity(torch_policy, exported.onnx_path, metadata, samples=16) <= 1e-5
    # ... the perturbed one is flagged, with the measured difference
    with pytest.raises(ExportParityError, match="max \\|onnx - torch\\|") as ei:
        check_parity(torch_policy, bad, metadata, samples=16)
    assert ei.value.max_abs_diff > 1e-5


def test_failed_parity_publishes_nothing(tmp_path, metadata):
    dest = tmp_path / "p.onnx"
    with pytest.raises(ExportParityError) as ei:
        export_onnx(ExportModeDiffers().eval(), example_obs(), metadata, dest, exporter="torchscript")
    assert ei.value.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    assert list(tmp_path.iterdir()) == []  # no model, no metadata, no staging dir


def test_failed_parity_keeps_previous_release(tmp_path, metadata):
    dest = tmp_path / "p.onnx"
    good = export_onnx(make_policy(), example_obs(), metadata, dest, exporter="torchscript")
    before = sha256_of(dest), good.metadata_path.read_text()
    with pytest.raises(ExportParityError):
        export_onnx(ExportModeDiffers().eval(), example_obs(), metadata, dest, exporter="torchscript")
    assert (sha256_of(dest), good.metadata_path.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.onnx"]


def test_nan_output_fails_parity(tmp_path, metadata):
    with pytest.raises(ExportParityError, match="non-finite"):
        export_onnx(NonFinitePolicy().eval(), example_obs(), metadata, tmp_path / "n.onnx", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_example_obs_validated(tmp_path, torch_policy, metadata):
    ex = example_obs()
    with pytest.raises(ExportError, match=r"missing \['wrist_rgb'\]"):
        export_onnx(torch_policy, {"state": ex["state"]}, metadata, tmp_path / "p.onnx")
    with pytest.raises(ExportError, match="'wrist_rgb' has dtype torch.float32, expected uint8"):
        export_onnx(torch_policy, {**ex, "wrist_rgb": ex["wrist_rgb"].float()}, metadata, tmp_path / "p.onnx")
    with pytest.raises(ExportError, match="'state' has shape"):
        export_onnx(torch_policy, {**ex, "state": ex["state"][:, :3]}, metadata, tmp_path / "p.onnx")


def test_action_dim_must_match_metadata(tmp_path, torch_policy):
    meta = make_metadata(action=make_metadata().action.__class__(names=("a", "b")))
    with pytest.raises(ExportError, match=r"output has shape \(1, 7\), expected \(1, 2\)"):
        export_onnx(torch_policy, example_obs(), meta, tmp_path / "p.onnx")


def test_unused_observation_is_reported(tmp_path, metadata):
    class IgnoresImage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.Linear(12, 7)

        def forward(self, obs):
            return self.l(obs["state"])

    with pytest.raises(ExportError, match=r"does not use observation\(s\) \['wrist_rgb'\]"):
        export_onnx(IgnoresImage().eval(), example_obs(), metadata, tmp_path / "p.onnx", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_cli_with_factory_and_saved_module(tmp_path, metadata, capsys):
    template = metadata.save(tmp_path / "template.json")
    out = tmp_path / "out" / "policy.onnx"
    rc = main(["--factory", "tests.deploy._policies:factory", "--checkpoint", "ignored.ckpt", "--metadata", str(template),
               "--out", str(out), "--exporter", "torchscript", "--parity-samples", "8"])
    assert rc == 0, capsys.readouterr().err
    assert out.exists() and json.loads((out.parent / "policy.json").read_text())["export"]["exporter"] == "torchscript"

    saved = tmp_path / "module.pt"
    torch.save(make_policy(), saved)
    rc = main(["--module", str(saved), "--metadata", str(template), "--out", str(tmp_path / "m.onnx"),
               "--exporter", "torchscript"])
    assert rc == 0

    rc = main(["--factory", "no_such_module:make", "--metadata", str(template), "--out", str(tmp_path / "x.onnx")])
    assert rc == 1
    assert "cannot import factory" in capsys.readouterr().err

    torch.save(make_policy().state_dict(), saved)
    rc = main(["--module", str(saved), "--metadata", str(template), "--out", str(tmp_path / "y.onnx")])
    assert rc == 1
    assert "expected a whole torch.nn.Module" in capsys.readouterr().err
