"""At-least-once delivery without ROS: the actor's outbox and resend rules, the learner's
intake (dedupe, write-ahead log, acknowledgements), the run state and the checkpoint cadence."""
import os

import numpy as np
import pytest

from robot_rl import transport
from robot_rl.learning.intake import Intake, RunState
from robot_rl.learning.learner_run import CheckpointCadence
from robot_rl.learning.outbox import Outbox, Resender, decode_ack, encode_ack
from robot_rl.learning.replay import ReplayBuffer, read_origins

SPEC = {"state": {"shape": [3], "dtype": "float32"}}


def _steps(episode, start, n, done_at=None):
    """Steps ``start..start+n-1`` of ``episode``; row 0 carries its observation."""
    out = []
    for k in range(start, start + n):
        out.append(transport.StepRecord(
            action=np.zeros(2, np.float32), reward=float(k), terminated=k == done_at,
            truncated=False, next_obs={"state": np.full(3, k + 1, np.float32)},
            episode=episode, step=k,
            obs={"state": np.full(3, k, np.float32)} if k == start else None))
    return out


def _message(actor, first_step, steps, outbox_from=None):
    data = transport.encode_transitions(steps, actor, 0, first_step, SPEC, outbox_from)
    return data, transport.decode_transitions(data, SPEC, 2)


class Learner:
    """The learner's storage path (ReplayBuffer + Intake) as the learner node wires it."""

    def __init__(self, run, flush_every=4):
        replay = os.path.join(run, "replay")
        space_dim = 3
        import gymnasium as gym
        space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (space_dim,), np.float32)})
        if os.path.isfile(os.path.join(replay, "manifest.json")):
            self.buf = ReplayBuffer.load(replay, capacity=1000, resume=True, flush_every=flush_every,
                                         verbose=False)
        else:
            self.buf = ReplayBuffer(space, 2, 1000, persist_dir=replay, flush_every=flush_every,
                                    verbose=False)
        w = self.buf.writer
        self.intake = Intake(replay, lambda: (w.next_chunk, w.pending), read_origins(replay))
        self.replay = replay
        self.replayed = self.intake.replay_wal(lambda d: transport.decode_transitions(d, SPEC, 2),
                                               self.store)

    def store(self, arrivals):
        for tr, actor_step in arrivals:
            r = tr.record
            self.buf.add(tr.obs, r.action, r.reward, r.next_obs, r.terminated, r.truncated,
                         tr.actor_id, r.intervened, (r.episode, r.step, actor_step))

    def receive(self, data, batch):
        n = self.intake.ingest(data, batch, self.store)
        return n, self.intake.commit()


def test_ack_round_trip_and_refusals():
    ack = decode_ack(encode_ack("L1", "R1", {0: 5, 7: 0}))
    assert (ack.learner, ack.run, ack.acks) == ("L1", "R1", {0: 5, 7: 0})
    bad = transport.pack(transport.KIND_ACK, {"learner": "L", "run": "R", "acks": {"x": 1}}, {})
    with pytest.raises(transport.TransportError, match="actor_id: count"):
        decode_ack(bad)
    with pytest.raises(transport.TransportError, match="bad_kind"):
        decode_ack(transport.pack(transport.KIND_WEIGHTS, {}, {}))


