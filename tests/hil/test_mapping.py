"""Deadzone, dead-man, axis mapping, frames, clipping and gripper buttons."""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.hil.config import MappingConfig
from robot_rl.hil.devices import DeviceState
from robot_rl.hil.mapping import ActionMapper, apply_deadzone
from robot_rl.schema import ConfigError

HELD = [True, False, False]


def state(axes, buttons=HELD, stamp=0.0):
    return DeviceState(np.array(axes, float), list(buttons), stamp)


def test_deadzone_ignores_noise_and_stays_continuous():
    out = apply_deadzone(np.array([0.04, -0.049, 0.05, 1.0, -1.0, 0.525]), 0.05)
    assert out[0] == 0 and out[1] == 0
    assert out[2] == pytest.approx(0.0)            # continuous at the edge
    assert out[3] == 1.0 and out[4] == -1.0        # full deflection still reaches ±1
    assert out[5] == pytest.approx(0.5)


def test_dead_man_button_gates_the_intervention():
    mapper = ActionMapper(MappingConfig(deadman_button=0), deadzone=0.05)
    held = mapper.map(state([0.5, 0, 0, 0, 0, 0], [True]))
    released = mapper.map(state([0.5, 0, 0, 0, 0, 0], [False]))
    assert held.active and not released.active
    assert held.action[0] == pytest.approx((0.5 - 0.05) / 0.95)
    # Noise alone with the button held: active, but the command is to stay still.
    still = mapper.map(state([0.03, -0.02, 0.01, 0, 0, 0], [True]))
    assert still.active and np.all(still.action[:3] == 0)


def test_motion_as_dead_man_with_release_delay():
    m = MappingConfig(deadman_button=-1, release_delay=0.3, close_button=0, open_button=1)
    mapper = ActionMapper(m, deadzone=0.1)
    assert not mapper.map(state([0.05, 0, 0, 0, 0, 0], [False, False], 0.0)).active  # noise
    assert mapper.map(state([0.5, 0, 0, 0, 0, 0], [False, False], 1.0)).active
    assert mapper.map(state([0, 0, 0, 0, 0, 0], [False, False], 1.2)).active      # hold-over
    assert not mapper.map(state([0, 0, 0, 0, 0, 0], [False, False], 1.4)).active
    grip = mapper.map(state([0, 0, 0, 0, 0, 0], [True, False], 2.0))
    assert grip.active and grip.action[-1] == 1.0   # a gripper button alone also takes over


def test_axis_index_sign_scale_and_clipping():
    m = MappingConfig(axes=[1, 0, -1, 5], signs=[-1.0, 1.0, 1.0, 1.0], scale=[2.0, 0.5, 1.0, 1.0])
    mapper = ActionMapper(m, deadzone=0.0)
    cmd = mapper.map(state([0.4, 0.8, 0.9, 0, 0, 0.3]))
    assert cmd.action.shape == (4,) and cmd.action.dtype == np.float32
    np.testing.assert_allclose(cmd.action[:3], [-1.0, 0.2, 0.0], atol=1e-6)  # -1.6 clipped
    five = ActionMapper(m, deadzone=0.0, action_dim=5).map(state([0, 0, 0, 0, 0, 0.3]))
    assert five.action[3] == pytest.approx(0.3)


def test_device_rotation_and_end_effector_frame():
    m = MappingConfig(axes=[0, 1, 2, 5])
    # Device turned 90° about z: pushing device +x moves the robot along +y.
    rotated = ActionMapper(m, 0.0, device_rpy=[0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(rotated.map(state([1, 0, 0, 0, 0, 0])).action[:3], [0, 1, 0],
                               atol=1e-9)
    # Tool frame of a gripper pointing down (180° about x): tool +z is base -z, tool +y base -y.
    ee = ActionMapper(m, 0.0, frame="ee")
    down = [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(ee.map(state([0, 0.5, 0.5, 0, 0, 0]), ee_quat=down).action[:3],
                               [0, -0.5, -0.5], atol=1e-9)
    with pytest.raises(ValueError, match="ee_quat"):
        ee.map(state([0, 0, 0, 0, 0, 0]))


def test_gripper_buttons():
    mapper = ActionMapper(MappingConfig(close_button=1, open_button=2), 0.05)
    assert mapper.map(state([0] * 6, [True, True, False])).action[-1] == 1.0
    assert mapper.map(state([0] * 6, [True, False, True])).action[-1] == -1.0
    assert mapper.map(state([0] * 6, [True, False, False])).action[-1] == 0.0   # keep
    assert mapper.map(state([0] * 6, [True, True, True])).action[-1] == 0.0     # both: keep


def test_confirm_and_success_buttons_and_short_button_lists():
    m = MappingConfig(deadman_button=4, confirm_button=7, success_button=3)
    mapper = ActionMapper(m, 0.05)
    buttons = [False] * 8
    buttons[7] = buttons[3] = True
    cmd = mapper.map(state([0] * 6, buttons))
    assert cmd.confirm and cmd.success and not cmd.active
    assert not mapper.map(state([0] * 6, [])).active  # a device with fewer buttons: not pressed


def test_mapping_config_is_validated():
    with pytest.raises(ConfigError, match="hil.gamepad.mapping.*axes needs 4"):
        load_config(None, {"hil.gamepad.mapping.axes": [1, 0, 4]})
    with pytest.raises(ConfigError, match="hil.device"):
        load_config(None, {"hil.device": "wiimote"})
    cfg = load_config(None, {"hil.device": "gamepad", "hil.gamepad.mapping.deadman_button": 5})
    assert cfg.hil.gamepad.mapping.deadman_button == 5
