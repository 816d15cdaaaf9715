import gc
import json
import os

import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer, count_transitions


def _space(img=(6, 5, 3)):
    return spaces.Dict(
        {
            "cam": spaces.Box(0, 255, img, np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (2,), np.float32),
            "tactile": spaces.Box(-np.inf, np.inf, (3, 4), np.float32),
        }
    )


def _frame(ep: int, t: int, img=(6, 5, 3)):
    """Observation that encodes (episode, step) in every key."""
    return {
        "cam": np.full(img, (ep * 37 + t) % 256, np.uint8),
        "state": np.array([ep, t], np.float32),
        "tactile": np.full((3, 4), ep * 1000 + t, np.float32),
    }


def _run_episodes(buf, lengths, end_kind, start_ep=0, record=None):
    """Add episodes; returns list of (ep, t, terminated, truncated) per transition."""
    record = [] if record is None else record
    for e, L in enumerate(lengths):
        ep = start_ep + e
        for t in range(L):
            last = t == L - 1
            term = last and end_kind(ep) == "term"
            trunc = last and end_kind(ep) == "trunc"
            buf.add(_frame(ep, t), np.array([ep, t], np.float32), float(ep + t), _frame(ep, t + 1), term, trunc,
                    actor_id=ep % 3, intervened=(t % 2 == 0))
            record.append((ep, t, term, trunc))
    return record


def _check_against(buf, record):
    n = len(buf)
    assert 0 < n <= buf.capacity
    expect = record[-n:]  # valid transitions are the newest suffix
    b = buf.get(np.arange(n))
    for i, (ep, t, term, trunc) in enumerate(expect):
        assert b["obs"]["state"][i].tolist() == [ep, t]
        assert b["next_obs"]["state"][i].tolist() == [ep, t + 1]
        assert int(b["obs"]["cam"][i, 0, 0, 0]) == (ep * 37 + t) % 256
        assert int(b["next_obs"]["cam"][i, 0, 0, 0]) == (ep * 37 + t + 1) % 256
        assert float(b["next_obs"]["tactile"][i, 2, 3]) == ep * 1000 + t + 1
        assert b["action"][i].tolist() == [ep, t]
        assert float(b["reward"][i]) == ep + t
        assert float(b["terminated"][i]) == float(term)
        assert float(b["truncated"][i]) == float(trunc)
        assert int(b["actor_id"][i]) == ep % 3
        assert bool(b["intervened"][i]) == (t % 2 == 0)


def test_frames_shared_and_next_obs_correct_across_boundaries_and_wrap():
    buf = ReplayBuffer(_space(), 2, capacity=23, frame_slack=4, seed=0, verbose=False)
    lengths = [5, 1, 7, 3, 9, 2, 6, 4, 8, 5, 3, 11]
    kinds = lambda ep: "term" if ep % 2 else "trunc"  # noqa: E731
    record = []
    for upto in range(1, len(lengths) + 1):  # check after every episode, through several wraps
        _run_episodes(buf, lengths[upto - 1 : upto], kinds, start_ep=upto - 1, record=record)
        _check_against(buf, record)
    # Each episode stores L+1 frames: sharing works (naive would be 2 per transition).
    assert buf.n_frames == sum(lengths) + len(lengths)
    assert buf.n_added == sum(lengths) > 2 * buf.capacity  # wrapped more than twice
    # Random samples also obey next = obs + 1 step.
    s = buf.sample(512)
    assert np.array_equal(s["next_obs"]["state"][:, 1].numpy(), s["obs"]["state"][:, 1].numpy() + 1)
    assert np.array_equal(s["next_obs"]["state"][:, 0].numpy(), s["obs"]["state"][:, 0].numpy())


def test_short_episodes_evict_but_never_serve_wrong_frames():
    # 1-step episodes need 2 frames per transition: more than the frame ring
    # can give for `capacity` transitions; the buffer must shrink, not corrupt.
    buf = ReplayBuffer(_space(), 2, capacity=10, frame_slack=2, seed=0, verbose=False)
    record = _run_episodes(buf, [1] * 30, lambda ep: "term")
    assert len(buf) == 6  # (10 + 2) frames / 2 per episode
    _check_against(buf, record)


def test_non_continuing_obs_gets_its_own_frame(tmp_path):
    buf = ReplayBuffer(_space(), 2, capacity=50, seed=0, verbose=False)
    # One actor id, two interleaved episodes: no transition continues the one before it.
    for t in range(5):
        for ep in (0, 1):
            buf.add(_frame(ep, t), np.array([ep, t], np.float32), 0.0, _frame(ep, t + 1), False, False, actor_id=0)
    b = buf.get(np.arange(10))
    assert b["obs"]["state"].tolist() == [[ep, t] for t in range(5) for ep in (0, 1)]
    assert b["next_obs"]["state"].tolist() == [[ep, t + 1] for t in range(5) for ep in (0, 1)]
    assert buf.n_frames == 20  # no sharing possible, but still correct