def test_outbox_keeps_until_acked_and_a_restarted_actor_resends_and_continues_numbering(tmp_path):
    box = Outbox(str(tmp_path), segment_messages=2)
    for i in range(5):
        box.add(i * 3, 3, i // 2, f"m{i}".encode())
    assert box.unacked_steps == 15 and box.oldest == 0
    assert box.ack(7) == 2 and box.oldest == 6  # messages [0,3) and [3,6) are durable
    assert len(os.listdir(tmp_path)) == 2  # the first segment (steps 0..6) is gone
    box.close()
    with open(sorted(tmp_path.iterdir())[-1], "ab") as f:
        f.write(b"\x10\x00\x00")  # a record torn by kill -9
    again = Outbox(str(tmp_path))
    assert [e.data for e in again.entries] == [b"m2", b"m3", b"m4"]
    assert again.next_step == 15 and again.next_episode == 3  # numbering goes on
    resender = Resender(again, resend_after=1.0)
    assert resender.active  # recovered messages go out again, oldest first
    assert [e.data for e in resender.due()] == [b"m2", b"m3", b"m4"] and not resender.active
    again.add(15, 1, 3, b"m5")
    with pytest.raises(ValueError, match="expected 16"):
        again.add(17, 1, 3, b"gap")


def test_outbox_over_its_size_drops_the_oldest_and_counts_them():
    box = Outbox(None, max_bytes=10)
    for i in range(4):
        box.add(i * 2, 2, 0, b"12345")
    assert box.dropped_steps == 4 and box.oldest == 4 and box.bytes == 10


def test_resender_restarts_on_a_new_learner_and_when_acks_stop_advancing():
    box = Outbox(None)
    r = Resender(box, resend_after=2.0, burst=2)
    for i in range(3):
        box.add(i, 1, 0, bytes([i]))
    assert r.on_learner("A") and r.active  # first contact: what it may have missed
    assert [e.first_step for e in r.due()] == [0, 1] and r.active
    assert [e.first_step for e in r.due()] == [2] and not r.active
    r.on_ack(1, now=100.0)
    assert not r.active and box.oldest == 1
    r.on_ack(1, now=101.0)
    assert not r.active  # not yet resend_after without progress
    r.on_ack(1, now=103.0)
    assert r.active and [e.first_step for e in r.due()] == [1, 2]
    assert not r.on_learner("A")
    assert r.on_learner("B") and r.active  # a restarted learner


def test_intake_stores_each_step_once_across_resends_and_learner_restarts(tmp_path):
    run = str(tmp_path / "run")
    learner = Learner(run, flush_every=4)
    msgs = [_message(0, 0, _steps(0, 0, 3)), _message(0, 3, _steps(0, 3, 3, done_at=5)),
            _message(0, 6, _steps(1, 0, 3))]
    n, acks = learner.receive(*msgs[0])
    assert n == 3 and acks == {0: 3}
    assert learner.receive(*msgs[0]) == (0, None)  # duplicate
    assert learner.receive(*msgs[2]) == (0, None)  # early: message 1 is missing
    assert learner.receive(*msgs[1])[1] == {0: 6}  # chunk of 4 written, 2 rows in the log
    # kill -9: nothing flushed beyond the chunk, the log holds the rest
    again = Learner(run, flush_every=4)
    assert again.replayed == 2 and again.intake.durable == {0: 6}
    assert again.receive(*msgs[1]) == (0, None)
    assert again.receive(*msgs[2])[0] == 3
    assert again.receive(*_message(0, 4, _steps(0, 4, 2, done_at=5)))[0] == 0  # overlap
    again.buf.flush()
    again.intake.restart_wal([])
    o = read_origins(again.replay)
    keys = list(zip(o["actor_id"], o["episode"], o["step"]))
    assert len(keys) == len(set(keys)) == 9
    assert list(o["actor_step"]) == list(range(9))
    # step 3 of the log (already in the chunk), message 1 again, the overlap
    assert again.intake.stats()["duplicate_steps"] == 1 + 3 + 2


def test_intake_first_contact_starts_at_the_actors_oldest_unacked_step(tmp_path):
    learner = Learner(str(tmp_path / "run"))
    # a live message arrives before the resend of older ones: it waits for them
    assert learner.receive(*_message(2, 10, _steps(4, 0, 2), outbox_from=6)) == (0, {2: 6})
    assert learner.intake.expected == {2: 6} and learner.intake.early == 1
    # an actor that gave up on old steps (outbox overflow): the learner moves on, counting them
    assert learner.receive(*_message(2, 12, _steps(4, 2, 2), outbox_from=12))[0] == 2
    assert learner.intake.lost == 6


def test_wal_torn_tail_is_ignored_and_cut(tmp_path):
    run = str(tmp_path / "run")
    learner = Learner(run, flush_every=100)
    learner.receive(*_message(1, 0, _steps(0, 0, 2)))
    learner.intake._wal.close()
    with open(learner.intake.wal_path, "ab") as f:
        f.write(b"\x99\x00\x00\x00\x01\x02")
    again = Learner(run, flush_every=100)
    assert again.replayed == 2 and len(again.buf) == 2
    again.receive(*_message(1, 2, _steps(0, 2, 1)))
    third = Learner(run, flush_every=100)
    assert third.replayed == 3


def test_quiet_actors_are_reported_once_until_they_deliver(tmp_path):
    learner = Learner(str(tmp_path / "run"))
    learner.intake.quiet_after = 5.0
    learner.intake.admit(_message(3, 0, _steps(0, 0, 1))[1], now=10.0)
    assert learner.intake.newly_quiet(now=14.0) == []
    assert learner.intake.newly_quiet(now=16.0) == [3]
    assert learner.intake.newly_quiet(now=20.0) == []
    assert learner.intake.actors(now=20.0)["3"]["quiet"]
    learner.intake.admit(_message(3, 1, _steps(0, 1, 1))[1], now=21.0)
    assert not learner.intake.actors(now=21.0)["3"]["quiet"]


def test_run_state_versions_never_go_backwards(tmp_path):
    state = RunState(str(tmp_path))
    assert state.next_version() == 1 and state.next_version(10) == 11
    again = RunState(str(tmp_path))
    assert again.run_id == state.run_id and again.next_version(3) == 12
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ValueError, match="run.json is not a readable run state"):
        RunState(str(tmp_path))


def test_checkpoint_cadence_by_updates_and_by_time():
    now = [0.0]
    cadence = CheckpointCadence(every=100, period=30.0, clock=lambda: now[0])
    assert not cadence.due(1) and cadence.due(100)
    now[0] = 29.0
    assert not cadence.due(101)
    now[0] = 31.0
    assert cadence.due(102) and not cadence.due(103)


def test_a_logged_message_that_no_longer_fits_is_refused_by_name(tmp_path):
    run = str(tmp_path / "run")
    Learner(run, flush_every=100).receive(*_message(1, 0, _steps(0, 0, 2)))
    other = {"state": {"shape": [5], "dtype": "float32"}}
    replay = os.path.join(run, "replay")
    intake = Intake(replay, lambda: (0, 0))
    with pytest.raises(ValueError, match=r"wal.bin: logged message 0 does not fit this learner"):
        intake.replay_wal(lambda d: transport.decode_transitions(d, other, 2), lambda a: None)


def test_a_resend_keeps_at_most_a_window_in_flight_and_restarts_when_acks_stall():
    box = Outbox(None)
    r = Resender(box, resend_after=2.0, burst=4, window=6)
    for i in range(10):
        box.add(i, 1, 0, bytes([i]))
    r.on_learner("A")
    assert [e.first_step for e in r.due()] == [0, 1, 2, 3]
    assert [e.first_step for e in r.due()] == [4, 5]  # the window is full
    assert r.due() == [] and r.active  # waits for acks
    r.on_ack(3, now=10.0)  # the window slides
    assert [e.first_step for e in r.due()] == [6, 7, 8]
    r.on_ack(3, now=11.0)
    r.on_ack(3, now=13.0)  # no progress for resend_after: from the oldest again
    assert [e.first_step for e in r.due()] == [3, 4, 5, 6]
    r.on_ack(10, now=14.0)
    assert r.due() == [] and not r.active
