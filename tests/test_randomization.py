"""Domain randomisation of the MuJoCo stand-in (robot_rl/sim/randomization.py): determinism,
ranges, nominal restore, replay from the episode log, the shifted profile, and refusals."""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from robot_rl.config import load_config
from robot_rl.envs.pick_cube import SimTaskEnv
from robot_rl.schema import ConfigError
from robot_rl.sim.randomization import (LATENCY_KEYS, SCALE_KEYS, nominal_values, read_log)
from robot_rl.sim.scene import build_model
from robot_rl.sim.world import SimWorld

REPO = Path(__file__).resolve().parent.parent
STATE = {"task.observations": ["state", "object", "tactile"], "cameras": [],
         "task.max_episode_steps": 20}
R = "sim.randomization."
WIDE = {R + "enabled": True, R + "friction_scale": [0.5, 1.5], R + "object_mass_scale": [0.5, 2.0],
        R + "link_mass_scale": [0.9, 1.1], R + "joint_damping_scale": [0.5, 2.0],
        R + "gain_scale": [0.7, 1.3], R + "action_latency": [0, 2],
        R + "observation_latency": [0, 2], R + "tcp_noise": [0.0, 0.003],
        R + "gripper_noise": [0.0, 0.001], R + "object_noise": [0.0, 0.005],
        R + "camera_pos_jitter": 0.01, R + "camera_rot_jitter": 0.05,
        R + "camera_fovy_jitter": 3.0, R + "light_scale": [0.5, 1.5], R + "color_jitter": 0.1,
        R + "tactile_gain_scale": [0.5, 1.5], R + "tactile_noise": [0.0, 0.3]}
MODEL_ARRAYS = ("geom_friction", "body_mass", "body_inertia", "dof_damping", "cam_pos",
                "cam_quat", "cam_fovy", "light_diffuse", "geom_rgba", "mat_rgba", "geom_solref",
                "geom_solimp", "body_subtreemass", "dof_invweight0")


def cfg(**overrides):
    return load_config(None, {**STATE, **overrides})


def model_arrays(model) -> dict[str, np.ndarray]:
    return {name: getattr(model, name).copy() for name in MODEL_ARRAYS}


@pytest.fixture(scope="module")
def wide_world():
    world = SimWorld(cfg(**WIDE))
    yield world
    world.close()


def test_off_by_default_leaves_the_compiled_model_untouched():
    config = cfg()
    assert not config.sim.randomization.enabled
    world = SimWorld(config)
    try:
        fresh = build_model(config)
        world.reset(seed=3)
        assert world.episode_randomization is None and world._randomizer is None
        for name, array in model_arrays(fresh).items():
            assert np.array_equal(getattr(world.model, name), array), name
        assert world.model.opt.integrator == fresh.opt.integrator
        assert world.model.opt.cone == fresh.opt.cone
        assert world.controller.cfg == config.controller
    finally:
        world.close()
    env = SimTaskEnv(config)
    try:
        _, info = env.reset(seed=0)
        assert "randomization" not in info and env._channel is None and env._delay is None
    finally:
        env.close()


def test_draws_are_deterministic_under_the_seed(wide_world):
    other = SimWorld(cfg(**WIDE))
    shifted_seed = SimWorld(cfg(**WIDE, **{R + "seed": 1}))
    try:
        for world in (wide_world, other, shifted_seed):
            world.randomizer().episode = 0
        draws = [[w.randomizer().draw() for _ in range(3)]
                 for w in (wide_world, other, shifted_seed)]
        assert draws[0] == draws[1]
        assert draws[0] != draws[2]
        # An explicit reset seed gives the same values whatever the episode count.
        assert wide_world.randomizer().draw(seed=42) == other.randomizer().draw(seed=42)
        assert [d["episode"] for d in draws[0]] == [0, 1, 2]
    finally:
        other.close()
        shifted_seed.close()


