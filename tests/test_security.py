"""Run keystore and signed frames: round trips, tampering, unknown keys, roles, actor binding."""
from __future__ import annotations

import json
import os
import stat
import struct

import numpy as np
import pytest

from robot_rl import security as S
from robot_rl import transport as T
from robot_rl.config import load_config
from robot_rl.schema import ConfigError

SPEC = {"state": {"shape": [3], "dtype": "float32"}}


def steps(n=2, reward=0.0, first=True):
    return [T.StepRecord(action=np.zeros(2, np.float32), reward=reward,
                         next_obs={"state": np.full(3, k + 1, np.float32)}, terminated=False,
                         truncated=False, episode=0, step=k,
                         obs={"state": np.zeros(3, np.float32)} if first and k == 0 else None)
            for k in range(n)]


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    path = tmp_path_factory.mktemp("ks") / "keys"
    S.init_keystore(path, actors=2)
    return path


def signer(keystore, name):
    return S.Signer.load(keystore, name)


def test_init_writes_private_keys_0600_and_a_public_keyring(keystore):
    ring = S.Keyring.load(keystore)
    assert sorted(k.name for k in ring) == ["actor_0", "actor_1", "learner", "operator"]
    assert {k.actor_id for k in ring if k.role == "actor"} == {0, 1}
    for name in ("learner", "actor_0", "actor_1", "operator"):
        mode = stat.S_IMODE((keystore / "private" / f"{name}.pem").stat().st_mode)
        assert mode == 0o600, f"{name}: {mode:o}"
    assert stat.S_IMODE((keystore / "private").stat().st_mode) == 0o700
    doc = json.loads((keystore / "keyring.json").read_text())
    assert "PRIVATE" not in json.dumps(doc)  # the keyring is public: no private material
    assert all(len(k["key_id"]) == 16 for k in doc["keys"])
    text = S.describe(keystore)
    assert "actor_id=1" in text and "(private key here)" in text
    with pytest.raises(S.SecurityError, match="already holds a keystore"):
        S.init_keystore(keystore)


def test_add_actor_refuses_duplicates_and_bad_ids(tmp_path):
    S.init_keystore(tmp_path / "k", actors=1)
    S.add_key(tmp_path / "k", "actor", 5)
    assert S.Keyring.load(tmp_path / "k").by_name("actor_5").actor_id == 5
    with pytest.raises(S.SecurityError, match="actor id 5"):
        S.add_key(tmp_path / "k", "actor", 5, name="other")
    with pytest.raises(S.SecurityError, match="actor id in"):
        S.add_key(tmp_path / "k", "actor", -1)
    with pytest.raises(S.SecurityError, match="role"):
        S.add_key(tmp_path / "k", "root")


def test_group_readable_private_key_is_refused(tmp_path):
    S.init_keystore(tmp_path / "k", actors=1)
    key = tmp_path / "k" / "private" / "actor_0.pem"
    os.chmod(key, 0o644)
    with pytest.raises(S.SecurityError, match="chmod 600"):
        S.Signer.load(tmp_path / "k", "actor_0")


def test_malformed_keyring_is_refused(tmp_path):
    S.init_keystore(tmp_path / "k", actors=1)
    path = tmp_path / "k" / "keyring.json"
    doc = json.loads(path.read_text())
    doc["keys"][0]["key_id"] = "00" * 8  # does not match its public key
    path.write_text(json.dumps(doc))
    with pytest.raises(S.SecurityError, match="hashes to"):
        S.Keyring.load(tmp_path / "k")
    path.write_text("[1, 2]")
    with pytest.raises(S.SecurityError, match="expected"):
        S.Keyring.load(tmp_path / "k")
    with pytest.raises(S.SecurityError, match="keys init"):
        S.Keyring.load(tmp_path / "missing")


def test_signed_transitions_round_trip(keystore):
    ring = S.Keyring.load(keystore)
    data = T.encode_transitions(steps(), 1, 0, 0, SPEC, signer=signer(keystore, "actor_1"))
    batch = T.decode_transitions(data, SPEC, 2, keyring=ring)
    assert batch.actor_id == 1 and len(batch.steps) == 2
    frame = T.read_frame(data, keyring=ring)
    assert frame.signer.name == "actor_1"
    # a receiver without a keyring still reads a signed frame (signature unchecked)
    assert T.decode_transitions(data, SPEC, 2).actor_id == 1


def test_signed_weights_round_trip_and_role(keystore):
    import torch
    ring = S.Keyring.load(keystore)
    state = {"pi": {"w": torch.ones(2, 3)}}
    data = T.encode_weights(state, 4, 10, "abc", signer=signer(keystore, "learner"))
    sd, version, meta = T.decode_weights(data, state, keyring=ring)
    assert version == 4 and torch.equal(sd["pi"]["w"], torch.ones(2, 3))
    forged = T.encode_weights(state, 5, 10, "abc", signer=signer(keystore, "actor_0"))
    with pytest.raises(T.TransportError) as err:
        T.decode_weights(forged, state, keyring=ring)
    assert err.value.reason == "wrong_role"
    as_transitions = T.encode_transitions(steps(), 0, 0, 0, SPEC, signer=signer(keystore, "learner"))
    with pytest.raises(T.TransportError) as err:
        T.decode_transitions(as_transitions, SPEC, 2, keyring=ring)
    assert err.value.reason == "wrong_role"


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _rehead(data: bytes, **fields) -> bytes:
    names = ("magic", "version", "kind", "flags", "meta_len", "blob_len", "crc", "trailer")
    vals = dict(zip(names, struct.unpack_from("<4sHBBIIII", data)))
    vals.update(fields)
    return struct.pack("<4sHBBIIII", *(vals[n] for n in names)) + data[T.HEADER_SIZE:]


