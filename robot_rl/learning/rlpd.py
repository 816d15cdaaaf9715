"""SAC with the RLPD / SERL design choices (single file, CleanRL style).

Facts this implementation follows (see docs/learning.md for citations):

* RLPD (Ball et al., ICML 2023): symmetric sampling (50% demo / 50% online
  per batch), LayerNorm critics, a critic *ensemble* of N=10 with the target
  taken as the min over a random subset of M=2 members, high update-to-data
  ratio (UTD) and entropy-regularised (SAC) backups.
* SERL (Luo et al., ICRA 2024): for UTD > 1 the critic is updated UTD times
  on consecutive minibatches and the actor/temperature once (on the last
  minibatch); image encoders with spatial-embedding pooling; DrQ shifts.
* SAC (Haarnoja et al., 2018): tanh-squashed Gaussian actor, automatic
  temperature; RLPD uses target entropy -|A|/2.
* Time limits (Pardo et al., ICML 2018): a time-limit truncation is not a
  terminal state, so only ``terminated`` zeroes the bootstrap.

Speed (why the code looks like this): the N critics are one set of stacked
weights (N x in x out) evaluated with ``torch.baddbmm`` -- one kernel per
layer for the whole ensemble instead of N small matmuls plus Python overhead.
Target networks are plain tensors updated with one ``_foreach_lerp_``; Adam
runs fused/foreach; no ``.item()`` calls inside the update loop (metrics are
converted once per ``update``). The target only evaluates the M sampled
members (the other N-M would be thrown away by the min anyway).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import time
from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium import spaces

from .gripper_critic import GripperCritic, discretize_gripper, gripper_value
from .config import EncoderConfig, RLPDConfig  # noqa: F401  (re-exported)
from .networks import ObservationEncoder, as_dict_space, mlp, random_shift

__all__ = ["RLPDConfig", "RLPDAgent", "EnsembleCritic", "TanhGaussianActor", "td_target"]


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Stop glibc from returning activation buffers to the OS after each op.

    Every update allocates and frees the same few MB-sized activation
    tensors. glibc serves those with mmap and unmaps them on free, so each
    step page-faults the memory in again (hundreds of thousands of faults per
    second). Raising the mmap/trim thresholds keeps them in the heap; this cut
    faults ~5x and update time ~7% on the 2-core benchmark machine. Process
    wide, idempotent, a no-op off glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc max on 64-bit
        ok &= libc.mallopt(m_trim_threshold, 1 * 2**30)
        ok &= libc.mallopt(m_top_pad, 64 * 2**20)
        _MALLOC_TUNED = bool(ok)
    except (OSError, AttributeError):
        _MALLOC_TUNED = False
    return _MALLOC_TUNED


def require_cpp_compiler() -> str:
    """torch.compile on CPU builds C++ kernels: fail at construction, naming the fix, rather
    than at the first update with a compiler traceback."""
    cxx = os.environ.get("CXX") or "g++"
    path = shutil.which(cxx)
    if path is None:
        raise RuntimeError(f"RLPDConfig.compile=True needs a C++ compiler for torch.compile on CPU, but {cxx!r} "
                           "was not found (install g++, e.g. apt-get install g++, or set CXX); or set "
                           "agent.compile=false to train eagerly")
    return path


# --------------------------------------------------------------------------- #
# Networks
# --------------------------------------------------------------------------- #
def td_target(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    next_q: torch.Tensor,
    next_logp: torch.Tensor,
    alpha: torch.Tensor,
    discount: float,
    backup_entropy: bool = True,
) -> torch.Tensor:
    """Soft TD target. ``truncated`` is intentionally *not* an argument:
    a time-limit cut-off still bootstraps from ``next_q``."""
    v = next_q - alpha * next_logp if backup_entropy else next_q
    return reward + discount * (1.0 - terminated) * v


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively (RLPDConfig.precision='bf16' only pays there;
    elsewhere bf16 matmuls are emulated and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    # torch.cpu's probes are private: treat their absence as "no".
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


class ReluSavingOutput(torch.autograd.Function):
    """ReLU whose backward reads its output instead of a saved boolean mask.

    For torch.compile only: where the next layer's weights need no gradient (the actor's pass
    through the detached critic), inductor saves ``x > 0`` as a bool tensor, and its CPU code
    stores bool masks with a data-dependent branch per element: ~5 ns/element, slower than the
    whole eager update. Saving the float output (sign() of it is the derivative) avoids that.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * torch.sign(out)


