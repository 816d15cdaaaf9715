"""Episode state machine: legal and illegal transitions, terminal vs truncated, statistics."""
import json

import pytest

from robot_rl.hil.episode import EpisodeState, EpisodeStateMachine, IllegalTransition


def test_success_is_terminal_and_resets():
    sm = EpisodeStateMachine(max_steps=10, actor_id=2)
    assert sm.state == EpisodeState.RESETTING
    sm.start()
    r = sm.step(0.0)
    assert (r.terminated, r.truncated, sm.state) == (False, False, EpisodeState.RUNNING)
    r = sm.step(1.0, success=True)
    assert (r.terminated, r.truncated, sm.state) == (True, False, EpisodeState.SUCCESS)
    ev = json.loads(sm.event_json())
    assert ev["event"] == "success" and ev["return"] == 1.0 and ev["length"] == 2
    assert ev["actor_id"] == 2 and ev["episode"] == 0
    sm.begin_reset()
    assert sm.state == EpisodeState.RESETTING and sm.episode == 1


def test_timeout_is_truncation_not_termination():
    sm = EpisodeStateMachine(max_steps=3)
    sm.start()
    results = [sm.step(0.0) for _ in range(3)]
    assert [r.truncated for r in results] == [False, False, True]
    assert not any(r.terminated for r in results)
    assert sm.state == EpisodeState.TIMEOUT
    with pytest.raises(IllegalTransition):
        sm.step(0.0)  # max episode length enforced


def test_failure_and_abort_are_terminal():
    sm = EpisodeStateMachine(max_steps=5)
    sm.start()
    assert sm.step(0.0, failure=True).terminated and sm.state == EpisodeState.FAILURE
    sm.begin_reset()
    sm.start()
    sm.abort("lost the camera")
    assert sm.state == EpisodeState.FAILURE and sm.event()["reason"] == "lost the camera"


@pytest.mark.parametrize("call", ["step", "begin_reset", "abort"])
def test_illegal_transitions_from_resetting(call):
    sm = EpisodeStateMachine(max_steps=5)
    with pytest.raises(IllegalTransition, match="resetting"):
        getattr(sm, call)(*([0.0] if call == "step" else ["x"] if call == "abort" else []))


def test_illegal_transitions_from_running_and_ended():
    sm = EpisodeStateMachine(max_steps=5)
    sm.start()
    with pytest.raises(IllegalTransition):
        sm.start()
    with pytest.raises(IllegalTransition):
        sm.begin_reset()
    with pytest.raises(IllegalTransition):
        sm.reset_failed("no")
    sm.step(1.0, success=True)
    with pytest.raises(IllegalTransition):
        sm.start()
    with pytest.raises(IllegalTransition):
        sm.step(0.0)


def test_reset_failures_are_counted_and_cleared():
    sm = EpisodeStateMachine(max_steps=5)
    assert sm.reset_failed("timeout") == 1
    assert sm.reset_failed("timeout") == 2
    assert sm.state == EpisodeState.RESETTING and sm.event("reset_failed")["reason"] == "timeout"
    sm.start()
    assert sm.reset_failures == 0


def test_intervention_statistics():
    sm = EpisodeStateMachine(max_steps=10)
    sm.start()
    assert sm.steps_since_intervention == -1
    for intervened in [False, True, True, False, False]:
        sm.step(0.0, intervened=intervened)
    assert sm.interventions == 2 and sm.intervention_rate == pytest.approx(0.4)
    assert sm.steps_since_intervention == 2
    sm.step(0.0, failure=True)
    sm.begin_reset()
    sm.start()
    assert sm.interventions == 0 and sm.steps_since_intervention == 3  # carries across episodes
    ev = sm.event()
    assert set(ev) >= {"actor_id", "episode", "event", "return", "length", "interventions",
                       "intervention_rate"}


def test_awaiting_confirmation_between_reset_and_start():
    sm = EpisodeStateMachine(max_steps=5)
    assert sm.awaiting_confirmation() and sm.state == EpisodeState.AWAITING_CONFIRMATION
    assert json.loads(sm.event_json())["event"] == "awaiting_confirmation"
    assert not sm.awaiting_confirmation()  # a repeated message changes nothing
    sm.start()
    assert sm.state == EpisodeState.RUNNING
    assert not sm.awaiting_confirmation()  # a late message cannot pull a running episode back
    with pytest.raises(IllegalTransition):
        sm.start()
    sm.step(0.0, failure=True)
    sm.begin_reset()
    assert sm.awaiting_confirmation()
    assert sm.reset_failed("no confirmation from the human") == 1
    assert sm.state == EpisodeState.RESETTING  # the next attempt starts over
