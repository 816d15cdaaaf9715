"""Wire format between actors and the learner: round trips and every rejection path."""
import struct
import zlib

import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl import transport as T
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig

SPEC = {"state": {"shape": [8], "dtype": "float32"},
        "image_front": {"shape": [16, 16, 3], "dtype": "uint8"}}


def frame(i):
    return {"state": np.full(8, i, np.float32),
            "image_front": np.full((16, 16, 3), i, np.uint8)}


def episode_steps(start, n, first_obs=True, done=True):
    out = []
    for k in range(n):
        last = done and k == n - 1
        out.append(T.StepRecord(action=np.full(4, 0.1 * k, np.float32), reward=float(last),
                                next_obs=frame(start + k + 1), terminated=last, truncated=False,
                                intervened=k == 1, episode=start, step=k, weights_version=3,
                                steps_since_intervention=k,
                                obs=frame(start) if (first_obs and k == 0) else None))
    return out


def test_round_trip_keeps_uint8_and_sends_each_frame_once():
    steps = episode_steps(0, 3) + episode_steps(100, 2, done=False)
    data = T.encode_transitions(steps, actor_id=7, seq=0, first_step=0, obs_spec=SPEC)
    _, meta, tensors = T.unpack(data)
    # 5 next frames + 2 episode-start frames: never obs and next_obs of the same step twice
    assert tensors["next_obs.image_front"].shape == (5, 16, 16, 3)
    assert tensors["obs.image_front"].shape == (2, 16, 16, 3)
    assert tensors["next_obs.image_front"].dtype == np.uint8
    assert meta["actor_id"] == 7 and meta["count"] == 5
    batch = T.decode_transitions(data, SPEC, 4)
    got = T.TransitionAssembler().feed(batch)
    assert len(got) == 5
    assert [int(t.obs["state"][0]) for t in got] == [0, 1, 2, 100, 101]
    assert [int(t.record.next_obs["state"][0]) for t in got] == [1, 2, 3, 101, 102]
    assert all(t.obs["image_front"].dtype == np.uint8 for t in got)
    assert [t.record.intervened for t in got] == [False, True, False, False, True]
    assert got[2].record.terminated and not got[4].record.terminated
    assert all(t.actor_id == 7 and t.record.weights_version == 3 for t in got)
    np.testing.assert_allclose(got[1].record.action, np.full(4, 0.1, np.float32))


def test_assembler_continues_across_messages_and_drops_after_a_gap():
    asm = T.TransitionAssembler()
    steps = episode_steps(0, 6, done=True)
    a = T.encode_transitions(steps[:3], 1, 0, 0, SPEC)
    b = T.encode_transitions(steps[3:], 1, 1, 3, SPEC)
    out = asm.feed(T.decode_transitions(a, SPEC, 4)) + asm.feed(T.decode_transitions(b, SPEC, 4))
    assert [int(t.obs["state"][0]) for t in out] == [0, 1, 2, 3, 4, 5]
    # a lost message (first_step jumps): the first step's obs cannot be rebuilt (dropped); the
    # next step's obs is that step's next_obs again
    asm2 = T.TransitionAssembler()
    asm2.feed(T.decode_transitions(a, SPEC, 4))
    lost = T.encode_transitions(episode_steps(40, 2, first_obs=False, done=False), 1, 5, 50, SPEC)
    got = asm2.feed(T.decode_transitions(lost, SPEC, 4))
    assert asm2.gaps == 1 and asm2.dropped == 1
    assert [int(t.obs["state"][0]) for t in got] == [41]


def _good():
    return T.encode_transitions(episode_steps(0, 2), 0, 0, 0, SPEC)


def _reframe(data, **changes):
    magic, version, kind, r, ml, bl, crc, r2 = struct.unpack_from("<4sHBBIIII", data)
    vals = dict(magic=magic, version=version, kind=kind, ml=ml, bl=bl, crc=crc)
    vals.update(changes)
    head = struct.pack("<4sHBBIIII", vals["magic"], vals["version"], vals["kind"], 0, vals["ml"],
                       vals["bl"], vals["crc"], 0)
    return head + data[T.HEADER_SIZE:]


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: _reframe(d, magic=b"XXXX"), "bad_magic"),
    (lambda d: _reframe(d, version=T.FORMAT_VERSION + 1), "bad_version"),
    (lambda d: _reframe(d, kind=T.KIND_WEIGHTS), "bad_kind"),
    (lambda d: _reframe(d, kind=99), "bad_kind"),
    (lambda d: d[:-10], "length_mismatch"),
    (lambda d: d + b"\0", "length_mismatch"),
    (lambda d: d[:-5] + bytes([d[-5] ^ 0xFF]) + d[-4:], "crc_mismatch"),
    (lambda d: d[:10], "truncated"),
])
def test_framing_rejections(mutate, reason):
    with pytest.raises(T.TransportError) as err:
        T.decode_transitions(mutate(_good()), SPEC, 4)
    assert err.value.reason == reason


