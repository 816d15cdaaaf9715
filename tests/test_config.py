"""The configuration schema: loading, strictness, validation, overrides, shipped YAML files."""
from __future__ import annotations

import math
from pathlib import Path

import robot_rl  # noqa: F401

import pytest
import yaml

from robot_rl.config import (Config, ControllerConfig, config_to_yaml, load_config,
                             save_config)
from robot_rl.schema import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- defaults and round trips ----------------------------------------------------------------
def test_defaults_load_and_validate():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.controller.stiffness_pos == 800.0
    assert cfg.robot.arm_joints == [f"panda_joint{i}" for i in range(1, 8)]
    assert [c.name for c in cfg.cameras] == ["front", "wrist"]
    assert [t.name for t in cfg.tactile] == ["left", "right"]
    cfg.validate()
    for section in (cfg.robot, cfg.controller, cfg.sim, cfg.task):
        section.validate()
    # Sensor sections validate on construction (their __post_init__).


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, {"sim.rate": "max", "controller.stiffness_pos": 500.0,
                             "cameras": [{"name": "top", "crop": [0, 0, 64, 64],
                                          "resize": [32, 32]}],
                             "task.observations": ["state", "images"]})
    path = tmp_path / "out.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert list(again.cameras[0].crop) == [0, 0, 64, 64]
    assert again.sim.rate == "max"
    assert config_to_yaml(again) == path.read_text()


def test_default_round_trip(tmp_path):
    path = tmp_path / "default.yaml"
    save_config(Config(), path)
    assert load_config(path) == Config()


# -- malformed input -------------------------------------------------------------------------
def test_malformed_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "robot:\n  urdf: [unclosed\n", "broken.yaml")
    with pytest.raises(ConfigError, match="broken.yaml") as info:
        load_config(path)
    assert "not valid YAML" in str(info.value)


def test_non_mapping_top_level(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope" / "missing.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "controll:\n  stiffness_pos: 100.0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "controll" in msg
    for expected in ("controller", "robot", "sim", "task", "cameras", "tactile"):
        assert expected in msg
    assert str(path) in msg


def test_unknown_nested_key_names_dotted_path(tmp_path):
    path = write(tmp_path, "controller:\n  stifness_pos: 100.0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "controller.stifness_pos" in msg
    assert "stiffness_pos" in msg.split("expected", 1)[1]  # lists the expected keys
    assert "max_pos_error" in msg


def test_unknown_key_in_list_item():
    with pytest.raises(ConfigError, match=r"cameras\[1\]\.widht"):
        load_config(None, {"cameras": [{"name": "a"}, {"name": "b", "widht": 3}]})


def test_unknown_dotted_override():
    with pytest.raises(ConfigError, match="sim.ratee"):
        load_config(None, {"sim.ratee": "max"})


@pytest.mark.parametrize("overrides, key", [
    ({"controller.stiffness_pos": "stiff"}, "controller.stiffness_pos"),   # str for float
    ({"controller.stiffness_pos": True}, "controller.stiffness_pos"),      # bool for float
    ({"task.max_episode_steps": True}, "task.max_episode_steps"),          # bool for int
    ({"task.max_episode_steps": 10.5}, "task.max_episode_steps"),          # float for int
    ({"task.max_episode_steps": "100"}, "task.max_episode_steps"),         # str for int
    ({"robot.urdf": 3}, "robot.urdf"),                                     # int for str
    ({"robot.home": 0.0}, "robot.home"),                                   # scalar for list
    ({"robot.home": [0.0, "x", 0, 0, 0, 0, 0]}, r"robot.home\[1\]"),      # bad list item
    ({"sim.rate": "fast"}, "sim.rate"),                                    # not in Literal
    ({"cameras": [{"crop": "all"}]}, r"cameras\[0\].crop"),               # Optional[list]
    ({"controller": 3}, "controller"),                                     # scalar for section
])
def test_wrong_types(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, overrides)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers(value):
    with pytest.raises(ConfigError, match="finite"):
        load_config(None, {"controller.stiffness_pos": value})
    with pytest.raises(ConfigError, match=r"controller.workspace_min\[2\]"):
        load_config(None, {"controller.workspace_min": [0.2, 0.0, value]})


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_from_yaml(tmp_path, text):
    with pytest.raises(ConfigError, match="sim.physics_dt"):
        load_config(write(tmp_path, f"sim:\n  physics_dt: {text}\n"))


def test_int_is_accepted_for_float():
    cfg = load_config(None, {"controller.stiffness_pos": 500})
    assert cfg.controller.stiffness_pos == 500.0
    assert isinstance(cfg.controller.stiffness_pos, float)


# -- validate() ------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, pattern", [
    ({"controller.workspace_min": [0.8, -0.35, 0.01]}, "workspace_min"),
    ({"controller.workspace_max": [0.75, 0.35]}, "3 values"),
    ({"controller.stiffness_pos": 0.0}, "stiffness_pos must be > 0"),
    ({"robot.home": [0.0] * 6}, "home has 6 values"),
    ({"robot.arm_joints": ["panda_joint1"] * 7}, "duplicates"),
    ({"cameras": [{"name": "front"}, {"name": "front"}]}, "cameras: names must be unique"),
    ({"tactile": [{"name": "l"}, {"name": "l"}]}, "tactile: names must be unique"),
    ({"cameras": [{"width": 0}]}, "width/height"),
    ({"cameras": [{"crop": [1, 2, 3]}]}, "crop"),
    ({"sim.physics_dt": 0.1}, "physics_dt"),
    ({"sim.object_x_range": [0.6, 0.4]}, "object_x_range"),
    ({"task.observations": ["state", "lidar"]}, "lidar"),
    ({"control_rate_hz": 0.0}, "control_rate_hz"),
    ({"deploy.sync_age_s": -0.001}, "sync_age_s"),
])
def test_validation_failures(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, overrides)


