"""ROS-free deployment core: ONNX export, ONNX policy runtime, safety layer, rate loop, and the
controller's tick (``ControllerCore``) with its in-process evaluation (``evaluate_deployed``).

Attributes are imported lazily so that a robot process using only the safety layer or
the rate loop does not pay for (or need) onnxruntime, and nothing here imports torch
except the exporters (``robot_rl.deploy.onnx_export``, ``agent_export`` and the
``export`` command).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # metadata
    "PolicyMetadata": "metadata",
    "ObservationTerm": "metadata",
    "ActionSpec": "metadata",
    "ExportInfo": "metadata",
    "RobotSpec": "metadata",
    "metadata_path_for": "metadata",
    # errors
    "DeployError": "errors",
    "MetadataError": "errors",
    "MetadataNotFoundError": "errors",
    "ModelMismatchError": "errors",
    "Mismatch": "errors",
    "PolicyLoadError": "errors",
    "PolicyNotFoundError": "errors",
    "PolicyInputError": "errors",
    "ProviderUnavailableError": "errors",
    "ExportError": "errors",
    "ExportParityError": "errors",
    "IllegalTransitionError": "errors",
    # export (imports torch)
    "export_onnx": "onnx_export",
    "check_parity": "onnx_export",
    # runtime
    "OnnxPolicy": "onnx_policy",
    "select_providers": "onnx_policy",
    # safety
    "SafetyConfig": "safety",
    "SafetyLayer": "safety",
    "SafetyMode": "safety",
    "SafetyReport": "safety",
    "RobotState": "safety",
    # loop
    "RateLoop": "control_loop",
    "LatencyStats": "control_loop",
    # the controller's tick and its in-process evaluation
    "ControllerCore": "controller_core",
    "evaluate_deployed": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robot_rl.deploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"robot_rl.deploy.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
