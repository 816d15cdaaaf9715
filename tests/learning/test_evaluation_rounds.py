"""Evaluation rounds (robot_rl/learning/evaluation_rounds.py): when they start, what counts as
a success, which weights are kept, and the actor running them on the real MuJoCo pick env with
the export deploying the kept weights."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from robot_rl.config import load_config
from robot_rl.learning.evaluation_rounds import (EvaluationRounds, load_best_policy, read_best,
                                                 read_rounds)
from robot_rl.parsing import InputError, parse_episode_event


def weights(value: float) -> dict:
    return {"encoder": {"w": torch.full((2,), value)}, "actor": {"b": torch.full((3,), value)}}


def run_round(rounds: EvaluationRounds, version: int, steps: int, outcomes) -> object:
    rounds.start(version, steps)
    results = [rounds.episode_ended(success, interventions) for success, interventions in outcomes]
    assert results[:-1] == [None] * (len(outcomes) - 1)
    return results[-1]


def test_rounds_are_due_every_n_steps_and_count_only_unaided_successes(tmp_path):
    rounds = EvaluationRounds(every=100, episodes=3, directory=tmp_path)
    assert not rounds.due(99) and rounds.due(100)
    result = run_round(rounds, 7, 104, [(True, 0), (True, 2), (False, 0)])
    # the second succeeded only because a person stepped in: a failure of the policy
    assert (result.round, result.weights_version, result.successes, result.episodes) == (0, 7, 1, 3)
    assert not rounds.active and not rounds.due(203) and rounds.due(204)
    assert rounds.episode_ended(True, 0) is None  # outside a round: nothing counted
    assert EvaluationRounds(every=0, episodes=3, directory=tmp_path).due(10**9) is False


def test_the_best_round_is_kept_ties_go_to_the_later_and_a_restart_keeps_the_bar(tmp_path):
    rounds = EvaluationRounds(every=10, episodes=2, directory=tmp_path)
    assert rounds.keep(run_round(rounds, 1, 10, [(True, 0), (False, 0)]), weights(1.0))
    assert rounds.keep(run_round(rounds, 2, 20, [(True, 0), (True, 0)]), weights(2.0))
    assert not rounds.keep(run_round(rounds, 3, 30, [(False, 0), (False, 0)]), weights(3.0))
    assert rounds.keep(run_round(rounds, 4, 40, [(True, 0), (True, 0)]), weights(4.0))  # tie
    state, info = load_best_policy(tmp_path.parent) or (None, None)  # not an actor folder
    assert state is None
    restarted = EvaluationRounds(every=10, episodes=2, directory=tmp_path)
    assert restarted.round == 4 and restarted.best["weights_version"] == 4
    assert not restarted.keep(run_round(restarted, 5, 10, [(True, 0), (False, 0)]), weights(5.0))
    assert read_best(tmp_path)["weights_version"] == 4
    logged = [json.loads(line) for line in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [r["success_rate"] for r in logged] == [0.5, 1.0, 0.0, 1.0, 0.5]


def test_a_damaged_best_record_is_refused_by_name(tmp_path):
    (tmp_path / "best.json").write_text("{\"round\": 1}")
    with pytest.raises(ValueError, match="best.json.*not a best-policy record"):
        EvaluationRounds(every=10, episodes=2, directory=tmp_path)


def test_episode_events_carry_the_round_and_refuse_a_bad_one():
    base = {"actor_id": 0, "episode": 3, "event": "success", "length": 5}
    assert parse_episode_event(json.dumps(base)).evaluation == -1
    assert parse_episode_event(json.dumps({**base, "evaluation": 2})).evaluation == 2
    with pytest.raises(InputError, match="evaluation"):
        parse_episode_event(json.dumps({**base, "evaluation": "first"}))


class _NeverRaised(Exception):
    """The in-process env has no stream to time out and no clock to jump back."""


def test_the_actor_runs_rounds_with_the_mean_action_and_export_deploys_the_kept_weights(tmp_path):
    from robot_rl import transport
    from robot_rl.deploy.agent_export import make_agent, use_best_policy
    from robot_rl.envs.pick_cube import PickCubeEnv
    from robot_rl.learning.actor_core import ActorCore

    cfg = load_config(None, {"task.observations": ["state"], "cameras": [], "tactile": [],
                             "agent.hidden_dims": [16], "agent.num_critics": 2,
                             "task.max_episode_steps": 4, "actor.evaluate_every": 10,
                             "actor.evaluate_episodes": 2,
                             "learner.run_dir": str(tmp_path / "run")})
    events, messages = [], []
    actor = ActorCore(cfg, messages.append, lambda text: None)

    def on_event(text):
        events.append(json.loads(text))
        if len(read_rounds(cfg.learner.run_dir)) >= 2:
            actor.stop.set()

    actor._send_event = on_event
    env = PickCubeEnv(cfg)
    try:
        actor.run(env, _NeverRaised, _NeverRaised, logging.getLogger("actor"))
    finally:
        env.close()
        actor.close()
    ended = [e for e in events if e["event"] in ("success", "failure", "timeout")]
    marked = [e["episode"] for e in ended if "evaluation" in e]
    # 4-step episodes: training episodes 0-2 (12 steps), round 0 (2 episodes), then training
    # until step 20... round 1; every evaluation episode says which round it belongs to
    assert [e["evaluation"] for e in ended if "evaluation" in e] == [0, 0, 1, 1]
    assert marked[0] == 3 and marked[1] == 4
    # the mean action during a round: the stored action equals the deterministic one
    spec = transport.obs_spec_of(actor.obs_space)
    steps = [s for data in messages for s in transport.decode_transitions(data, spec, actor.adim).steps]
    first = next(s for s in steps if s.episode == marked[0] and s.step == 0)
    expected = actor.agent.act(first.obs, deterministic=True)
    assert torch.allclose(torch.as_tensor(first.action), torch.as_tensor(expected), atol=1e-6)
    training = next(s for s in steps if s.episode == 0 and s.step == 0)
    assert not torch.allclose(torch.as_tensor(training.action),
                              torch.as_tensor(actor.agent.act(training.obs, deterministic=True)),
                              atol=1e-6)
    # the export loads exactly the kept weights into a fresh agent
    agent = make_agent(cfg)
    info = use_best_policy(agent, cfg.learner.run_dir)
    assert info["round"] == 1 and info["episodes"] == 2  # ties (0 of 2 twice): the later
    kept = load_best_policy(cfg.learner.run_dir)[0]
    for group, values in agent.actor_state_dict().items():
        for name, value in values.items():
            assert torch.equal(value, kept[group][name])
            assert torch.equal(value, actor.agent.actor_state_dict()[group][name])
