"""Cached frozen-trunk image features (EncoderConfig.cache_image_features): the same features
as computing them, the trunk run only on frames not seen before, a bounded cache, and refusals
where caching would be wrong (a trainable trunk, DrQ shifts)."""
import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl.learning.config import EncoderConfig, RLPDConfig
from robot_rl.learning.networks import FrameFeatureCache, ObservationEncoder
from robot_rl.learning.rlpd import RLPDAgent
from robot_rl.schema import ConfigError

SPACE = spaces.Dict({"state": spaces.Box(-1, 1, (3,), np.float32),
                     "image_front": spaces.Box(0, 255, (32, 32, 3), np.uint8)})


def frames(n, seed):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), np.uint8))


def counting(trunk_fn, calls):
    def run(images):
        calls.append(len(images))
        return trunk_fn(images)
    return run


def test_cached_features_equal_computed_and_trunk_runs_once_per_frame():
    enc = ObservationEncoder(SPACE, EncoderConfig(freeze_image_encoder=True, augment=False,
                                                  cache_image_features=True))
    images = frames(6, 0)
    direct = enc.precompute({"image_front": images}, use_cache=False)["image_front"]
    calls = []
    trunk = counting(enc.images["image_front"].trunk_features, calls)
    cache = enc.feature_caches["image_front"]
    first = cache.features(images, trunk)
    # A batch that repeats two seen frames and brings one new one: only the new one is computed.
    batch = torch.cat([images[[4, 1]], frames(1, 1)])
    second = cache.features(batch, trunk)
    assert calls == [6, 1]
    torch.testing.assert_close(first, direct)
    torch.testing.assert_close(second[:2], direct[[4, 1]])
    assert (cache.hits, cache.misses, len(cache)) == (2, 7, 7)
    # The encoder's own path uses the cache too.
    torch.testing.assert_close(enc.precompute({"image_front": images})["image_front"], direct)
    assert cache.hits == 8


def test_cache_drops_least_recently_used_and_copies_start_empty():
    cache = FrameFeatureCache(max_frames=3)
    trunk = lambda x: x.float().mean(dim=(1, 2, 3), keepdim=True)  # noqa: E731
    images = frames(4, 2)
    cache.features(images[:3], trunk)
    cache.features(images[[0]], trunk)        # 0 is now the most recent
    cache.features(images[[3]], trunk)        # evicts 1, the least recent
    calls = []
    cache.features(images[[0, 2, 3]], counting(trunk, calls))
    assert calls == [] and len(cache) == 3
    cache.features(images[[1]], counting(trunk, calls))
    assert calls == [1]
    assert len(copy.deepcopy(cache)) == 0


def test_agent_trains_and_exports_with_cached_features():
    cfg = RLPDConfig(num_critics=2, utd_ratio=2, batch_size=8, hidden_dims=(32, 32),
                     encoder=EncoderConfig(freeze_image_encoder=True, augment=False,
                                           cache_image_features=True, image_feature_dim=16,
                                           cnn_channels=8))
    agent = RLPDAgent(SPACE, spaces.Box(-1, 1, (2,), np.float32), cfg)
    pool = frames(10, 3)
    gen = np.random.default_rng(4)

    def batch(n):
        idx = gen.integers(0, 10, n)
        return {"obs": {"state": torch.zeros(n, 3), "image_front": pool[idx]},
                "next_obs": {"state": torch.zeros(n, 3), "image_front": pool[(idx + 1) % 10]},
                "action": torch.zeros(n, 2), "reward": torch.ones(n), "terminated": torch.zeros(n)}

    before = [p.detach().clone() for p in agent.critic.parameters()]
    for _ in range(3):
        agent.update(batch(8), batch(8))
    cache = agent.encoder.feature_caches["image_front"]
    assert len(cache) <= 10 and cache.hits > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters()))
    obs = {"state": np.zeros(3, np.float32), "image_front": pool[0].numpy()}
    exported = agent.export_module()
    torch.testing.assert_close(exported({k: torch.as_tensor(v)[None] for k, v in obs.items()})[0],
                               torch.as_tensor(agent.act(obs, deterministic=True)))
    assert len(exported.encoder.feature_caches["image_front"]) == 0


@pytest.mark.parametrize("settings, needs", [
    ({"cache_image_features": True, "augment": False}, "freeze_image_encoder"),
    ({"cache_image_features": True, "freeze_image_encoder": True}, "augment: false"),
])
def test_cache_refused_where_features_change(settings, needs):
    with pytest.raises(ConfigError, match=f"cache_image_features: needs {needs}"):
        EncoderConfig(**settings).validate()
    with pytest.raises(ValueError, match="cache_image_features needs"):
        ObservationEncoder(SPACE, EncoderConfig(**settings))
