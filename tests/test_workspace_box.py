"""The workspace box on the joint-target path: real pinocchio kinematics, real MuJoCo arm.

Property tests draw random joint targets (inside the limits and beyond them) from random
starting postures and check the admitted straight joint-space path against the box at 16x the
density the check itself uses: the TCP never leaves the box by more than TOLERANCE. The
10,000-target figure comes from bench/workspace_box.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_rl.config import Config
from robot_rl.robot.controller import CommandError
from robot_rl.robot.workspace import MAX_JOINT_STEP, WorkspaceBox, check_joint_path, path_points

TOLERANCE = 0.005  # m: the stated bound on the TCP's excursion outside the box




@pytest.fixture(scope="module")
def box(cfg):
    return WorkspaceBox(cfg.controller.workspace_min, cfg.controller.workspace_max)


def worst_excursion(kin, box, q_start, q_end, density=16):
    points = path_points(q_start, q_end, MAX_JOINT_STEP / density)
    return max(box.excursion(kin.forward(q).translation) for q in points)


def test_box_geometry_and_face_names(box):
    assert box.excursion(np.array([0.5, 0.0, 0.3])) == 0.0
    assert box.excursion(np.array([0.5, 0.0, -0.29])) == pytest.approx(0.3)
    assert box.excursion(np.array([0.75 + 0.3, 0.35 + 0.4, 0.3])) == pytest.approx(0.5)
    faces = box.faces(np.array([0.9, 0.0, -0.5]))
    assert [f.describe() for f in faces] == ["z < 0.01 (workspace_min.z)",
                                            "x > 0.75 (workspace_max.x)"]
    with pytest.raises(ValueError, match="lower < upper"):
        WorkspaceBox([0, 0, 1], [1, 1, 0.5])


def _inside_start(kin, box, rng):
    """A random posture whose TCP is inside the box (home plus noise, rejection-sampled)."""
    home = np.array(Config().robot.home)
    while True:
        q = np.clip(home + rng.normal(0.0, 0.5, 7), kin.limits.lower, kin.limits.upper)
        if box.excursion(kin.forward(q).translation) == 0.0:
            return q


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), beyond=st.floats(0.0, 1.0))
def test_admitted_path_keeps_tcp_in_box(kin, box, seed, beyond):
    """From inside the box, whatever the target: the admitted path stays inside (±TOLERANCE),
    and a target that was changed ends at the last point before the face it names."""
    rng = np.random.default_rng(seed)
    start = _inside_start(kin, box, rng)
    span = kin.limits.upper - kin.limits.lower
    target = rng.uniform(kin.limits.lower - beyond * span / 2, kin.limits.upper + beyond * span / 2)
    target = np.clip(target, kin.limits.lower, kin.limits.upper)  # the controller's limit clamp
    result = check_joint_path(kin, box, start, target)
    assert 0.0 <= result.fraction <= 1.0
    assert worst_excursion(kin, box, start, result.target) <= TOLERANCE
    if result.changed:
        np.testing.assert_allclose(result.target, start + result.fraction * (target - start),
                                   atol=1e-9)
        # The next checked point beyond the admitted one really is outside that face.
        step = path_points(start, target)[1] - start
        beyond_tcp = kin.forward(result.target + step).translation
        face = result.face
        assert (beyond_tcp[face.axis] < face.limit if face.side == "min"
                else beyond_tcp[face.axis] > face.limit)
        assert result.driving_joints and all(j in kin.joint_names for j in result.driving_joints)
    else:
        np.testing.assert_array_equal(result.target, target)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_path_from_outside_never_goes_further_out(kin, box, seed):
    """A start outside the box (after a reset, or a smaller box): the admitted path never
    takes the TCP further out than it already was."""
    rng = np.random.default_rng(seed)
    while True:
        start = rng.uniform(kin.limits.lower, kin.limits.upper)
        out = box.excursion(kin.forward(start).translation)
        if 0.0 < out < 0.3:
            break
    target = rng.uniform(kin.limits.lower, kin.limits.upper)
    result = check_joint_path(kin, box, start, target)
    assert worst_excursion(kin, box, start, result.target) <= out + TOLERANCE


def test_inside_target_is_unchanged(kin, box, cfg):
    home = np.array(cfg.robot.home)
    target = home + [0.2, 0.1, -0.1, 0.1, 0.0, -0.1, 0.2]
    result = check_joint_path(kin, box, home, target)
    assert not result.changed and result.fraction == 1.0


# -- the fault cases, closed-loop in MuJoCo --------------------------------------------
def _excursion_over(world, box, steps):
    worst = 0.0
    for _ in range(steps):
        world.step_physics(1)
        worst = max(worst, box.excursion(world.ee_pose()[0]))
    return worst


FAULTS = {
    # inside the joint limits; the limit-only driver took the TCP 0.16 m above the box
    "inside_limits": ([0, 0, 0, 0.65, 0, 0, 0], "z > 0.55 (workspace_max.z)", "panda_joint4"),
    # out of range (clamped to the limit); the limit-only driver: 0.77 m above the box
    "out_of_range": ([0, 0, 0, 2.9, 0, 0, 0], "z > 0.55 (workspace_max.z)", "panda_joint4"),
    # out of range toward the table
    "into_table": ([0, 2.9, 0, 0, 0, 0, 0], "z < 0.01 (workspace_min.z)", "panda_joint2"),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_fault_cases_are_clamped_and_the_arm_stays_in_box(clear_world, case):
    world = clear_world
    offset, face, joint = FAULTS[case]
    box = world.controller.box
    report = world.controller.set_joint_target(np.array(world.cfg.robot.home) + offset)
    text = "; ".join(report.clamped)
    assert "TCP would leave the workspace box at " + face in text, text
    assert f"driven by {joint}" in text, text
    assert _excursion_over(world, box, 2000) <= TOLERANCE  # 4 s, every physics step
    # It got to the scaled-back target (not just stopped short).
    assert np.max(np.abs(world.arm_q() - world.controller.target_q)) < 0.02


def test_target_with_no_admissible_motion_is_refused(world):
    """At the face, a target straight through it is refused and the previous target held."""
    ctl, kin = world.controller, world.kin
    home = np.array(world.cfg.robot.home)
    lo, hi = 0.0, 0.65  # joint 4 offsets: TCP inside at 0, above the box at 0.65
    for _ in range(60):  # bisect onto the top face
        mid = (lo + hi) / 2
        inside = kin.forward(home + [0, 0, 0, mid, 0, 0, 0]).translation[2] <= ctl.box.upper[2]
        lo, hi = (mid, hi) if inside else (lo, mid)
    at_face = home + [0, 0, 0, lo, 0, 0, 0]
    ctl.hold(at_face)
    before = ctl.target_q.copy()
    with pytest.raises(CommandError,
                       match=r"z > 0.55 \(workspace_max.z\) at the start of the path, driven by "
                             r"panda_joint4"):
        ctl.set_joint_target(at_face + [0, 0, 0, 0.3, 0, 0, 0])
    np.testing.assert_array_equal(ctl.target_q, before)
    # Moving away from the face is fine.
    assert not ctl.set_joint_target(at_face - [0, 0, 0, 0.3, 0, 0, 0])


def test_controller_node_box_lies_inside_the_drivers():
    """The deployment controller's safety box is intersected with controller.workspace_*, so
    it never sends a TCP target that the driver would clamp (real_panda.yaml has a smaller
    controller box than the default safety box)."""
    from pathlib import Path

    from robot_rl.config import load_config
    from robot_rl.deploy.controller_core import safety_config_for

    real = load_config(Path(__file__).resolve().parents[1] / "config" / "real_panda.yaml")
    assert real.controller.workspace_min != list(real.safety.workspace_min)  # the case at hand
    safety = safety_config_for(real, 10.0, [])
    assert list(safety.workspace_min) == real.controller.workspace_min
    assert list(safety.workspace_max) == real.controller.workspace_max
    disjoint = load_config(None, {"controller.workspace_min": [0.8, -0.35, 0.01],
                                  "controller.workspace_max": [0.9, 0.35, 0.55]})
    with pytest.raises(ValueError, match="do not overlap"):
        safety_config_for(disjoint, 10.0, [])
