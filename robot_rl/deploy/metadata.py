"""Policy metadata: the JSON contract that travels beside every exported ``.onnx``.

The ONNX graph only knows tensor names and shapes.  Everything else the robot side
needs to run a policy safely -- which joints the action dimensions drive, the control
rate the policy was trained at, which robot description it was trained on, which
training run produced it -- lives here.  ``check_against`` turns that contract into a
hard gate: a policy is refused on a robot it was not trained for, with every
difference listed.

No torch / onnxruntime imports: the robot runtime loads this module on its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_rl.deploy.errors import (
    MetadataError,
    MetadataNotFoundError,
    Mismatch,
    ModelMismatchError,
)
from robot_rl.paths import atomic_write_text

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_DTYPES",
    "ObservationTerm",
    "ActionSpec",
    "ExportInfo",
    "PolicyMetadata",
    "RobotSpec",
    "metadata_path_for",
    "sha256_of",
    "ModelMismatchError",
    "MetadataError",
    "MetadataNotFoundError",
    "Mismatch",
]

# Bump when a field changes meaning or a required field is added.  Readers refuse
# newer versions instead of guessing, because a misread field (e.g. action scale)
# moves a real robot.
FORMAT_VERSION = 1

# dtypes an observation input may have.  Images are fed raw as uint8 (the module does
# the /255 and normalisation), everything else as float32.
SUPPORTED_DTYPES = ("float32", "uint8")

# The task of metadata written before the task was recorded (the only task there was).
LEGACY_TASK = "pick_cube"

# Two control rates are "the same" within this relative tolerance (absorbs 1/3 Hz
# style float round trips through JSON, nothing more).
_RATE_RTOL = 1e-6


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file; pairs a model with its metadata (``export.model_sha256``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def metadata_path_for(onnx_path: str | os.PathLike) -> Path:
    """Path of the metadata JSON that belongs to ``onnx_path`` (``policy.onnx`` -> ``policy.json``)."""
    p = Path(onnx_path)
    return p.with_suffix(".json") if p.suffix == ".onnx" else p.with_name(p.name + ".json")


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class ObservationTerm:
    """One named network input.

    ``shape`` excludes the batch dimension (images are H x W x C).  ``scale`` documents
    the unit scaling the *observation producer* applies to the raw sensor value before
    it is fed (e.g. 0.001 for a tactile pad reported in mPa but trained in kPa); it is
    either one float or one float per element of the last axis.  Normalisation beyond
    that lives inside the exported graph.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    scale: float | tuple[float, ...] = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise MetadataError(f"observation name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d <= 0 for d in self.shape):
            raise MetadataError(
                f"observation '{self.name}': every dimension of shape must be > 0, got {self.shape}"
            )
        if self.dtype not in SUPPORTED_DTYPES:
            raise MetadataError(
                f"observation '{self.name}': dtype must be one of {SUPPORTED_DTYPES}, got {self.dtype!r}"
            )
        if isinstance(self.scale, Sequence) and not isinstance(self.scale, str):
            object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
            last = self.shape[-1] if self.shape else 1
            if len(self.scale) != last:
                raise MetadataError(
                    f"observation '{self.name}': per-element scale has {len(self.scale)} entries, "
                    f"expected {last} (the last axis of shape {self.shape})"
                )
        else:
            object.__setattr__(self, "scale", float(self.scale))

    def to_dict(self) -> dict[str, Any]:
        scale = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "scale": scale}