class EnsembleCritic(nn.Module):
    """N LayerNorm MLP Q-functions stored as stacked weights.

    Layer l holds ``W_l: N x in x out`` and ``b_l: N x 1 x out``; a forward
    pass is one ``baddbmm`` per layer for all members. Each hidden layer is
    ``relu(LayerNorm(h) + c_l)`` with a per-member learned LayerNorm bias
    ``c_l: N x 1 x out`` and *no* LayerNorm scale: because ReLU is positively
    homogeneous, ``relu(g * n + c) = g * relu(n + c / g)`` for g > 0, so a
    positive scale is absorbed by the next layer's weights. Dropping it removes
    two full-size multiplies per layer from the backward pass (per-member
    scales cannot use the fused native LayerNorm affine), which is a
    measurable share of CPU update time.
    ``forward_with(params, ...)`` lets the actor use detached weights (no
    gradient to the critic, no parameter copies) and the target use plain
    tensors.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], num: int, layer_norm: bool = True):
        super().__init__()
        self.num = num
        self.layer_norm = layer_norm
        self.compiled = False  # set by RLPDAgent when it compiles its losses (see ReluSavingOutput)
        self.dims = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        for i in range(len(self.dims) - 1):
            fan_in, fan_out = self.dims[i], self.dims[i + 1]
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(num, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num, 1, fan_out).uniform_(-bound, bound)))
            if layer_norm and i < len(self.dims) - 2:
                self.ln_biases.append(nn.Parameter(torch.zeros(num, 1, fan_out)))

    def param_list(self) -> List[torch.Tensor]:
        """Flat ordered list [W0, b0, (c0), W1, b1, (c1), ...] used by forward_with."""
        out: List[torch.Tensor] = []
        n_layers = len(self.weights)
        for i in range(n_layers):
            out += [self.weights[i], self.biases[i]]
            if self.layer_norm and i < n_layers - 1:
                out.append(self.ln_biases[i])
        return out

    def forward_with(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``x``: B x in (shared by members) or K x B x in. Returns K x B."""
        k = params[0].shape[0]
        h = x.unsqueeze(0).expand(k, *x.shape) if x.dim() == 2 else x
        j = 0
        for _ in range(len(self.dims) - 2):
            h = torch.baddbmm(params[j + 1], h, params[j])
            j += 2
            if self.layer_norm:
                # In-place add/relu on the fresh LayerNorm output: LN's
                # backward needs its input, not its output, so this is
                # autograd-safe and saves two allocations per layer.
                h = F.layer_norm(h, (h.shape[-1],)).add_(params[j])
                j += 1
            h = ReluSavingOutput.apply(h) if self.compiled else torch.relu_(h)
        w, b = params[j], params[j + 1]
        # Under bf16 autocast the Q head still runs in fp32: Q values of 10-100 in bf16 would
        # be rounded to 0.06-0.5, coarser than the TD errors being learned.
        with torch.autocast(h.device.type, enabled=False):
            return torch.baddbmm(b, h.to(w.dtype), w).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(self.param_list(), x)

    @staticmethod
    def subset(params: Sequence[torch.Tensor], idx: torch.Tensor) -> List[torch.Tensor]:
        return [p.index_select(0, idx) for p in params]


