"""Configuration of the human-in-the-loop parts."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HILConfig:
    device: str = "sim_human"         # sim_human | spacemouse | joy | gamepad | keyboard | none
    deadzone: float = 0.05            # device noise below this is ignored
