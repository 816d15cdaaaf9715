import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces

from robot_rl.learning.networks import (
    EncoderConfig,
    ObservationEncoder,
    ResNet10,
    SpatialEmbedding,
    classify_observation_space,
    random_shift,
)


def test_random_shift_matches_replicate_pad_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 12, 10, 3), dtype=torch.uint8, generator=g)
    g1 = torch.Generator().manual_seed(5)
    y = random_shift(x, pad=4, generator=g1)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    # Re-derive the offsets from the same generator stream and check every sample.
    g2 = torch.Generator().manual_seed(5)
    off = torch.randint(0, 9, (2, 16, 1), generator=g2)
    padded = F.pad(x.permute(0, 3, 1, 2).float(), (4, 4, 4, 4), mode="replicate").permute(0, 2, 3, 1)
    shifted = 0
    for i in range(16):
        dy, dx = int(off[0, i]), int(off[1, i])
        ref = padded[i, dy : dy + 12, dx : dx + 10].to(torch.uint8)
        assert torch.equal(y[i], ref), i
        shifted += (dy, dx) != (4, 4)
    assert shifted > 8  # independent per-sample shifts
    assert torch.equal(random_shift(x, pad=0), x)
    with pytest.raises(ValueError, match="B x H x W x C"):
        random_shift(x[0])


def test_spatial_embedding_shapes_and_grad():
    se = SpatialEmbedding(6, 5, 4, num_kernels=3, out_dim=11)
    f = torch.randn(2, 6, 5, 4, requires_grad=True)
    y = se(f)
    assert y.shape == (2, 11) and bool((y.abs() <= 1).all())
    y.sum().backward()
    assert se.kernel.grad is not None and f.grad.abs().sum() > 0


def test_classification_and_errors():
    sp = spaces.Dict(
        {
            "cam": spaces.Box(0, 255, (8, 8, 3), np.uint8),
            "q": spaces.Box(-1, 1, (7,), np.float64),
            "tac": spaces.Box(-1, 1, (4, 4), np.float32),
        }
    )
    assert classify_observation_space(sp) == {"cam": "image", "q": "state", "tac": "tactile"}
    assert classify_observation_space(spaces.Box(-1, 1, (3,))) == {"state": "state"}
    with pytest.raises(ValueError, match="'bad'"):
        classify_observation_space(spaces.Dict({"bad": spaces.Box(0, 255, (8, 8), np.uint8)}))
    with pytest.raises(ValueError, match="Box or Dict"):
        classify_observation_space(spaces.Discrete(3))


def test_observation_encoder_dict_and_frozen_precompute():
    sp = spaces.Dict(
        {
            "a": spaces.Box(0, 255, (24, 24, 3), np.uint8),
            "b": spaces.Box(0, 255, (24, 24, 3), np.uint8),
            "q": spaces.Box(-1, 1, (3,), np.float32),
            "tac": spaces.Box(-1, 1, (5, 5), np.float32),
        }
    )
    enc = ObservationEncoder(sp, EncoderConfig(cnn_channels=4, image_feature_dim=16, state_feature_dim=8, tactile_feature_dim=6,
                                               tactile_mode="cnn", freeze_image_encoder=True))
    assert enc.out_dim == 16 + 16 + 6 + 8
    obs = {"a": torch.randint(0, 256, (3, 24, 24, 3), dtype=torch.uint8), "b": torch.randint(0, 256, (3, 24, 24, 3), dtype=torch.uint8),
           "q": torch.randn(3, 3), "tac": torch.randn(3, 5, 5)}
    pre = enc.precompute(obs)
    assert set(pre) == {"a", "b"} and not pre["a"].requires_grad
    assert torch.allclose(enc(obs, pre), enc(obs), atol=1e-6)
    assert not any(p.requires_grad for p in enc.images["a"].trunk.parameters())
    with pytest.raises(ValueError, match="'q'"):
        enc.check_obs(dict(obs, q=torch.randn(3, 4)))


def test_resnet10_loads_local_safetensors_only(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = ResNet10()
    path = tmp_path / "resnet10.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    sp = spaces.Dict({"cam": spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    enc = ObservationEncoder(sp, EncoderConfig(image_encoder="resnet10", pretrained_weights=str(path), freeze_image_encoder=True))
    x = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    ref = src(x.permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(enc.precompute({"cam": x})["cam"], ref, atol=1e-5)
    with pytest.raises(ValueError, match="not found"):
        ResNet10().load_pretrained(str(tmp_path / "missing.safetensors"))
    save_file({"stem.0.weight": torch.zeros(1)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="do not match"):
        ResNet10().load_pretrained(str(tmp_path / "bad.safetensors"))


def test_input_normalisation_fitted_to_demos_is_exported_and_travels_with_weights(tmp_path):
    from robot_rl.learning.config import EncoderConfig
    from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig

    space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                         "tactile_left": spaces.Box(0, np.inf, (2, 2), np.float32)})
    rng = np.random.default_rng(0)
    demos = {"state": np.stack([rng.normal(0.5, 0.02, 256), rng.normal(-3.0, 2.0, 256),
                                np.full(256, 0.025)], -1).astype(np.float32),
             "tactile_left": rng.uniform(0, 4, (256, 2, 2)).astype(np.float32)}
    agent = RLPDAgent(space, spaces.Box(-1, 1, (2,), np.float32), RLPDConfig(num_critics=2))
    assert agent.fit_input_normalization(demos)
    enc = agent.encoder
    z = enc.normalizers["state"](torch.from_numpy(demos["state"]))
    # per element: the varying columns become zero-mean unit-std; the constant one is floored
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :2].std(0, unbiased=False), 1, atol=1e-4)
    assert enc.normalizers["state"].scale[2] == pytest.approx(agent.config.encoder.input_norm_min_std)
    assert enc.normalizers["tactile_left"].scale.shape == (1,)  # one scale per sensor
    far = enc.normalizers["state"](torch.tensor([[1e3, 0.0, 0.025]]))
    assert far[0, 0] == 10.0  # clipped
    # the target encoder and a fresh agent loading the actor weights see the same statistics
    assert torch.equal(agent.target_encoder.normalizers["state"].shift, enc.normalizers["state"].shift)
    other = RLPDAgent(space, spaces.Box(-1, 1, (2,), np.float32), RLPDConfig(num_critics=2))
    other.load_actor_state_dict(agent.actor_state_dict())
    obs = {"state": demos["state"][0], "tactile_left": demos["tactile_left"][0]}
    np.testing.assert_allclose(other.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    # and the exported module applies them (deterministic action equals the agent's)
    module = agent.export_module()
    out = module({k: torch.from_numpy(v[None]) for k, v in obs.items()})
    np.testing.assert_allclose(out[0].numpy(), agent.act(obs, deterministic=True), atol=1e-6)
    off = RLPDAgent(space, spaces.Box(-1, 1, (2,), np.float32),
                    RLPDConfig(num_critics=2, encoder=EncoderConfig(normalize_inputs=False)))
    assert not off.fit_input_normalization(demos)
    assert torch.equal(off.encoder.normalizers["state"].scale, torch.ones(3))