def test_interleaved_actors_share_frames_per_actor_in_memory_and_on_disk(tmp_path):
    """A vector env's sub-envs (or several actor nodes) add in turn; each actor_id keeps its
    own frame chain, so every episode still stores L+1 frames, and the persisted copy reads
    back the same transitions."""
    buf = ReplayBuffer(_space(), 2, capacity=50, seed=0, verbose=False, persist_dir=str(tmp_path / "r"),
                       flush_every=3)
    rec = []
    for t in range(5):
        for ep in (0, 1):
            buf.add(_frame(ep, t), np.array([ep, t], np.float32), float(ep + t), _frame(ep, t + 1), False, t == 4,
                    actor_id=ep % 3, intervened=(t % 2 == 0))
            rec.append((ep, t, False, t == 4))
    _check_against(buf, rec)
    assert buf.n_frames == 12  # 2 episodes x (5 + 1)
    buf.close()
    _check_against(ReplayBuffer.load(str(tmp_path / "r"), resume=False, verbose=False), rec)


def test_bytes_per_transition_two_128_cameras():
    sp = spaces.Dict(
        {
            "front": spaces.Box(0, 255, (128, 128, 3), np.uint8),
            "wrist": spaces.Box(0, 255, (128, 128, 3), np.uint8),
            "state": spaces.Box(-1, 1, (19,), np.float32),
        }
    )
    buf = ReplayBuffer(sp, 7, capacity=100_000, verbose=False)
    rep = buf.memory_report()
    assert rep["bytes_per_transition"] <= 100_000
    naive = 2 * (2 * 128 * 128 * 3 * 4 + 19 * 4)  # float32 obs + next_obs
    assert naive / rep["bytes_per_transition"] > 7.5
    assert rep["total_bytes"] == pytest.approx(rep["bytes_per_transition"] * 100_000)


def test_add_rejects_bad_shapes():
    buf = ReplayBuffer(_space(), 2, capacity=8, verbose=False)
    good = _frame(0, 0)
    bad = dict(good, cam=np.zeros((6, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="cam"):
        buf.add(bad, np.zeros(2), 0.0, good, False, False)
    with pytest.raises(ValueError, match="missing key 'state'"):
        buf.add({"cam": good["cam"], "tactile": good["tactile"]}, np.zeros(2), 0.0, good, False, False)
    with pytest.raises(ValueError, match="action"):
        buf.add(good, np.zeros(3), 0.0, good, False, False)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(4)


def test_persistence_crash_resume(tmp_path):
    d = str(tmp_path / "replay")
    buf = ReplayBuffer(_space(), 2, capacity=100, persist_dir=d, flush_every=10, seed=0, verbose=False)
    record = _run_episodes(buf, [7, 4, 9, 5], lambda ep: "term" if ep == 1 else "trunc")  # 25 transitions
    assert len(record) == 25
    before = buf.get(np.arange(20))
    del buf  # "crash": no close(), last 5 transitions never flushed
    gc.collect()
    assert sorted(os.listdir(d)) == ["chunk_00000000.safetensors", "chunk_00000001.safetensors", "manifest.json"]
    assert count_transitions(d) == 20
    with open(os.path.join(d, "manifest.json")) as f:
        assert json.load(f)["format"] == "robot_rl.replay"

    buf2 = ReplayBuffer.load(d, capacity=100, seed=0, verbose=False)
    assert len(buf2) == 20
    after = buf2.get(np.arange(20))
    for k in ("action", "reward", "terminated", "truncated", "actor_id", "intervened"):
        assert np.array_equal(before[k].numpy(), after[k].numpy()), k
    for part in ("obs", "next_obs"):
        for k in before[part]:
            assert np.array_equal(before[part][k].numpy(), after[part][k].numpy()), (part, k)
    _check_against(buf2, record[:20])
    # Frame sharing survives the round trip: 20 transitions over 3 episodes (7, 4, 9) -> 23 frames.
    assert buf2.n_frames == 23

    # Resume appending to the same directory, then close cleanly.
    rec2 = _run_episodes(buf2, [6], lambda ep: "term", start_ep=10)
    buf2.close()
    assert count_transitions(d) == 26
    buf3 = ReplayBuffer.load(d, verbose=False)
    _check_against(buf3, record[:20] + rec2)


def _ten_steps_on_disk(d):
    """One 10-step episode written to replay dir ``d`` in chunks of 5; returns its record."""
    buf = ReplayBuffer(_space(), 2, capacity=50, persist_dir=d, flush_every=5, verbose=False)
    record = _run_episodes(buf, [10], lambda ep: "term")
    buf.close()
    return record


def test_corrupt_files_raise_clear_errors(tmp_path):
    d = str(tmp_path / "r")
    _ten_steps_on_disk(d)
    chunk = os.path.join(d, "chunk_00000001.safetensors")
    with open(chunk, "r+b") as f:
        f.truncate(40)
    with pytest.raises(ValueError, match="chunk_00000001"):
        ReplayBuffer.load(d, verbose=False)
    os.remove(chunk)
    with open(os.path.join(d, "chunk_00000003.safetensors"), "wb") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="gap"):
        ReplayBuffer.load(d, verbose=False)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="manifest"):
        ReplayBuffer.load(d, verbose=False)
    with pytest.raises(ValueError, match="manifest.json"):
        ReplayBuffer.load(str(tmp_path / "nothing"), verbose=False)


