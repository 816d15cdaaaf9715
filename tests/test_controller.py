"""Cartesian impedance controller, closed in the loop of the MuJoCo world (cube parked away).

The controller runs at every 2 ms physics step inside ``SimWorld.step_physics``; these tests
step physics themselves where a property must hold at every step or every control period.
"""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.robot.controller import ClampReport, CommandError

CONTROL_PERIOD_STEPS = 50  # 10 Hz control on a 2 ms physics step (checked below)


def tcp(world) -> np.ndarray:
    return world.ee_pose()[0]


def arm_torque(world) -> np.ndarray:
    return world.data.ctrl[world._arm_act].copy()


def settle(world, seconds: float = 0.5) -> None:
    world.step_physics(round(seconds / world.cfg.sim.physics_dt))


# A box larger than the arm's reach, so that joint-limit behaviour is tested on its own (the
# workspace box scales joint targets back before they reach the limits; test_workspace_box.py).
WIDE_BOX = {"controller.workspace_min": [-2.0, -2.0, -1.0],
            "controller.workspace_max": [2.0, 2.0, 2.0]}


@pytest.fixture
def wide_box_world(world_factory, park_cube):
    world = world_factory(WIDE_BOX)
    park_cube(world)
    return world


def test_substeps_match_control_rate(world):
    assert world.substeps == CONTROL_PERIOD_STEPS
    assert world.model.opt.timestep == pytest.approx(world.cfg.sim.physics_dt)


def test_holds_home_pose(clear_world):
    world = clear_world
    start = tcp(world)
    settle(world, 1.0)
    assert np.linalg.norm(tcp(world) - start) < 1e-3


def test_reaches_random_targets(clear_world):
    world = clear_world
    box_min = np.asarray(world.cfg.controller.workspace_min)
    box_max = np.asarray(world.cfg.controller.workspace_max)
    # Inside the box, away from its unreachable far top corners (with the gripper pointing
    # down, x = 0.75 at z = 0.55 is beyond the Panda's reach) and from the table.
    lo = np.array([0.30, -0.25, 0.05])
    hi = np.array([0.65, 0.25, 0.45])
    assert np.all(lo >= box_min) and np.all(hi <= box_max)
    rng = np.random.default_rng(1234)
    home_quat = world.ee_pose()[1]
    effort = world.kin.limits.effort
    for _ in range(5):
        target = rng.uniform(lo, hi)
        report = world.controller.set_cartesian_target(target)
        assert not report and isinstance(report, ClampReport)
        for _ in range(30):                       # 3 s of sim time
            world.step_physics()
            assert np.all(np.abs(arm_torque(world)) <= effort + 1e-9)
        pos, quat = world.ee_pose()
        assert np.linalg.norm(pos - target) < 5e-3, (target, pos)
        # Orientation is held at the home orientation (|<q1, q2>| = 1 for equal rotations).
        assert abs(np.dot(quat, home_quat)) > np.cos(0.01 / 2)


def test_target_outside_box_is_clamped_and_tcp_stays_inside(clear_world):
    world = clear_world
    cfg = world.cfg.controller
    box_min, box_max = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
    report = world.controller.set_cartesian_target([2.0, 0.0, -0.5])
    assert report
    assert len(report.clamped) == 1 and "outside the workspace box" in report.clamped[0]
    # Both faces crossed are named, farthest first.
    assert "x > 0.75 (workspace_max.x), z < 0.01 (workspace_min.z)" in report.clamped[0]
    expected = np.array([box_max[0], 0.0, box_min[2]])
    np.testing.assert_allclose(world.controller.target_pos, expected)
    tol = 5e-3
    for _ in range(40):                           # 4 s, checked at every control period
        world.step_physics()
        pos = tcp(world)
        assert np.all(pos >= box_min - tol) and np.all(pos <= box_max + tol), pos
    assert np.linalg.norm(tcp(world) - expected) < 5e-3


def test_target_inside_box_gives_empty_report(world):
    report = world.controller.set_cartesian_target([0.5, 0.0, 0.3])
    assert not report and report.clamped == []
    np.testing.assert_allclose(world.controller.target_pos, [0.5, 0.0, 0.3])


def test_joint_targets_are_clamped_to_limits(wide_box_world):
    world = wide_box_world
    ctl = world.controller
    lo, hi = world.kin.limits.lower, world.kin.limits.upper
    margin = world.cfg.controller.joint_limit_margin
    target = np.array(world.cfg.robot.home)
    target[0], target[3] = hi[0] + 1.0, lo[3] - 1.0
    report = ctl.set_joint_target(target)
    assert len(report.clamped) == 2
    assert "panda_joint1" in report.clamped[0] and "panda_joint4" in report.clamped[1]
    assert ctl.target_q[0] == pytest.approx(hi[0] - margin)
    assert ctl.target_q[3] == pytest.approx(lo[3] + margin)
    assert ctl.mode == "joint"


