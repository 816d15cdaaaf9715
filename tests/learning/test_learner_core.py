"""The learner's and the actor's ROS-free cores, wired to each other in one process: real
MuJoCo episodes, real transport messages, real write-ahead log and acknowledgements."""
import json
import logging

import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.learning.actor_core import ActorCore
from robot_rl.learning.learner_core import LearnerCore
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8,
         "agent.utd_ratio": 2, "learner.tensorboard": False, "learner.min_online": 12,
         "learner.publish_every": 3, "learner.checkpoint_every": 4,
         "task.max_episode_steps": 8}


class _NeverRaised(Exception):
    """The MuJoCo env has no stream to time out and no clock to jump back."""


def _cfg(tmp_path, **more):
    return load_config(None, {**SMALL, "learner.run_dir": str(tmp_path / "run"), **more})


def _act(actor: ActorCore, episodes: int):
    """Run the actor's episode loop on the MuJoCo pick env until ``episodes`` ended."""
    from robot_rl.envs.pick_cube import PickCubeEnv

    ended = []

    def on_event(text):
        sent_events.append(json.loads(text))
        if sent_events[-1]["event"] in ("success", "failure", "timeout"):
            ended.append(1)
            if len(ended) >= episodes:
                actor.stop.set()

    sent_events = []
    actor._send_event = on_event
    env = PickCubeEnv(actor.cfg)
    try:
        actor.run(env, _NeverRaised, _NeverRaised, logging.getLogger("actor"))
    finally:
        env.close()
    return sent_events


def test_actor_and_learner_cores_deliver_train_and_exchange_weights(tmp_path):
    cfg = _cfg(tmp_path)
    messages = []
    actor = ActorCore(cfg, messages.append, lambda text: None)
    learner = LearnerCore(cfg)
    try:
        events = _act(actor, episodes=2)
        assert [e["event"] for e in events].count("running") == 2
        assert actor.sent_steps == actor.total_steps == 16 and len(messages) == 16
        assert actor.outbox.unacked_steps == 16
        assert learner.receive(messages[0]) is None and learner.queued == 1
        seen = {"acks": {}, "weights": 0, "checkpoints": 0, "started": 0, "updates": 0}

        def step():
            ev = learner.step(wait=0.0)
            seen["acks"].update(ev.acks)
            seen["started"] += ev.started
            seen["updates"] += ev.updated
            if ev.weights_due:
                seen["weights"] += 1
                refusal, _ = actor.offer_weights(learner.weights_message())
                assert refusal is None
            if ev.checkpoint_due:
                seen["checkpoints"] += 1
                learner.save()
            return ev.updated

        step()
        for data in messages[1:]:
            assert learner.receive(data) is None
            step()
        while step():  # no credit left: nothing more to train on
            pass
        # training starts at min_online (12); it and each of the 4 later steps buy one update
        assert seen == {"acks": {0: 16}, "weights": 1, "checkpoints": 1, "started": 1,
                        "updates": 5}
        assert learner.updates == 5 and learner.env_steps == 16 and len(learner.online) == 16
        assert learner.critic_steps_trained == 10 and learner.real_utd == pytest.approx(10 / 4)
        assert learner.status()["training"] and learner.status()["weights_version"] == 1

        assert actor.on_ack(learner.acks_message(seen["acks"])) is None
        assert actor.outbox.unacked_steps == 0
        actor.apply_weights()
        assert actor.weights_version == 1 and actor.applied_run == learner.run_state.run_id
        # a message already held is a duplicate: stored once
        assert learner.receive(messages[0]) is None
        learner.drain()
        assert len(learner.online) == 16 and learner.status()["duplicate_steps"] >= 1
    finally:
        actor.close()
        learner.close()


def test_learner_core_refuses_and_counts_bad_input(tmp_path):
    learner = LearnerCore(_cfg(tmp_path))
    try:
        assert learner.receive(b"\x00garbage") is not None
        assert learner.episode_event('{"event": "success", "length": "abc"}') is not None
        assert learner.episode_event(json.dumps({"event": "success", "return": 1.0,
                                                 "length": 3})) is None
        assert learner.rejected["bad_event"] == 1 and sum(learner.rejected.values()) == 2
        assert learner.queued == 0 and learner.episode_events == 1
        ev = learner.step(wait=0.0)  # nothing received: nothing to do
        assert not (ev.acks or ev.updated or ev.weights_due or ev.checkpoint_due)
    finally:
        learner.close()


def test_resumed_learner_core_keeps_counters_and_publishes_only_after_a_checkpoint(tmp_path):
    cfg = _cfg(tmp_path)
    messages = []
    actor = ActorCore(cfg, messages.append, lambda text: None)
    _act(actor, episodes=1)
    actor.close()
    learner = LearnerCore(cfg)
    for data in messages:
        learner.receive(data)
    learner.drain()
    version = learner.run_state.version
    learner.intake.close()  # killed before its first checkpoint: no close(), only the log
    again = LearnerCore(cfg, resume=True)
    try:
        assert len(again.online) == 8 and not again.publish_at_start
        assert again.run_state.version == version
    finally:
        again.close()


@pytest.mark.parametrize("ratio, expected", [(0.5, (4, 4)), (0.25, (2, 6)), (0.0, (0, 8))])
def test_demo_online_buffers_follow_demo_ratio(ratio, expected):
    space = spaces.Dict({"state": spaces.Box(-1, 1, (2,), np.float32)})
    demo = ReplayBuffer(space, 2, capacity=50, seed=1, verbose=False, name="demo")
    online = ReplayBuffer(space, 2, capacity=50, seed=2, verbose=False, name="online")
    both = DemoOnlineBuffers(demo, online, demo_ratio=ratio)
    obs = {"state": np.zeros(2, np.float32)}
    both.add(obs, np.zeros(2), 0.0, obs, False, False)
    assert both.split(8) == (0, 8)  # no demonstrations yet: all online
    both.add(obs, np.zeros(2), 0.0, obs, False, False, intervened=True)
    assert both.split(8) == expected and len(demo) == 1 and len(online) == 2
    d, o = both.sample(8, minibatches=3)
    assert o["action"].shape[0] == 3 * expected[1]
    assert (d is None) == (expected[0] == 0)
    if d is not None:
        assert d["action"].shape[0] == 3 * expected[0]
    with pytest.raises(ValueError, match="demo_ratio"):
        DemoOnlineBuffers(demo, online, demo_ratio=1.5)
