"""A small policy with the agent's export contract, used as the test model.

``forward(obs)`` takes raw observations (float32 state, uint8 H x W x C image, batch
first) and returns a float32 B x A action, with normalisation and action scaling inside
the module -- the same signature ``agent.export_module()`` provides.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robot_rl.deploy.metadata import ActionSpec, ObservationTerm, PolicyMetadata

STATE_DIM = 12
IMAGE_SHAPE = (32, 32, 3)
JOINTS = tuple(f"joint_{i}" for i in range(6))
ACTION_NAMES = (*JOINTS, "gripper")


class TinyPolicy(nn.Module):
    def __init__(self, state_dim: int = STATE_DIM, image_shape=IMAGE_SHAPE, action_dim: int = len(ACTION_NAMES)):
        super().__init__()
        self.register_buffer("state_mean", torch.linspace(-0.5, 0.5, state_dim))
        self.register_buffer("state_std", torch.linspace(0.5, 2.0, state_dim))
        self.register_buffer("action_scale", torch.linspace(0.5, 1.5, action_dim))
        self.register_buffer("action_offset", torch.linspace(-0.1, 0.1, action_dim))
        self.state_mlp = nn.Sequential(nn.Linear(state_dim, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU())
        c = image_shape[2]
        self.cnn = nn.Sequential(
            nn.Conv2d(c, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(64 + 16, action_dim)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        state = (obs["state"] - self.state_mean) / self.state_std
        image = obs["wrist_rgb"].permute(0, 3, 1, 2).to(torch.float32) / 255.0
        z = torch.cat([self.state_mlp(state), self.cnn(image)], dim=-1)
        return self.action_offset + self.action_scale * torch.tanh(self.head(z))


def make_policy(seed: int = 0) -> TinyPolicy:
    torch.manual_seed(seed)
    return TinyPolicy().eval()


def make_metadata(**overrides) -> PolicyMetadata:
    fields = dict(
        observations=(
            ObservationTerm("state", (STATE_DIM,), "float32"),
            ObservationTerm("wrist_rgb", IMAGE_SHAPE, "uint8"),
        ),
        action=ActionSpec(
            names=ACTION_NAMES,
            scale=tuple(np.linspace(0.5, 1.5, len(ACTION_NAMES)).tolist()),
            offset=tuple(np.linspace(-0.1, 0.1, len(ACTION_NAMES)).tolist()),
        ),
        control_rate_hz=20.0,
        robot_description_id="test_arm_v1",
        joint_names=JOINTS,
        training_run_id="run-0001",
        policy_version="1.0.0",
    )
    fields.update(overrides)
    return PolicyMetadata(**fields)


def example_obs(batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "state": torch.randn(batch, STATE_DIM, generator=g),
        "wrist_rgb": torch.randint(0, 256, (batch, *IMAGE_SHAPE), generator=g, dtype=torch.uint8),
    }


def single_obs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.standard_normal(STATE_DIM).astype(np.float32),
        "wrist_rgb": rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8),
    }


class ExportModeDiffers(TinyPolicy):
    """Behaves differently while being exported than in eager mode.

    Stands in for the real-world failure parity checking exists for (data-dependent
    Python control flow frozen at trace time, an op lowered differently): what ONNX
    sees is not what torch runs.
    """

    def forward(self, obs):
        out = super().forward(obs)
        if torch.jit.is_tracing() or torch.compiler.is_exporting():
            out = out + 1e-3
        return out


class NonFinitePolicy(TinyPolicy):
    def forward(self, obs):
        return super().forward(obs) * float("nan")


def factory(checkpoint: str | None = None) -> TinyPolicy:
    """CLI ``--factory`` target; a real factory would load ``checkpoint``."""
    return make_policy(seed=0)
