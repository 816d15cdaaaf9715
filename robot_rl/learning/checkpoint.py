"""Pickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a directory::

    <path>/tensors.safetensors   every tensor of the state tree, by a generated name
    <path>/state.json            {"format": "robot_rl.checkpoint", "version": 1,
                                  "tensors_sha256": ..., "tree": <the state with tensors
                                  replaced by {"__tensor__": name}>}

Nested dicts (string or integer keys), lists, tuples, numbers, strings, booleans and None
survive a round trip exactly (optimizer state, RNG states, counters). Saving writes a sibling
``<path>.tmp`` and swaps it in by rename, so a crash mid-save leaves the previous checkpoint
(``<path>.old`` is used if the crash hit between the two renames). Loading checks the format,
the version, the tensor file's SHA-256 and every tensor reference and raises ``CheckpointError``
naming the file and the problem.

``save_agent`` also stores ``"spaces"``: the agent's observation spec ``{key: {"shape", "dtype"}}``
(as in the replay manifest) and its action ``shape``/``low``/``high``. ``load_agent`` refuses an
agent whose spaces differ, because weights can fit another camera size or action range and then
load silently into the wrong task. Checkpoints from builds before this record load unchecked.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

FORMAT_NAME = "robot_rl.checkpoint"
FORMAT_VERSION = 1
TENSORS = "tensors.safetensors"
STATE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the agent it is loaded into."""


def _encode(obj: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        name = f"t{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": name}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__map__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} without pickle")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj or "__ndarray__" in obj:
            name = obj.get("__tensor__", obj.get("__ndarray__"))
            if name not in tensors:
                raise CheckpointError(f"checkpoint {where}: {STATE} references tensor {name!r} "
                                      f"that {TENSORS} does not contain")
            t = tensors[name]
            return t.numpy() if "__ndarray__" in obj else t
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors, where) for v in obj["__tuple__"])
        if "__map__" in obj:
            return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in obj["__map__"]}
        return {k: _decode(v, tensors, where) for k, v in obj.items()}
    return obj


def _fsync_write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: str, state: Mapping[str, Any]) -> None:
    """Write ``state`` (any tree of tensors/arrays/JSON values) to directory ``path`` atomically."""
    from safetensors.torch import save

    tensors: Dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    blob = save(tensors)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "tensors_sha256": hashlib.sha256(blob).hexdigest(), "tree": tree}
    path = os.path.normpath(path)
    tmp, old = path + ".tmp", path + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    _fsync_write(os.path.join(tmp, TENSORS), blob)
    _fsync_write(os.path.join(tmp, STATE), json.dumps(doc).encode())
    if os.path.isdir(path):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_exists(path: str) -> bool:
    path = os.path.normpath(path)
    return os.path.isfile(os.path.join(path, STATE)) or os.path.isfile(
        os.path.join(path + ".old", STATE))


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint directory written by ``save_checkpoint``; ``CheckpointError`` if bad."""
    from safetensors.torch import load

    path = os.path.normpath(path)
    if not os.path.isfile(os.path.join(path, STATE)) and os.path.isfile(
            os.path.join(path + ".old", STATE)):
        path = path + ".old"  # crash between the two renames of save_checkpoint
    spath, tpath = os.path.join(path, STATE), os.path.join(path, TENSORS)
    if not os.path.isfile(spath) or not os.path.isfile(tpath):
        raise CheckpointError(f"checkpoint {path!r}: expected {STATE} and {TENSORS} in it "
                              f"(is this a robot_rl checkpoint directory?)")
    try:
        with open(spath, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {spath!r} is not valid JSON (corrupt?): {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {spath!r}: format is not {FORMAT_NAME!r}")
    if doc.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {spath!r}: format version {doc.get('version')!r}, "
                              f"this build reads {FORMAT_VERSION}")
    with open(tpath, "rb") as f:
        blob = f.read()
    if hashlib.sha256(blob).hexdigest() != doc.get("tensors_sha256"):
        raise CheckpointError(f"checkpoint {tpath!r} is corrupt: SHA-256 does not match "
                              f"{STATE} (truncated or modified file)")
    try:
        tensors = load(blob)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {tpath!r} is not a safetensors file: {exc}") from None
    return _decode(doc.get("tree"), tensors, path)


# --------------------------------------------------------------------------------------------
# the agent
# --------------------------------------------------------------------------------------------
class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _config_diff(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list:
    diff = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k, _ABSENT), current.get(k, _ABSENT)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diff += _config_diff(a, b, f"{prefix}{k}.")
        elif (list(a) if isinstance(a, (list, tuple)) else a) != \
                (list(b) if isinstance(b, (list, tuple)) else b):
            diff.append(f"{prefix}{k}: checkpoint {a!r}, now {b!r}")
    return diff


def _agent_spaces(agent) -> Dict[str, Any]:
    """What the agent was built for, in JSON terms (see the module docstring)."""
    from robot_rl.transport import obs_spec_of

    act = agent.action_space
    return {"observation": obs_spec_of(agent.observation_space),
            "action": {"shape": list(act.shape),
                       "low": np.asarray(act.low, np.float64).tolist(),
                       "high": np.asarray(act.high, np.float64).tolist()}}


def save_agent(path: str, agent, extra: Optional[Mapping[str, Any]] = None) -> None:
    """Full agent state (weights, targets, optimizers, temperature, counters, RNG) plus
    ``extra`` (learner counters, buffer RNG...), the global torch RNG and the agent's spaces."""
    save_checkpoint(path, {"agent": agent.state_dict(), "extra": dict(extra or {}),
                           "torch_rng": torch.get_rng_state(), "spaces": _agent_spaces(agent)})


def load_agent(path: str, agent) -> Dict[str, Any]:
    """Restore ``agent`` from ``path``; returns ``extra``. Raises ``CheckpointError`` if the
    checkpoint is corrupt or was written for a different architecture or other spaces."""
    from dataclasses import asdict

    state = load_checkpoint(path)
    if not isinstance(state, dict) or "agent" not in state:
        raise CheckpointError(f"checkpoint {path!r} holds no agent state")
    saved_spaces = state.get("spaces")
    if isinstance(saved_spaces, Mapping):  # absent in checkpoints from older builds
        diff = _config_diff(saved_spaces, _agent_spaces(agent))
        if diff:
            raise CheckpointError(f"checkpoint {path!r} was saved for other observation/action "
                                  f"spaces than this agent has: {'; '.join(diff)}")
    sd = state["agent"]
    try:
        agent.load_state_dict(sd)
    except (ValueError, RuntimeError, KeyError) as exc:
        diff = _config_diff(sd.get("config", {}), asdict(agent.config))
        hint = f" (agent config differs: {'; '.join(diff[:6])})" if diff else ""
        raise CheckpointError(f"checkpoint {path!r} does not fit this agent{hint}: {exc}") from None
    if isinstance(state.get("torch_rng"), torch.Tensor):
        torch.set_rng_state(state["torch_rng"])
    return dict(state.get("extra") or {})