def test_oversize_rejected_before_parsing():
    data = _good()
    with pytest.raises(T.TransportError) as err:
        T.decode_transitions(data, SPEC, 4, max_bytes=len(data) - 1)
    assert err.value.reason == "oversize"
    T.decode_transitions(data, SPEC, 4, max_bytes=len(data))


def _packed(tensors, meta=None):
    return T.pack(T.KIND_TRANSITIONS, meta or {"actor_id": 0, "seq": 0, "first_step": 0,
                                               "count": 2}, tensors)


def test_payload_and_metadata_rejections():
    _, meta, t = T.unpack(_good())
    bad_json = _reframe(_good())  # valid frame, then corrupt the JSON and fix the CRC
    ml = struct.unpack_from("<I", bad_json, 8)[0]
    body = b"X" + bad_json[T.HEADER_SIZE + 1:]
    crc = zlib.crc32(body[ml:], zlib.crc32(body[:ml]))
    with pytest.raises(T.TransportError, match="bad_metadata"):
        T.decode_transitions(_reframe(bad_json[:T.HEADER_SIZE] + body, crc=crc), SPEC, 4)
    cases = {
        "unknown_keys": {**t, "evil": np.zeros(2, np.float32)},
        "bad_shape": {**t, "next_obs.image_front": np.zeros((2, 8, 8, 3), np.uint8)},
    }
    for reason, tensors in cases.items():
        with pytest.raises(T.TransportError) as err:
            T.decode_transitions(_packed(tensors), SPEC, 4)
        assert err.value.reason == reason
    # images must stay uint8: a float image is a mismatch, not silently converted
    floaty = {**t, "next_obs.image_front": t["next_obs.image_front"].astype(np.float32)}
    with pytest.raises(T.TransportError, match="bad_shape"):
        T.decode_transitions(_packed(floaty), SPEC, 4)
    missing = {k: v for k, v in t.items() if k != "reward"}
    with pytest.raises(T.TransportError, match="unknown_keys"):
        T.decode_transitions(_packed(missing), SPEC, 4)
    nan = {**t, "reward": np.array([np.nan, 0], np.float32)}
    with pytest.raises(T.TransportError, match="non_finite"):
        T.decode_transitions(_packed(nan), SPEC, 4)
    with pytest.raises(T.TransportError, match="bad_metadata"):
        T.decode_transitions(_packed(t, {"actor_id": "x", "seq": 0, "first_step": 0, "count": 2}),
                             SPEC, 4)
    other_spec = {"state": SPEC["state"]}  # receiver without the camera: unknown keys
    with pytest.raises(T.TransportError, match="unknown_keys"):
        T.decode_transitions(_good(), other_spec, 4)
    with pytest.raises(T.TransportError, match="bad_shape"):
        T.decode_transitions(_good(), SPEC, 5)  # action size
    garbage = T.pack(T.KIND_TRANSITIONS, meta, {})[:T.HEADER_SIZE]
    with pytest.raises(T.TransportError):
        T.decode_transitions(garbage + b"x", SPEC, 4)


def _agent(hidden=32):
    obs = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (8,), np.float32),
                       "tactile_left": spaces.Box(0, np.inf, (4, 4), np.float32)})
    return RLPDAgent(obs, spaces.Box(-1, 1, (4,), np.float32),
                     RLPDConfig(hidden_dims=(hidden, hidden), num_critics=2))


