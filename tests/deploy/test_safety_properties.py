"""Property tests: the clamps hold for *arbitrary* inputs, including NaN/Inf/huge.

Each example builds a random (valid) SafetyConfig and drives a SafetyLayer through a
random sequence of commands, measured states, e-stop inputs and mode requests.  After
every filter call the invariants are checked:

* a returned command is finite and inside [lower, upper] in every dim;
* consecutive returned commands differ by at most the configured step limits
  (action rate, joint velocity * dt, ee speed * dt), up to float rounding;
* a command containing NaN/Inf (or of the wrong shape) is never reported forwarded.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_rl.deploy.errors import IllegalTransitionError
from robot_rl.deploy.safety import RobotState, SafetyConfig, SafetyLayer, SafetyMode

# Any float64 at all (NaN, +-Inf, 1e308, subnormals) mixed with values near the limits so
# that both the saturated and the unsaturated branches are exercised.
any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-4.0, 4.0))
limit = st.floats(-3.0, 3.0)
width = st.one_of(st.just(0.0), st.floats(0.0, 4.0))
step = st.floats(1e-3, 5.0)


@st.composite
def configs(draw):
    mode = draw(st.sampled_from(["joint_position", "ee_position"]))
    n_extra = draw(st.integers(0, 2))
    ex_lo = draw(st.lists(limit, min_size=n_extra, max_size=n_extra))
    ex_hi = [lo + draw(width) for lo in ex_lo]
    kw = dict(command_mode=mode, control_rate_hz=draw(st.floats(1.0, 1000.0)), extra_min=ex_lo, extra_max=ex_hi)
    if mode == "joint_position":
        n = draw(st.integers(1, 5))
        lo = draw(st.lists(limit, min_size=n, max_size=n))
        kw.update(joint_position_min=lo, joint_position_max=[v + draw(width) for v in lo])
        if draw(st.booleans()):
            kw["joint_velocity_max"] = draw(st.lists(step, min_size=n, max_size=n))
    else:
        lo = draw(st.lists(limit, min_size=3, max_size=3))
        kw.update(workspace_min=lo, workspace_max=[v + draw(width) for v in lo],
                  ee_speed_max=draw(st.one_of(st.just(0.0), step)))
    cfg = SafetyConfig(**kw)
    if draw(st.booleans()):
        d = cfg.command_dim
        cfg.max_delta_per_period = tuple(draw(st.lists(step, min_size=1, max_size=1) | st.lists(step, min_size=d, max_size=d)))
    cfg.validate()
    return cfg


def vectors(n: int):
    return st.lists(any_float, min_size=n, max_size=n).map(np.array)


@st.composite
def scenarios(draw):
    cfg = draw(configs())
    n, n_primary, n_extra = cfg.command_dim, cfg.primary_dim, len(cfg.extra_min)
    ops = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["filter"] * 6 + ["request"]))
        if kind == "request":
            ops.append(("request", draw(st.sampled_from(["activate", "engage", "disengage", "deactivate",
                                                          "estop", "reset_estop"]))))
        else:
            cmd = draw(st.one_of(vectors(n), vectors(n), vectors(n), vectors(max(n - 1, 1)), st.none()))
            measured = draw(st.one_of(st.none(), vectors(n_primary)))
            extra = draw(st.one_of(st.none(), vectors(n_extra)))
            ops.append(("filter", cmd, measured, extra, draw(st.booleans()) and draw(st.booleans())))
    return cfg, ops


def step_limits(layer: SafetyLayer) -> np.ndarray:
    s = np.full(layer.command_dim, np.inf)
    for _, lim in layer._steps:
        s = np.minimum(s, lim)
    return s


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_outputs_always_inside_bounds_and_rate_limits(scenario):
    cfg, ops = scenario
    layer = SafetyLayer(cfg)
    lo, hi = layer._lo, layer._hi
    steps = step_limits(layer)
    prev = None
    t = 0.0
    for op in ops:
        if op[0] == "request":
            try:
                getattr(layer, op[1])()
            except IllegalTransitionError:
                pass
            if layer.mode == SafetyMode.IDLE:
                # IDLE stops commanding; the next hold starts from the measured position,
                # so there is no rate relation to commands sent before.
                prev = None
            continue
        _, cmd, measured, extra, estop = op
        t += cfg.period_s
        key = "joint_positions" if cfg.command_mode == "joint_position" else "ee_position"
        state = RobotState(**{key: measured}, extra_positions=extra, estop_pressed=estop)
        out, rep = layer.filter(cmd, t, state)

        if rep.forwarded:
            assert cmd is not None and np.isfinite(cmd).all() and cmd.shape == (cfg.command_dim,)
            assert rep.mode == SafetyMode.POLICY
        if out is None:
            assert rep.mode != SafetyMode.POLICY or not rep.forwarded
            prev = None
            continue
        assert out.shape == (cfg.command_dim,)
        assert np.isfinite(out).all(), out
        assert (out >= lo).all() and (out <= hi).all(), (out, lo, hi)
        if prev is not None:
            # |out - prev| <= step, allowing the rounding of prev +- step (a few ulps).
            tol = 4 * np.spacing(np.abs(prev) + steps.clip(max=1e300))
            assert (np.abs(out - prev) <= steps + tol).all(), (out, prev, steps)
        prev = out


@settings(max_examples=200, deadline=None, database=None)
@given(configs(), st.lists(vectors(8), min_size=1, max_size=20))
def test_engaged_policy_never_escapes_box(cfg, commands):
    """Straight POLICY-mode stream of arbitrary commands from a valid start."""
    layer = SafetyLayer(cfg)
    start = (layer._lo + layer._hi) / 2
    key = "joint_positions" if cfg.command_mode == "joint_position" else "ee_position"
    state = RobotState(**{key: start[: cfg.primary_dim]}, extra_positions=start[cfg.primary_dim:])
    layer.activate()
    prev, _ = layer.filter(None, 0.0, state)
    np.testing.assert_array_equal(prev, start.clip(layer._lo, layer._hi))
    layer.engage()
    steps = step_limits(layer)
    for c in commands:
        cmd = np.resize(c, cfg.command_dim)
        out, rep = layer.filter(cmd, 0.0, state)
        assert np.isfinite(out).all() and (out >= layer._lo).all() and (out <= layer._hi).all()
        assert (np.abs(out - prev) <= steps + 4 * np.spacing(np.abs(prev) + steps.clip(max=1e300))).all()
        if not np.isfinite(cmd).all():
            assert not rep.forwarded and rep.held
            np.testing.assert_array_equal(out, prev)  # NaN/Inf -> hold the last safe command
            held, rep = layer.filter(None, 0.0, state)  # fault cleared -> may engage again
            np.testing.assert_array_equal(held, prev)
            layer.engage()
        prev = out
