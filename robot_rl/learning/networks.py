"""Neural network building blocks for the robot_rl learning core.

Everything here is plain PyTorch so the same modules are used for training on
CPU/GPU and for ONNX export of the actor (see ``rlpd.RLPDAgent.export_module``).

Design notes (why, not what):

* LayerNorm MLPs: RLPD (Ball et al., 2023) showed that LayerNorm in the critic
  bounds Q extrapolation on out-of-distribution actions, which is what makes
  learning from offline/demo data at a high update-to-data ratio stable.
* Images are stored and fed as ``uint8`` ``B x H x W x C`` (what cameras and
  the replay buffer produce); conversion to float and to ``B x C x H x W``
  happens inside the encoder so exported modules take raw camera frames.
* SERL (Luo et al., 2024) pools conv features with a learned spatial
  embedding ("spatial softmax"-like kernel) instead of global average pooling
  so that *where* something is in the image survives pooling.
* DrQ (Kostrikov et al., 2020) random shifts (pad 4 + random crop) are the
  image augmentation used by SERL/HIL-SERL; we implement the replicate padding
  by clamping indices so the whole batch is shifted with one gather.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium import spaces

from .config import EncoderConfig  # noqa: F401  (re-exported)
from robot_rl.spaces import as_dict_space, classify_observation_space  # noqa: F401  (re-exported)

__all__ = [
    "mlp",
    "SmallCNN",
    "ResNet10",
    "SpatialEmbedding",
    "ImageEncoder",
    "StateEncoder",
    "TactileEncoder",
    "EncoderConfig",
    "ObservationEncoder",
    "FrameFeatureCache",
    "random_shift",
    "classify_observation_space",
]


# --------------------------------------------------------------------------- #
# MLP
# --------------------------------------------------------------------------- #
def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: Optional[int] = None,
    layer_norm: bool = True,
    activation: type = nn.ReLU,
) -> nn.Sequential:
    """Linear -> LayerNorm -> activation blocks (RLPD ordering), optional head.

    ``out_dim=None`` returns only the hidden trunk (its output size is
    ``hidden[-1]``).
    """
    if in_dim <= 0:
        raise ValueError(f"mlp: in_dim must be > 0, got {in_dim}")
    layers: List[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(activation())
        d = h
    if out_dim is not None:
        layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- #
# Image augmentation
# --------------------------------------------------------------------------- #
def random_shift(
    images: torch.Tensor, pad: int = 4, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """DrQ random shift on a batch of ``B x H x W x C`` images (any dtype).

    Equivalent to replicate-padding by ``pad`` pixels and cropping back to
    ``H x W`` at an independent random offset per sample. Implemented as one
    advanced-indexing gather with clamped indices (clamping == replicate pad),
    so it works directly on uint8 (4x less memory traffic than float) and has
    no Python loop over the batch. Returns the same dtype/layout.
    """
    if images.dim() != 4:
        raise ValueError(f"random_shift expects B x H x W x C, got shape {tuple(images.shape)}")
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    dev = images.device
    off = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=generator, device="cpu").to(dev)
    rows = (torch.arange(h, device=dev).unsqueeze(0) + off[0] - pad).clamp_(0, h - 1)  # B x H
    cols = (torch.arange(w, device=dev).unsqueeze(0) + off[1] - pad).clamp_(0, w - 1)  # B x W
    bidx = torch.arange(b, device=dev).view(b, 1, 1)
    return images[bidx, rows.unsqueeze(2), cols.unsqueeze(1)]


def _to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 B x H x W x C -> float32 B x C x H x W in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0) if images.dtype == torch.uint8 else images.permute(0, 3, 1, 2).float()


# --------------------------------------------------------------------------- #
# Conv trunks
# --------------------------------------------------------------------------- #
class SmallCNN(nn.Module):
    """Default trainable conv trunk: 4 conv layers, 3 stride-2, ReLU.

    128x128 input -> ``channels x 16 x 16`` feature map. Small enough to train
    on CPU for tests; the spatial-embedding head does the pooling.
    """

    def __init__(self, in_channels: int = 3, channels: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(min(32, cout // 4), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(min(32, cout // 4), cout)
        self.down: Optional[nn.Module] = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(min(32, cout // 4), cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet10(nn.Module):
    """ResNet-10 (one BasicBlock per stage, widths 64/128/256/512).

    SERL uses a ResNet-10 pretrained on ImageNet and keeps it frozen. We use
    GroupNorm (as SERL's ResNetV1 does) so a frozen trunk behaves the same in
    train and eval mode. Weights are loaded *only* from a local safetensors
    file whose tensor names match ``state_dict()`` of this module; nothing is
    ever downloaded. ImageNet mean/std normalisation is applied inside.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.GroupNorm(min(32, widths[0] // 4), widths[0]),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks.append(_BasicBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = cin
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)[:, :in_channels])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)[:, :in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem((x - self.mean) / self.std))

    def load_pretrained(self, path: str) -> None:
        """Load weights from a local safetensors file (strict key/shape check)."""
        from safetensors.torch import load_file

        if not os.path.isfile(path):
            raise ValueError(f"ResNet10: pretrained weights file not found: {path!r} (expected a local .safetensors file)")
        try:
            sd = load_file(path)
        except Exception as e:  # safetensors raises its own error types
            raise ValueError(f"ResNet10: could not read safetensors file {path!r}: {e}") from e
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        bad_shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or bad_shape:
            raise ValueError(
                f"ResNet10: weights in {path!r} do not match the architecture: "
                f"missing={missing[:5]} unexpected={unexpected[:5]} "
                f"shape_mismatch={[(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in bad_shape[:5]]}"
            )
        self.load_state_dict(sd)