def test_resume_rejects_mismatched_space(tmp_path):
    d = str(tmp_path / "r")
    ReplayBuffer(_space(), 2, capacity=5, persist_dir=d, verbose=False)
    with pytest.raises(ValueError, match="does not match"):
        ReplayBuffer(_space(img=(4, 4, 3)), 2, capacity=5, persist_dir=d, verbose=False)


def test_demo_online_routing_and_sampling():
    demo = ReplayBuffer(_space(), 2, capacity=100, seed=1, verbose=False, name="demo")
    online = ReplayBuffer(_space(), 2, capacity=100, seed=2, verbose=False, name="online")
    both = DemoOnlineBuffers(demo, online)
    with pytest.raises(ValueError, match="empty"):
        both.sample(8)
    for t in range(10):
        both.add(_frame(0, t), np.array([0, t], np.float32), 0.0, _frame(0, t + 1), False, t == 9, intervened=(3 <= t < 6))
    assert len(online) == 10 and len(demo) == 3
    assert demo.get(np.arange(3))["intervened"].all()
    d, o = both.sample(16)
    assert d["action"].shape == (8, 2) and o["action"].shape == (8, 2)
    assert set(d["obs"]["state"][:, 1].tolist()) <= {3.0, 4.0, 5.0}


def test_add_rejects_non_finite_values_and_stores_nothing():
    buf = ReplayBuffer(_space(), 2, capacity=8, verbose=False, name="demo")
    good = _frame(0, 0)
    with pytest.raises(ValueError, match=r"demo\.add: action .*NaN or inf, expected finite"):
        buf.add(good, np.array([np.nan, 0.0]), 0.0, good, False, False)
    with pytest.raises(ValueError, match=r"demo\.add: reward is inf, expected a finite float32 value"):
        buf.add(good, np.zeros(2), float("inf"), good, False, False)
    with pytest.raises(ValueError, match=r"demo\.add: next_obs\['state'\] contains NaN or inf"):
        buf.add(good, np.zeros(2), 0.0, dict(good, state=np.array([0.0, np.inf], np.float32)), False, False)
    with pytest.raises(ValueError, match=r"obs\['tactile'\] contains NaN or inf"):
        buf.add(dict(good, tactile=np.full((3, 4), np.nan, np.float32)), np.zeros(2), 0.0, good, False, False)
    with pytest.raises(ValueError, match=r"obs\['state'\] contains NaN or inf \(or values beyond float32\)"):
        buf.add(dict(good, state=np.array([1e39, 0.0])), np.zeros(2), 0.0, good, False, False)  # inf as float32
    assert len(buf) == 0 and buf.n_frames == 0  # a rejected transition leaves no trace


def test_add_requires_uint8_images_and_real_float_keys():
    buf = ReplayBuffer(_space(), 2, capacity=8, verbose=False, name="demo")
    good = _frame(0, 0)
    float_img = np.full((6, 5, 3), 0.8, np.float32)  # a [0, 1] image would be stored as all zeros
    with pytest.raises(ValueError, match=r"image obs\['cam'\] has dtype float32, expected uint8 \(0\.\.255\)"):
        buf.add(dict(good, cam=float_img), np.zeros(2), 0.0, good, False, False)
    with pytest.raises(ValueError, match=r"image next_obs\['cam'\] has dtype int64, expected uint8"):
        buf.add(good, np.zeros(2), 0.0, dict(good, cam=np.full((6, 5, 3), 300, np.int64)), False, False)
    with pytest.raises(ValueError, match=r"obs\['state'\] has dtype bool, expected real numbers"):
        buf.add(dict(good, state=np.array([True, False])), np.zeros(2), 0.0, good, False, False)
    assert len(buf) == 0
    # Float keys still take any real numeric dtype, stored as float32.
    buf.add(dict(good, state=np.array([1, 2], np.int64)), np.zeros(2), 0.0, dict(good, state=[3.0, 4.0]), False, False)
    b = buf.get([0])
    assert b["obs"]["state"].tolist() == [[1.0, 2.0]] and b["next_obs"]["state"].tolist() == [[3.0, 4.0]]


