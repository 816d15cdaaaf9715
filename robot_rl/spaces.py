"""Observation spaces as the learner, the replay buffer and the wire codec see them.

ROS-free and torch-free: ``robot_rl.transport`` (the wire codec) and ``robot_rl.learning``
both classify observation keys here, so the codec does not import the networks.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
from gymnasium import spaces

__all__ = ["classify_observation_space", "as_dict_space"]


def classify_observation_space(space: spaces.Space) -> Dict[str, str]:
    """Map each observation key to ``'image' | 'tactile' | 'state'``.

    Rules: Box uint8 with 3 dims (H, W, C) -> image; float Box with 2 dims, or
    3 dims, or a key starting with ``tactile`` and >1 dims -> tactile; float Box with 1 dim -> state.
    A bare Box space is treated as ``{"state": box}`` (see ``as_dict_space``).
    """
    if isinstance(space, spaces.Box):
        space = as_dict_space(space)
    if not isinstance(space, spaces.Dict):
        raise ValueError(f"observation space must be gymnasium Box or Dict, got {type(space).__name__}")
    kinds: Dict[str, str] = {}
    for key, sub in space.spaces.items():
        if not isinstance(sub, spaces.Box):
            raise ValueError(f"observation key {key!r}: expected a Box sub-space, got {type(sub).__name__}")
        shp = sub.shape
        if sub.dtype == np.uint8 and len(shp) == 3:
            kinds[key] = "image"
        elif np.issubdtype(sub.dtype, np.floating) and len(shp) == 1:
            kinds[key] = "state"
        elif np.issubdtype(sub.dtype, np.floating) and len(shp) in (2, 3):
            kinds[key] = "tactile"
        else:
            raise ValueError(
                f"observation key {key!r}: unsupported Box(shape={shp}, dtype={sub.dtype}); expected uint8 HxWxC image, "
                f"float 1-D state, or float HxW / HxWxC tactile grid"
            )
    return kinds


def as_dict_space(space: spaces.Space) -> spaces.Dict:
    """Wrap a flat Box observation space as ``Dict(state=Box)``."""
    if isinstance(space, spaces.Dict):
        return space
    if isinstance(space, spaces.Box):
        if space.dtype == np.uint8 and len(space.shape) == 3:
            return spaces.Dict({"image": space})
        if len(space.shape) != 1:
            raise ValueError(f"flat Box observation must be 1-D (got shape {space.shape}); use a Dict space for grids")
        return spaces.Dict({"state": spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)})
    raise ValueError(f"observation space must be gymnasium Box or Dict, got {type(space).__name__}")
