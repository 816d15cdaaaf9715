from __future__ import annotations

import threading

import numpy as np
import pytest

from robot_rl.deploy.errors import IllegalTransitionError
from robot_rl.deploy.safety import (
    TRANSITIONS,
    RobotState,
    SafetyConfig,
    SafetyLayer,
    SafetyMode,
    SafetyStateMachine,
)

M = SafetyMode
JMIN = (-1.0, -2.0, -3.0)
JMAX = (1.0, 2.0, 3.0)


def joint_config(**kw) -> SafetyConfig:
    base = dict(
        command_mode="joint_position",
        control_rate_hz=10.0,
        joint_position_min=JMIN,
        joint_position_max=JMAX,
        joint_velocity_max=(1.0, 1.0, 1.0),  # 0.1 rad per period
        extra_min=(0.0,),
        extra_max=(0.08,),
        sensor_max_age_s={"joint_states": 0.05, "wrist_cam": 0.2},
    )
    base.update(kw)
    return SafetyConfig(**base)


def ee_config(**kw) -> SafetyConfig:
    base = dict(
        command_mode="ee_position",
        control_rate_hz=10.0,
        workspace_min=(0.2, -0.3, 0.05),
        workspace_max=(0.7, 0.3, 0.5),
        ee_speed_max=0.5,  # 0.05 m per period
        max_delta_per_period=(0.02,),
    )
    base.update(kw)
    return SafetyConfig(**base)


def fresh_state(now: float, q=(0.0, 0.0, 0.0), g=0.04, **kw) -> RobotState:
    return RobotState(
        sensor_stamps={"joint_states": now, "wrist_cam": now},
        joint_positions=np.array(q),
        extra_positions=np.array([g]),
        **kw,
    )


def engaged(config: SafetyConfig, state: RobotState, now: float = 0.0) -> SafetyLayer:
    layer = SafetyLayer(config)
    layer.activate()
    out, rep = layer.filter(None, now, state)
    assert rep.held and out is not None
    layer.engage()
    assert layer.mode == M.POLICY
    return layer


# ------------------------------------------------------------------ config


def test_default_config_requires_limits_for_joint_mode():
    with pytest.raises(ValueError, match="joint_position mode needs joint_position_min"):
        SafetyLayer(SafetyConfig())
    SafetyConfig(command_mode="ee_position").validate()  # ee defaults are usable as-is


def test_config_validation_lists_all_problems():
    cfg = SafetyConfig(joint_position_min=[0.0, 1.0], joint_position_max=[1.0, 0.0], joint_velocity_max=[1.0],
                       max_delta_per_period=[0.1, 0.1, 0.1, 0.1], sensor_max_age_s={"cam": -1})
    with pytest.raises(ValueError) as ei:
        cfg.validate()
    msg = str(ei.value)
    for part in ("violated at index [1]", "joint_velocity_max has 1 entries, expected 2",
                 "max_delta_per_period needs 1 or 2", "sensor_max_age_s['cam']"):
        assert part in msg
    assert isinstance(cfg.joint_position_min, tuple)  # lists from YAML become tuples


# ------------------------------------------------------------------ clamps


def test_joint_limits_clamp_and_report():
    layer = engaged(joint_config(joint_velocity_max=()), fresh_state(0.0))
    out, rep = layer.filter([5.0, -5.0, 0.5, 1.0], 0.0, fresh_state(0.0))
    np.testing.assert_array_equal(out, [1.0, -2.0, 0.5, 0.08])
    assert rep.forwarded and not rep.held
    assert rep.clamps == ["joint_position_limit", "extra_limit"]
    assert rep.clamped_dims == {"joint_position_limit": [0, 1], "extra_limit": [0 + 3]}


def test_joint_velocity_limit():
    layer = engaged(joint_config(), fresh_state(0.0))
    out, rep = layer.filter([0.5, -0.05, 0.0, 0.04], 0.0, fresh_state(0.0))
    np.testing.assert_allclose(out, [0.1, -0.05, 0.0, 0.04])
    assert rep.clamps == ["joint_velocity"] and rep.clamped_dims["joint_velocity"] == [0]
    out, _ = layer.filter([0.5, -0.05, 0.0, 0.04], 0.1, fresh_state(0.1))
    np.testing.assert_allclose(out, [0.2, -0.05, 0.0, 0.04])  # next period: another 0.1 rad


def test_workspace_box_clamp():
    layer = engaged(ee_config(ee_speed_max=0, max_delta_per_period=()),
                    RobotState(ee_position=np.array([0.4, 0.0, 0.3])))
    out, rep = layer.filter([2.0, -1.0, 0.3], 0.0, RobotState(ee_position=np.array([0.4, 0.0, 0.3])))
    np.testing.assert_array_equal(out, [0.7, -0.3, 0.3])
    assert rep.clamps == ["workspace"] and rep.clamped_dims["workspace"] == [0, 1]


