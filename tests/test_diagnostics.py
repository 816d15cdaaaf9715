"""Health levels from counters, without ROS."""
import pytest

from robot_rl.diagnostics import Health, HealthTracker, controller_conditions, flat_values


def test_problem_counters_raise_the_level_only_while_they_grow():
    tracker = HealthTracker(warn=("rejected",), error=("faults",))
    assert tracker.assess({"rejected": 0, "faults": 0}, now=0.0).level == "OK"
    health = tracker.assess({"rejected": 3, "faults": 0}, now=1.0)
    assert health.level == "WARN" and health.message == "rejected +3 (total 3)"
    assert health.values == {"rejected": 3, "faults": 0}
    health = tracker.assess({"rejected": 4, "faults": 1}, now=2.0)
    assert health.level == "ERROR"
    assert health.message == "faults +1 (total 1); rejected +1 (total 4)"
    assert tracker.assess({"rejected": 4, "faults": 1}, now=3.0).level == "OK"


def test_a_liveness_counter_that_stops_warns_after_the_grace_time():
    tracker = HealthTracker(alive=("published",), stale_after_s=3.0)
    assert tracker.assess({"published": 0}, now=0.0).level == "OK"  # baseline
    assert tracker.assess({"published": 0}, now=2.0).level == "OK"
    health = tracker.assess({"published": 0}, now=3.5)
    assert health.level == "WARN" and health.message == "published: no new value for 3.5 s"
    assert tracker.assess({"published": 1}, now=4.0).level == "OK"


def test_conditions_and_values():
    tracker = HealthTracker()
    health = tracker.assess({"n": 1}, [("OK", "fine"), ("ERROR", "e-stop latched")],
                            values={"mode": "estop"})
    assert (health.level, health.message) == ("ERROR", "e-stop latched")
    assert health.values == {"n": 1, "mode": "estop"}
    with pytest.raises(ValueError, match="expected one of"):
        Health("BAD")


def test_controller_conditions_name_what_is_wrong():
    ok = {"mode": "POLICY", "faults": [], "stale_sensors": [], "latency_ms": {"p99": 1.5}}
    assert controller_conditions(ok, 0.01) == []
    bad = {"mode": "ESTOP", "faults": ["nan action"], "stale_sensors": ["ee_pose"],
           "latency_ms": {"p99": 15.0}}
    assert controller_conditions(bad, 0.01) == [
        ("ERROR", "e-stop latched"), ("ERROR", "faults: nan action"),
        ("WARN", "stale sensors: ee_pose"),
        ("WARN", "latency p99 15.00 ms exceeds the 10 ms period")]


def test_flat_values_are_strings():
    assert flat_values({"a": {"b": 1, "c": [1, 2]}, "x": float("nan"), "y": 0.123456789}) == {
        "a.b": "1", "a.c": "1, 2", "x": "nan", "y": "0.123457"}