class TanhGaussianActor(nn.Module):
    """MLP -> (mean, log_std); a = tanh(mean + std * eps).

    log_std is squashed into [min, max] with tanh (smooth, no clamp kinks).
    """

    def __init__(self, in_dim: int, action_dim: int, hidden: Sequence[int], layer_norm: bool, log_std_min: float, log_std_max: float):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, None, layer_norm=layer_norm)
        self.head = nn.Linear(hidden[-1], 2 * action_dim)
        self.action_dim = action_dim
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def dist_params(self, feat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # float(): under bf16 autocast the squashing, log-probs and entropy stay fp32.
        mean, pre = self.head(self.trunk(feat)).float().chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(pre) + 1.0)
        return mean, log_std

    def deterministic(self, feat: torch.Tensor) -> torch.Tensor:
        mean, _ = self.dist_params(feat)
        return torch.tanh(mean)

    def sample(self, feat: torch.Tensor, eps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(action, log-prob) for standard-normal noise ``eps`` (batch x action_dim). The noise
        comes in from the caller, so this is a pure function (``RLPDConfig.compile``)."""
        mean, log_std = self.dist_params(feat)
        u = mean + log_std.exp() * eps
        a = torch.tanh(u)
        # log N(u) - log|det d tanh/du|; 2*(log2 - u - softplus(-2u)) == log(1 - tanh(u)^2), stable.
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return a, logp

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.deterministic(feat)


class ExportedPolicy(nn.Module):
    """Deterministic policy on raw observations (uint8 images, float32 vectors).

    No random ops, no data-dependent Python control flow -> ONNX exportable.
    Returns actions in the env's Box bounds.
    """

    def __init__(self, encoder: ObservationEncoder, actor: TanhGaussianActor, low: torch.Tensor, high: torch.Tensor,
                 gripper: Optional[nn.Module], gripper_dim: int, action_dim: int):
        super().__init__()
        self.encoder = encoder
        self.actor = actor
        self.gripper = gripper
        self.gripper_dim = gripper_dim
        self.action_dim = action_dim
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def forward(self, obs: Dict[str, torch.Tensor]) -> torch.Tensor:
        feat = self.encoder(obs)
        a = self.actor.deterministic(feat)
        if self.gripper is not None:
            g = gripper_value(self.gripper(feat).argmax(dim=-1)).unsqueeze(-1)
            a = torch.cat([a[:, : self.gripper_dim], g, a[:, self.gripper_dim:]], dim=-1)
        return self.center + self.half_range * a


# --------------------------------------------------------------------------- #
# Agent
# --------------------------------------------------------------------------- #
class RLPDAgent:
    """RLPD/SERL SAC agent. See module docstring for the design."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, config: Optional[RLPDConfig] = None):
        # Only the caller knows whether the run has demonstrations (train-gym, the learner:
        # RLPDConfig.resolved); an agent given an unresolved preset takes RLPD's.
        self.config = cfg = (config or RLPDConfig()).resolved(with_demos=False)
        cfg.validate()
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"RLPDAgent: action space must be a 1-D gymnasium Box, got {action_space}")
        low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(f"RLPDAgent: action Box must have finite bounds with high > low, got low={low} high={high}")
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        if cfg.tune_malloc:
            tune_malloc()
        self.device = torch.device(cfg.device)
        if cfg.precision == "bf16" and not has_native_bf16(self.device):
            need = "a CUDA GPU of compute capability 8.0 or newer" if self.device.type == "cuda" else "a CPU with AVX512-BF16 or AMX"
            raise ValueError(f"RLPDConfig.precision='bf16' needs {need} (on {self.device} bf16 matmuls would be "
                             "emulated and slower than fp32); set agent.precision: fp32")
        self.observation_space = as_dict_space(observation_space)
        self.action_space = action_space
        self.flat_obs = not isinstance(observation_space, spaces.Dict)
        self.action_dim = int(action_space.shape[0])
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)  # parameter init

        if cfg.discrete_gripper:
            if self.action_dim < 2:
                raise ValueError("RLPDConfig.discrete_gripper needs an action space with >= 2 dims (arm + gripper)")
            gd = cfg.gripper_dim % self.action_dim
            if not -self.action_dim <= cfg.gripper_dim < self.action_dim:
                raise ValueError(f"RLPDConfig.gripper_dim {cfg.gripper_dim} out of range for action_dim {self.action_dim}")
            self.gripper_dim = gd
            self.arm_index = torch.tensor([i for i in range(self.action_dim) if i != gd], device=self.device)
        else:
            self.gripper_dim = -1
            self.arm_index = None
        self.cont_dim = self.action_dim - (1 if cfg.discrete_gripper else 0)
        self.target_entropy = float(cfg.target_entropy) if cfg.target_entropy is not None else -self.cont_dim / 2.0

        d = self.device
        self.low = torch.as_tensor(low, dtype=torch.float32, device=d)
        self.high = torch.as_tensor(high, dtype=torch.float32, device=d)
        self.center = (self.high + self.low) / 2
        self.half_range = (self.high - self.low) / 2

        self.encoder = ObservationEncoder(self.observation_space, cfg.encoder).to(d)
        self.has_encoder_params = any(p.requires_grad for p in self.encoder.parameters())
        # DrQ: critic target uses a Polyak-averaged copy of the encoder.
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False) if self.has_encoder_params else self.encoder
        feat_dim = self.encoder.out_dim
        self.critic = EnsembleCritic(feat_dim + self.cont_dim, cfg.hidden_dims, cfg.num_critics, cfg.critic_layer_norm).to(d)
        self.critic_target_params = [p.detach().clone() for p in self.critic.param_list()]
        self.actor = TanhGaussianActor(feat_dim, self.cont_dim, cfg.hidden_dims, cfg.actor_layer_norm, cfg.log_std_min, cfg.log_std_max).to(d)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=d, requires_grad=True)
        self.gripper: Optional[GripperCritic] = None
        if cfg.discrete_gripper:
            self.gripper = GripperCritic(feat_dim, cfg.hidden_dims, cfg.gripper_lr, cfg.discount, cfg.tau, cfg.grasp_penalty, cfg.critic_layer_norm).to(d)

        enc_params = [p for p in self.encoder.parameters() if p.requires_grad]
        self.critic_opt = self._adam(list(self.critic.parameters()) + enc_params, cfg.critic_lr)
        # Actor and temperature share one optimizer (two param groups) and one
        # backward: their losses touch disjoint parameters (alpha is detached
        # in the actor loss, log pi is detached in the temperature loss), so
        # summing them changes nothing but saves a backward and a step call.
        self.actor_opt = self._adam(list(self.actor.parameters()), cfg.actor_lr)
        self.actor_opt.add_param_group({"params": [self.log_alpha], "lr": cfg.temp_lr})
        # Polyak lists (online -> target): critic tensors + trainable encoder params.
        self._polyak_online = list(self.critic.param_list())
        self._polyak_target = list(self.critic_target_params)
        if self.has_encoder_params:
            for po, pt in zip(self.encoder.parameters(), self.target_encoder.parameters()):
                if po.requires_grad:
                    self._polyak_online.append(po)
                    self._polyak_target.append(pt)
        self.num_critic_updates = 0
        self.num_actor_updates = 0
        self._critic_loss_fn, self._actor_loss_fn = self._critic_loss, self._actor_loss
        if cfg.compile:
            if self.device.type == "cpu":
                require_cpp_compiler()
            self.critic.compiled = True
            self._critic_loss_fn = torch.compile(self._critic_loss, dynamic=False)
            self._actor_loss_fn = torch.compile(self._actor_loss, dynamic=False)

    def _precision(self) -> torch.autocast:
        """The autocast region of the loss computations (a no-op at fp32); backward runs outside."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def _adam(self, params: List[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        if self.config.fused_optimizer:
            try:
                return torch.optim.Adam(params, lr=lr, fused=True)
            except (RuntimeError, TypeError):
                pass
        return torch.optim.Adam(params, lr=lr, foreach=True)

    # ------------------------------------------------------------------ #
    # helpers
    # ------------------------------------------------------------------ #
    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        """Env units -> [-1, 1] (clipped slightly inside so atanh-free code stays finite)."""
        return ((a - self.center) / self.half_range).clamp_(-1.0, 1.0)

    def _split_action(self, a_norm: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if self.arm_index is None:
            return a_norm, None
        return a_norm.index_select(1, self.arm_index), discretize_gripper(a_norm[:, self.gripper_dim])

    def _obs_to(self, obs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if self.device.type == "cpu":
            return dict(obs)
        return {k: v.to(self.device, non_blocking=True) for k, v in obs.items()}

    def _check_batch(self, batch: Mapping[str, Any], name: str) -> None:
        for k in ("obs", "next_obs", "action", "reward", "terminated"):
            if k not in batch:
                raise ValueError(f"RLPDAgent.update: {name} is missing {k!r}; expected keys obs, next_obs, action, reward, terminated[, truncated]")
        self.encoder.check_obs(batch["obs"])
        self.encoder.check_obs(batch["next_obs"])
        b = batch["action"].shape[0]
        if tuple(batch["action"].shape) != (b, self.action_dim):
            raise ValueError(f"RLPDAgent.update: {name}['action'] shape {tuple(batch['action'].shape)}, expected ({b}, {self.action_dim})")
        for k in ("reward", "terminated"):
            if tuple(batch[k].shape) != (b,):
                raise ValueError(f"RLPDAgent.update: {name}[{k!r}] shape {tuple(batch[k].shape)}, expected ({b},)")

    def _merge(self, demo: Optional[Mapping[str, Any]], online: Mapping[str, Any]) -> Tuple[Dict[str, Any], int]:
        """Concatenate demo/online so that minibatch i = demo chunk i + online chunk i."""
        self._check_batch(online, "online_batch")
        n_on = online["action"].shape[0]
        if demo is None:
            total = n_on
            if total % self.config.batch_size:
                raise ValueError(f"RLPDAgent.update: batch of {total} is not a multiple of batch_size={self.config.batch_size}")
            return self._to_dev(online), total // self.config.batch_size
        self._check_batch(demo, "demo_batch")
        n_demo = demo["action"].shape[0]
        total = n_on + n_demo
        bs = self.config.batch_size
        if total % bs:
            raise ValueError(f"RLPDAgent.update: demo ({n_demo}) + online ({n_on}) = {total} is not a multiple of batch_size={bs}")
        u = total // bs
        if n_demo % u or n_on % u:
            raise ValueError(f"RLPDAgent.update: demo ({n_demo}) and online ({n_on}) batches must each split into {u} equal minibatches")

        def cat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.reshape(u, n_demo // u, *x.shape[1:]), y.reshape(u, n_on // u, *y.shape[1:])], 1).reshape(total, *x.shape[1:])

        out: Dict[str, Any] = {}
        for k in ("action", "reward", "terminated"):
            out[k] = cat(demo[k], online[k])
        out["obs"] = {k: cat(demo["obs"][k], online["obs"][k]) for k in online["obs"]}
        out["next_obs"] = {k: cat(demo["next_obs"][k], online["next_obs"][k]) for k in online["next_obs"]}
        return self._to_dev(out), u

    def _to_dev(self, b: Mapping[str, Any]) -> Dict[str, Any]:
        out = {k: b[k] for k in ("action", "reward", "terminated")}
        out["obs"], out["next_obs"] = self._obs_to(b["obs"]), self._obs_to(b["next_obs"])
        if self.device.type != "cpu":
            out = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in out.items()}
        return out

    # ------------------------------------------------------------------ #
    # targets
    # ------------------------------------------------------------------ #
    def sample_subset(self) -> torch.Tensor:
        n, m = self.config.num_critics, self.config.critic_subset
        return torch.randperm(n, generator=self.gen)[:m].to(self.device)

    @torch.no_grad()
    def target_q(self, next_target_feat: torch.Tensor, next_action: torch.Tensor, subset: Optional[torch.Tensor]) -> torch.Tensor:
        """min over the chosen subset of target critics (all members if subset is None)."""
        params = self.critic_target_params if subset is None else EnsembleCritic.subset(self.critic_target_params, subset)
        return self.critic.forward_with(params, torch.cat([next_target_feat, next_action], -1)).min(0).values

    @torch.no_grad()
    def compute_target(self, next_feat: torch.Tensor, next_target_feat: torch.Tensor, reward: torch.Tensor,
                       terminated: torch.Tensor, subset: Optional[torch.Tensor] = None) -> torch.Tensor:
        eps = self._noise(next_feat.shape[0])
        if subset is None and self.config.critic_subset < self.config.num_critics:
            subset = self.sample_subset()
        return self._target(next_feat, next_target_feat, reward, terminated, eps, subset)

    @torch.no_grad()
    def _target(self, next_feat, next_target_feat, reward, terminated, eps, subset) -> torch.Tensor:
        next_a, next_logp = self.actor.sample(next_feat, eps)
        nq = self.target_q(next_target_feat, next_a, subset)
        return td_target(reward, terminated, nq, next_logp, self.alpha, self.config.discount, self.config.backup_entropy)

    # ------------------------------------------------------------------ #
    # update
    # ------------------------------------------------------------------ #
    def update(self, demo_batch: Optional[Mapping[str, Any]], online_batch: Mapping[str, Any]) -> Dict[str, float]:
        """One RLPD update: U = total/batch_size critic steps on consecutive
        minibatches, then one actor + temperature step on the last one.

        Each minibatch is half demo, half online (as sampled by the caller).
        Returns float metrics of the last step.
        """
        cfg = self.config
        batch, u = self._merge(demo_batch, online_batch)
        bs = cfg.batch_size
        obs, nobs = batch["obs"], batch["next_obs"]
        if self.encoder.image_keys and cfg.encoder.augment:
            obs = self.encoder.augment(obs, self.gen)
            nobs = self.encoder.augment(nobs, self.gen)
        # Frozen trunk: evaluated once for the whole UTD batch, shared by all
        # critics, the target and the actor.
        with self._precision():
            pre_o = self.encoder.precompute(obs)
            pre_n = self.encoder.precompute(nobs)
        a_norm = self.normalize_action(batch["action"])
        a_cont, g_idx = self._split_action(a_norm)
        reward, term = batch["reward"], batch["terminated"]

        def sl(d: Optional[Mapping[str, torch.Tensor]], i: int) -> Optional[Dict[str, torch.Tensor]]:
            return None if d is None else {k: v[i * bs:(i + 1) * bs] for k, v in d.items()}

        metrics: Dict[str, torch.Tensor] = {}
        feat = None
        for i in range(u):
            s = slice(i * bs, (i + 1) * bs)
            feat, m = self._critic_step(sl(obs, i), sl(pre_o, i), sl(nobs, i), sl(pre_n, i), a_cont[s], reward[s], term[s],
                                        None if g_idx is None else g_idx[s], want_metrics=(i == u - 1))
            metrics.update(m)
        n_demo_mb = 0 if demo_batch is None else demo_batch["action"].shape[0] // u
        last = slice((u - 1) * bs, (u - 1) * bs + n_demo_mb)
        metrics.update(self._actor_step(feat, feat[:n_demo_mb] if n_demo_mb else None,
                                        a_cont[last] if n_demo_mb else None))
        keys = list(metrics)
        vals = torch.stack([metrics[k].float().reshape(()) for k in keys]).tolist()  # one sync
        out = dict(zip(keys, vals))
        out["critic_updates"] = float(self.num_critic_updates)
        out["actor_updates"] = float(self.num_actor_updates)
        return out

    def _noise(self, n: int) -> torch.Tensor:
        """Actor noise for n samples. self.gen is a CPU generator (its state is checkpointed),
        and a CPU generator cannot fill a CUDA tensor: draw on the CPU, then move."""
        return torch.randn((n, self.cont_dim), generator=self.gen).to(self.device)

    def _critic_loss(self, obs, pre_o, nobs, pre_n, act, reward, term, eps, subset):
        """TD loss of the online ensemble on one minibatch, from the observations. Pure in its
        tensor arguments (the randomness comes in as ``eps``/``subset``), so
        ``RLPDConfig.compile`` can compile it. Returns (loss, Q, target, features, next features)."""
        with torch.no_grad():
            nfeat = self.encoder(nobs, pre_n)
            nfeat_t = self.target_encoder(nobs, pre_n) if self.has_encoder_params else nfeat
            target = self._target(nfeat, nfeat_t, reward, term, eps, subset)
        feat = self.encoder(obs, pre_o)
        q = self.critic(torch.cat([feat, act], -1))  # N x B
        # float(): the gripper critic and the actor step take these features outside this
        # function's autocast region (a no-op at fp32).
        return (q - target).pow(2).mean(), q.detach(), target, feat.detach().float(), nfeat.float()

    def _critic_step(self, obs, pre_o, nobs, pre_n, act, reward, term, g_idx, want_metrics: bool = True):
        eps = self._noise(act.shape[0])
        subset = self.sample_subset() if self.config.critic_subset < self.config.num_critics else None
        with self._precision():
            loss, qd, target, feat, nfeat = self._critic_loss_fn(obs, pre_o, nobs, pre_n, act, reward, term, eps, subset)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._polyak_target, self._polyak_online, self.config.tau)
        self.num_critic_updates += 1
        m: Dict[str, torch.Tensor] = {}
        if want_metrics:  # only the last UTD step is reported; skip the small ops otherwise
            m = {"critic_loss": loss.detach(), "q_mean": qd.mean(), "q_ensemble_std": qd.std(0).mean() if qd.shape[0] > 1 else qd.new_zeros(()),
                 "target_q": target.mean()}
        if self.gripper is not None:
            gm = self.gripper.update(feat, g_idx, reward, term, nfeat)
            if want_metrics:
                m.update(gm)
        return feat, m

    def _actor_step(self, feat: torch.Tensor, demo_feat: Optional[torch.Tensor] = None,
                    demo_action: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        # A tensor, not a float: a changing Python float would recompile a compiled loss.
        bc_weight = torch.tensor(self.bc_weight_now(), device=feat.device)
        with self._precision():
            actor_loss, temp_loss, bc, logp_d, cloned = self._actor_loss_fn(
                feat, self._noise(feat.shape[0]), demo_feat, demo_action, bc_weight)
        alpha = self.alpha
        self.actor_opt.zero_grad(set_to_none=True)
        (actor_loss + temp_loss).backward()
        self.actor_opt.step()
        self.num_actor_updates += 1
        return {"actor_loss": actor_loss.detach(), "entropy": -logp_d.mean(), "temperature": alpha,
                "temperature_loss": temp_loss.detach(), "bc_loss": bc.detach(), "bc_weight": bc_weight,
                "bc_cloned_fraction": cloned}

    def bc_weight_now(self) -> float:
        """The BC weight of the next actor update: ``bc_weight``, or on its linear way to
        ``bc_final_weight`` over ``bc_decay_updates`` actor updates."""
        cfg = self.config
        if cfg.bc_decay_updates <= 0:
            return float(cfg.bc_weight)
        frac = min(1.0, self.num_actor_updates / cfg.bc_decay_updates)
        return float(cfg.bc_weight + frac * (cfg.bc_final_weight - cfg.bc_weight))

    @torch.no_grad()
    def q_filter_mask(self, demo_feat: torch.Tensor, demo_action: torch.Tensor, policy_action: torch.Tensor) -> torch.Tensor:
        """1.0 where the critic ensemble (mean over members, as the actor loss uses) rates the
        demonstration's action above the policy's, ``Q(s, a_demo) > Q(s, pi(s))``, else 0.0.
        Actions are the continuous part, normalised to [-1, 1]."""
        params = [p.detach() for p in self.critic.param_list()]
        q = self.critic.forward_with(params, torch.cat([torch.cat([demo_feat, demo_action], -1),
                                                        torch.cat([demo_feat, policy_action], -1)], 0)).mean(0)
        q_demo, q_pi = q.chunk(2)
        return (q_demo > q_pi).to(demo_feat.dtype)

    def _actor_loss(self, feat, eps, demo_feat, demo_action, bc_weight):
        """Actor (+ BC) and temperature losses; pure in its tensor arguments like ``_critic_loss``."""
        a, logp = self.actor.sample(feat, eps)
        params = [p.detach() for p in self.critic.param_list()]
        q = self.critic.forward_with(params, torch.cat([feat, a], -1)).mean(0)
        alpha = self.alpha
        actor_loss = (alpha * logp - q).mean()
        bc = feat.new_zeros(())
        cloned = feat.new_zeros(())
        uses_bc = self.config.bc_weight > 0 or (self.config.bc_decay_updates > 0 and self.config.bc_final_weight > 0)
        if uses_bc and demo_feat is not None:
            # Behaviour cloning on the demo half of the minibatch (as in TD3+BC): keeps the
            # policy near the demonstrations until the critic has seen enough to improve on them.
            pi_demo = self.actor.deterministic(demo_feat)
            sq = (pi_demo - demo_action).pow(2).sum(-1)
            if self.config.bc_q_filter:
                # Mean over the whole demo half, not over the kept states: the term fades as the
                # policy overtakes the demonstrations on more of them.
                mask = self.q_filter_mask(demo_feat, demo_action, pi_demo.detach())
                bc, cloned = (mask * sq).mean(), mask.mean()
            else:
                bc, cloned = sq.mean(), feat.new_ones(())
            actor_loss = actor_loss + bc_weight * bc
        logp_d = logp.detach()
        # SAC temperature loss: raises alpha when entropy < target, lowers it otherwise.
        temp_loss = -(self.log_alpha * (logp_d + self.target_entropy)).mean()
        return actor_loss, temp_loss, bc, logp_d, cloned

    def fit_input_normalization(self, obs: Any) -> bool:
        """Fit the encoder's state/tactile normalisation to a batch of observations (typically
        ``demo_buffer.observations()``), before training. No-op (False) when disabled."""
        enc = self.config.encoder
        if not enc.normalize_inputs:
            return False
        if self.flat_obs and not isinstance(obs, Mapping):
            obs = {next(iter(self.observation_space.spaces)): obs}
        missing = [k for k in self.encoder.normalizers if k not in obs]
        if missing:
            raise ValueError(f"fit_input_normalization: observations lack keys {missing}")
        batch = {k: torch.as_tensor(np.asarray(obs[k]), dtype=torch.float32) for k in self.encoder.normalizers}
        self.encoder.fit_normalizers({k: v.to(self.device) for k, v in batch.items()}, enc.input_norm_min_std)
        if self.target_encoder is not self.encoder:
            self.target_encoder.normalizers.load_state_dict(self.encoder.normalizers.state_dict())
        return True

    def fit_to_demos(self, demo: Any) -> Dict[str, float]:
        """What training starts from, fitted to the demonstrations (a ReplayBuffer): the input
        normalisation and, with ``encoder.pretrain_steps``, the image trunk
        (``pretrain_image_trunk``, whose figures are returned; ``{}`` without it)."""
        self.fit_input_normalization(demo.observations())
        return self.pretrain_image_trunk(demo) if self.config.encoder.pretrain_steps else {}

    def pretrain_image_trunk(self, demo: Any, steps: Optional[int] = None,
                             batch_size: Optional[int] = None) -> Dict[str, float]:
        """Behaviour-clone the demonstrations through the whole observation encoder, frozen conv
        trunk included, then freeze the trunk again (``encoder.pretrain_steps``).

        Why: a frozen trunk is what makes learning from cameras affordable on a CPU (its
        features are cached per frame), but a randomly initialised one need not show where the
        object is, and no pretrained trunk can be downloaded on every robot's machine. Cloning
        the demo actions from their own frames teaches the trunk what the task looks at, from
        data the user records anyway. DrQ shifts keep ~1,000 frames from being memorised. The
        heads and the actor start from this fit (RLPD's BC term pulls the same way); the target
        encoder is synced and the feature caches emptied. ``demo`` needs ``sample(n)``
        (a ReplayBuffer). Returns the first and last BC losses and the seconds taken."""
        enc_cfg = self.config.encoder
        steps = enc_cfg.pretrain_steps if steps is None else int(steps)
        batch_size = enc_cfg.pretrain_batch if batch_size is None else int(batch_size)
        if not self.encoder.frozen:
            raise ValueError("pretrain_image_trunk: needs image observations and "
                             "encoder.freeze_image_encoder: true")
        trunks = list({id(e.trunk): e.trunk for e in self.encoder.images.values()}.values())
        params = ([p for p in self.encoder.parameters() if p.requires_grad]
                  + [p for t in trunks for p in t.parameters()] + list(self.actor.parameters()))
        opt = self._adam(params, self.config.actor_lr)
        for t in trunks:
            t.requires_grad_(True)
        start, losses = time.perf_counter(), []
        try:
            for _ in range(steps):
                batch = demo.sample(batch_size)
                obs = {k: random_shift(v, max(enc_cfg.augment_pad, 1), self.gen)
                       if k in self.encoder.image_keys else v
                       for k, v in self._obs_to(batch["obs"]).items()}
                target, _ = self._split_action(self.normalize_action(batch["action"].to(self.device)))
                with self._precision():
                    pred = self.actor.deterministic(self.encoder(obs))
                loss = ((pred.float() - target) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        finally:
            for t in trunks:
                t.requires_grad_(False)
        for cache in self.encoder.feature_caches.values():
            cache.entries.clear()
        if self.target_encoder is not self.encoder:
            self.target_encoder.load_state_dict(self.encoder.state_dict())
        return {"bc_loss_first": losses[0] if losses else float("nan"),
                "bc_loss_last": float(np.mean(losses[-20:])) if losses else float("nan"),
                "steps": steps, "seconds": time.perf_counter() - start}

    # ------------------------------------------------------------------ #
    # acting
    # ------------------------------------------------------------------ #
    def obs_to_tensor(self, obs: Any) -> Dict[str, torch.Tensor]:
        """Single numpy observation (dict or flat array) -> batch-1 tensors."""
        if self.flat_obs:
            obs = {next(iter(self.observation_space.spaces)): obs}
        if not isinstance(obs, Mapping):
            raise ValueError(f"RLPDAgent.act: expected a dict observation with keys {sorted(self.observation_space.spaces)}")
        out = {}
        for k, sp in self.observation_space.spaces.items():
            if k not in obs:
                raise ValueError(f"RLPDAgent.act: observation is missing key {k!r}; expected {sorted(self.observation_space.spaces)}")
            arr = np.asarray(obs[k])
            if arr.shape != sp.shape:
                raise ValueError(f"RLPDAgent.act: observation {k!r} has shape {arr.shape}, expected {sp.shape}")
            dt = np.uint8 if self.encoder.kinds[k] == "image" else np.float32
            out[k] = torch.from_numpy(np.ascontiguousarray(arr, dtype=dt)).unsqueeze(0).to(self.device)
        return out

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray:
        """Action in env units for one observation."""
        t = self.obs_to_tensor(obs)
        # Acting frames bypass the feature cache: an actor process would only fill it.
        feat = self.encoder(t, self.encoder.precompute(t, use_cache=False))
        if deterministic:
            a = self.actor.deterministic(feat)
        else:
            a, _ = self.actor.sample(feat, self._noise(feat.shape[0]))
        if self.gripper is not None:
            g = self.gripper.greedy(feat)
            if not deterministic and torch.rand((), generator=self.gen).item() < self.config.gripper_epsilon:
                g = torch.randint(0, 3, (1,), generator=self.gen).to(self.device)
            a = torch.cat([a[:, : self.gripper_dim], gripper_value(g).unsqueeze(-1), a[:, self.gripper_dim:]], -1)
        return (self.center + self.half_range * a)[0].cpu().numpy()

    def export_module(self) -> nn.Module:
        """Deterministic policy module (eval mode) for ONNX export; shares weights (deep-copied)."""
        gripper_q = copy.deepcopy(self.gripper.q) if self.gripper is not None else None
        mod = ExportedPolicy(copy.deepcopy(self.encoder), copy.deepcopy(self.actor), self.low.clone(), self.high.clone(),
                             gripper_q, max(self.gripper_dim, 0), self.action_dim)
        return mod.eval().requires_grad_(False)

    # ------------------------------------------------------------------ #
    # state
    # ------------------------------------------------------------------ #
    def actor_state_dict(self) -> Dict[str, Any]:
        """Only what acting needs: encoder + actor (+ gripper Q) weights."""
        sd: Dict[str, Any] = {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict()}
        if self.gripper is not None:
            sd["gripper"] = self.gripper.q.state_dict()
        return sd

    def load_actor_state_dict(self, sd: Mapping[str, Any]) -> None:
        want = {"encoder", "actor"} | ({"gripper"} if self.gripper is not None else set())
        if set(sd) != want:
            raise ValueError(f"load_actor_state_dict: expected keys {sorted(want)}, got {sorted(sd)}")
        try:
            self.encoder.load_state_dict(sd["encoder"])
            self.actor.load_state_dict(sd["actor"])
            if self.gripper is not None:
                self.gripper.q.load_state_dict(sd["gripper"])
        except RuntimeError as e:
            raise ValueError(f"load_actor_state_dict: weights do not match this agent's architecture: {e}") from e

    def state_dict(self) -> Dict[str, Any]:
        """Full checkpoint: weights, targets, optimizers, temperature, counters, RNG."""
        sd: Dict[str, Any] = {
            "config": asdict(self.config),
            "encoder": self.encoder.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": [p.clone() for p in self.critic_target_params],
            "log_alpha": self.log_alpha.detach().clone(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "num_critic_updates": self.num_critic_updates,
            "num_actor_updates": self.num_actor_updates,
            "rng": self.gen.get_state(),
        }
        if self.gripper is not None:
            sd["gripper"] = self.gripper.state_dict()
            sd["gripper_opt"] = self.gripper.optim.state_dict()
        return copy.deepcopy(sd)

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        need = ["encoder", "target_encoder", "actor", "critic", "critic_target", "log_alpha", "critic_opt", "actor_opt",
                "num_critic_updates", "num_actor_updates", "rng"] + (["gripper", "gripper_opt"] if self.gripper is not None else [])
        missing = [k for k in need if k not in sd]
        if missing:
            raise ValueError(f"RLPDAgent.load_state_dict: checkpoint is missing {missing}")
        saved = sd.get("config") or {}
        if saved.get("num_critics") not in (None, self.config.num_critics):
            raise ValueError(
                f"RLPDAgent.load_state_dict: the checkpoint has {saved['num_critics']} critics "
                f"(preset {saved.get('preset', 'from before presets')!r}), this agent "
                f"{self.config.num_critics} (preset {self.config.preset!r}); set "
                f"agent.num_critics: {saved['num_critics']} to continue that run")
        try:
            self.encoder.load_state_dict(sd["encoder"])
            if self.has_encoder_params:
                self.target_encoder.load_state_dict(sd["target_encoder"])
            self.actor.load_state_dict(sd["actor"])
            self.critic.load_state_dict(sd["critic"])
        except RuntimeError as e:
            raise ValueError(f"RLPDAgent.load_state_dict: weights do not match this agent's architecture: {e}") from e
        if len(sd["critic_target"]) != len(self.critic_target_params) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(sd["critic_target"], self.critic_target_params)
        ):
            raise ValueError("RLPDAgent.load_state_dict: critic_target shapes do not match this agent")
        with torch.no_grad():
            for dst, src in zip(self.critic_target_params, sd["critic_target"]):
                dst.copy_(src)
            self.log_alpha.copy_(sd["log_alpha"])
        self.critic_opt.load_state_dict(sd["critic_opt"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        if self.gripper is not None:
            self.gripper.load_state_dict(sd["gripper"])
            self.gripper.optim.load_state_dict(sd["gripper_opt"])
        self.num_critic_updates = int(sd["num_critic_updates"])
        self.num_actor_updates = int(sd["num_actor_updates"])
        self.gen.set_state(sd["rng"])