def _rewrite_chunk(fname, change=lambda tensors: None):
    """Rewrite a chunk with ``change(tensors)`` applied and no checksum, as an older build or
    another tool writing demo files would."""
    from safetensors import safe_open
    from safetensors.numpy import save

    with safe_open(fname, framework="numpy") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k).copy() for k in f.keys()}
    change(tensors)
    meta.pop("crc32", None)
    with open(fname, "wb") as f:
        f.write(save(tensors, metadata=meta))


def test_reading_chunks_rejects_non_finite_values(tmp_path):
    d = str(tmp_path / "demos")
    _ten_steps_on_disk(d)
    chunk = os.path.join(d, "chunk_00000001.safetensors")

    def nan_reward(t):
        t["reward"][3] = np.nan

    _rewrite_chunk(chunk, nan_reward)
    with pytest.raises(ValueError, match=r"chunk_00000001.*'reward' has NaN or inf in row 3, expected finite"):
        ReplayBuffer.load(d, verbose=False)

    def fine_reward_inf_tactile(t):
        t["reward"][3] = 0.0
        t["obs.tactile"][2, 1, 1] = -np.inf

    _rewrite_chunk(chunk, fine_reward_inf_tactile)
    with pytest.raises(ValueError, match=r"chunk_00000001.*'obs.tactile' has NaN or inf in row 2"):
        ReplayBuffer(_space(), 2, capacity=50, verbose=False).extend_from_disk(d)


def test_chunk_checksum_detects_damage_and_old_chunks_still_load(tmp_path):
    from safetensors import safe_open

    d = str(tmp_path / "r")
    record = _ten_steps_on_disk(d)
    chunk = os.path.join(d, "chunk_00000000.safetensors")
    raw = bytearray(open(chunk, "rb").read())
    raw[-1] ^= 0x01  # one bit in the tensor data; the header stays valid
    open(chunk, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match=r"corrupt replay chunk .*chunk_00000000\.safetensors.*checksum mismatch"):
        ReplayBuffer.load(d, verbose=False)
    raw[-1] ^= 0x01
    open(chunk, "wb").write(bytes(raw))
    with safe_open(chunk, framework="numpy") as f:
        assert len(f.metadata()["crc32"]) == 8
    _rewrite_chunk(chunk)  # a chunk from before the checksum is read, unverified
    _check_against(ReplayBuffer.load(d, resume=False, verbose=False), record)


def test_chunks_without_manifest_are_refused(tmp_path):
    d = str(tmp_path / "replay")
    _ten_steps_on_disk(d)
    os.remove(os.path.join(d, "manifest.json"))
    with pytest.raises(ValueError, match=r"holds 2 chunk file\(s\) but no manifest\.json.*restore its manifest\.json or move"):
        ReplayBuffer(_space(), 2, capacity=50, persist_dir=d, verbose=False)
    assert sorted(os.listdir(d)) == ["chunk_00000000.safetensors", "chunk_00000001.safetensors"]  # untouched


def test_record_demos_rejects_bad_episode_counts_and_used_directories(tmp_path, capsys):
    from robot_rl.learning.record_demos import main, record

    out = str(tmp_path / "demos")
    with pytest.raises(SystemExit) as exc:
        main(["--out", out, "--episodes", "0"])
    assert exc.value.code == 2
    assert "--episodes must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="episodes must be >= 1, got -3"):
        record(None, out, -3)
    assert not os.path.exists(out)
    os.makedirs(out)
    open(os.path.join(out, "chunk_00000000.safetensors"), "wb").close()  # manifest lost
    assert main(["--out", out, "--episodes", "1"]) == 2  # refused before recording anything
    assert "is not empty" in capsys.readouterr().err
    assert os.listdir(out) == ["chunk_00000000.safetensors"]


def test_persisted_action_is_a_copy_of_the_callers_array(tmp_path):
    d = str(tmp_path / "r")
    buf = ReplayBuffer(_space(), 2, capacity=8, persist_dir=d, flush_every=4, verbose=False)
    action = np.array([0.25, -0.5], np.float32)
    buf.add(_frame(0, 0), action, 0.0, _frame(0, 1), False, False)
    action[:] = 9.0  # a caller reusing its buffer before the chunk is flushed
    buf.close()
    assert ReplayBuffer.load(d, resume=False, verbose=False).get([0])["action"].tolist() == [[0.25, -0.5]]
