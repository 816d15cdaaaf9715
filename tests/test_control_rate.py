"""One control rate (issue 20): control_rate_hz sets the policy step, the deployed controller's
loop and its safety layer; the keys that used to repeat it are derived or refused."""
from __future__ import annotations

import pytest
import yaml

from robot_rl.config import Config, config_to_yaml, load_config, save_config
from robot_rl.deploy.agent_export import robot_spec
from robot_rl.deploy.controller_core import safety_config_for, sensor_names
from robot_rl.schema import ConfigError


def test_control_rate_hz_alone_sets_every_rate(tmp_path):
    cfg = load_config(None, {"control_rate_hz": 50.0})
    assert cfg.safety.control_rate_hz == 50.0
    assert robot_spec(cfg).control_rate_hz == 50.0
    assert safety_config_for(cfg, cfg.control_rate_hz, sensor_names(cfg)).control_rate_hz == 50.0
    assert not hasattr(cfg.deploy, "rate_hz")
    assert Config(control_rate_hz=20.0).safety.control_rate_hz == 20.0


def test_a_saved_config_changes_its_rate_by_control_rate_hz_alone(tmp_path):
    path = tmp_path / "c.yaml"
    save_config(load_config(None), path)
    data = yaml.safe_load(path.read_text())
    assert "control_rate_hz" not in data["safety"] and "rate_hz" not in data["deploy"]
    data["control_rate_hz"] = 100.0  # what a user edits in a copy of the file
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).safety.control_rate_hz == 100.0
    assert "control_rate_hz" not in yaml.safe_load(config_to_yaml(load_config(path)))["safety"]


@pytest.mark.parametrize("key", ["deploy.rate_hz", "safety.control_rate_hz"])
def test_a_repeated_rate_equal_to_control_rate_hz_is_accepted(key):
    assert load_config(None, {"control_rate_hz": 25.0, key: 25.0}).safety.control_rate_hz == 25.0


@pytest.mark.parametrize("key", ["deploy.rate_hz", "safety.control_rate_hz"])
def test_a_different_repeated_rate_is_refused_naming_the_key(tmp_path, key):
    with pytest.raises(ConfigError, match=rf"{key} is 50.0 but control_rate_hz is 100.0: .* remove {key}"):
        load_config(None, {"control_rate_hz": 100.0, key: 50.0})
    section, name = key.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({section: {name: 20.0}}))  # the default control_rate_hz is 10
    with pytest.raises(ConfigError, match=rf"{key} is 20.0 but control_rate_hz is 10.0.*\(in {path}\)"):
        load_config(path)
