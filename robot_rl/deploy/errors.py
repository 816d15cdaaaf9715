"""Exceptions raised by the deployment core.

Kept in one module so the ROS node (and tests) can catch them without importing
torch or onnxruntime: ``robot_rl.deploy.errors`` has no heavy dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DeployError(Exception):
    """Base class for every error raised by ``robot_rl.deploy``."""


class MetadataError(DeployError, ValueError):
    """A policy metadata file is corrupt, incomplete or of an unsupported version."""


class MetadataNotFoundError(MetadataError, FileNotFoundError):
    """The metadata JSON that must sit beside the .onnx file does not exist."""


class PolicyLoadError(DeployError):
    """The .onnx model file is missing, unreadable or not a valid ONNX model."""


class PolicyNotFoundError(PolicyLoadError, FileNotFoundError):
    """The .onnx model file does not exist."""


class PolicyInputError(DeployError, ValueError):
    """An observation passed to a policy has the wrong keys, shape or dtype."""


class ProviderUnavailableError(DeployError, RuntimeError):
    """An explicitly requested onnxruntime execution provider is not installed."""


class ExportError(DeployError):
    """Exporting a torch module to ONNX failed before the parity check."""


class ExportParityError(ExportError):
    """torch and onnxruntime disagree on the same inputs by more than the tolerance."""

    def __init__(self, message: str, max_abs_diff: float, atol: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff
        self.atol = atol


class IllegalTransitionError(DeployError, RuntimeError):
    """A safety state-machine transition that the transition table forbids."""


@dataclass(frozen=True)
class Mismatch:
    """One difference between what a policy was trained for and what the robot has."""

    field: str
    expected: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {self.expected!r}, found {self.found!r}"


class ModelMismatchError(DeployError):
    """The policy's metadata does not match the robot (or the ONNX graph).

    ``mismatches`` holds every difference found, not only the first, so an operator
    fixing a deployment sees the whole list at once.
    """

    def __init__(self, mismatches: list[Mismatch], context: str = "policy does not match robot"):
        self.mismatches = list(mismatches)
        lines = "\n".join(f"  - {m}" for m in self.mismatches)
        super().__init__(f"{context} ({len(self.mismatches)} mismatch(es)):\n{lines}")