def test_tampering_and_forgery_are_refused_by_reason(keystore, tmp_path):
    ring = S.Keyring.load(keystore)
    good = T.encode_transitions(steps(), 0, 0, 0, SPEC, signer=signer(keystore, "actor_0"))
    meta_len = struct.unpack_from("<I", good, 8)[0]
    stranger = S.Signer.generate("stranger")  # a process with a key of its own
    S.init_keystore(tmp_path / "other", actors=1)  # a key of the same name from another run
    cases = {
        "unsigned": T.encode_transitions(steps(), 0, 0, 0, SPEC),
        "unknown_key": T.encode_transitions(steps(), 0, 0, 0, SPEC, signer=stranger),
        "unknown_key ": T.encode_transitions(steps(), 0, 0, 0, SPEC,
                                             signer=S.Signer.load(tmp_path / "other", "actor_0")),
        # a payload byte changed and the CRC fixed up: only the signature notices
        "bad_signature": _rehead(_flip(good, T.HEADER_SIZE + meta_len + 20),
                                 crc=__import__("zlib").crc32(
                                     _flip(good, T.HEADER_SIZE + meta_len + 20)
                                     [T.HEADER_SIZE:len(good) - T.SIGNED_TRAILER])),
        "bad_signature ": _flip(good, len(good) - 1),  # the signature itself
        "unknown_key  ": _flip(good, len(good) - T.SIGNED_TRAILER),  # the key id
        "bad_header": _rehead(good, flags=0),  # claims unsigned but carries a trailer
        "bad_header ": _rehead(good[:-62], trailer=10),
        "length_mismatch": _rehead(good, trailer=10),
        "unsigned ": good[:-T.SIGNED_TRAILER] and _rehead(good[:-T.SIGNED_TRAILER], flags=0,
                                                          trailer=0),
        # a genuine actor-1 key claiming to be actor 0
        "actor_id_mismatch": T.encode_transitions(steps(), 0, 0, 0, SPEC,
                                                  signer=signer(keystore, "actor_1")),
    }
    for label, data in cases.items():
        with pytest.raises(T.TransportError) as err:
            T.decode_transitions(data, SPEC, 2, keyring=ring)
        assert err.value.reason == label.strip(), (label, str(err.value))
    T.decode_transitions(good, SPEC, 2, keyring=ring)  # the original still passes


def test_reward_range_replaces_the_fixed_limit():
    data = T.encode_transitions(steps(reward=5.0), 0, 0, 0, SPEC)
    T.decode_transitions(data, SPEC, 2)  # within the old +-1e6 limit
    with pytest.raises(T.TransportError, match=r"reward range \[0, 1\]") as err:
        T.decode_transitions(data, SPEC, 2, reward_range=(0.0, 1.0))
    assert err.value.reason == "out_of_range"
    ok = T.encode_transitions(steps(reward=-1.0), 0, 0, 0, SPEC)
    T.decode_transitions(ok, SPEC, 2, reward_range=(-1.0, 0.0))


def test_task_declares_its_reward_range():
    from robot_rl.envs.task import reward_range
    assert reward_range(load_config(None).task) == (0.0, 1.0)
    assert reward_range(load_config(None, {"task.reward": "dense"}).task) == (-1.0, 0.0)


def test_node_auth_from_config(keystore, tmp_path):
    off = S.NodeAuth.from_config(load_config(None), "learner")
    assert not off.enabled and off.signer is None
    cfg = load_config(None, {"security.keystore": str(keystore)})
    auth = S.NodeAuth.from_config(cfg, "actor_1")
    assert auth.enabled and auth.signer.name == "actor_1"
    with pytest.raises(S.SecurityError, match="actor_7"):
        S.NodeAuth.from_config(cfg, "actor_7")  # never a silent fallback to unsigned
    with pytest.raises(S.SecurityError, match="keys init"):
        S.NodeAuth.from_config(load_config(None, {"security.keystore": str(tmp_path / "no")}),
                               "learner")


def test_ensure_keystore_adds_missing_actor_keys(tmp_path):
    ring = S.ensure_keystore(tmp_path / "run" / "keys", [0, 1])
    assert sorted(k.name for k in ring) == ["actor_0", "actor_1", "learner", "operator"]
    ring = S.ensure_keystore(tmp_path / "run" / "keys", [0, 1, 2])
    assert ring.by_name("actor_2").actor_id == 2
    assert ring.by_name("learner").key_id == S.Keyring.load(tmp_path / "run" / "keys") \
        .by_name("learner").key_id  # existing keys are kept


def test_security_config_type_errors():
    with pytest.raises(ConfigError, match="security.keystore"):
        load_config(None, {"security.keystore": 5})