def test_draws_stay_within_the_configured_ranges(wide_world):
    rcfg = wide_world.cfg.sim.randomization
    seen = {name: [] for name in SCALE_KEYS + LATENCY_KEYS}
    for _ in range(200):
        values = wide_world.randomizer().draw()
        for name in SCALE_KEYS + LATENCY_KEYS:
            lo, hi = getattr(rcfg, name)
            assert lo <= values[name] <= hi, (name, values[name])
            seen[name].append(values[name])
        for cam in values["cameras"].values():
            assert np.all(np.abs(cam["pos_offset"]) <= rcfg.camera_pos_jitter)
            assert abs(cam["rot_angle"]) <= rcfg.camera_rot_jitter
            assert abs(cam["fovy_offset"]) <= rcfg.camera_fovy_jitter
    for name in LATENCY_KEYS:  # whole periods, every one of the range drawn
        assert sorted(set(seen[name])) == [0, 1, 2]
    # The draws spread over the range (a constant would pass the bounds check).
    assert np.ptp(seen["friction_scale"]) > 0.8


def test_values_reach_the_model_and_controller_and_never_accumulate(wide_world):
    world, randomizer = wide_world, wide_world.randomizer()
    nominal = {name: array.copy() for name, array in randomizer.nominal.items()}
    gains = randomizer.nominal_gains
    values = randomizer.draw()
    values.update(friction_scale=1.4, object_mass_scale=2.0, gain_scale=0.8, light_scale=0.5)
    values["cameras"]["front"]["fovy_offset"] = 2.5
    for _ in range(3):  # applied again and again: the same model, not 1.4 ** 3
        world.reset(randomization=values)
    m, cube = world.model, world._cube_body
    assert np.allclose(m.geom_friction[:, 0], nominal["geom_friction"][:, 0] * 1.4)
    assert m.body_mass[cube] == pytest.approx(nominal["body_mass"][cube] * 2.0)
    assert np.allclose(m.body_inertia[cube], nominal["body_inertia"][cube] * 2.0)
    assert m.body_subtreemass[cube] == pytest.approx(m.body_mass[cube])  # mj_setConst ran
    assert world.controller.cfg.stiffness_pos == pytest.approx(gains.stiffness_pos * 0.8)
    front = m.camera("front").id
    assert m.cam_fovy[front] == pytest.approx(nominal["cam_fovy"][front] + 2.5)
    K = world.camera_intrinsics("front", 128, 128)  # the intrinsics follow the jitter
    assert K[1, 1] == pytest.approx(64 / np.tan(np.deg2rad(nominal["cam_fovy"][front] + 2.5) / 2))
    # Back to nominal: every array equal to the compiled model's.
    world.reset(randomization=nominal_values(randomizer.camera_names))
    for name, array in nominal.items():
        assert np.array_equal(getattr(m, name), array), name
    assert world.controller.cfg.stiffness_pos == gains.stiffness_pos


def test_randomised_mass_changes_the_physics(wide_world):
    """The same sideways push slides a light cube and not a heavy one (static friction grows
    with the mass): the scale is physics, not just a number in the model."""
    moved = []
    for scale in (0.5, 2.0):
        values = wide_world.randomizer().draw(seed=0)
        values.update(object_mass_scale=scale, friction_scale=1.0)
        start = wide_world.reset(seed=0, randomization=values)
        wide_world.data.xfrc_applied[wide_world._cube_body, 1] = 1.5  # N along y
        wide_world.step_physics(100)
        wide_world.data.xfrc_applied[:] = 0.0
        moved.append(abs(wide_world.object_pose()[0][1] - start[1]))
    assert moved[0] > 0.01 > moved[1]


def run_episode(env: SimTaskEnv, actions, **reset):
    obs, info = env.reset(**reset)
    trace = []
    qpos = []
    for action in actions:
        obs, reward, term, trunc, _ = env.step(action)
        trace.append(np.concatenate([obs["state"], obs["object"], obs["tactile_left"].ravel(),
                                     [reward]]))
        qpos.append(env.world.data.qpos.copy())
        if term or trunc:
            break
    return info, np.array(trace), np.array(qpos)


