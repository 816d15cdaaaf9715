"""The rehearsal's simulated operator without ROS: the raw Joy it writes maps back (through the
real ActionMapper) to the action it meant, on every device layout; and driving a real
PickCubeEnv only through that path, it demonstrates the task, labels success, re-arranges the
cube and confirms when the reset node waits."""
import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.envs.pick_cube import PickCubeEnv
from robot_rl.hil.devices import DeviceState
from robot_rl.hil.mapping import ActionMapper
from robot_rl.sim.operator import JoyLayout, SimulatedOperator


def _round_trip(layout, mapper, action, active, ee_quat=None, **buttons):
    axes, pressed = layout.encode(action, active, ee_quat=ee_quat, **buttons)
    state = DeviceState(np.array(axes[:6]), [bool(b) for b in pressed], stamp=1.0)
    return mapper.map(state, ee_quat)


@pytest.mark.parametrize("device", ["joy", "gamepad", "keyboard"])
@pytest.mark.parametrize("action_space", ["xyz_gripper", "xyz_yaw_gripper"])
def test_encoded_joy_maps_back_to_the_action(device, action_space):
    cfg = load_config(None, {"task.action_space": action_space, "hil.deadzone": 0.1,
                             "hil.device_rpy": [0.0, 0.0, 0.7]})
    dim = 5 if action_space == "xyz_yaw_gripper" else 4
    mapping = getattr(cfg.hil, device).mapping
    layout = JoyLayout(mapping, cfg.hil.deadzone, cfg.hil.device_rpy, "base", dim)
    mapper = ActionMapper(mapping, cfg.hil.deadzone, dim, cfg.hil.device_rpy, "base")
    rng = np.random.default_rng(0)
    for _ in range(50):
        action = rng.uniform(-0.6, 0.6, dim).astype(np.float32)
        action[-1] = rng.choice([-1.0, 0.0, 1.0])
        cmd = _round_trip(layout, mapper, action, True)
        np.testing.assert_allclose(cmd.action, action, atol=1e-5)
        assert cmd.active
    released = _round_trip(layout, mapper, np.zeros(dim), False, confirm=True, success=True)
    assert not released.active and released.confirm and released.success
    assert not np.any(released.action)


