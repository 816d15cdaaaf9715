"""The one parser of text/JSON inputs that arrive over ROS (``std_msgs/String``): episode
events, node status reports. ROS-free.

Anything on a topic may come from any process on the DDS domain, so every String input goes
through :func:`parse_json_object` (size limit, strict JSON without NaN/Infinity, nesting limit,
an object at the top) and then a schema (:func:`parse_episode_event`, :func:`parse_status`)
that checks each field's type and range. Every failure is an :class:`InputError` whose
``reason`` is a short category for counting; callers log it (throttled), count it and go on.
Nothing here raises anything else, whatever the input (property-tested with hypothesis).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

MAX_TEXT_BYTES = 64 * 1024  # an episode event is ~250 bytes, a learner status ~1.5 KiB
MAX_DEPTH = 16
EPISODE_EVENTS = ("resetting", "running", "success", "failure", "timeout", "reset_failed",
                  "awaiting_confirmation")
ENDED_EVENTS = ("success", "failure", "timeout")
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


class InputError(ValueError):
    """A text input was refused; ``reason`` is a short category, the text says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def parse_json_object(text: Any, what: str = "message",
                      max_bytes: int = MAX_TEXT_BYTES) -> Dict[str, Any]:
    """``text`` (a str, as ``std_msgs/String.data``) -> a JSON object, or ``InputError``."""
    if not isinstance(text, str):
        raise InputError("not_text", f"{what}: expected a JSON string, got {type(text).__name__}")
    if len(text) > max_bytes:  # characters >= bytes/4; checked before any parsing work
        raise InputError("oversize", f"{what}: {len(text)} characters exceeds the limit of "
                                     f"{max_bytes}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, NaN/Infinity, digit limits
        raise InputError("not_json", f"{what} is not valid JSON ({type(exc).__name__}: "
                                     f"{str(exc)[:120]}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise InputError("not_object", f"{what}: expected a JSON object {{...}}, got "
                                       f"{type(value).__name__} {text[:80]!r}")
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise InputError("too_deep", f"{what}: nested deeper than {MAX_DEPTH} levels")
    return value


def get_int(obj: Mapping[str, Any], key: str, default: Optional[int] = None, low: int = 0,
            high: int = INT64_MAX, what: str = "message") -> int:
    v = obj.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise InputError("bad_field", f"{what}: {key!r} must be an integer in [{low}, {high}], "
                                      f"got {str(v)[:40]!r}")
    return v


def get_float(obj: Mapping[str, Any], key: str, default: Optional[float] = None,
              low: float = -math.inf, high: float = math.inf, what: str = "message") -> float:
    v = obj.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError("bad_field", f"{what}: {key!r} must be a number, got {str(v)[:40]!r}")
    v = float(v)  # a huge JSON integer becomes inf here and is refused below
    if not math.isfinite(v) or not low <= v <= high:
        raise InputError("bad_field", f"{what}: {key!r} must be a finite number in [{low:g}, "
                                      f"{high:g}], got {v!r}")
    return v


def get_str(obj: Mapping[str, Any], key: str, default: Optional[str] = None,
            choices: Optional[Sequence[str]] = None, max_len: int = 256,
            what: str = "message") -> str:
    v = obj.get(key, default)
    if not isinstance(v, str) or len(v) > max_len:
        raise InputError("bad_field", f"{what}: {key!r} must be a string of at most {max_len} "
                                      f"characters, got {str(v)[:40]!r}")
    if choices is not None and v not in choices:
        raise InputError("bad_field", f"{what}: {key!r} must be one of {list(choices)}, got "
                                      f"{v[:40]!r}")
    return v


@dataclass(frozen=True)
class EpisodeEvent:
    """One ``/episode/event`` message (``robot_rl.hil.episode.EpisodeStateMachine.event``)."""
    actor_id: int
    episode: int
    event: str
    ret: float
    length: int
    interventions: int
    intervention_rate: float
    steps_since_intervention: int
    reason: str = ""
    evaluation: int = -1   # the actor's evaluation round, -1 for a training episode

    @property
    def ended(self) -> bool:
        return self.event in ENDED_EVENTS

    @property
    def success(self) -> bool:
        return self.event == "success"


def parse_episode_event(text: Any) -> EpisodeEvent:
    """Parse and check an ``/episode/event`` payload; ``InputError`` if anything is off."""
    return episode_event_from(parse_json_object(text, "episode event"))


def episode_event_from(obj: Any) -> EpisodeEvent:
    """Check an already decoded episode event object field by field."""
    what = "episode event"
    if not isinstance(obj, Mapping):
        raise InputError("not_object", f"{what}: expected a JSON object, got "
                                       f"{type(obj).__name__}")
    length = get_int(obj, "length", 0, 0, INT32_MAX, what)
    interventions = get_int(obj, "interventions", 0, 0, INT32_MAX, what)
    if interventions > length:
        raise InputError("bad_field", f"{what}: {interventions} interventions in a "
                                      f"{length}-step episode")
    return EpisodeEvent(
        actor_id=get_int(obj, "actor_id", 0, 0, INT32_MAX, what),
        episode=get_int(obj, "episode", 0, 0, INT64_MAX, what),
        event=get_str(obj, "event", None, EPISODE_EVENTS, what=what),
        ret=get_float(obj, "return", 0.0, -1e9, 1e9, what),
        length=length, interventions=interventions,
        intervention_rate=get_float(obj, "intervention_rate", 0.0, 0.0, 1.0, what),
        steps_since_intervention=get_int(obj, "steps_since_intervention", -1, -1, INT64_MAX,
                                         what),
        reason=get_str(obj, "reason", "", max_len=1024, what=what),
        evaluation=get_int(obj, "evaluation", -1, -1, INT32_MAX, what))


def parse_status(text: Any, what: str = "status") -> Dict[str, Any]:
    """A node's JSON status report (``/rl/learner_status``, ``/rl/actor_status``...): an object
    whose number fields are finite. Consumers read fields with ``get_int``/``get_float``."""
    obj = parse_json_object(text, what)
    for key, value in obj.items():
        if isinstance(value, float) and not math.isfinite(value):  # 1e999 parses as inf
            raise InputError("bad_field", f"{what}: {key!r} is not finite")
    return obj