def test_a_logged_episode_replays_with_the_same_physics(tmp_path):
    log = tmp_path / "episodes.jsonl"
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 4))
    env = SimTaskEnv(cfg(**WIDE, **{R + "log_file": str(log)}))
    try:
        run_episode(env, actions)
        info, trace, qpos = run_episode(env, actions)  # the episode a failure report would name
    finally:
        env.close()
    records = read_log(log)
    assert len(records) == 3  # construction + two episodes
    record = records[-1]
    assert record["values"] == info["randomization"]
    # Another env, another randomisation seed and episode count: the log alone decides.
    replayer = SimTaskEnv(cfg(**WIDE, **{R + "seed": 99}))
    try:
        run_episode(replayer, actions[:4], seed=5)
        _, trace_again, qpos_again = run_episode(replayer, actions, options={"replay": record})
    finally:
        replayer.close()
    assert np.array_equal(qpos_again, qpos)
    assert np.array_equal(trace_again, trace)  # latency and noise too
    assert info["randomization"]["friction_scale"] != 1.0
    # A nominal world replays it too, and its next plain reset is nominal again.
    plain = SimTaskEnv(cfg())
    try:
        fresh = model_arrays(plain.world.model)
        _, _, qpos_plain = run_episode(plain, actions, options={"replay": record})
        assert np.array_equal(qpos_plain, qpos)
        _, info = plain.reset(seed=0)
        assert "randomization" not in info
        for name, array in fresh.items():
            assert np.array_equal(getattr(plain.world.model, name), array), name
    finally:
        plain.close()


def test_latency_delays_actions_and_observations():
    fixed = {R + "enabled": True, R + "action_latency": [2, 2], R + "observation_latency": [1, 1]}
    env = SimTaskEnv(cfg(**fixed))
    nominal = SimTaskEnv(cfg())
    try:
        obs0, _ = env.reset(seed=1)
        nominal.reset(seed=1)
        up = np.array([0.0, 0.0, 1.0, -1.0])
        z0 = env.snapshot.ee_pos[2]
        seen = [obs0["state"][:3]]
        true = [env.snapshot.ee_pos.copy()]
        for _ in range(4):
            obs, *_ = env.step(up)
            seen.append(obs["state"][:3])
            true.append(env.snapshot.ee_pos.copy())
        # Two periods of hold before the first command acts (drift under the hold is tiny).
        assert abs(true[2][2] - z0) < 2e-3 < true[4][2] - z0
        # What the policy sees is one period late.
        for k in range(1, 5):
            assert np.allclose(seen[k], true[k - 1], atol=1e-6)
    finally:
        env.close()
        nominal.close()


def test_physics_settings_replace_the_scenes():
    world = SimWorld(cfg(**{"sim.physics.integrator": "RK4", "sim.physics.cone": "pyramidal",
                            "sim.physics.noslip_iterations": 3, "sim.physics.solref": [0.01, 0.9],
                            "sim.physics.solimp": [0.8, 0.9, 0.002, 0.5, 2.0]}))
    try:
        opt = world.model.opt
        assert opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        assert opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
        assert opt.noslip_iterations == 3
        assert np.allclose(world.model.geom_solref, [0.01, 0.9])
        assert np.allclose(world.model.geom_solimp[:, 0], 0.8)
        world.step_physics()
        assert np.all(np.isfinite(world.data.qpos))
    finally:
        world.close()