def test_weights_round_trip_and_rejections():
    src, dst = _agent(), _agent()
    rng = np.random.default_rng(0)
    src.fit_input_normalization({"state": rng.normal(2.0, 0.1, (64, 8)),
                                 "tactile_left": rng.uniform(0, 5, (64, 4, 4))})
    with torch.no_grad():
        for p in src.actor.parameters():
            p.add_(1.0)
    data = T.encode_weights(src.actor_state_dict(), version=12, updates=300)
    sd, version, meta = T.decode_weights(data, dst.actor_state_dict())
    assert version == 12 and meta["updates"] == 300
    dst.load_actor_state_dict(sd)  # normalisation statistics included
    obs = {"state": np.ones(8, np.float32), "tactile_left": np.ones((4, 4), np.float32)}
    np.testing.assert_allclose(src.act(obs, deterministic=True), dst.act(obs, deterministic=True))
    with pytest.raises(T.TransportError) as err:  # different architecture
        T.decode_weights(data, _agent(hidden=16).actor_state_dict())
    assert err.value.reason == "bad_shape"
    with pytest.raises(T.TransportError, match="bad_kind"):  # weights on the transition topic
        T.decode_transitions(data, SPEC, 4)
    with pytest.raises(T.TransportError, match="oversize"):
        T.decode_weights(data, dst.actor_state_dict(), max_bytes=100)


def test_values_that_would_poison_training_are_rejected():
    """Finite but absurd values pass a NaN check yet turn every weight NaN at the first update
    (a 1e30 action, a 3e38 reward); out-of-range ids overflow the replay's int32 column."""
    _, _, t = T.unpack(_good())
    bounds = (-np.ones(4, np.float32), np.ones(4, np.float32))
    T.decode_transitions(_good(), SPEC, 4, action_bounds=bounds)  # in range: accepted
    huge_action = {**t, "action": np.full((2, 4), 1e30, np.float32)}
    edge_action = {**t, "action": np.full((2, 4), 1.0 + 1e-7, np.float32)}  # float rounding
    T.decode_transitions(_packed(edge_action), SPEC, 4, action_bounds=bounds)
    cases = [
        ("out_of_range", _packed(huge_action), "outside the action space"),
        ("out_of_range", _packed({**t, "reward": np.array([3e38, 0], np.float32)}), "reward"),
        ("bad_metadata", _packed(t, {"actor_id": 2**31, "seq": 0, "first_step": 0, "count": 2}),
         "actor_id"),
        ("bad_metadata", _packed(t, {"actor_id": -1, "seq": 0, "first_step": 0, "count": 2}),
         "actor_id"),
        ("bad_metadata", _packed(t, {"actor_id": 0, "seq": True, "first_step": 0, "count": 2}), "seq"),
    ]
    for reason, data, text in cases:
        with pytest.raises(T.TransportError, match=text) as err:
            T.decode_transitions(data, SPEC, 4, action_bounds=bounds)
        assert err.value.reason == reason


@pytest.mark.parametrize("meta_json", [b"[" * 100_000 + b"]" * 100_000,  # RecursionError
                                       b'{"actor_id": ' + b"9" * 5000 + b"}",  # int digit limit
                                       b"\xff\xfe"])  # not UTF-8
def test_unreadable_metadata_is_a_transport_error(meta_json):
    body = meta_json + b""
    head = struct.pack("<4sHBBIIII", T.MAGIC, T.FORMAT_VERSION, T.KIND_TRANSITIONS, 0,
                       len(meta_json), 0, zlib.crc32(b"", zlib.crc32(meta_json)), 0)
    with pytest.raises(T.TransportError) as err:
        T.decode_transitions(head + body, SPEC, 4)
    assert err.value.reason == "bad_metadata"


def test_weights_metadata_is_checked():
    ref = _agent().actor_state_dict()
    data = T.encode_weights(ref, version=3, updates=40, learner="abc123")
    _, version, meta = T.decode_weights(data, ref)
    assert (version, meta["updates"], meta["learner"]) == (3, 40, "abc123")
    _, _, t = T.unpack(data)
    for bad in ({"version": 1, "updates": "x"}, {"version": 1, "updates": -5},
                {"version": 1, "learner": 7}, {"version": 2**63}):
        with pytest.raises(T.TransportError) as err:
            T.decode_weights(T.pack(T.KIND_WEIGHTS, bad, t), ref)
        assert err.value.reason == "bad_metadata"
    _, _, meta = T.decode_weights(T.pack(T.KIND_WEIGHTS, {"version": 1}, t), ref)  # older sender
    assert meta["updates"] == 0 and meta["learner"] == ""
