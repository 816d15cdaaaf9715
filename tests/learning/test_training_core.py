"""TrainingCore: the store-and-update body shared by the ROS learner's LearnerCore and train-gym,
driven through its in-process path (no wire codec): real agent, real replay buffers."""
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.config import load_config
from robot_rl.learning.learner_core import LearnerCore
from robot_rl.learning.learner_run import CheckpointCadence
from robot_rl.learning.replay import DemoOnlineBuffers, ReplayBuffer
from robot_rl.learning.rlpd import RLPDAgent, RLPDConfig
from robot_rl.learning.training_core import TrainingCore

OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = RLPDConfig(num_critics=2, critic_subset=2, utd_ratio=2, hidden_dims=(16, 16), batch_size=8, seed=0)


def _core(**kwargs) -> TrainingCore:
    agent = RLPDAgent(OBS, ACT, SMALL)
    online = ReplayBuffer(OBS, 2, 1000, seed=0, verbose=False, name="online")
    return TrainingCore(agent, DemoOnlineBuffers(None, online, SMALL.demo_ratio), **kwargs)


def _episode(rng, length):
    obs = rng.uniform(-1, 1, (length + 1, 3)).astype(np.float32)
    return [(obs[t], rng.uniform(-1, 1, 2).astype(np.float32), float(t == length - 1), obs[t + 1],
             t == length - 1, False) for t in range(length)]


def test_each_stored_step_from_start_after_on_buys_one_update():
    core = _core(start_after=5, publish_every=3)
    rng = np.random.default_rng(0)
    steps = _episode(rng, 12)
    for t in steps[:4]:
        core.add(*t)
    ev = core.train()
    assert not (ev.started or ev.updated or core.training) and core.updates == 0
    core.add(*steps[4])  # the 5th step starts training and buys the first update
    ev = core.train()
    assert ev.started and ev.n_updates == 1 and not ev.weights_due
    for t in steps[5:9]:
        core.add(*t)
    ev = core.train(max_updates=1)  # a host may take them one at a time (the learner does)
    assert ev.n_updates == 1 and not ev.started and core.credit == 3.0
    ev = core.train()
    assert ev.n_updates == 3 and ev.weights_due  # updates 3..5 passed a multiple of 3
    assert core.updates == 5 == core.agent.num_actor_updates
    assert core.critic_steps_trained == 10 and core.real_utd == pytest.approx(10 / 4)
    assert core.train().n_updates == 0  # no credit left


def test_backlog_is_capped_and_checkpoints_and_evaluations_come_as_events():
    clock = [0.0]
    core = _core(start_after=1, max_backlog=3, eval_every=4,
                 cadence=CheckpointCadence(every=2, period=1e9, clock=lambda: clock[0]))
    core.add_episode(_episode(np.random.default_rng(1), 10))
    assert len(core.online) == 10 and core.env_steps == 10
    ev = core.train()
    # 10 steps stored, but at most 3 updates owed at once; 10 passed the multiples 4 and 8 of
    # eval_every: one evaluation is due now, not two
    assert ev.n_updates == 3 and ev.evaluation_due and ev.checkpoint_due is False
    ev = core.train(max_updates=0)
    assert not ev.evaluation_due and ev.n_updates == 0
    core.add(*_episode(np.random.default_rng(2), 1)[0])
    ev = core.train()
    assert ev.n_updates == 1 and core.updates == 4 and ev.checkpoint_due  # 4: a multiple of 2


def test_learner_core_takes_episodes_in_process_and_keeps_them_across_a_resume(tmp_path):
    cfg = load_config(None, {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
                             "agent.hidden_dims": [16, 16], "agent.num_critics": 2, "agent.batch_size": 8,
                             "agent.utd_ratio": 1, "learner.tensorboard": False, "learner.min_online": 6,
                             "learner.run_dir": str(tmp_path / "run")})
    learner = LearnerCore(cfg)
    obs_space = learner.obs_space
    obs_space.seed(0)
    frames = [obs_space.sample() for _ in range(9)]
    episode = [(frames[t], np.zeros(learner.adim, np.float32), 0.0, frames[t + 1], False, t == 7)
               for t in range(8)]
    try:
        learner.add_episode(episode, actor_id=3)
        updates = 0
        while True:
            ev = learner.step(wait=0.0)
            if not ev.updated:
                break
            updates += 1
        assert updates == 8 - 6 + 1 and learner.env_steps == 8 and learner.status()["training"]
        stored = learner.online.get(np.arange(8))
        assert (stored["actor_id"].numpy() == 3).all()
    finally:
        learner.close()
    again = LearnerCore(cfg, resume=True)
    try:
        assert len(again.online) == 8 and again.updates == 3 and again.training
    finally:
        again.close()
