"""Configuration of the deployment controller node."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeployConfig:
    model: str = "models/policy.onnx"  # exported policy; its metadata JSON sits beside it
    providers: str = "auto"            # auto | cpu | cuda | tensorrt
    rate_hz: float = 10.0              # control loop rate (must match the model's metadata)