def steps_to_reach(world, target, settle_s=1.0):
    """Physics steps for the joint-path reference to arrive (max-abs joint speed
    controller.joint_path_speed) plus ``settle_s``."""
    distance = np.max(np.abs(np.asarray(target) - world.arm_q()))
    seconds = distance / world.cfg.controller.joint_path_speed + settle_s
    return round(seconds / world.cfg.sim.physics_dt)


def _run_joint_target(world, target, steps=None):
    """Step physics one step at a time; worst distance inside the URDF limits, max |tau|/effort."""
    lo, hi = world.kin.limits.lower, world.kin.limits.upper
    world.controller.set_joint_target(target)
    steps = steps or steps_to_reach(world, world.controller.target_q)
    worst, torque_ratio = np.full(7, np.inf), 0.0
    for _ in range(steps):
        world.step_physics(1)
        q = world.arm_q()
        worst = np.minimum(worst, np.minimum(q - lo, hi - q))
        torque_ratio = max(torque_ratio,
                           np.max(np.abs(arm_torque(world)) / world.kin.limits.effort))
    return worst, torque_ratio


@pytest.mark.parametrize("joint", range(7))
def test_single_joint_beyond_limit_stays_within_limits(wide_box_world, park_cube, joint):
    world = wide_box_world
    lo, hi = world.kin.limits.lower, world.kin.limits.upper
    home = np.array(world.cfg.robot.home)
    for beyond in (lo[joint] - 0.5, hi[joint] + 0.5):
        if joint == 1 and beyond > 0:
            continue  # joint 2 forward drives the hand into the table
        world.reset(seed=0)
        park_cube(world)
        target = home.copy()
        target[joint] = beyond
        worst, torque_ratio = _run_joint_target(world, target)
        assert np.all(worst >= 0.0), (joint, beyond, worst)
        assert torque_ratio <= 1.0 + 1e-9
        # Converged onto the clamped target, inside the margin.
        assert abs(world.arm_q()[joint] - world.controller.target_q[joint]) < 0.01


def test_all_joints_beyond_upper_limits_stay_within_limits(wide_box_world):
    """Every joint commanded 0.3 rad past its upper limit (no contact with the table on the
    way): no joint may pass its URDF limit at any physics step.

    Fails with the current controller: joint 1 overshoots its upper limit by ~0.023 rad (the
    joint-space PD uses unit-inertia damping and no error/velocity limiting; see report).
    """
    world = wide_box_world
    worst, torque_ratio = _run_joint_target(world, world.kin.limits.upper + 0.3)
    assert torque_ratio <= 1.0 + 1e-9
    assert np.all(worst >= 0.0), f"min distance inside the URDF limits per joint: {worst}"


def test_joint_mode_respects_velocity_limits(wide_box_world):
    """A large joint-space move (joint 1 from home to its upper limit) must not exceed the URDF
    velocity limits (2.175 rad/s on joint 1; a real Panda stops with a reflex error).

    Fails with the current controller: joint 1 reaches ~9 rad/s (see report)."""
    world = wide_box_world
    target = np.array(world.cfg.robot.home)
    target[0] = world.kin.limits.upper[0]
    world.controller.set_joint_target(target)
    peak = np.zeros(7)
    for _ in range(steps_to_reach(world, target)):
        world.step_physics(1)
        peak = np.maximum(peak, np.abs(world.data.qvel[world._arm_dof]))
    assert abs(world.arm_q()[0] - world.controller.target_q[0]) < 0.01     # it did get there
    assert np.all(peak <= world.kin.limits.velocity), \
        f"peak |dq| / URDF velocity limit per joint: {np.round(peak / world.kin.limits.velocity, 2)}"


def test_cartesian_mode_respects_velocity_limits(clear_world):
    """Reference limiting keeps Cartesian moves slow: across the workspace, |dq| stays within
    the URDF velocity limits."""
    world = clear_world
    peak = np.zeros(7)
    for target in ([0.30, -0.25, 0.05], [0.65, 0.25, 0.45], [0.30, 0.25, 0.40]):
        world.controller.set_cartesian_target(target)
        for _ in range(1000):
            world.step_physics(1)
            peak = np.maximum(peak, np.abs(world.data.qvel[world._arm_dof]))
    assert np.all(peak <= world.kin.limits.velocity), peak / world.kin.limits.velocity


