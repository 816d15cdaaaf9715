"""Sanity of received actor weights beyond finiteness (ROS-free).

Finite weights can still make a policy that outputs NaN (a weight x1e30 overflows a matmul to
inf, and inf - inf is NaN) or whose Gaussian is degenerate. Before an actor applies new weights,
``WeightProbe.check`` runs them in a scratch copy of the policy on a fixed probe batch of
observations drawn from the observation space, and refuses them unless the features, the mean,
the log-std and the deterministic and sampled actions are finite and the actions lie in the
action space. The live policy is never touched by a candidate that fails.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping

import numpy as np
import torch

# Probe values of unbounded vector inputs: a wide normal, so the probe reaches well past the
# inputs a healthy policy sees (normalised inputs are around +-3).
PROBE_STD = 10.0
ACTION_TOLERANCE = 1e-5


class WeightCheckError(ValueError):
    """Candidate weights make a policy that is not fit to act; the text says what failed."""


def probe_batch(observation_space, encoder_kinds: Mapping[str, str], n: int,
                seed: int = 0) -> Dict[str, torch.Tensor]:
    """``n`` observations covering each input's range (images: uniform bytes; bounded vectors:
    uniform in their bounds; unbounded vectors: normal with std ``PROBE_STD``), plus zeros."""
    rng = np.random.default_rng(seed)
    out: Dict[str, torch.Tensor] = {}
    for key, space in observation_space.spaces.items():
        shape = (n, *space.shape)
        if encoder_kinds[key] == "image":
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            arr[0] = 0
        else:
            low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape)
            high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
            finite = np.isfinite(low) & np.isfinite(high)
            arr = rng.normal(0.0, PROBE_STD, shape)
            uni = rng.uniform(np.where(finite, low, 0.0), np.where(finite, high, 1.0), shape)
            arr = np.where(finite, uni, arr)
            arr = np.clip(arr, np.where(np.isfinite(low), low, -np.inf),
                          np.where(np.isfinite(high), high, np.inf)).astype(np.float32)
            arr[0] = np.clip(0.0, low, high)
        out[key] = torch.from_numpy(np.ascontiguousarray(arr))
    return out


class WeightProbe:
    """A scratch copy of an agent's acting networks and a fixed probe batch."""

    def __init__(self, agent, n: int = 16, seed: int = 0):
        self.encoder = copy.deepcopy(agent.encoder).eval()
        self.actor = copy.deepcopy(agent.actor).eval()
        self.gripper = copy.deepcopy(agent.gripper.q).eval() if agent.gripper is not None else None
        self.gripper_dim = max(int(agent.gripper_dim), 0)
        self.low = agent.low.detach().cpu()
        self.high = agent.high.detach().cpu()
        self.device = agent.device
        obs_space = agent.observation_space
        if not hasattr(obs_space, "spaces"):  # a flat Box observation
            from robot_rl.learning.networks import as_dict_space
            obs_space = as_dict_space(obs_space)
        self.obs = {k: v.to(self.device) for k, v in
                    probe_batch(obs_space, self.encoder.kinds, n, seed).items()}
        self._noise = torch.randn(n, self.actor_dim(), generator=torch.Generator().manual_seed(seed))

    def actor_dim(self) -> int:
        with torch.no_grad():
            feat = self.encoder({k: v[:1] for k, v in self.obs.items()})
            return int(self.actor.dist_params(feat)[0].shape[-1])

    @torch.no_grad()
    def check(self, state: Mapping[str, Any]) -> Dict[str, float]:
        """Load ``state`` (an ``actor_state_dict()``) into the scratch copy and probe it; raises
        ``WeightCheckError``. Returns probe statistics (max |mean|, log-std range)."""
        try:
            self.encoder.load_state_dict(state["encoder"])
            self.actor.load_state_dict(state["actor"])
            if self.gripper is not None:
                self.gripper.load_state_dict(state["gripper"])
        except (KeyError, RuntimeError) as exc:
            raise WeightCheckError(f"weights do not fit this policy: {exc}") from None
        feat = self.encoder(self.obs)
        if not torch.isfinite(feat).all():
            raise WeightCheckError("the observation features of the probe batch are not finite")
        mean, log_std = self.actor.dist_params(feat)
        for name, value in (("action mean", mean), ("action log-std", log_std)):
            if not torch.isfinite(value).all():
                raise WeightCheckError(f"the policy's {name} on the probe batch is not finite")
        actions = {"deterministic": self.actor.deterministic(feat),
                   "sampled": self.actor.sample(feat, self._noise.to(feat.device))[0]}
        low, high = self.low.to(feat.device), self.high.to(feat.device)
        tol = ACTION_TOLERANCE * torch.clamp(high - low, min=1.0)
        grip = None
        if self.gripper is not None:
            from robot_rl.learning.gripper_critic import gripper_value
            q = self.gripper(feat)
            if not torch.isfinite(q).all():
                raise WeightCheckError("the gripper Q-values on the probe batch are not finite")
            grip = gripper_value(q.argmax(dim=-1)).unsqueeze(-1).to(mean.dtype)
        for name, a in actions.items():
            if grip is not None:  # the env action as ExportedPolicy builds it
                a = torch.cat([a[:, :self.gripper_dim], grip, a[:, self.gripper_dim:]], dim=-1)
            env_a = (high + low) / 2 + (high - low) / 2 * a
            if not torch.isfinite(env_a).all():
                raise WeightCheckError(f"the {name} action on the probe batch is not finite")
            if ((env_a < low - tol) | (env_a > high + tol)).any():
                raise WeightCheckError(f"the {name} action on the probe batch leaves the action "
                                       f"space {low.tolist()} .. {high.tolist()}")
        return {"max_abs_mean": float(mean.abs().max()), "log_std_min": float(log_std.min()),
                "log_std_max": float(log_std.max())}