def test_tool_frame_round_trip():
    cfg = load_config(None, {"hil.frame": "ee"})
    layout = JoyLayout.from_config(cfg)
    mapper = ActionMapper(cfg.hil.joy.mapping, cfg.hil.deadzone, 4, cfg.hil.device_rpy, "ee")
    quat = np.array([0.9238795, -0.3826834, 0.0, 0.0])  # a tilted tool
    action = np.array([0.3, -0.2, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(_round_trip(layout, mapper, action, True, ee_quat=quat).action,
                               action, atol=1e-5)
    with pytest.raises(ValueError, match="ee_quat"):
        layout.encode(action, True)


def test_the_joy_is_in_the_pads_raw_layout():
    cfg = load_config(None, {})
    m = cfg.hil.joy.mapping
    axes, buttons = JoyLayout.from_config(cfg).encode([1.0, 0.0, 0.0, 1.0], True, success=True)
    assert len(axes) == 8 and len(buttons) == 11  # the ROS joy node's Xbox pad
    assert axes[m.axes[0]] == pytest.approx(1.0)  # dx on the left stick's y axis
    assert buttons[m.deadman_button] and buttons[m.close_button] and buttons[m.success_button]
    assert not buttons[m.open_button] and not buttons[m.confirm_button]


@pytest.fixture(scope="module")
def env():
    cfg = load_config(None, {"task.observations": ["state"], "cameras": [], "tactile": []})
    env = PickCubeEnv(cfg)
    yield env
    env.close()


def _drive(env, operator, layout, mapper, steps):
    """The operator's pad -> the intervention mapping -> the task's command -> the world."""
    labelled = []
    for _ in range(steps):
        snap = env.snapshot
        act = operator.step(snap)
        if act.place is not None:
            env.world.place_object(*act.place)
        cmd = _round_trip(layout, mapper, act.action, act.active, ee_quat=snap.ee_quat,
                          confirm=act.confirm, success=act.success)
        action = cmd.action if cmd.active else np.zeros_like(cmd.action)
        _, _, terminated, _, info = env.step(action)
        labelled.append((cmd.success, info["success"], cmd.confirm))
    return labelled


def test_demonstrate_through_the_pad_lifts_the_cube_and_labels_success(env):
    cfg = env.cfg
    env.reset(seed=3)
    operator = SimulatedOperator(cfg, env.task, "demonstrate", seed=1)
    layout = JoyLayout.from_config(cfg)
    mapper = ActionMapper(cfg.hil.joy.mapping, cfg.hil.deadzone, 4)
    assert not np.any(_drive(env, operator, layout, mapper, 3))  # no reset state yet: hands off
    operator.on_reset_state("idle")
    labels = _drive(env, operator, layout, mapper, 80)
    worlds = [world for _, world, _ in labels]
    assert any(worlds), "the demonstration never succeeded"
    first = worlds.index(True)
    # The button is pressed from the period the world shows success on (one period behind the
    # env's own check, which looks at the state after the step).
    assert all(pressed for pressed, _, _ in labels[first + 1:first + 5])
    assert not any(pressed for pressed, _, _ in labels[:first])
    assert operator.successes_seen == 1


def test_correct_takes_over_a_policy_that_does_nothing(env):
    cfg = env.cfg
    env.reset(seed=5)
    operator = SimulatedOperator(cfg, env.task, "correct", seed=3)
    operator.on_reset_state("idle")
    layout = JoyLayout.from_config(cfg)
    mapper = ActionMapper(cfg.hil.joy.mapping, cfg.hil.deadzone, 4)
    actives = []
    for _ in range(100):  # the policy sends no motion; the pad's command replaces it when held
        snap = env.snapshot
        act = operator.step(snap)
        actives.append(act.active)
        cmd = _round_trip(layout, mapper, act.action, act.active, ee_quat=snap.ee_quat)
        _, _, terminated, _, info = env.step(cmd.action if cmd.active else np.zeros(4))
        if info["success"]:
            break
    first = actives.index(True)
    assert first >= cfg.hil.sim_human.no_progress_steps  # it waited before judging
    assert info["success"], "the correction did not lift the cube"


def test_awaiting_confirmation_re_arranges_the_cube_once_then_confirms(env):
    cfg = env.cfg
    env.reset(seed=4)
    operator = SimulatedOperator(cfg, env.task, "correct", seed=2)
    before = env.world.object_pose()[0]
    operator.on_reset_state("moving")
    act = operator.step(env.snapshot)
    assert not act.active and not act.confirm and act.place is None  # hands off while moving
    operator.on_reset_state("awaiting_confirmation")
    first = operator.step(env.snapshot)
    assert first.confirm and first.place is not None and not first.active
    x, y, yaw = first.place
    sim = cfg.sim
    assert sim.object_x_range[0] <= x <= sim.object_x_range[1]
    assert sim.object_y_range[0] <= y <= sim.object_y_range[1]
    env.world.place_object(x, y, yaw)
    after = env.world.object_pose()[0]
    assert np.linalg.norm(after[:2] - before[:2]) > 1e-3
    np.testing.assert_allclose(after[:2], [x, y], atol=1e-9)
    again = operator.step(env.snapshot)
    assert again.confirm and again.place is None  # held, not placed twice
    operator.on_reset_state("idle")
    assert not operator.step(env.snapshot).confirm
    operator.on_reset_state("moving")
    operator.on_reset_state("awaiting_confirmation")
    assert operator.step(env.snapshot).place is not None  # a new wait: a new arrangement
    assert operator.placements == 2


def test_unknown_mode_is_refused(env):
    with pytest.raises(ValueError, match="demonstrate"):
        SimulatedOperator(env.cfg, env.task, "teach")


def test_a_deliberate_miss_lifts_air_and_presses_failure(env):
    """sim.operator_miss_every: every Nth demonstration aims beside the cube, closes on air,
    lifts, then presses failure through the pad; the world never shows success meanwhile."""
    cfg = load_config(None, {"task.observations": ["state"], "cameras": [], "tactile": [],
                             "sim.operator_miss_every": 2})
    layout = JoyLayout.from_config(cfg)
    mapper = ActionMapper(cfg.hil.joy.mapping, cfg.hil.deadzone, 4)
    operator = SimulatedOperator(cfg, env.task, "demonstrate", seed=1)
    outcomes = []
    for episode in range(2):
        env.reset(seed=10 + episode)
        operator.on_reset_state("moving")
        operator.on_reset_state("idle")
        cube_z = env.snapshot.object_pos[2]
        pressed = []
        for _ in range(80):
            snap = env.snapshot
            act = operator.step(snap)
            cmd = _round_trip(layout, mapper, act.action, act.active, ee_quat=snap.ee_quat,
                              success=act.success, failure=act.failure)
            _, _, _, _, info = env.step(cmd.action)
            pressed.append((cmd.success, cmd.failure, info["success"]))
            if cmd.success or cmd.failure:
                break
        outcomes.append((pressed[-1], env.snapshot.object_pos[2] - cube_z, env.snapshot.ee_pos[2]))
    (ok, _, _), _, _ = outcomes[0]
    assert ok, "the first (normal) demonstration did not succeed"
    (success, failure, world), cube_rise, tcp_z = outcomes[1]
    assert failure and not success and not world
    assert cube_rise < 0.005, "the miss moved the cube up"
    assert tcp_z > 0.05, "the gripper was not lifted before the failure press"
    assert operator.misses == 1 and operator.episodes == 2


def test_operator_miss_every_must_not_be_negative():
    from robot_rl.schema import ConfigError
    with pytest.raises(ConfigError, match="operator_miss_every"):
        load_config(None, {"sim.operator_miss_every": -1})