def test_shifted_profile_lies_outside_the_training_ranges():
    train = load_config(REPO / "config" / "sim_randomized.yaml").sim
    shifted = load_config(REPO / "config" / "sim_shifted.yaml").sim
    assert train.randomization.enabled and shifted.randomization.enabled
    # Latency: the shifted sim sits at the training range's edge (docs/sim_to_real.md).
    for name in SCALE_KEYS:
        lo, hi = getattr(train.randomization, name)
        value, same = getattr(shifted.randomization, name)
        assert value == same and not lo <= value <= hi, name
    for name in ("camera_pos_jitter", "camera_rot_jitter", "camera_fovy_jitter", "color_jitter"):
        assert getattr(shifted.randomization, name) > getattr(train.randomization, name), name
    assert shifted.physics_dt != train.physics_dt
    assert shifted.physics.integrator != "scene" and shifted.physics.cone != "scene"
    assert shifted.physics.solref and shifted.physics.solimp


@pytest.mark.parametrize("key, value, expected", [
    ("friction_scale", [-0.5, 1.0], "friction_scale: [-0.5, 1] is physically impossible"),
    ("object_mass_scale", [0.0, 1.0], "numbers > 0"),
    ("link_mass_scale", [1.2, 0.8], "inverted (low > high)"),
    ("gain_scale", [1.0], "has 1 values"),
    ("joint_damping_scale", [-1.0, 0.0], "numbers >= 0"),
    ("action_latency", [-1, 2], "integers >= 0"),
    ("observation_latency", [0.5, 1], "expected an integer"),
    ("tcp_noise", [0.01, 0.0], "inverted"),
    ("tactile_noise", [-0.1, 0.1], "physically impossible"),
    ("camera_pos_jitter", -0.01, "must be >= 0"),
    ("camera_fovy_jitter", 45.0, "[0, 30) deg"),
    ("color_jitter", 1.5, "[0, 1]"),
    ("log_file", "episodes.txt", "must end in .jsonl"),
])
def test_bad_ranges_are_refused_naming_the_key(key, value, expected):
    with pytest.raises(ConfigError) as info:
        cfg(**{R + key: value})
    message = str(info.value)
    assert f"sim.randomization.{key}" in message and expected in message, message


@pytest.mark.parametrize("key, value, expected", [
    ("solref", [-0.02, 1.0], "timeconst > 0"),
    ("solimp", [0.95, 0.9, 0.001, 0.5, 2], "dmin <= dmax"),
    ("noslip_iterations", -3, "must be >= -1"),
    ("integrator", "leapfrog", "expected one of"),
])
def test_bad_physics_settings_are_refused(key, value, expected):
    with pytest.raises(ConfigError) as info:
        cfg(**{f"sim.physics.{key}": value})
    assert f"sim.physics.{key}" in str(info.value) and expected in str(info.value)


def test_profiles_are_valid_yaml_sections():
    for name in ("sim_randomized.yaml", "sim_shifted.yaml"):
        data = yaml.safe_load((REPO / "config" / name).read_text())
        assert set(data) == {"sim"}, name


def test_camera_light_and_colour_randomisation_reach_the_rendered_image():
    world = SimWorld(cfg(**{"cameras": [{"name": "front", "width": 48, "height": 48}],
                            R + "enabled": True, R + "camera_pos_jitter": 0.02,
                            R + "light_scale": [0.5, 0.6], R + "color_jitter": 0.2}))
    try:
        camera = world.cfg.cameras[0]
        randomizer = world.randomizer()
        world.reset(seed=0, randomization=nominal_values(randomizer.camera_names))
        nominal, K = world.camera_frame(camera)
        world.reset(seed=0)  # drawn: darker, other colours, the camera moved
        randomized, _ = world.camera_frame(camera)
        assert np.abs(randomized.astype(int) - nominal.astype(int)).mean() > 5
        assert randomized.mean() < nominal.mean()  # lights at 50-60 %
        world.reset(seed=0, randomization=nominal_values(randomizer.camera_names))
        again, K_again = world.camera_frame(camera)
        assert np.array_equal(again, nominal) and np.array_equal(K_again, K)
    finally:
        world.close()
