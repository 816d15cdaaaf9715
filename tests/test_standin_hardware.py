"""The stand-in ros2_control hardware (MuJoCo arm), without ROS: brakes, gravity conventions,
refused commands, torque-rate accounting, gripper."""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.sim.standin_hardware import StandinArmHardware


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, {"cameras": [], "tactile": []})


@pytest.fixture(scope="module")
def kin(cfg):
    return ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)


def run(hw, kin, torque, ticks):
    """Command ``torque(q, dq, g)`` every tick; returns the hardware time reached."""
    t = 0.0
    for _ in range(ticks):
        reading = hw.reading()
        q, dq = reading.position[:7], reading.velocity[:7]
        _, _, g = kin.state(q, dq)
        assert hw.command_efforts(torque(q, dq, g), t) is None
        hw.step(t)
        t += hw.dt
    return t


def test_braked_until_the_first_command_and_after_commands_stop(cfg, kin):
    hw = StandinArmHardware(cfg, compensates_gravity=False)
    home = hw.arm_q()
    for i in range(200):  # 0.4 s without any command: gravity would make the arm sag
        hw.step(i * hw.dt)
    np.testing.assert_array_equal(hw.arm_q(), home)
    assert hw.counters.braked_ticks == 200
    t = run(hw, kin, lambda q, dq, g: g - 5 * dq, 100)
    braked = hw.counters.braked_ticks
    # Commands stop: within command_timeout the last torque holds, then the brakes engage.
    for i in range(100):
        hw.step(t + i * hw.dt)
    assert hw.counters.braked_ticks - braked >= 100 - round(hw.command_timeout / hw.dt) - 1
    assert hw.braked(t + 0.2)


@pytest.mark.parametrize("compensates", [False, True])
def test_gravity_convention(cfg, kin, compensates):
    """The right convention holds the arm still; sending g(q) to a Franka-like hardware that
    adds it itself pushes the arm up (the double compensation of the issue)."""
    right = StandinArmHardware(cfg, compensates_gravity=compensates)
    home_z = kin.forward(right.arm_q()).translation[2]
    sends_gravity = not compensates
    run(right, kin, lambda q, dq, g: (g if sends_gravity else 0 * g) - 5 * dq, 500)
    np.testing.assert_allclose(right.arm_q(), np.array(cfg.robot.home), atol=1e-6)
    if compensates:
        # The hardware's g(q) is the arm's gravity: pinocchio agrees with MuJoCo's.
        _, _, g = kin.state(right.arm_q(), np.zeros(7))
        np.testing.assert_allclose(right.gravity_torque(), g, atol=1e-6)
        # Its measured effort carries g(q) like a Franka's link-side torque.
        np.testing.assert_allclose(right.reading().effort[:7], g, atol=0.5)
        twice = StandinArmHardware(cfg, compensates_gravity=True)
        run(twice, kin, lambda q, dq, g: g - 5 * dq, 500)
        assert kin.forward(twice.arm_q()).translation[2] - home_z > 0.05


def test_bad_commands_are_refused_and_the_previous_torque_kept(cfg):
    hw = StandinArmHardware(cfg)
    assert hw.command_efforts(np.ones(7), 0.0) is None
    problem = hw.command_efforts(np.ones(6), 0.001)
    assert "6 values, expected 7" in problem and "panda_joint1" in problem
    assert "NaN" in hw.command_efforts([np.nan] + [0.0] * 6, 0.002)
    assert hw.counters.refused == 2 and hw.counters.commands == 1
    assert "finite finger positions" in hw.command_gripper([0.01])
    # Saturation at the URDF effort limits (87 N m on joint 1).
    hw.command_efforts([500.0] + [0.0] * 6, 1.0)
    hw.step(1.0)
    assert abs(hw.reading().effort[0]) <= 87.0 + 1e-9


def test_torque_rate_above_the_franka_limit_is_counted(cfg):
    hw = StandinArmHardware(cfg)
    dt = hw.dt  # at most one torque change per hardware tick counts
    hw.command_efforts(np.zeros(7), 0.0)
    hw.command_efforts(np.full(7, 0.5), dt)        # 250 N m/s: allowed
    assert hw.counters.torque_rate_violations == 0
    hw.command_efforts(np.full(7, 4.5), 2 * dt)    # 2000 N m/s
    assert hw.counters.torque_rate_violations == 1
    assert hw.counters.max_torque_rate == pytest.approx(4.0 / dt)
    # Two commands within one tick are one change: rated over the tick, not over 1 µs.
    hw.command_efforts(np.full(7, 4.6), 2 * dt + 1e-6)
    assert hw.counters.torque_rate_violations == 1


def test_gripper_follows_the_forward_position_command(cfg):
    hw = StandinArmHardware(cfg)
    assert hw.gripper_width() == pytest.approx(cfg.robot.gripper_max_width)
    assert hw.command_gripper([0.01, 0.01]) is None
    for i in range(500):
        hw.step(i * hw.dt)
    assert hw.gripper_width() == pytest.approx(0.02, abs=0.002)
