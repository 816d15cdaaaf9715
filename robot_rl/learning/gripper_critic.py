"""HIL-SERL discrete gripper critic (double DQN over close / stay / open).

Why: a continuous Gaussian policy dithers a binary gripper, which wrecks
grasps. HIL-SERL (Luo et al., 2024) gives the gripper its own *grasp critic*
``Q_g(s, a_g)`` over three discrete actions and adds a small penalty each time
the gripper is commanded to toggle, so the policy only opens/closes when it
pays off. The arm dimensions stay with the continuous SAC actor.

Conventions (normalized action units, i.e. after mapping the env Box to
[-1, 1]): index 0 = close (-1), 1 = stay (0), 2 = open (+1). Stored continuous
gripper commands are discretised with thresholds at +-0.5.
"""

from __future__ import annotations

import copy
from typing import Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .networks import mlp

__all__ = ["CLOSE", "STAY", "OPEN", "GRIPPER_VALUES", "GripperCritic", "discretize_gripper", "gripper_value"]

CLOSE, STAY, OPEN = 0, 1, 2
GRIPPER_VALUES = (-1.0, 0.0, 1.0)


def discretize_gripper(g: torch.Tensor) -> torch.Tensor:
    """Normalized continuous gripper command -> action index (int64)."""
    return (g > -0.5).long() + (g > 0.5).long()


def gripper_value(idx: torch.Tensor) -> torch.Tensor:
    """Action index -> normalized command (-1, 0, +1). ONNX friendly (no gather)."""
    return idx.to(torch.float32) - 1.0


class GripperCritic(nn.Module):
    """Q_g(features) -> 3 values, with its own target network and optimizer.

    Takes *detached* observation features from the shared encoder (the
    encoder is trained by the continuous critic), so the gripper head is cheap.
    """

    def __init__(
        self,
        feature_dim: int,
        hidden: Sequence[int] = (256, 256),
        lr: float = 3e-4,
        discount: float = 0.99,
        tau: float = 0.005,
        grasp_penalty: float = -0.02,
        layer_norm: bool = True,
    ):
        super().__init__()
        if grasp_penalty > 0:
            raise ValueError(f"grasp_penalty must be <= 0 (it is a penalty), got {grasp_penalty}")
        self.q = mlp(feature_dim, hidden, 3, layer_norm=layer_norm)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.discount = discount
        self.tau = tau
        self.grasp_penalty = grasp_penalty
        self.optim = torch.optim.Adam(self.q.parameters(), lr=lr)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.q(feat)

    def greedy(self, feat: torch.Tensor) -> torch.Tensor:
        return self.q(feat).argmax(dim=-1)

    def td_target(
        self, reward: torch.Tensor, action_idx: torch.Tensor, terminated: torch.Tensor, next_feat: torch.Tensor
    ) -> torch.Tensor:
        """Double DQN: online net picks a', target net evaluates it.

        ``reward + penalty * [a != stay] + gamma * (1 - terminated) * Q_tgt(s', argmax Q(s'))``.
        Truncation is deliberately not an input: time limits bootstrap.
        """
        with torch.no_grad():
            a_next = self.q(next_feat).argmax(dim=-1, keepdim=True)
            q_next = self.q_target(next_feat).gather(1, a_next).squeeze(1)
            r = reward + self.grasp_penalty * (action_idx != STAY).to(reward.dtype)
            return r + self.discount * (1.0 - terminated) * q_next

    def update(
        self, feat: torch.Tensor, action_idx: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor, next_feat: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        target = self.td_target(reward, action_idx, terminated, next_feat)
        q = self.q(feat).gather(1, action_idx.view(-1, 1)).squeeze(1)
        loss = F.mse_loss(q, target)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        with torch.no_grad():
            t, o = list(self.q_target.parameters()), list(self.q.parameters())
            torch._foreach_lerp_(t, o, self.tau)
        return {"gripper_loss": loss.detach(), "gripper_q": q.detach().mean()}