def test_action_rate_limit_and_ee_speed():
    state = RobotState(ee_position=np.array([0.4, 0.0, 0.3]))
    layer = engaged(ee_config(), state)
    out, rep = layer.filter([0.45, 0.0, 0.29], 0.0, state)
    np.testing.assert_allclose(out, [0.42, 0.0, 0.29])
    assert rep.clamps == ["action_rate"]
    layer2 = engaged(ee_config(max_delta_per_period=(1.0,), ee_speed_max=0.1), state)
    out, rep = layer2.filter([0.45, 0.0, 0.3], 0.0, state)
    np.testing.assert_allclose(out, [0.41, 0.0, 0.3])
    assert rep.clamps == ["ee_speed"]


def test_first_policy_command_rate_limited_from_hold_target():
    # the hold target is the measured position; the first policy step starts there
    layer = engaged(joint_config(), fresh_state(0.0, q=(0.5, 0.5, 0.5)))
    out, _ = layer.filter([-1.0, -1.0, -1.0, 0.04], 0.0, fresh_state(0.0, q=(0.5, 0.5, 0.5)))
    np.testing.assert_allclose(out, [0.4, 0.4, 0.4, 0.04])


def test_clean_command_passes_unchanged():
    layer = engaged(joint_config(), fresh_state(0.0))
    out, rep = layer.filter([0.05, 0.0, -0.05, 0.02], 0.0, fresh_state(0.0))
    np.testing.assert_array_equal(out, [0.05, 0.0, -0.05, 0.02])
    assert rep.clean and rep.clamps == [] and rep.faults == []


# ------------------------------------------------------------------ NaN / Inf guard


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_command_is_never_forwarded(bad):
    layer = engaged(joint_config(), fresh_state(0.0))
    good, _ = layer.filter([0.05, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0))
    out, rep = layer.filter([0.05, bad, 0.0, 0.04], 0.1, fresh_state(0.1))
    np.testing.assert_array_equal(out, good)  # holds the last safe command
    assert rep.held and not rep.forwarded
    assert rep.transition == (M.POLICY, M.HOLD)
    assert any(f.startswith("nonfinite_command (dims [1])") for f in rep.faults)
    assert np.isfinite(out).all()


def test_nonfinite_observation_and_state_hold():
    layer = engaged(joint_config(), fresh_state(0.0))
    out, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 0.0,
                            fresh_state(0.0, observations={"tactile": np.array([1.0, np.nan], np.float32)}))
    assert rep.held and "nonfinite_observation (tactile)" in rep.faults
    layer = engaged(joint_config(), fresh_state(0.0))
    out, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0, q=(0.0, np.inf, 0.0)))
    assert rep.held and "nonfinite_state (joint_positions)" in rep.faults
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 0.04])


def test_bad_shape_and_garbage_commands_hold():
    layer = engaged(joint_config(), fresh_state(0.0))
    for bad in ([0.0, 0.0], "abc", [[0.0, 1.0], [2.0]], None):
        layer = engaged(joint_config(), fresh_state(0.0))
        out, rep = layer.filter(bad, 0.0, fresh_state(0.0))
        assert rep.held and layer.mode == M.HOLD and rep.faults, bad
        assert out is not None and np.isfinite(out).all()


def test_no_hold_reference_returns_none():
    layer = SafetyLayer(joint_config(sensor_max_age_s={}))
    layer.activate()
    out, rep = layer.filter(None, 0.0, RobotState())
    assert out is None and not rep.held
    assert any(f.startswith("no_hold_reference") for f in rep.faults)


def test_hold_target_clamped_into_limits():
    layer = SafetyLayer(joint_config())
    layer.activate()
    out, rep = layer.filter(None, 0.0, fresh_state(0.0, q=(1.2, 0.0, 0.0), g=0.1))
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, 0.08])
    assert "joint_position_limit(hold)" in rep.clamps


def test_idle_commands_nothing():
    layer = SafetyLayer(joint_config())
    out, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0))
    assert out is None and rep.mode == M.IDLE and not rep.forwarded


# ------------------------------------------------------------------ watchdog


def test_watchdog_holds_when_stamp_stops_advancing():
    layer = engaged(joint_config(), fresh_state(0.0))
    cmd = [0.0, 0.0, 0.0, 0.04]
    cam_stamp = 0.0
    reports = []
    for k in range(10):
        now = k * 0.1
        if k < 3:
            cam_stamp = now  # camera publishes until t=0.2, then freezes
        state = fresh_state(now)
        state.sensor_stamps = {"joint_states": now, "wrist_cam": cam_stamp}
        out, rep = layer.filter(cmd, now, state)
        reports.append(rep)
    assert all(r.forwarded for r in reports[:5])  # age 0.2 s is still allowed (max 0.2)
    stale = reports[5]  # t = 0.5: age 0.3 s > 0.2 s
    assert stale.held and stale.stale_sensors == ["wrist_cam"]
    assert "stale_sensor (wrist_cam: age 0.300 s > 0.200 s)" in stale.faults
    assert layer.mode == M.HOLD
    assert all(r.held and r.stale_sensors == ["wrist_cam"] for r in reports[6:])
    # engaging again is refused while the sensor is stale
    with pytest.raises(IllegalTransitionError, match="faults are active"):
        layer.engage()
    # sensor recovers -> engage allowed
    layer.filter(None, 1.0, fresh_state(1.0))
    layer.engage()
    assert layer.mode == M.POLICY


