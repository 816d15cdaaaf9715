"""Per-arm control conventions: who adds gravity, effort limits, the torque-rate limit.

Real pinocchio dynamics; the step response runs closed-loop on the MuJoCo arm.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_rl.config import Config, load_config
from robot_rl.robot.controller import ImpedanceController
from robot_rl.schema import ConfigError

REPO = Path(__file__).resolve().parents[1]




def controller(kin, cfg, **kwargs):
    return ImpedanceController(kin, cfg.controller, np.array(cfg.robot.home), **kwargs)


def test_at_rest_torque_is_gravity_or_zero_by_convention(kin, cfg):
    home = np.array(cfg.robot.home)
    _, _, gravity = kin.state(home, np.zeros(7))
    assert np.max(np.abs(gravity)) > 5.0  # the check below means something
    adds = controller(kin, cfg, hardware_compensates_gravity=False)
    franka = controller(kin, cfg, hardware_compensates_gravity=True)
    for ctl in (adds, franka):
        ctl.hold(home)
    np.testing.assert_allclose(adds.compute(home, np.zeros(7)), gravity, atol=1e-6)
    np.testing.assert_allclose(franka.compute(home, np.zeros(7)), 0.0, atol=1e-6)


def test_conventions_differ_by_exactly_gravity_anywhere(kin, cfg):
    """Away from home (nullspace torque, joint mode) the two differ by g(q) and nothing else."""
    rng = np.random.default_rng(7)
    for mode in ("cartesian", "joint"):
        for _ in range(5):
            q = np.clip(np.array(cfg.robot.home) + rng.normal(0, 0.3, 7),
                        kin.limits.lower + 0.1, kin.limits.upper - 0.1)
            dq = rng.normal(0, 0.1, 7)
            adds = controller(kin, cfg, hardware_compensates_gravity=False)
            franka = controller(kin, cfg, hardware_compensates_gravity=True)
            for ctl in (adds, franka):
                ctl.hold(q)
                ctl.mode = mode
                if mode == "cartesian":
                    ctl.set_cartesian_target(kin.forward(q).translation + [0.0, 0.0, -0.005])
            _, _, gravity = kin.state(q, dq)
            tau_adds, tau_franka = adds.compute(q, dq), franka.compute(q, dq)
            inside = np.abs(tau_adds) < kin.limits.effort - 1e-6  # where no effort clamp bit
            np.testing.assert_allclose((tau_adds - tau_franka)[inside], gravity[inside], atol=1e-6)


def _step_rates(ctl, kin, q, target_offset, ticks):
    """Commanded torque change per second over ``ticks`` periods after a Cartesian target step,
    the arm held still (the largest demand the limiter ever sees)."""
    ctl.hold(q)
    ctl.compute(q, np.zeros(7))
    ctl.set_cartesian_target(kin.forward(q).translation + target_offset)
    _, _, gravity = kin.state(q, np.zeros(7))
    previous = ctl.last_torque + (gravity if ctl.adds_gravity else 0)
    rates = []
    for _ in range(ticks):
        tau = ctl.compute(q, np.zeros(7))
        rates.append(np.abs(tau - previous) / ctl.period_s)
        previous = tau
    return np.max(rates, axis=0)


@pytest.mark.parametrize("compensates", [False, True])
def test_torque_rate_limited_in_a_step_on_the_model(kin, cfg, compensates):
    home = np.array(cfg.robot.home)
    limited = controller(kin, cfg, period_s=0.001, hardware_compensates_gravity=compensates)
    rate = _step_rates(limited, kin, home, [0.0, 0.0, -0.1], 200)
    assert np.all(rate <= cfg.controller.max_torque_rate * (1 + 1e-9)), rate
    # The same step without the limiter jumps far faster: the check above can fail.
    unlimited = load_config(None, {"controller.max_torque_rate": 1e9}).controller
    fast = ImpedanceController(kin, unlimited, home, period_s=0.001,
                               hardware_compensates_gravity=compensates)
    fast_rate = _step_rates(fast, kin, home, [0.0, 0.0, -0.1], 200)
    assert np.max(fast_rate) > 5 * cfg.controller.max_torque_rate


def test_torque_rate_limited_in_a_closed_loop_step_response(world_factory, park_cube):
    """MuJoCo arm, 2 ms physics steps: a 10 cm target step and a far joint target; the
    controller's torque (the total minus the g(q) it adds) never changes faster than the limit,
    and the arm still gets there."""
    world = world_factory()
    park_cube(world)
    ctl, dt = world.controller, world.cfg.sim.physics_dt
    assert ctl.period_s == dt
    limit = world.cfg.controller.max_torque_rate
    start = world.ee_pose()[0]
    target = start + [0.1, 0.1, -0.1]
    ctl.set_cartesian_target(target)
    previous, peak = ctl.last_torque.copy(), 0.0
    for _ in range(1500):
        q = world.arm_q().copy()  # the controller computes from the state before the step
        world.step_physics(1)
        peak = max(peak, float(np.max(np.abs(ctl.last_torque - previous))) / dt)
        previous = ctl.last_torque.copy()
        applied = world.data.ctrl[world._arm_act]
        _, _, gravity = world.kin.state(q, np.zeros(7))
        np.testing.assert_allclose(applied - gravity, ctl.last_torque, atol=1e-9)
    assert peak <= limit * (1 + 1e-9)
    assert peak >= 0.99 * limit  # the step did hit the limiter
    assert np.linalg.norm(world.ee_pose()[0] - target) < 5e-3


def test_configured_effort_limits_clamp_the_output(kin, cfg):
    limits = [20.0, 20.0, 20.0, 20.0, 5.0, 5.0, 5.0]
    ctl = controller(kin, cfg, effort_limits=limits, hardware_compensates_gravity=False)
    home = np.array(cfg.robot.home)
    ctl.hold(home)
    for _ in range(200):  # let the rate limiter ramp up to the demand
        tau = ctl.compute(home + 0.4, np.zeros(7))
    assert np.all(np.abs(tau) <= np.array(limits) + 1e-9)
    assert np.any(np.isclose(np.abs(tau), limits))  # the limit, not the demand, bound
    with pytest.raises(ValueError, match="effort limits need 7 positive values"):
        controller(kin, cfg, effort_limits=[10.0] * 6)


def test_config_conventions_per_arm():
    sim = Config()
    assert sim.robot.hardware_compensates_gravity is False
    assert sim.controller.max_torque_rate == 1000.0
    real = load_config(REPO / "config" / "real_panda.yaml")
    assert real.robot.hardware_compensates_gravity is True
    assert real.controller.max_torque_rate <= 1000.0
    assert real.robot.effort_limits == [87.0] * 4 + [12.0] * 3
    with pytest.raises(ConfigError, match="MuJoCo stand-in does not compensate gravity"):
        load_config(None, {"robot.hardware_compensates_gravity": True})
    with pytest.raises(ConfigError, match="effort_limits has 3 values"):
        load_config(None, {"robot.effort_limits": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match="max_torque_rate must be > 0"):
        load_config(None, {"controller.max_torque_rate": 0.0})
