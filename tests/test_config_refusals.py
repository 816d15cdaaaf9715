"""Config refuses counts, periods and sizes that would stall or break a node (issue 19, item 5),
and names the dotted key in the message."""
from __future__ import annotations

import pytest

from robot_rl.config import Config, load_config
from robot_rl.schema import ConfigError

REFUSED = [
    ("learner.capacity", -5), ("learner.capacity", 0),
    ("learner.flush_every", -1), ("learner.flush_every", 0),
    ("learner.log_every", 0), ("learner.log_every", -2.5),
    ("learner.publish_every", 0), ("learner.checkpoint_every", 0), ("learner.min_online", 0),
    ("learner.max_backlog", 0), ("learner.max_message_bytes", 10),
    ("learner.run_dir", ""),
    ("actor.send_every", 0), ("actor.reset_timeout", -1), ("actor.reset_timeout", 0),
    ("actor.observation_timeout", 0), ("actor.max_reset_failures", 0),
    ("actor.learner_timeout", 0), ("actor.max_message_bytes", 10), ("actor.actor_id", -1),
    ("actor.actor_id", 2**31), ("actor.max_lead", -1), ("actor.weights_timeout", -1),
    ("actor.random_steps", -3),
    ("sim.lockstep_timeout", -1), ("sim.lockstep_timeout", 0),
    ("task.max_step_pos", 0), ("task.lift_height", -0.1),
    ("driver.state_timeout", 0), ("robot.gripper_force", 0),
    ("controller.joint_stiffness", 0), ("controller.joint_damping", -1),
    ("agent.actor_lr", 0), ("agent.num_threads", 0), ("agent.encoder.cnn_channels", 0),
    ("agent.encoder.augment_pad", -1),
    ("hil.joy.timeout", 0), ("hil.spacemouse.full_scale", 0),
    ("hil.sim_human.grace_steps", -1), ("hil.reset.yaw_tolerance", 0),
    ("hil.reset.service", "scene/reset"),
    ("actor.outbox_max_bytes", 0), ("actor.resend_after", 0), ("learner.checkpoint_period", 0),
    ("learner.ack_period", -1), ("learner.actor_quiet_after", 0), ("learner.wal_fsync", "always"),
    ("security.command_max_age_s", 0),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=[f"{k}={v!r}" for k, v in REFUSED])
def test_refused_with_dotted_key(key, value):
    with pytest.raises(ConfigError) as info:
        load_config(None, {key: value})
    assert key in str(info.value), f"message does not name {key}: {info.value}"


@pytest.mark.parametrize("key, value", [("learner.capacity", 1), ("learner.flush_every", 1),
                                        ("learner.log_every", 0.01), ("actor.send_every", 1),
                                        ("actor.max_message_bytes", 65536),
                                        ("actor.max_lead", 0), ("sim.lockstep_timeout", 0.01),
                                        ("hil.sim_human.grace_steps", 0)])
def test_smallest_sensible_values_are_accepted(key, value):
    cfg = load_config(None, {key: value})
    section, _, name = key.rpartition(".")
    obj = cfg
    for part in section.split("."):
        obj = getattr(obj, part)
    assert getattr(obj, name) == value


def test_message_says_what_was_expected():
    with pytest.raises(ConfigError, match=r"learner\.capacity: must be >= 1, got -5"):
        load_config(None, {"learner.capacity": -5})
    with pytest.raises(ConfigError, match=r"learner\.max_message_bytes: must be >= 65536, got 10"):
        load_config(None, {"learner.max_message_bytes": 10})


def test_refused_in_a_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learner:\n  flush_every: 0\n")
    with pytest.raises(ConfigError, match=rf"learner\.flush_every: must be >= 1, got 0.*{path.name}"):
        load_config(path)


def test_defaults_still_valid():
    assert load_config(None) == Config()