# --------------------------------------------------------------------------- #
# Heads
# --------------------------------------------------------------------------- #
class SpatialEmbedding(nn.Module):
    """SERL spatial-embedding pooling.

    For each channel ``c`` and learned kernel ``k``: ``sum_{h,w} F[c,h,w] *
    K[c,h,w,k]``; result ``C*K`` features -> Linear -> LayerNorm -> tanh.
    Keeps spatial information that global average pooling would discard.
    """

    def __init__(self, channels: int, height: int, width: int, num_kernels: int = 8, out_dim: int = 256):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_kernels))
        nn.init.normal_(self.kernel, std=1.0 / math.sqrt(height * width))
        self.proj = nn.Linear(channels * num_kernels, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.out_dim = out_dim

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feat.shape
        # (C, B, HW) @ (C, HW, K) -> (C, B, K): one batched matmul over channels.
        pooled = torch.bmm(feat.reshape(b, c, h * w).transpose(0, 1), self.kernel)
        pooled = pooled.transpose(0, 1).reshape(b, c * self.kernel.shape[2])
        return torch.tanh(self.norm(self.proj(pooled)))


class ImageEncoder(nn.Module):
    """Conv trunk + spatial-embedding head for one camera.

    ``trunk`` may be shared between cameras (frozen pretrained ResNet) while
    each camera keeps its own trainable head.
    """

    def __init__(self, trunk: nn.Module, image_shape: Tuple[int, int, int], num_kernels: int, out_dim: int):
        super().__init__()
        self.trunk = trunk
        h, w, c = image_shape
        with torch.no_grad():
            probe = trunk(torch.zeros(1, c, h, w))
        self.head = SpatialEmbedding(probe.shape[1], probe.shape[2], probe.shape[3], num_kernels, out_dim)
        self.out_dim = out_dim

    def trunk_features(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.trunk(_to_float_nchw(images_u8))

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk_features(images_u8))


class InputNormalizer(nn.Module):
    """Fixed affine normalisation of one vector/grid observation: (x - shift) / scale, clipped.

    Fitted once from the demonstrations (``fit``), then frozen: stored as buffers, so it travels
    with checkpoints and actor weights and is baked into the exported ONNX graph. Unfitted it is
    the identity. Why: raw robot states mix metres, m/s and flags, and the few-millimetre
    differences that decide a grasp are invisible to an MLP at raw scale.
    """

    def __init__(self, shape: Tuple[int, ...], per_element: bool, clip: float = 10.0):
        super().__init__()
        stat_shape = tuple(shape) if per_element else (1,)
        self.register_buffer("shift", torch.zeros(stat_shape))
        self.register_buffer("scale", torch.ones(stat_shape))
        self.per_element = per_element
        self.clip = clip

    @torch.no_grad()
    def fit(self, x: torch.Tensor, min_std: float) -> None:
        x = x.float().reshape(x.shape[0], *self.shift.shape) if self.per_element else x.float().reshape(-1)
        self.shift.copy_(x.mean(0))
        self.scale.copy_(x.std(0, unbiased=False).clamp_min(min_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.shift) / self.scale).clamp(-self.clip, self.clip)


class StateEncoder(nn.Module):
    """Proprioception/state vector -> Linear -> LayerNorm -> tanh (SERL)."""

    def __init__(self, in_dim: int, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.Tanh())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TactileEncoder(nn.Module):
    """Tactile grid (float32 ``H x W`` or ``H x W x C`` per sensor).

    ``mode='mlp'``: flatten -> Linear -> LayerNorm -> tanh (cheap, default;
    tactile pads are small). ``mode='cnn'``: two small convs + spatial
    embedding, for large taxel arrays where locality matters.
    """

    def __init__(self, shape: Tuple[int, ...], out_dim: int = 64, mode: str = "mlp"):
        super().__init__()
        if mode not in ("mlp", "cnn"):
            raise ValueError(f"TactileEncoder: mode must be 'mlp' or 'cnn', got {mode!r}")
        self.mode = mode
        self.shape = tuple(shape)
        c = 1 if len(shape) == 2 else shape[2]
        if mode == "mlp":
            self.net = nn.Sequential(nn.Linear(int(np.prod(shape)), out_dim), nn.LayerNorm(out_dim), nn.Tanh())
        else:
            trunk = nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
            self.trunk = trunk
            self.head = SpatialEmbedding(16, shape[0], shape[1], num_kernels=4, out_dim=out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.mode == "mlp":
            return self.net(x.reshape(b, -1))
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return self.head(self.trunk(x))


class FrameFeatureCache:
    """Frozen-trunk features per distinct camera frame, found by the frame's content.

    Replay batches draw the same stored frames again and again (every frame is sampled ~UTD x
    batch / buffer-size times per env step, and once as ``obs``, once as ``next_obs``); with a
    frozen trunk and no augmentation its features of a frame never change, so each is computed
    once. Keyed by a 128-bit BLAKE2b digest of the uint8 pixels (no replay indices needed, so
    demo, online and acting frames share entries; identical frames rightly share features).
    At most ``max_frames`` entries, least recently used dropped first. A deep copy (the target
    encoder, an exported policy) starts empty: the entries are a speed-up, not state.
    """

    def __init__(self, max_frames: int):
        if max_frames < 1:
            raise ValueError(f"FrameFeatureCache: max_frames must be >= 1, got {max_frames}")
        self.max_frames = int(max_frames)
        self.entries: "OrderedDict[bytes, torch.Tensor]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __deepcopy__(self, memo) -> "FrameFeatureCache":
        return FrameFeatureCache(self.max_frames)

    def features(self, images_u8: torch.Tensor, trunk) -> torch.Tensor:
        """``trunk(images)`` for a ``B x H x W x C`` uint8 batch, computing only unseen frames."""
        pixels = images_u8.detach().cpu().contiguous().numpy()
        keys = [hashlib.blake2b(pixels[i].tobytes(), digest_size=16).digest() for i in range(len(pixels))]
        missing = [i for i, key in enumerate(keys) if key not in self.entries]
        fresh = {}
        if missing:
            computed = trunk(images_u8[missing])
            for row, i in enumerate(missing):
                fresh[keys[i]] = computed[row]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        out = []
        for key in keys:
            feat = fresh.get(key)
            if feat is None:
                feat = self.entries[key]
                self.entries.move_to_end(key)
            else:
                self.entries[key] = feat
            out.append(feat)
        while len(self.entries) > self.max_frames:
            self.entries.popitem(last=False)
        return torch.stack(out)


# --------------------------------------------------------------------------- #
# Observation space handling
# --------------------------------------------------------------------------- #
class ObservationEncoder(nn.Module):
    """Dict observation -> one feature vector, driven by a ``spaces.Dict``.

    Split into two stages so a *frozen* image trunk is evaluated once per
    batch (under ``no_grad``) and its features are shared by the actor and all
    critics: ``precompute(obs)`` returns trunk features for frozen cameras,
    ``forward(obs, pre)`` does the trainable remainder.
    """

    def __init__(self, observation_space: spaces.Space, config: Optional[EncoderConfig] = None):
        super().__init__()
        self.config = cfg = config or EncoderConfig()
        self.space = as_dict_space(observation_space)
        self.kinds = classify_observation_space(self.space)
        self.image_keys = sorted(k for k, v in self.kinds.items() if v == "image")
        self.tactile_keys = sorted(k for k, v in self.kinds.items() if v == "tactile")
        self.state_keys = sorted(k for k, v in self.kinds.items() if v == "state")
        if cfg.image_encoder not in ("small_cnn", "resnet10"):
            raise ValueError(f"EncoderConfig.image_encoder must be 'small_cnn' or 'resnet10', got {cfg.image_encoder!r}")
        if cfg.pretrained_weights is not None and cfg.image_encoder != "resnet10":
            raise ValueError("EncoderConfig.pretrained_weights is only supported with image_encoder='resnet10'")
        self.frozen = bool(cfg.freeze_image_encoder) and bool(self.image_keys)

        self.images = nn.ModuleDict()
        shared_trunk: Optional[nn.Module] = None
        for k in self.image_keys:
            shape = tuple(self.space[k].shape)
            if cfg.image_encoder == "resnet10":
                # One trunk shared by all cameras when frozen (pretrained,
                # identical weights anyway); separate trainable trunks otherwise.
                if shared_trunk is None or not self.frozen:
                    trunk = ResNet10(in_channels=shape[2])
                    if cfg.pretrained_weights:
                        trunk.load_pretrained(cfg.pretrained_weights)
                    shared_trunk = trunk
                trunk = shared_trunk
            else:
                trunk = SmallCNN(shape[2], cfg.cnn_channels)
            self.images[k] = ImageEncoder(trunk, shape, cfg.num_spatial_kernels, cfg.image_feature_dim)
        if self.frozen:
            for enc in self.images.values():
                enc.trunk.requires_grad_(False)
        if cfg.cache_image_features and not (self.frozen and not cfg.augment):
            raise ValueError("EncoderConfig.cache_image_features needs freeze_image_encoder=True and "
                             "augment=False (otherwise the trunk's features of a frame change)")
        self.feature_caches: Dict[str, FrameFeatureCache] = (
            {k: FrameFeatureCache(cfg.feature_cache_frames) for k in self.image_keys}
            if cfg.cache_image_features and self.image_keys else {})

        self.tactile = nn.ModuleDict(
            {k: TactileEncoder(tuple(self.space[k].shape), cfg.tactile_feature_dim, cfg.tactile_mode) for k in self.tactile_keys}
        )
        # State vectors per element, tactile grids with one shift/scale per sensor (a taxel never
        # touched in the demos must not get a near-zero scale).
        self.normalizers = nn.ModuleDict({k: InputNormalizer(tuple(self.space[k].shape), self.kinds[k] == "state")
                                          for k in self.state_keys + self.tactile_keys})
        self.state_dim = int(sum(int(np.prod(self.space[k].shape)) for k in self.state_keys))
        only_state = not self.image_keys and not self.tactile_keys
        self.state: Optional[StateEncoder] = None
        if self.state_dim > 0 and (not only_state or cfg.encode_state_only):
            self.state = StateEncoder(self.state_dim, cfg.state_feature_dim)
        self.out_dim = (
            sum(e.out_dim for e in self.images.values())
            + sum(e.out_dim for e in self.tactile.values())
            + (self.state.out_dim if self.state is not None else self.state_dim)
        )

    # -- validation --------------------------------------------------------- #
    def check_obs(self, obs: Mapping[str, torch.Tensor]) -> None:
        """Raise ValueError for missing keys / wrong per-sample shapes."""
        for k in self.kinds:
            if k not in obs:
                raise ValueError(f"observation is missing key {k!r}; expected keys {sorted(self.kinds)}")
            want = tuple(self.space[k].shape)
            got = tuple(obs[k].shape[1:])
            if got != want:
                raise ValueError(f"observation {k!r}: expected per-sample shape {want}, got {got} (full {tuple(obs[k].shape)})")

    def fit_normalizers(self, obs: Mapping[str, torch.Tensor], min_std: float) -> None:
        """Fit the state/tactile input normalisation to a batch of observations (the demos)."""
        for k, norm in self.normalizers.items():
            norm.fit(obs[k], min_std)

    # -- forward ------------------------------------------------------------ #
    def augment(self, obs: Mapping[str, torch.Tensor], generator: Optional[torch.Generator]) -> Dict[str, torch.Tensor]:
        if not self.config.augment or not self.image_keys:
            return dict(obs)
        out = dict(obs)
        for k in self.image_keys:
            out[k] = random_shift(obs[k], self.config.augment_pad, generator)
        return out

    @torch.no_grad()
    def precompute(self, obs: Mapping[str, torch.Tensor], use_cache: bool = True) -> Optional[Dict[str, torch.Tensor]]:
        """Frozen-trunk features (``None`` if no frozen trunk); from the feature caches where
        ``cache_image_features`` is on and ``use_cache``."""
        if not self.frozen:
            return None
        if self.feature_caches and use_cache:
            return {k: self.feature_caches[k].features(obs[k], self.images[k].trunk_features) for k in self.image_keys}
        return {k: self.images[k].trunk_features(obs[k]) for k in self.image_keys}

    def forward(self, obs: Mapping[str, torch.Tensor], pre: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        feats: List[torch.Tensor] = []
        for k in self.image_keys:
            enc = self.images[k]
            if pre is not None:
                feats.append(enc.head(pre[k]))
            else:
                feats.append(enc(obs[k]))
        for k in self.tactile_keys:
            feats.append(self.tactile[k](self.normalizers[k](obs[k])))
        if self.state_keys:
            norm = [self.normalizers[k](obs[k]) for k in self.state_keys]
            s = torch.cat([x.reshape(x.shape[0], -1) for x in norm], dim=-1) if len(norm) > 1 else norm[0]
            feats.append(self.state(s) if self.state is not None else s)
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)