@pytest.mark.parametrize("command", [
    ("cartesian", [np.nan, 0.0, 0.3]),
    ("cartesian", [0.5, np.inf, 0.3]),
    ("cartesian", [0.5, 0.0]),
    ("cartesian", [[0.5, 0.0, 0.3]]),
    ("quat", [0.0, 0.0, 0.0, 0.0]),
    ("quat", [1.0, 0.0, np.nan, 0.0]),
    ("quat", [1.0, 0.0, 0.0]),
    ("joint", [0.0] * 6),
    ("joint", [0.0, -0.4, 0.0, -2.4, 0.0, 2.0, np.nan]),
])
def test_bad_commands_raise_and_arm_holds_still(clear_world, command):
    world = clear_world
    ctl = world.controller
    ctl.set_cartesian_target([0.5, 0.05, 0.3])
    settle(world, 3.0)
    before_pos, before_rot = ctl.target_pos.copy(), ctl.target_rot.copy()
    before_q, before_mode = ctl.target_q.copy(), ctl.mode
    start = tcp(world)
    kind, value = command
    with pytest.raises(CommandError):
        if kind == "cartesian":
            ctl.set_cartesian_target(value)
        elif kind == "quat":
            ctl.set_cartesian_target([0.4, 0.0, 0.2], value)
        else:
            ctl.set_joint_target(value)
    # The previous target is held, untouched.
    np.testing.assert_array_equal(ctl.target_pos, before_pos)
    np.testing.assert_array_equal(ctl.target_rot, before_rot)
    np.testing.assert_array_equal(ctl.target_q, before_q)
    assert ctl.mode == before_mode
    settle(world, 1.0)
    assert np.linalg.norm(tcp(world) - start) < 1e-3


def test_command_error_is_a_value_error():
    assert issubclass(CommandError, ValueError)


def test_torques_within_effort_limits_under_aggressive_commands(clear_world):
    world = clear_world
    effort = world.kin.limits.effort
    rng = np.random.default_rng(7)
    box_min = np.asarray(world.cfg.controller.workspace_min)
    box_max = np.asarray(world.cfg.controller.workspace_max)
    saturated = 0
    for _ in range(10):     # a new far-away target and orientation every 0.2 s
        quat = rng.normal(size=4)
        world.controller.set_cartesian_target(rng.uniform(box_min, box_max), quat)
        for _ in range(100):
            world.step_physics(1)
            tau = arm_torque(world)
            assert np.all(np.abs(tau) <= effort + 1e-9), tau
            np.testing.assert_allclose(world.data.actuator_force[world._arm_act], tau)
            saturated += np.any(np.abs(tau) >= effort - 1e-9)
    assert saturated > 0, "the test never pushed the controller into its torque limits"


def _table_contact_force(world) -> np.ndarray:
    import mujoco
    m, d = world.model, world.data
    table = m.geom("table").id
    total, f = np.zeros(3), np.zeros(6)
    for i in range(d.ncon):
        contact = d.contact[i]
        if table in (contact.geom1, contact.geom2):
            mujoco.mj_contactForce(m, d, i, f)
            total += contact.frame.reshape(3, 3).T @ f[:3]
    return total


@pytest.mark.parametrize("max_pos_error", [0.03, 0.5])
def test_reference_limiting_bounds_contact_force(world_factory, park_cube, max_pos_error):
    """Target 1 m below the table (the box is opened downwards so it is not clamped): the
    steady force the controller demands, and the table feels, is at most K * max_pos_error.
    With max_pos_error = 0.5 the same measurement must see far more, so the check has teeth."""
    world = world_factory({"controller.workspace_min": [0.25, -0.35, -1.5],
                           "controller.max_pos_error": max_pos_error})
    park_cube(world)
    cfg = world.cfg.controller
    report = world.controller.set_cartesian_target([0.5, 0.0, -1.0])
    assert not report
    settle(world, 3.0)
    q, dq = world.arm_q(), world.data.qvel[world._arm_dof]
    assert np.max(np.abs(dq)) < 0.02                     # steady state
    _, jac, gravity = world.kin.state(q, dq)
    # Cartesian force equivalent of the commanded torque beyond gravity compensation.
    demanded = np.linalg.pinv(jac.T) @ (arm_torque(world) - gravity)
    contact = _table_contact_force(world)
    bound = cfg.stiffness_pos * cfg.max_pos_error
    if max_pos_error == 0.03:
        assert np.linalg.norm(demanded[:3]) <= bound + 1.0
        assert np.linalg.norm(contact) <= bound + 2.0
        assert contact[2] > 0.5 * bound                  # it does push on the table
        assert tcp(world)[2] > -0.005                    # and does not sink into it
    else:
        assert np.linalg.norm(demanded[:3]) > 10 * 24.0
        assert np.linalg.norm(contact) > 10 * 24.0
