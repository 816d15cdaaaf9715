"""Run an exported policy with onnxruntime: raw observation dict in, action out.

The robot process imports this module, not torch.  Construction does all the slow and
failure-prone work (file checks, hash check, interface check against the metadata,
provider selection, buffer allocation); ``__call__`` only validates, copies into
preallocated buffers and runs the bound session.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from robot_rl.deploy.errors import (
    Mismatch,
    ModelMismatchError,
    PolicyInputError,
    PolicyLoadError,
    PolicyNotFoundError,
    ProviderUnavailableError,
)
from robot_rl.deploy.metadata import PolicyMetadata, sha256_of

__all__ = ["OnnxPolicy", "select_providers", "make_session_options", "default_trt_cache_dir"]

log = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

_ONNX_TYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}
_NP_DTYPES = {"float32": np.dtype(np.float32), "uint8": np.dtype(np.uint8)}

ProviderList = list[tuple[str, dict[str, str]]]


def make_session_options(intra_op_threads: int = 1) -> ort.SessionOptions:
    """Session options for a latency-critical single-observation policy.

    One intra-op thread and sequential execution by default: a batch-1 MLP/CNN gains
    nothing from a thread pool, while pool wake-ups add jitter and steal cores from the
    drivers and camera pipelines running on the same computer.
    """
    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return so


def default_trt_cache_dir(model_sha256: str | None) -> Path:
    """Engine cache location: ``$ROBOT_RL_TRT_CACHE`` or ``~/.cache/robot_rl/trt``.

    One sub-directory per model hash so a re-exported policy never picks up an engine
    built for its predecessor.  Not beside the model: model directories are often
    read-only deployments.
    """
    root = Path(os.environ.get("ROBOT_RL_TRT_CACHE", Path.home() / ".cache" / "robot_rl" / "trt"))
    return root / (model_sha256[:16] if model_sha256 else "unversioned")


def select_providers(
    requested: str | Sequence[Any],
    available: Sequence[str],
    trt_cache_dir: str | os.PathLike,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ProviderList:
    """Provider chain (name, options) for onnxruntime, most preferred first.

    ``requested``:
      * ``"cpu"``: CPU only.
      * ``"auto"``: TensorRT, then CUDA, then CPU -- whichever of the GPU providers are
        installed (onnxruntime-gpu); plain CPU otherwise.
      * ``"tensorrt"``: TensorRT, then CUDA, then CPU; raises if TensorRT is missing.
      * ``"cuda"``: CUDA, then CPU (skips TensorRT, e.g. to avoid the engine build);
        raises if CUDA is missing.
      * a sequence of provider names or (name, options) pairs: used as given.

    An explicit GPU request raises instead of silently falling back to CPU, because a
    deployment that asked for the GPU was sized for its latency.
    """
    available = list(available)
    if not isinstance(requested, str):
        chain: ProviderList = []
        for item in requested:
            name, opts = (item, {}) if isinstance(item, str) else (item[0], dict(item[1]))
            if name not in available:
                raise ProviderUnavailableError(f"execution provider {name!r} not available; installed: {available}")
            chain.append((name, opts))
        return chain

    key = requested.lower()
    if key not in ("auto", "cpu", "cuda", "tensorrt"):
        raise ValueError(f"providers must be 'auto', 'cpu', 'cuda', 'tensorrt' or a list, got {requested!r}")
    if key == "tensorrt" and TRT not in available:
        raise ProviderUnavailableError(
            f"providers='tensorrt' but {TRT} is not available (installed: {available}); "
            f"install onnxruntime-gpu with TensorRT, or use providers='auto'"
        )
    if key == "cuda" and CUDA not in available:
        raise ProviderUnavailableError(
            f"providers='cuda' but {CUDA} is not available (installed: {available}); "
            f"install onnxruntime-gpu, or use providers='auto'"
        )

    chain = []
    if key in ("auto", "tensorrt") and TRT in available:
        cache = str(Path(trt_cache_dir))
        opts = {
            # Building an engine takes seconds to minutes; the cache makes every start
            # after the first fast.  The timing cache speeds up rebuilds after upgrades.
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache,
            # FP32: the export parity check was done in FP32; FP16 would need its own.
            "trt_fp16_enable": "False",
        }
        if input_shapes:
            # The policy always runs batch 1: a single fixed profile avoids engine
            # rebuilds that a dynamic batch axis would otherwise trigger.
            prof = ",".join(f"{n}:{'x'.join(str(d) for d in shape)}" for n, shape in input_shapes.items())
            opts.update(trt_profile_min_shapes=prof, trt_profile_opt_shapes=prof, trt_profile_max_shapes=prof)
        chain.append((TRT, opts))
    if key in ("auto", "tensorrt", "cuda") and CUDA in available:
        chain.append((CUDA, {}))
    chain.append((CPU, {}))
    return chain


class OnnxPolicy:
    """A deployed policy: ``OnnxPolicy(path)(obs_dict) -> np.ndarray[float32] (A,)``.

    Attributes: ``metadata`` (:class:`PolicyMetadata`), ``provider`` (the execution
    provider onnxruntime actually used for the graph), ``providers`` (full chain).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: str | Sequence[Any] = "auto",
        intra_op_threads: int = 1,
        *,
        trt_cache_dir: str | os.PathLike | None = None,
        verify_hash: bool = True,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise PolicyNotFoundError(f"policy model file not found: {self.path}")
        if not self.path.is_file():
            raise PolicyLoadError(f"policy model path is not a file: {self.path}")
        self.metadata = PolicyMetadata.load(self.path)
        meta = self.metadata
        sha = meta.export.model_sha256 if meta.export else None

        if verify_hash and sha is not None:
            found = sha256_of(self.path)
            if found != sha:
                raise ModelMismatchError(
                    [Mismatch("model_sha256", sha, found)],
                    context=f"{self.path} is not the model its metadata describes (re-export, or copy both files)",
                )

        shapes = {t.name: (1, *t.shape) for t in meta.observations}
        cache_dir = Path(trt_cache_dir) if trt_cache_dir is not None else default_trt_cache_dir(sha)
        chain = select_providers(providers, ort.get_available_providers(), cache_dir, shapes)
        if any(name == TRT for name, _ in chain):
            cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._session = ort.InferenceSession(
                str(self.path),
                sess_options=make_session_options(intra_op_threads),
                providers=[name for name, _ in chain],
                provider_options=[opts for _, opts in chain],
            )
        except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
            raise PolicyLoadError(f"{self.path}: cannot load ONNX model: {type(exc).__name__}: {exc}") from exc

        # ORT silently drops a provider that fails to initialise (e.g. a CUDA/TensorRT
        # library mismatch), so report what it actually uses, not what was asked for.
        self.providers: list[str] = self._session.get_providers()
        self.provider: str = self.providers[0]
        requested_first = chain[0][0]
        if self.provider != requested_first:
            log.warning("policy %s: requested %s but onnxruntime is using %s", self.path.name, requested_first, self.provider)
        log.info("policy %s (run %s v%s) running on %s", self.path.name, meta.training_run_id, meta.policy_version, self.provider)

        self._check_interface()
        self._names = meta.observation_names
        self._terms = meta.observations
        self._inputs = {t.name: np.zeros((1, *t.shape), dtype=_NP_DTYPES[t.dtype]) for t in meta.observations}
        self._output = np.zeros((1, meta.action.dim), dtype=np.float32)
        # IO binding onto the preallocated numpy buffers: on CPU onnxruntime reads and
        # writes them in place, so a call allocates nothing but the returned copy.
        self._binding = self._session.io_binding()
        for name, buf in self._inputs.items():
            self._binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(buf))
        self._binding.bind_ortvalue_output("action", ort.OrtValue.ortvalue_from_numpy(self._output))

    # ------------------------------------------------------------------ validation

    def _check_interface(self) -> None:
        """The graph must take exactly the metadata's observations and emit 'action'."""
        meta = self.metadata
        problems: list[Mismatch] = []
        graph_inputs = {i.name: i for i in self._session.get_inputs()}
        for term in meta.observations:
            node = graph_inputs.get(term.name)
            if node is None:
                problems.append(Mismatch(f"graph input '{term.name}'", f"{term.dtype} {list(term.shape)}", "missing"))
                continue
            if node.type != _ONNX_TYPES[term.dtype]:
                problems.append(Mismatch(f"graph input '{term.name}' dtype", _ONNX_TYPES[term.dtype], node.type))
            if [d for d in node.shape[1:]] != list(term.shape):
                problems.append(Mismatch(f"graph input '{term.name}' shape", ["batch", *term.shape], node.shape))
        for name in graph_inputs:
            if name not in meta.observation_names:
                problems.append(Mismatch(f"graph input '{name}'", "absent from metadata", "present"))
        outputs = {o.name: o for o in self._session.get_outputs()}
        out = outputs.get("action")
        if out is None:
            problems.append(Mismatch("graph output 'action'", "present", f"outputs are {list(outputs)}"))
        else:
            if out.type != "tensor(float)":
                problems.append(Mismatch("graph output 'action' dtype", "tensor(float)", out.type))
            if len(out.shape) != 2 or out.shape[1] != meta.action.dim:
                problems.append(Mismatch("graph output 'action' shape", ["batch", meta.action.dim], out.shape))
        if problems:
            raise ModelMismatchError(problems, context=f"{self.path} does not match its metadata")

    def _fill(self, obs: Mapping[str, Any]) -> None:
        if not isinstance(obs, Mapping):
            raise PolicyInputError(f"observation must be a dict of numpy arrays, got {type(obs).__name__}")
        if len(obs) != len(self._names) or any(n not in obs for n in self._names):
            missing = [n for n in self._names if n not in obs]
            extra = [k for k in obs if k not in self._names]
            raise PolicyInputError(
                f"observation keys mismatch: missing {missing}, unexpected {extra}; policy expects {list(self._names)}"
            )
        for term in self._terms:
            value = obs[term.name]
            if not isinstance(value, np.ndarray):
                raise PolicyInputError(
                    f"observation '{term.name}' must be a numpy array, got {type(value).__name__} "
                    f"(expected {term.dtype} {term.shape})"
                )
            buf = self._inputs[term.name]
            if value.shape != term.shape and value.shape != buf.shape:
                raise PolicyInputError(
                    f"observation '{term.name}' has shape {value.shape}, expected {term.shape} "
                    f"(or {buf.shape} with a batch dim of 1)"
                )
            if value.dtype != buf.dtype:
                # No silent casting: a float image or a float64 state usually means the
                # observation pipeline differs from training (e.g. already /255).
                raise PolicyInputError(f"observation '{term.name}' has dtype {value.dtype}, expected {term.dtype}")
            buf[0] = value.reshape(term.shape)

    # ------------------------------------------------------------------ API

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One observation (no batch dim, or batch 1) -> action ``float32 (A,)``."""
        self._fill(obs)
        self._session.run_with_iobinding(self._binding)
        return self._output[0].copy()

    def warmup(self, iterations: int = 3) -> None:
        """Run on zeros; the first run allocates memory and, with TensorRT, builds the engine.

        Call before engaging the policy so the first real control period is not late.
        """
        zeros = {t.name: np.zeros(t.shape, dtype=_NP_DTYPES[t.dtype]) for t in self._terms}
        for _ in range(iterations):
            self(zeros)

    def check_against(self, robot: Any) -> None:
        """Raise :class:`ModelMismatchError` if this policy does not fit ``robot``."""
        self.metadata.check_against(robot)

    @property
    def observation_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def action_names(self) -> tuple[str, ...]:
        return self.metadata.action.names

    def __repr__(self) -> str:
        m = self.metadata
        return f"OnnxPolicy({str(self.path)!r}, run={m.training_run_id!r}, version={m.policy_version!r}, provider={self.provider!r})"