def test_watchdog_never_received_and_future_stamps():
    layer = engaged(joint_config(), fresh_state(0.0))
    state = fresh_state(1.0)
    del state.sensor_stamps["wrist_cam"]
    _, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 1.0, state)
    assert rep.held and "stale_sensor (wrist_cam: never received)" in rep.faults
    layer.filter(None, 2.0, fresh_state(2.0))
    layer.engage()
    state = fresh_state(3.0)
    state.sensor_stamps["joint_states"] = 3.5
    _, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 3.0, state)
    assert rep.held and rep.stale_sensors == ["joint_states"]
    assert "in the future" in rep.faults[0]


# ------------------------------------------------------------------ e-stop


def test_estop_latches_until_explicit_reset():
    layer = engaged(joint_config(), fresh_state(0.0))
    good, _ = layer.filter([0.05, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0))
    layer.estop("operator")
    for k in range(5):  # valid commands keep coming: still latched, still holding
        out, rep = layer.filter([0.1, 0.1, 0.1, 0.04], k * 0.1, fresh_state(k * 0.1))
        assert rep.mode == M.ESTOP and rep.held and not rep.forwarded
        np.testing.assert_array_equal(out, good)
    for target in (M.POLICY, M.HOLD, M.IDLE):
        with pytest.raises(IllegalTransitionError, match="reset_estop"):
            layer.request(target)
    layer.reset_estop()
    assert layer.mode == M.IDLE
    with pytest.raises(IllegalTransitionError, match="only ESTOP can be reset"):
        layer.reset_estop()


def test_estop_input_latches_and_blocks_reset_while_pressed():
    layer = engaged(joint_config(), fresh_state(0.0))
    _, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0, estop_pressed=True))
    assert rep.mode == M.ESTOP and rep.transition == (M.POLICY, M.ESTOP) and "estop_input" in rep.faults
    with pytest.raises(IllegalTransitionError, match="still pressed"):
        layer.reset_estop()
    _, rep = layer.filter(None, 0.1, fresh_state(0.1))  # released: still latched
    assert rep.mode == M.ESTOP
    layer.reset_estop()
    assert layer.mode == M.IDLE


def test_estop_from_another_thread():
    layer = engaged(joint_config(), fresh_state(0.0))
    t = threading.Thread(target=layer.estop, args=("remote",))
    t.start()
    t.join()
    _, rep = layer.filter([0.0, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0))
    assert rep.mode == M.ESTOP and not rep.forwarded


# ------------------------------------------------------------------ state machine


def test_transition_table_exhaustive():
    legal = {
        (M.IDLE, M.HOLD), (M.IDLE, M.ESTOP),
        (M.HOLD, M.POLICY), (M.HOLD, M.IDLE), (M.HOLD, M.ESTOP),
        (M.POLICY, M.HOLD), (M.POLICY, M.ESTOP),
    }
    for src in M:
        for dst in M:
            sm = SafetyStateMachine()
            sm._mode = src
            if src == dst:
                assert sm.transition(dst) is False  # idempotent no-op
            elif (src, dst) in legal:
                assert sm.transition(dst, "t") is True and sm.mode == dst
            else:
                with pytest.raises(IllegalTransitionError, match=f"{src.value} -> {dst.value}"):
                    sm.transition(dst)
                assert sm.mode == src
    assert {(s, d) for s, ds in TRANSITIONS.items() for d in ds} == legal


def test_layer_illegal_transitions_raise():
    layer = SafetyLayer(joint_config())
    with pytest.raises(IllegalTransitionError, match="IDLE -> POLICY"):
        layer.engage()
    layer.activate()
    layer.engage()
    with pytest.raises(IllegalTransitionError, match="POLICY -> IDLE"):
        layer.deactivate()
    layer.disengage()
    layer.deactivate()
    assert [(a.value, b.value) for a, b, _ in layer.history] == [
        ("IDLE", "HOLD"), ("HOLD", "POLICY"), ("POLICY", "HOLD"), ("HOLD", "IDLE")]


def test_reactivation_holds_current_position_not_stale_command():
    layer = engaged(joint_config(), fresh_state(0.0))
    layer.filter([0.1, 0.0, 0.0, 0.04], 0.0, fresh_state(0.0))
    layer.disengage()
    layer.deactivate()
    layer.activate()  # robot was moved by hand meanwhile
    out, _ = layer.filter(None, 5.0, fresh_state(5.0, q=(0.7, 0.7, 0.7)))
    np.testing.assert_array_equal(out, [0.7, 0.7, 0.7, 0.04])
