"""Property tests of the one String/JSON input parser (issue 19, item 4): whatever arrives, the
parser returns a checked value or raises InputError, never anything else."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_rl.hil.episode import EpisodeStateMachine
from robot_rl.learning.progress import Progress
from robot_rl.parsing import (EPISODE_EVENTS, InputError, MAX_DEPTH, parse_episode_event,
                              parse_json_object, parse_status)

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)
FIELDS = ["actor_id", "episode", "event", "return", "length", "interventions",
          "intervention_rate", "steps_since_intervention", "reason"]
FIELD_VALUES = JSON_SCALARS | st.sampled_from(EPISODE_EVENTS) | st.integers(-5, 2**70) \
    | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _dump(value) -> str:
    return json.dumps(value, allow_nan=True)  # NaN/Infinity tokens too: the parser must refuse


def _valid_event(ev) -> None:
    assert ev.event in EPISODE_EVENTS
    assert 0 <= ev.actor_id < 2**31 and ev.episode >= 0 and 0 <= ev.interventions <= ev.length
    assert math.isfinite(ev.ret) and 0.0 <= ev.intervention_rate <= 1.0
    assert ev.steps_since_intervention >= -1 and isinstance(ev.reason, str)


def _parsed_or_refused(text) -> None:
    """Every parser either refuses ``text`` with a reason or returns a well-formed value."""
    for parse in (parse_json_object, parse_status, parse_episode_event):
        try:
            out = parse(text)
        except InputError as exc:
            assert exc.reason
            continue
        if parse is parse_episode_event:
            _valid_event(out)
        else:
            assert isinstance(out, dict)


@SETTINGS
@given(st.text(max_size=300) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text(text):
    _parsed_or_refused(text)


@SETTINGS
@given(JSON_VALUES)
def test_arbitrary_json_values(value):
    _parsed_or_refused(_dump(value))


@SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=len(FIELDS)))
def test_episode_events_with_any_field_values(fields):
    progress = Progress(None)
    try:
        ev = parse_episode_event(_dump(fields))
    except InputError:
        with pytest.raises(ValueError):  # Progress checks a decoded object the same way
            progress.episode(fields, 0)
        assert progress.episodes == 0
        return
    _valid_event(ev)
    assert progress.episode(ev, 0) == ev.ended
    assert progress.episode(fields, 0) == ev.ended


@SETTINGS
@given(st.integers(0, 50), st.integers(0, 20), st.booleans())
def test_every_event_the_state_machine_writes_parses(steps, intervened_every, success):
    sm = EpisodeStateMachine(60, actor_id=3)
    assert parse_episode_event(sm.event_json()).event == "resetting"
    sm.start()
    for i in range(steps):
        sm.step(0.5, intervened=intervened_every > 0 and i % intervened_every == 0)
    sm.step(1.0, success=success, failure=not success)
    ev = parse_episode_event(sm.event_json())
    assert ev.ended and ev.length == sm.length and ev.actor_id == 3
    assert ev.interventions == sm.interventions


@pytest.mark.parametrize("text, reason", [
    ("[]", "not_object"), ("not json", "not_json"), ("", "not_json"), ("null", "not_object"),
    ('{"a": NaN}', "not_json"), ('{"a": Infinity}', "not_json"), ("x" * 70_000, "oversize"),
    ("[" * 10_000 + "]" * 10_000, "not_json"),  # RecursionError in json
    ('{"a":' * (MAX_DEPTH + 2) + "1" + "}" * (MAX_DEPTH + 2), "too_deep"),
    ('{"n": ' + "9" * 5000 + "}", "not_json"),  # beyond Python's int digit limit
])
def test_known_bad_inputs(text, reason):
    with pytest.raises(InputError) as err:
        parse_json_object(text)
    assert err.value.reason == reason


def test_status_refuses_overflowing_numbers_and_non_text():
    with pytest.raises(InputError, match="not finite"):
        parse_status('{"updates_per_s": 1e999}')
    with pytest.raises(InputError) as err:
        parse_status(b'{"a": 1}')
    assert err.value.reason == "not_text"
    assert parse_status('{"env_steps": 5, "rejections": {"unsigned": 2}}')["env_steps"] == 5