@dataclass(frozen=True)
class ActionSpec:
    """Action layout.

    The ONNX output ``action`` *is* the robot command in physical units: any
    de-normalisation is baked into the exported module.  ``scale``/``offset`` record the
    affine map the module applied to its normalised output (``action = offset + scale *
    a_norm``) so logging and analysis can recover ``a_norm``; the runtime does not apply
    them again.
    """

    names: tuple[str, ...]
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise MetadataError(f"action names must be a non-empty list of non-empty strings, got {self.names!r}")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise MetadataError(f"action names must be unique, duplicated: {dupes}")
        scale = tuple(float(s) for s in self.scale) if self.scale else (1.0,) * len(names)
        offset = tuple(float(o) for o in self.offset) if self.offset else (0.0,) * len(names)
        for label, values in (("scale", scale), ("offset", offset)):
            if len(values) != len(names):
                raise MetadataError(
                    f"action {label} has {len(values)} entries, expected {len(names)} (one per action name)"
                )
            if not all(math.isfinite(v) for v in values):
                raise MetadataError(f"action {label} must be finite, got {values}")
        if any(s == 0.0 for s in scale):
            raise MetadataError(f"action scale entries must be non-zero, got {scale}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "offset", offset)

    @property
    def dim(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "scale": list(self.scale), "offset": list(self.offset)}


@dataclass(frozen=True)
class ExportInfo:
    """Provenance written by ``export_onnx``; absent on hand-written templates."""

    exporter: str
    opset: int
    torch_version: str
    onnxruntime_version: str
    created_utc: str
    model_sha256: str
    parity_max_abs_diff: float
    parity_atol: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class PolicyMetadata:
    observations: tuple[ObservationTerm, ...]
    action: ActionSpec
    control_rate_hz: float
    robot_description_id: str
    joint_names: tuple[str, ...]
    training_run_id: str
    policy_version: str
    format_version: int = FORMAT_VERSION
    export: ExportInfo | None = None
    # The task it was trained on (``task.name``) and whether its TCP state and actions are in
    # the episode's start frame. Files without a "task" section predate recorded tasks, when
    # pick_cube in the base frame was the only task.
    task_name: str = LEGACY_TASK
    task_relative_frame: bool = False

    def __post_init__(self) -> None:
        obs = tuple(self.observations)
        if not obs:
            raise MetadataError("metadata must list at least one observation term")
        names = [t.name for t in obs]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise MetadataError(f"observation names must be unique, duplicated: {dupes}")
        if "action" in names:
            # The ONNX output is named "action"; an input with the same name is ambiguous.
            raise MetadataError("an observation may not be called 'action' (reserved for the output)")
        object.__setattr__(self, "observations", obs)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        rate = float(self.control_rate_hz)
        if not (math.isfinite(rate) and rate > 0):
            raise MetadataError(f"control_rate_hz must be a finite number > 0, got {self.control_rate_hz!r}")
        object.__setattr__(self, "control_rate_hz", rate)
        if not isinstance(self.task_name, str) or not self.task_name:
            raise MetadataError(f"task name must be a non-empty string, got {self.task_name!r}")
        if not isinstance(self.task_relative_frame, bool):
            raise MetadataError(f"task relative_frame must be true or false, got "
                                f"{self.task_relative_frame!r}")
        if int(self.format_version) != self.format_version or self.format_version < 1:
            raise MetadataError(f"format_version must be a positive integer, got {self.format_version!r}")

    # ---- convenience -------------------------------------------------------------

    @property
    def observation_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.observations)

    def term(self, name: str) -> ObservationTerm:
        for t in self.observations:
            if t.name == name:
                return t
        raise KeyError(f"no observation term named {name!r}; terms are {list(self.observation_names)}")

    def normalize_action(self, action: Any) -> Any:
        """Map a command (physical units) back to the policy's normalised action space."""
        import numpy as np

        return (np.asarray(action, dtype=np.float64) - np.asarray(self.action.offset)) / np.asarray(
            self.action.scale
        )

    def with_export(self, export: ExportInfo) -> "PolicyMetadata":
        from dataclasses import replace

        return replace(self, export=export)

    # ---- robot compatibility -------------------------------------------------------

    def mismatches(self, robot: Any) -> list[Mismatch]:
        """All differences between this policy and ``robot`` (empty list = compatible).

        ``robot`` is a :class:`RobotSpec` or anything with the same attributes / keys:
        ``joint_names``, ``observation_shapes`` (name -> shape without batch),
        ``control_rate_hz``; optionally ``robot_description_id`` and
        ``observation_dtypes``.  Observations the robot provides but the policy does not
        use are fine (a robot may carry more sensors than a given policy needs).
        """
        spec = RobotSpec.coerce(robot)
        out: list[Mismatch] = []

        if spec.task_name is not None and spec.task_name != self.task_name:
            out.append(Mismatch("task.name (the policy's task vs the configured task)",
                                self.task_name, spec.task_name))
        if spec.task_relative_frame is not None and spec.task_relative_frame != self.task_relative_frame:
            out.append(Mismatch("task.relative_frame", self.task_relative_frame,
                                spec.task_relative_frame))

        if spec.robot_description_id is not None and spec.robot_description_id != self.robot_description_id:
            out.append(Mismatch("robot_description_id", self.robot_description_id, spec.robot_description_id))

        expected_joints, found_joints = list(self.joint_names), list(spec.joint_names)
        if expected_joints != found_joints:
            if sorted(expected_joints) == sorted(found_joints):
                out.append(Mismatch("joint_names (order)", expected_joints, found_joints))
            else:
                for j in expected_joints:
                    if j not in found_joints:
                        out.append(Mismatch(f"joint '{j}'", "present", "missing on robot"))
                for j in found_joints:
                    if j not in expected_joints:
                        out.append(Mismatch(f"joint '{j}'", "absent (policy not trained with it)", "present"))

        for term in self.observations:
            if term.name not in spec.observation_shapes:
                out.append(Mismatch(f"observation '{term.name}'", f"shape {list(term.shape)}", "missing on robot"))
                continue
            found_shape = tuple(int(d) for d in spec.observation_shapes[term.name])
            if found_shape != term.shape:
                out.append(Mismatch(f"observation '{term.name}' shape", list(term.shape), list(found_shape)))
            if spec.observation_dtypes is not None and term.name in spec.observation_dtypes:
                found_dtype = str(spec.observation_dtypes[term.name])
                if found_dtype != term.dtype:
                    out.append(Mismatch(f"observation '{term.name}' dtype", term.dtype, found_dtype))

        rate = float(spec.control_rate_hz)
        if not math.isclose(rate, self.control_rate_hz, rel_tol=_RATE_RTOL, abs_tol=0.0):
            out.append(Mismatch("control_rate_hz", self.control_rate_hz, rate))
        return out

    def check_against(self, robot: Any) -> None:
        """Raise :class:`ModelMismatchError` naming every mismatch with ``robot``."""
        found = self.mismatches(robot)
        if found:
            raise ModelMismatchError(
                found,
                context=f"policy '{self.training_run_id}' v{self.policy_version} does not match robot",
            )

    # ---- (de)serialisation ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format_version": self.format_version,
            "observations": [t.to_dict() for t in self.observations],
            "action": self.action.to_dict(),
            "control_rate_hz": self.control_rate_hz,
            "robot": {"description_id": self.robot_description_id, "joint_names": list(self.joint_names)},
            "training": {"run_id": self.training_run_id, "version": self.policy_version},
            "task": {"name": self.task_name, "relative_frame": self.task_relative_frame},
        }
        if self.export is not None:
            d["export"] = self.export.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "PolicyMetadata":
        """Parse and validate; every error names ``source`` and the offending field."""
        try:
            return _parse(data, source)
        except MetadataError:
            raise
        except (TypeError, ValueError, KeyError) as exc:  # defensive: anything the parser missed
            raise MetadataError(f"{source}: invalid metadata: {exc}") from exc

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename) so a reader never sees half a file."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PolicyMetadata":
        """Load from a metadata JSON, or from the ``.onnx`` path it sits beside."""
        path = Path(path)
        if path.suffix == ".onnx":
            path = metadata_path_for(path)
        if not path.exists():
            raise MetadataNotFoundError(
                f"policy metadata file not found: {path} (export_onnx writes it beside the .onnx; "
                f"a model without its metadata cannot be deployed)"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MetadataError(f"{path}: cannot read metadata file: {exc}") from exc
        if not text.strip():
            raise MetadataError(f"{path}: metadata file is empty (expected a JSON object)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(
                f"{path}: metadata is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from exc
        return cls.from_dict(data, source=str(path))


@dataclass
class RobotSpec:
    """What a robot (or its ROS launch configuration) says it provides."""

    joint_names: Sequence[str]
    observation_shapes: Mapping[str, Sequence[int]]
    control_rate_hz: float
    robot_description_id: str | None = None
    observation_dtypes: Mapping[str, str] | None = None
    task_name: str | None = None               # None: not checked
    task_relative_frame: bool | None = None

    @classmethod
    def coerce(cls, robot: Any) -> "RobotSpec":
        if isinstance(robot, RobotSpec):
            return robot

        def get(name: str, *aliases: str, required: bool = True) -> Any:
            for key in (name, *aliases):
                if isinstance(robot, Mapping) and key in robot:
                    return robot[key]
                if not isinstance(robot, Mapping) and hasattr(robot, key):
                    return getattr(robot, key)
            if required:
                raise TypeError(
                    f"robot spec {type(robot).__name__} has no '{name}'; check_against needs "
                    f"joint_names, observation_shapes and control_rate_hz"
                )
            return None

        return cls(
            joint_names=list(get("joint_names")),
            observation_shapes=dict(get("observation_shapes")),
            control_rate_hz=float(get("control_rate_hz", "control_rate")),
            robot_description_id=get("robot_description_id", "description_id", required=False),
            observation_dtypes=get("observation_dtypes", required=False),
            task_name=get("task_name", required=False),
            task_relative_frame=get("task_relative_frame", required=False),
        )


# --------------------------------------------------------------------------- parsing


def _field(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise MetadataError(f"{where}: missing required field '{key}'")
    value = d[key]
    # bool is an int subclass; a JSON true where a number belongs is a mistake.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise MetadataError(f"{where}: field '{key}' must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise MetadataError(f"{where}: field '{key}' must be {_kind_name(kind)}, got {type(value).__name__} {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where}: must be a list of strings, got {value!r}")
    return value


def _num_list(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise MetadataError(f"{where}: must be a list of numbers, got {value!r}")
    return value


def _parse(data: Any, source: str) -> PolicyMetadata:
    if not isinstance(data, dict):
        raise MetadataError(f"{source}: metadata must be a JSON object, got {type(data).__name__}")
    version = _field(data, "format_version", int, source)
    if version > FORMAT_VERSION:
        raise MetadataError(
            f"{source}: metadata format_version {version} is newer than this runtime supports "
            f"({FORMAT_VERSION}); upgrade robot_rl on the robot"
        )
    if version < 1:
        raise MetadataError(f"{source}: format_version must be >= 1, got {version}")

    raw_obs = _field(data, "observations", list, source)
    terms = []
    for i, raw in enumerate(raw_obs):
        where = f"{source}: observations[{i}]"
        if not isinstance(raw, dict):
            raise MetadataError(f"{where}: must be an object, got {raw!r}")
        name = _field(raw, "name", str, where)
        where = f"{source}: observation '{name}'"
        shape = raw.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise MetadataError(f"{where}: 'shape' must be a list of integers, got {shape!r}")
        dtype = _field(raw, "dtype", str, where)
        scale = raw.get("scale", 1.0)
        if isinstance(scale, list):
            _num_list(scale, f"{where}: 'scale'")
        elif not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise MetadataError(f"{where}: 'scale' must be a number or a list of numbers, got {scale!r}")
        terms.append(ObservationTerm(name=name, shape=tuple(shape), dtype=dtype, scale=scale))

    action = _field(data, "action", dict, source)
    names = _str_list(_field(action, "names", list, f"{source}: action"), f"{source}: action.names")
    scale = _num_list(action.get("scale", []), f"{source}: action.scale")
    offset = _num_list(action.get("offset", []), f"{source}: action.offset")

    rate = _field(data, "control_rate_hz", (int, float), source)
    robot = _field(data, "robot", dict, source)
    training = _field(data, "training", dict, source)

    export = None
    if data.get("export") is not None:
        raw_export = _field(data, "export", dict, source)
        where = f"{source}: export"
        export = ExportInfo(
            exporter=_field(raw_export, "exporter", str, where),
            opset=_field(raw_export, "opset", int, where),
            torch_version=_field(raw_export, "torch_version", str, where),
            onnxruntime_version=_field(raw_export, "onnxruntime_version", str, where),
            created_utc=_field(raw_export, "created_utc", str, where),
            model_sha256=_field(raw_export, "model_sha256", str, where),
            parity_max_abs_diff=float(_field(raw_export, "parity_max_abs_diff", (int, float), where)),
            parity_atol=float(_field(raw_export, "parity_atol", (int, float), where)),
        )

    task_name, relative_frame = LEGACY_TASK, False
    if "task" in data:
        task = _field(data, "task", dict, source)
        task_name = _field(task, "name", str, f"{source}: task")
        relative_frame = _field(task, "relative_frame", bool, f"{source}: task")

    return PolicyMetadata(
        observations=tuple(terms),
        action=ActionSpec(names=tuple(names), scale=tuple(scale), offset=tuple(offset)),
        control_rate_hz=float(rate),
        robot_description_id=_field(robot, "description_id", str, f"{source}: robot"),
        joint_names=tuple(_str_list(_field(robot, "joint_names", list, f"{source}: robot"), f"{source}: robot.joint_names")),
        training_run_id=_field(training, "run_id", str, f"{source}: training"),
        policy_version=_field(training, "version", str, f"{source}: training"),
        format_version=version,
        export=export,
        task_name=task_name,
        task_relative_frame=relative_frame,
    )
