"""Export a policy module to a single ONNX file plus its metadata JSON.

Contract with the agent (``agent.export_module()``): a ``torch.nn.Module`` whose
``forward(obs: dict[str, Tensor]) -> Tensor`` takes *raw* observations, batch first
(images uint8 B x H x W x C, state/tactile float32), and returns the deterministic
action, float32 B x A.  Normalisation, encoders and action scaling all live inside that
module, so the exported graph goes from raw sensor tensors to the command and the robot
side needs no Python preprocessing that could drift from training.

Publishing is all-or-nothing: the model is exported into a staging directory next to
the destination, checked for torch/onnxruntime parity on random inputs, and only then
moved into place (``os.replace``), metadata last.  A failed parity check leaves any
previously published model untouched.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.deploy.errors import ExportError, ExportParityError
from robot_rl.deploy.metadata import ExportInfo, PolicyMetadata, metadata_path_for, sha256_of

__all__ = [
    "ExportResult",
    "export_onnx",
    "check_parity",
    "random_observations",
    "available_exporters",
    "ExportError",
    "ExportParityError",
]

log = logging.getLogger(__name__)

OUTPUT_NAME = "action"
BATCH_DIM_NAME = "batch"

_NP_DTYPES = {"float32": np.float32, "uint8": np.uint8}
_TORCH_DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    metadata_path: Path
    metadata: PolicyMetadata
    max_abs_diff: float


class _PositionalAdapter(torch.nn.Module):
    """Presents ``module(obs_dict)`` as ``adapter(*tensors)`` in metadata order.

    Both exporters name graph inputs positionally; passing a dict straight through is
    handled differently by each (the TorchScript exporter treats a trailing dict as
    kwargs).  The adapter makes input i == observation term i for either exporter.
    """

    def __init__(self, module: torch.nn.Module, keys: Sequence[str]):
        super().__init__()
        self.module = module
        self.keys = tuple(keys)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.module(dict(zip(self.keys, tensors)))


# --------------------------------------------------------------------------- helpers


def available_exporters() -> list[str]:
    """Exporters usable in this environment, preferred first.

    The dynamo (torch.export) exporter is the supported path from torch 2.9 on but needs
    ``onnxscript``; the TorchScript exporter is deprecated yet dependency-free, so it is
    kept as a fallback.
    """
    out = []
    if importlib.util.find_spec("onnxscript") is not None:
        out.append("dynamo")
    out.append("torchscript")
    return out


def random_observations(metadata: PolicyMetadata, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random raw observations matching ``metadata`` (full uint8 range for images)."""
    obs = {}
    for term in metadata.observations:
        shape = (batch, *term.shape)
        if term.dtype == "uint8":
            obs[term.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        else:
            obs[term.name] = rng.standard_normal(shape).astype(_NP_DTYPES[term.dtype])
    return obs


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ExportError(f"example observation '{name}' must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _validate_example(example_obs: Mapping[str, Any], metadata: PolicyMetadata) -> dict[str, torch.Tensor]:
    expected = list(metadata.observation_names)
    missing = [k for k in expected if k not in example_obs]
    extra = [k for k in example_obs if k not in expected]
    if missing or extra:
        raise ExportError(
            f"example_obs keys do not match metadata observations: missing {missing}, unexpected {extra} "
            f"(metadata expects {expected})"
        )
    out: dict[str, torch.Tensor] = {}
    for term in metadata.observations:
        t = _as_tensor(term.name, example_obs[term.name])
        if t.dim() != len(term.shape) + 1 or tuple(t.shape[1:]) != term.shape:
            raise ExportError(
                f"example observation '{term.name}' has shape {tuple(t.shape)}, expected (batch, *{term.shape})"
            )
        if t.dtype != _TORCH_DTYPES[term.dtype]:
            raise ExportError(f"example observation '{term.name}' has dtype {t.dtype}, expected {term.dtype}")
        out[term.name] = t
    return out


def _run_torch(module: torch.nn.Module, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        out = module({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obs.items()})
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"module must return a single action tensor, got {type(out).__name__}")
    return out.detach().cpu().numpy()


def _check_output(out: np.ndarray, batch: int, metadata: PolicyMetadata) -> None:
    expected = (batch, metadata.action.dim)
    if tuple(out.shape) != expected:
        raise ExportError(
            f"module output has shape {tuple(out.shape)}, expected {expected} "
            f"(batch x len(action names) = {list(metadata.action.names)})"
        )
    if out.dtype != np.float32:
        raise ExportError(f"module output has dtype {out.dtype}, expected float32")


def _cpu_session(onnx_path: Path):
    # Same session settings as the deployed CPU policy: parity must test what runs.
    from robot_rl.deploy.onnx_policy import make_session_options

    import onnxruntime as ort

    return ort.InferenceSession(
        str(onnx_path), sess_options=make_session_options(intra_op_threads=1), providers=["CPUExecutionProvider"]
    )


def check_parity(
    module: torch.nn.Module,
    onnx_path: str | os.PathLike,
    metadata: PolicyMetadata,
    samples: int = 64,
    atol: float = 1e-5,
    seed: int = 0,
) -> float:
    """Run torch and onnxruntime on the same random raw inputs; return the max abs diff.

    Checks a batch of ``samples`` and a batch of 1 (the deployment shape, and the case
    that catches a batch axis accidentally baked in as a constant).  Raises
    :class:`ExportParityError` when the difference exceeds ``atol`` or either side
    produces non-finite values.
    """
    if samples < 1:
        raise ValueError(f"parity samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    session = _cpu_session(Path(onnx_path))
    was_training = module.training
    module.eval()
    worst = 0.0
    try:
        for batch in (samples, 1):
            obs = random_observations(metadata, batch, rng)
            expected = _run_torch(module, obs)
            got = session.run([OUTPUT_NAME], obs)[0]
            if got.shape != expected.shape:
                raise ExportParityError(
                    f"parity check: ONNX output shape {got.shape} != torch output shape {expected.shape} "
                    f"for batch {batch}",
                    float("inf"),
                    atol,
                )
            if not (np.isfinite(expected).all() and np.isfinite(got).all()):
                raise ExportParityError(
                    f"parity check: non-finite action on random inputs (torch finite: "
                    f"{bool(np.isfinite(expected).all())}, onnx finite: {bool(np.isfinite(got).all())})",
                    float("nan"),
                    atol,
                )
            diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
            worst = max(worst, diff)
    finally:
        module.train(was_training)
    # Written as "not <=" so a NaN difference can never pass.
    if not worst <= atol:
        raise ExportParityError(
            f"parity check failed: max |onnx - torch| = {worst:.3e} > atol {atol:.1e} "
            f"over {samples + 1} random samples; the model was not published",
            worst,
            atol,
        )
    return worst


def _export_graph(
    adapter: _PositionalAdapter,
    args: tuple[torch.Tensor, ...],
    names: Sequence[str],
    out_path: Path,
    exporter: str,
    opset: int | None,
) -> None:
    kwargs: dict[str, Any] = {"input_names": list(names), "output_names": [OUTPUT_NAME]}
    if opset is not None:
        kwargs["opset_version"] = opset
    if exporter == "dynamo":
        batch = torch.export.Dim.DYNAMIC
        # One spec per positional arg of the adapter's *tensors; dim 0 is the batch.
        kwargs.update(
            dynamo=True, external_data=False, verbose=False, dynamic_shapes=(tuple({0: batch} for _ in names),)
        )
    elif exporter == "torchscript":
        axes = {n: {0: BATCH_DIM_NAME} for n in (*names, OUTPUT_NAME)}
        kwargs.update(dynamo=False, dynamic_axes=axes, do_constant_folding=True)
    else:
        raise ValueError(f"unknown exporter {exporter!r}; expected one of 'auto', 'dynamo', 'torchscript'")
    # The dynamo exporter logs one warning per optional torchvision op it cannot
    # register; irrelevant to policies, and noise in every export log.
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # The TorchScript path warns it is deprecated on every call; we know, and
            # the metadata records which exporter produced each model instead.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            with torch.no_grad():
                torch.onnx.export(adapter, args, str(out_path), **kwargs)
    finally:
        onnx_logger.setLevel(level)


def _finalise_graph(path: Path, metadata: PolicyMetadata) -> int:
    """Validate the exported graph's interface and normalise the batch dim name.

    Returns the opset actually used.
    """
    import onnx

    model = onnx.load(str(path))  # loads external data too, should an exporter emit it
    graph_inputs = [i.name for i in model.graph.input]
    expected = list(metadata.observation_names)
    unused = [n for n in expected if n not in graph_inputs]
    if unused:
        raise ExportError(
            f"the module does not use observation(s) {unused}, so the exporter dropped them from the graph; "
            f"remove them from the metadata observations or use them in the module"
        )
    if graph_inputs != expected:
        raise ExportError(f"exported graph inputs {graph_inputs} != metadata observation order {expected}")
    outputs = [o.name for o in model.graph.output]
    if outputs != [OUTPUT_NAME]:
        raise ExportError(f"exported graph outputs {outputs}, expected exactly ['{OUTPUT_NAME}']")

    # Both exporters mark dim 0 dynamic but name it differently (dynamo: "s0"...).  A
    # single name states that all inputs share the batch axis and gives TensorRT
    # optimisation profiles a stable key.
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims:
            raise ExportError(f"exported tensor '{value.name}' has no shape information")
        dims[0].ClearField("dim_value")
        dims[0].dim_param = BATCH_DIM_NAME
    for value in model.graph.input:
        term = metadata.term(value.name)
        static = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim[1:])
        if static != term.shape:
            raise ExportError(f"exported input '{value.name}' has non-batch dims {static}, expected {term.shape}")

    for key, val in (
        ("robot_rl.training_run_id", metadata.training_run_id),
        ("robot_rl.policy_version", metadata.policy_version),
        ("robot_rl.robot_description_id", metadata.robot_description_id),
    ):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, val
    onnx.checker.check_model(model, full_check=True)
    # Always one self-contained file: the robot copies exactly two files (.onnx + .json).
    onnx.save_model(model, str(path), save_as_external_data=False)
    for leftover in path.parent.glob(path.name + ".data"):
        leftover.unlink()
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# --------------------------------------------------------------------------- export


def _exporter_candidates(exporter: str) -> list[str]:
    """The exporters to try, in order, for ``exporter`` ("auto", "dynamo" or "torchscript")."""
    if exporter == "auto":
        return available_exporters()
    if exporter in ("dynamo", "torchscript"):
        if exporter == "dynamo" and "dynamo" not in available_exporters():
            raise ExportError("exporter='dynamo' needs the 'onnxscript' package (pip install onnxscript)")
        return [exporter]
    raise ExportError(f"unknown exporter {exporter!r}; expected 'auto', 'dynamo' or 'torchscript'")


def _trace_args(example: Mapping[str, torch.Tensor], names: Sequence[str]) -> tuple:
    """The positional example inputs to trace with. torch.export specialises size-1 dims to
    constants, which would silently drop the dynamic batch axis: a batch of 1 is repeated to 2."""
    first = next(iter(example.values()))
    if first.shape[0] != 1:
        return tuple(example[n] for n in names)
    return tuple(example[n][:1].repeat(2, *([1] * (example[n].dim() - 1))) for n in names)


def _export_with_first_working(adapter: torch.nn.Module, args: tuple, names: Sequence[str],
                               staged: Path, candidates: Sequence[str], opset: int | None) -> str:
    """Export with the first of ``candidates`` that succeeds; its name. Each failure is
    logged, its partial output removed, and all are reported when none succeeds."""
    errors = []
    for name in candidates:
        try:
            _export_graph(adapter, args, names, staged, name, opset)
            return name
        except Exception as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log.warning("ONNX export with the %s exporter failed: %s", name, exc)
            for f in staged.parent.iterdir():
                f.unlink()
    raise ExportError("ONNX export failed with every exporter:\n  " + "\n  ".join(errors))


def _export_info(exporter: str, opset: int, staged: Path, max_diff: float, atol: float) -> ExportInfo:
    import onnxruntime as ort

    return ExportInfo(
        exporter=exporter,
        opset=int(opset),
        torch_version=torch.__version__,
        onnxruntime_version=ort.__version__,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model_sha256=sha256_of(staged),
        parity_max_abs_diff=max_diff,
        parity_atol=float(atol),
    )


def export_onnx(
    module: torch.nn.Module,
    example_obs: Mapping[str, Any],
    metadata: PolicyMetadata,
    path: str | os.PathLike,
    parity_samples: int = 64,
    atol: float = 1e-5,
    *,
    exporter: str = "auto",
    opset: int | None = None,
    seed: int = 0,
) -> ExportResult:
    """Export ``module`` to ``path`` (ONNX) and ``metadata_path_for(path)`` (JSON).

    ``example_obs`` maps every metadata observation name to a batch-first tensor/array
    of the right dtype.  ``exporter`` is ``"auto"`` (dynamo if onnxscript is installed,
    falling back to TorchScript if dynamo cannot export the module), ``"dynamo"`` or
    ``"torchscript"``.  Raises :class:`ExportParityError` (nothing published) when
    torch and onnxruntime disagree by more than ``atol``.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ExportError(f"output path must end in .onnx, got {path}")
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    example = _validate_example(example_obs, metadata)
    names = list(metadata.observation_names)

    was_training = module.training
    module.eval()  # dropout/batch-norm in eval mode: the deployed policy is deterministic
    try:
        out = _run_torch(module, {k: v.numpy() for k, v in example.items()})
        _check_output(out, next(iter(example.values())).shape[0], metadata)
        adapter = _PositionalAdapter(module, names).eval()
        candidates = _exporter_candidates(exporter)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.export-", dir=path.parent))
        try:
            staged = staging / path.name
            used = _export_with_first_working(adapter, _trace_args(example, names), names, staged,
                                              candidates, opset)
            opset_used = _finalise_graph(staged, metadata)
            max_diff = check_parity(module, staged, metadata, samples=parity_samples, atol=atol, seed=seed)
            final_meta = metadata.with_export(_export_info(used, opset_used, staged, max_diff, atol))
            meta_path = metadata_path_for(path)
            staged_meta = final_meta.save(staging / meta_path.name)
            # Model first, metadata last: a crash in between leaves a metadata whose
            # sha256 does not match the model, which OnnxPolicy refuses to load.
            os.replace(staged, path)
            os.replace(staged_meta, meta_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        module.train(was_training)

    log.info("exported %s (%s exporter, opset %d, parity max diff %.2e)", path, used, opset_used, max_diff)
    return ExportResult(onnx_path=path, metadata_path=meta_path, metadata=final_meta, max_abs_diff=max_diff)
