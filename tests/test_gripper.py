"""Turning a stream of gripper openings into franka_gripper goals (no ROS)."""
from __future__ import annotations

import math

import pytest

from robot_rl.robot.gripper import GripperGoal, GripperGoalPlanner


def planner():
    return GripperGoalPlanner(max_width=0.08, speed=0.1, force=40.0, epsilon=0.08)


def test_closing_grasps_opening_moves_repeats_are_not_resent():
    p = planner()
    assert p.plan(0.08, measured=0.08) == GripperGoal("move", 0.08, 0.1)
    assert p.plan(0.08, measured=0.079) is None                 # same goal: keep it running
    assert p.plan(0.0, measured=0.08) == GripperGoal("grasp", 0.0, 0.1, 40.0, 0.08, 0.08)
    for _ in range(10):                                         # the policy keeps saying "close"
        assert p.plan(0.001, measured=0.03) is None
    assert p.plan(0.08, measured=0.03).kind == "move"           # open again


def test_commands_are_clamped_and_nonfinite_refused():
    p = planner()
    assert p.plan(0.5, measured=0.0).width == 0.08
    assert p.plan(-1.0, measured=0.08) == GripperGoal("grasp", 0.0, 0.1, 40.0, 0.08, 0.08)
    with pytest.raises(ValueError, match="finite"):
        p.plan(math.nan)


def test_without_a_measurement_the_last_goal_is_the_reference():
    p = planner()
    assert p.plan(0.04).kind == "grasp"   # below the assumed fully open start
    assert p.plan(0.06).kind == "move"
    assert p.homing().kind == "homing"
    assert p.plan(0.06).kind == "move"    # after homing, the same width is sent again


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="speed > 0"):
        GripperGoalPlanner(max_width=0.08, speed=0.0, force=40.0, epsilon=0.08)