def test_nested_validation_error_names_section(tmp_path):
    path = write(tmp_path, "controller:\n  workspace_min: [0.8, 0.0, 0.0]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith("controller:")
    assert str(path) in msg


def test_controller_validate_directly():
    with pytest.raises(ConfigError):
        ControllerConfig(workspace_min=[0.5, 0.0, 0.0], workspace_max=[0.4, 1.0, 1.0]).validate()
    ControllerConfig().validate()


# -- overrides -------------------------------------------------------------------------------
def test_dotted_overrides_apply(tmp_path):
    path = write(tmp_path, "sim:\n  rate: realtime\n  seed: 3\n")
    cfg = load_config(path, {"sim.rate": "max", "controller.stiffness_pos": 100.0})
    assert cfg.sim.rate == "max"
    assert cfg.sim.seed == 3                      # the rest of the file's section survives
    assert cfg.controller.stiffness_pos == 100.0
    assert cfg.controller.stiffness_rot == ControllerConfig().stiffness_rot


def test_nested_and_dotted_overrides_merge():
    cfg = load_config(None, {"sim": {"seed": 7}, "sim.rate": "max"})
    assert (cfg.sim.seed, cfg.sim.rate) == (7, "max")


def test_dotted_override_beats_nested():
    cfg = load_config(None, {"sim": {"rate": "realtime"}, "sim.rate": "max"})
    assert cfg.sim.rate == "max"


def test_list_override_replaces_whole_list():
    cfg = load_config(None, {"cameras": [{"name": "only", "width": 64, "height": 48}]})
    assert len(cfg.cameras) == 1
    assert (cfg.cameras[0].name, cfg.cameras[0].width, cfg.cameras[0].height) == ("only", 64, 48)
    assert cfg.cameras[0].backend == "sim"


# -- robot description errors ----------------------------------------------------------------
def test_missing_urdf_in_kinematics():
    from robot_rl.robot.kinematics import ArmKinematics
    cfg = load_config(None, {"robot.urdf": "/nope.urdf"})
    with pytest.raises(FileNotFoundError, match="/nope.urdf"):
        ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, cfg.robot.ee_frame)


def test_missing_urdf_in_sim():
    from robot_rl.sim.world import SimWorld
    cfg = load_config(None, {"robot.urdf": "/nope.urdf"})
    with pytest.raises(FileNotFoundError, match="/nope.urdf"):
        SimWorld(cfg)


def test_unknown_example_robot():
    from robot_rl.robot.description import resolve_urdf
    with pytest.raises(FileNotFoundError, match="panda"):
        resolve_urdf("example-robot-data:nonexistent")


def test_unknown_joint_and_frame():
    from robot_rl.robot.kinematics import ArmKinematics
    cfg = Config()
    with pytest.raises(ValueError, match="panda_joint9"):
        ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints[:6] + ["panda_joint9"],
                      cfg.robot.ee_frame)
    with pytest.raises(ValueError, match="no_such_frame"):
        ArmKinematics(cfg.robot.urdf, cfg.robot.arm_joints, "no_such_frame")


def test_missing_scene():
    from robot_rl.sim.scene import build_model
    cfg = load_config(None, {"sim.scene": "no_such_scene"})
    with pytest.raises(FileNotFoundError, match="no_such_scene"):
        build_model(cfg)


# -- shipped files ---------------------------------------------------------------------------
def test_shipped_default_yaml_equals_defaults():
    path = REPO / "config" / "default.yaml"
    assert load_config(path) == Config()
    # Every key is spelled out (not just "loads to the defaults because it is empty"), except
    # the derived safety.control_rate_hz (control_rate_hz is the one control rate).
    from robot_rl.config import config_dict
    assert yaml.safe_load(path.read_text()) == config_dict(Config())


def test_default_config_path_points_at_shipped_file():
    from robot_rl.config import default_config_path
    assert default_config_path().resolve() == (REPO / "config" / "default.yaml").resolve()
    assert load_config(default_config_path()) == Config()


def test_real_panda_yaml_loads():
    cfg = load_config(REPO / "config" / "real_panda.yaml")
    assert [c.backend for c in cfg.cameras] == ["realsense", "realsense"]
    assert cfg.cameras[0].serial == "SERIAL_FRONT"
    assert all(tuple(c.resize) == (128, 128) for c in cfg.cameras)
    assert [t.backend for t in cfg.tactile] == ["serial_taxel", "serial_taxel"]
    assert all(t.device.startswith("/dev/") for t in cfg.tactile)
    assert "images" in cfg.task.observations
    lo, hi = cfg.controller.workspace_min, cfg.controller.workspace_max
    d = ControllerConfig()
    assert all(a >= b for a, b in zip(lo, d.workspace_min))   # no larger than the sim box
    assert all(a <= b for a, b in zip(hi, d.workspace_max))
