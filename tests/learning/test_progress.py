"""Learner progress statistics: episode events are counted only when well formed."""
import math

import pytest

from robot_rl.learning.progress import Progress


def test_episode_events_counted_and_malformed_ones_refused_without_counting():
    p = Progress(None, window=10)
    ids = {"actor_id": 0, "episode": 3}
    assert p.episode({**ids, "event": "success", "return": 1.0, "length": 12,
                      "intervention_rate": 0.25}, 0)
    assert not p.episode({**ids, "event": "running"}, 0)  # not an episode end
    for bad in ({"event": "failure", "length": "abc"}, {"event": "timeout", "return": None},
                {"event": "success", "return": math.nan}, {"event": "success", "length": True},
                {"event": "success", "intervention_rate": 2.0}, {"event": "won"}):
        with pytest.raises(ValueError, match="must be"):
            p.episode({**ids, **bad}, 0)
    with pytest.raises(ValueError, match="'episode' must be an integer"):
        p.episode({"actor_id": 0, "episode": "3", "event": "success"}, 0)
    with pytest.raises(ValueError, match="'event' must be"):
        p.episode({"actor_id": 0, "episode": 3}, 0)
    assert p.episodes == 1
    assert p.rates() == {"success_rate": 1.0, "intervention_rate": 0.25, "episode_length": 12.0,
                         "return": 1.0}
