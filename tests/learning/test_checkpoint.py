"""Pickle-free checkpoints: exact round trip, and clear errors for corrupt or mismatched files."""
import json
import os

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl.learning.checkpoint import (CheckpointError, load_agent, load_checkpoint,
                                          save_agent, save_checkpoint)
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig

OBS = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
ACT = spaces.Box(-1, 1, (3,), np.float32)


def agent(hidden=32, seed=0):
    return RLPDAgent(OBS, ACT, RLPDConfig(hidden_dims=(hidden, hidden), num_critics=2,
                                          batch_size=8, utd_ratio=2, seed=seed))


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": {"state": torch.randn(n, 6, generator=g)},
            "next_obs": {"state": torch.randn(n, 6, generator=g)},
            "action": torch.rand(n, 3, generator=g) * 2 - 1,
            "reward": torch.randn(n, generator=g), "terminated": torch.zeros(n),
            "truncated": torch.zeros(n)}


def test_generic_tree_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    state = {"a": torch.arange(6.0).reshape(2, 3), "n": np.arange(4, dtype=np.int32),
             "opt": {"state": {0: {"step": torch.tensor(5.0)}}, "groups": [{"betas": (0.9, 0.99)}]},
             "rng": rng.bit_generator.state, "x": None, "flag": True, "s": "text", "f": 0.25}
    save_checkpoint(str(tmp_path / "ck"), state)
    back = load_checkpoint(str(tmp_path / "ck"))
    assert torch.equal(back["a"], state["a"]) and np.array_equal(back["n"], state["n"])
    assert back["n"].dtype == np.int32
    assert list(back["opt"]["state"]) == [0] and back["opt"]["groups"][0]["betas"] == (0.9, 0.99)
    assert back["rng"] == state["rng"]
    assert (back["x"], back["flag"], back["s"], back["f"]) == (None, True, "text", 0.25)
    assert not any(n.endswith(".pkl") or n.endswith(".pt") for n in os.listdir(tmp_path / "ck"))


def test_agent_round_trip_continues_identically(tmp_path):
    a = agent()
    for i in range(3):
        a.update(None, batch(seed=i))
    save_agent(str(tmp_path / "ck"), a, {"updates": 3})
    b = agent(seed=99)  # different init and RNG: everything must come from the checkpoint
    assert load_agent(str(tmp_path / "ck"), b) == {"updates": 3}
    assert torch.equal(a.log_alpha, b.log_alpha)
    assert a.num_critic_updates == b.num_critic_updates == 6
    torch.manual_seed(0)
    ma = a.update(None, batch(seed=7))
    torch.manual_seed(0)
    mb = b.update(None, batch(seed=7))
    assert ma == mb  # same weights, optimizer moments, temperature and RNG -> same update
    obs = {"state": np.ones(6, np.float32)}
    np.testing.assert_array_equal(a.act(obs), b.act(obs))


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    path = tmp_path / "ck"
    save_agent(str(path), agent())
    blob = (path / "tensors.safetensors").read_bytes()
    (path / "tensors.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt.*SHA-256"):
        load_agent(str(path), agent())
    save_agent(str(path), agent())
    (path / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_agent(str(path), agent())
    save_agent(str(path), agent())
    doc = json.loads((path / "state.json").read_text())
    doc["version"] = 99
    (path / "state.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="version 99"):
        load_agent(str(path), agent())
    with pytest.raises(CheckpointError, match="expected state.json"):
        load_agent(str(tmp_path / "nothing"), agent())


def test_mismatched_architecture_names_the_difference(tmp_path):
    save_agent(str(tmp_path / "ck"), agent(hidden=32))
    with pytest.raises(CheckpointError, match="does not fit.*hidden_dims"):
        load_agent(str(tmp_path / "ck"), agent(hidden=16))


def test_crash_between_renames_falls_back_to_previous(tmp_path):
    path = tmp_path / "ck"
    save_checkpoint(str(path), {"v": 1})
    os.rename(path, str(path) + ".old")  # as if the process died mid-swap
    assert load_checkpoint(str(path)) == {"v": 1}
    save_checkpoint(str(path), {"v": 2})
    assert load_checkpoint(str(path)) == {"v": 2} and not os.path.exists(str(path) + ".old")


def image_agent(size, low=-1.0):
    obs = spaces.Dict({"image_wrist": spaces.Box(0, 255, (size, size, 3), np.uint8),
                       "state": spaces.Box(-np.inf, np.inf, (6,), np.float32)})
    act = spaces.Box(low, 1, (3,), np.float32)
    return RLPDAgent(obs, act, RLPDConfig(hidden_dims=(32, 32), num_critics=2, batch_size=8))


def test_other_spaces_are_refused_even_when_weights_fit(tmp_path):
    # The image encoder's weights do not depend on the image size, nor the networks' on the
    # action bounds: without the stored spaces both loads would succeed silently.
    save_agent(str(tmp_path / "ck"), image_agent(24))
    with pytest.raises(CheckpointError, match=r"other observation/action spaces.*"
                       r"action\.low: checkpoint \[-1\.0, -1\.0, -1\.0\], now \[-2\.0, -2\.0, -2\.0\]; "
                       r"observation\.image_wrist\.shape: checkpoint \[24, 24, 3\], now \[20, 20, 3\]$"):
        load_agent(str(tmp_path / "ck"), image_agent(20, low=-2.0))
    save_agent(str(tmp_path / "ck2"), agent())
    with pytest.raises(CheckpointError, match=r"observation\.image_wrist: checkpoint \(absent\), now \{"):
        load_agent(str(tmp_path / "ck2"), image_agent(24))
    assert load_agent(str(tmp_path / "ck"), image_agent(24)) == {}


def test_checkpoint_without_spaces_record_still_loads(tmp_path):
    path = tmp_path / "ck"
    save_agent(str(path), agent(), {"updates": 1})
    doc = json.loads((path / "state.json").read_text())
    assert doc["tree"]["spaces"]["action"] == {"shape": [3], "low": [-1.0] * 3, "high": [1.0] * 3}
    del doc["tree"]["spaces"]  # as written by builds before the record existed
    (path / "state.json").write_text(json.dumps(doc))
    assert load_agent(str(path), agent()) == {"updates": 1}
