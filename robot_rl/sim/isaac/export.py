"""A policy trained in Isaac Lab -> robot_rl's ONNX + metadata, deployable by the controller node.

The Isaac Lab environment (robot_rl/sim/isaac/lab_env.py) observes the flat concatenation of
the task's observation terms (:meth:`BatchedPickTask.observation_layout`) and acts in the task's
[-1, 1] action space. :class:`FlatPolicyModule` puts the trained actor (flat observation ->
action, normaliser included: e.g. rsl_rl's actor with its empirical normalisation) behind the
export contract of robot_rl/deploy/onnx_export.py (a dict of raw observations in, the action
out), and :func:`export_isaac_policy` writes it with the metadata built from the same robot
configuration the controller checks it against (robot_rl/deploy/agent_export.py). No Isaac
import: run it wherever the checkpoint is.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from robot_rl.config import Config


class FlatPolicyModule(torch.nn.Module):
    """``forward(obs dict) -> action``: flattens the terms in ``layout`` order (as the Isaac Lab
    environment does), runs ``actor`` and clips to the action space."""

    def __init__(self, actor: torch.nn.Module, layout: Sequence[tuple[str, tuple[int, ...]]]):
        super().__init__()
        self.actor = actor
        self.layout = [(name, tuple(shape)) for name, shape in layout]

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        flat = torch.cat([obs[name].float().reshape(obs[name].shape[0], -1)
                          for name, _ in self.layout], -1)
        return torch.clamp(self.actor(flat), -1.0, 1.0).float()


def observation_layout(cfg: Config) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the task's observation terms in the Isaac Lab environment's order."""
    from robot_rl.deploy.agent_export import task_spaces
    obs_space, _, _ = task_spaces(cfg)
    return [(k, tuple(s.shape)) for k, s in obs_space.spaces.items()]


def export_isaac_policy(actor: torch.nn.Module, cfg: Config, path: str | os.PathLike, run_id: str,
                        version: str = "1.0.0", *, atol: float = 1e-5, seed: int = 0):
    """Export ``actor`` (flat observation -> action) for the robot configured by ``cfg``: ONNX
    at ``path`` and its metadata JSON beside it, after the torch/onnxruntime parity check.
    Returns robot_rl.deploy.onnx_export.ExportResult."""
    from robot_rl.deploy.agent_export import build_metadata
    from robot_rl.deploy.onnx_export import export_onnx, random_observations

    layout = observation_layout(cfg)
    flat_dim = int(sum(np.prod(shape) for _, shape in layout))
    meta = build_metadata(cfg, run_id, version, [name for name, _ in layout])
    probe = torch.zeros(1, flat_dim)
    try:
        with torch.no_grad():
            out = actor(probe)
    except Exception as exc:  # the actor was trained on another observation size
        raise ValueError(f"the actor does not take the task's flat observation of {flat_dim} "
                         f"values ({layout}): {exc}") from None
    if tuple(out.shape) != (1, meta.action.dim):
        raise ValueError(f"the actor returns shape {tuple(out.shape)} for one observation, "
                         f"expected (1, {meta.action.dim}) ({list(meta.action.names)})")
    module = FlatPolicyModule(actor, layout)
    example = random_observations(meta, 2, np.random.default_rng(seed))
    return export_onnx(module, example, meta, path, atol=atol, seed=seed)
