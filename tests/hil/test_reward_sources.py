"""Reward and success sources without ROS: N consecutive positives, edge-triggered human labels,
the config refusals (sim_state without a simulator, the old 'scripted' name), and the checks of
a classifier against the configured cameras and of frames without a success label."""
import types

import numpy as np
import pytest

from robot_rl.config import load_config
from robot_rl.hil.config import MappingConfig, RewardConfig, check_reward_source
from robot_rl.hil.devices import DeviceState
from robot_rl.hil.mapping import ActionMapper
from robot_rl.hil.reward_classifier import (check_against_config, main, read_meta,
                                            require_both_labels, train)
from robot_rl.hil.reward_sources import (ConsecutiveSuccess, HumanLabels, Outcome,
                                         make_source)
from robot_rl.schema import ConfigError


def test_success_needs_n_true_messages_in_a_row_and_a_reset_forgets_them():
    source = ConsecutiveSuccess(3)
    for value in (True, True, False, True, True):
        source.on_message(value)
        assert source.outcome() == Outcome()  # a False in between starts the count again
    source.on_message(True)
    assert source.outcome() == Outcome(success=True)
    source.on_message(False)
    assert source.outcome().success  # success holds until the episode ends
    source.reset()
    assert source.outcome() == Outcome() and source.messages == 0
    source.on_message(True)
    source.on_message(True)
    assert not source.outcome().success  # the run before the reset does not count


def test_one_positive_is_enough_with_consecutive_1():
    source = ConsecutiveSuccess(1)
    source.on_message(False)
    assert not source.outcome().success
    source.on_message(True)
    assert source.outcome().success


def test_a_step_can_wait_for_the_next_message():
    import threading
    source = ConsecutiveSuccess(1)
    source.on_message(False)
    assert source.wait_after(0, 0.0)  # already there: no wait
    assert not source.wait_after(source.received, 0.01)  # nothing new: times out
    seen = source.received
    arrived = threading.Event()
    sender = threading.Thread(target=lambda: (arrived.wait(), source.on_message(True)))
    sender.start()
    arrived.set()
    assert source.wait_after(seen, 30.0) and source.outcome().success
    sender.join()
    source.reset()
    assert source.received == 2  # a lifetime count: the reset does not lose a wait's place


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_consecutive_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="consecutive"):
        ConsecutiveSuccess(bad)


def test_human_labels_are_edge_triggered_and_a_held_button_does_not_carry_over():
    labels = HumanLabels()
    labels.on_buttons([1, 0, 0, 0])  # dead-man only
    assert labels.outcome() == Outcome()
    labels.on_buttons([1, 0, 1, 0])  # success pressed
    assert labels.outcome() == Outcome(success=True)
    labels.on_buttons([1, 0, 1, 1])  # failure too, later: the first label stands
    assert labels.outcome() == Outcome(success=True)
    labels.reset()
    labels.on_buttons([0, 0, 1, 0])  # still held from the previous episode
    assert labels.outcome() == Outcome()
    labels.on_buttons([0, 0, 0, 0])
    labels.on_buttons([0, 0, 0, 1])
    assert labels.outcome() == Outcome(failure=True)


def test_human_success_held_through_consecutive_steps():
    labels = HumanLabels(consecutive=3)
    labels.on_buttons([0, 0, 1, 0])               # pressed
    assert labels.outcome() == Outcome()          # step 1 held
    assert labels.outcome() == Outcome()          # step 2 held
    labels.on_buttons([0, 0, 0, 0])               # released before the third step
    assert labels.outcome() == Outcome()
    labels.on_buttons([0, 0, 1, 0])               # pressed again: the count restarts
    assert [labels.outcome().success for _ in range(3)] == [False, False, True]
    labels.on_buttons([0, 0, 0, 0])
    assert labels.outcome() == Outcome(success=True)  # success holds until the reset
    labels.reset()
    labels.on_buttons([0, 0, 0, 1])               # failure needs no hold
    assert labels.outcome() == Outcome(failure=True)


def test_a_hold_carried_over_from_the_previous_episode_counts_no_steps():
    labels = HumanLabels(consecutive=2)
    labels.on_buttons([0, 0, 1, 0])
    labels.reset()                                # the button is still held
    assert [labels.outcome().success for _ in range(4)] == [False] * 4
    labels.on_buttons([0, 0, 0, 0])
    labels.on_buttons([0, 0, 1, 0])
    assert [labels.outcome().success for _ in range(2)] == [False, True]


def test_human_labels_ignore_a_joy_without_the_label_buttons():
    labels = HumanLabels()
    labels.on_buttons([1, 0, 1])  # an intervention node that sends no failure button
    assert labels.outcome() == Outcome(success=True)
    labels.reset()
    labels.on_buttons([1])
    assert labels.outcome() == Outcome()


def test_each_source_name_makes_its_source():
    assert isinstance(make_source(RewardConfig(source="classifier", consecutive=4)),
                      ConsecutiveSuccess)
    assert make_source(RewardConfig(source="topic", consecutive=4)).consecutive == 4
    assert isinstance(make_source(RewardConfig(source="human")), HumanLabels)
    assert make_source(RewardConfig(source="human", consecutive=5)).consecutive == 5
    assert make_source(RewardConfig(source="sim_state")) is None


def test_the_failure_button_reaches_the_intervention_command():
    mapper = ActionMapper(MappingConfig(deadman_button=0, success_button=3, failure_button=2),
                          deadzone=0.05)
    cmd = mapper.map(DeviceState(np.zeros(6), [False, False, True, False]))
    assert cmd.failure and not cmd.success
    cmd = mapper.map(DeviceState(np.zeros(6), [False, False, False, True]))
    assert cmd.success and not cmd.failure
    gamepad = load_config(None).hil.gamepad.mapping
    buttons = {gamepad.deadman_button, gamepad.close_button, gamepad.open_button,
               gamepad.confirm_button, gamepad.success_button, gamepad.failure_button}
    assert len(buttons) == 6  # the default failure button collides with no other function


# -- configuration ----------------------------------------------------------------------------
def test_the_old_scripted_source_is_refused_naming_sim_state():
    with pytest.raises(ConfigError, match="hil.reward.source: 'scripted' was renamed 'sim_state'"):
        load_config(None, {"hil.reward.source": "scripted"})


def test_sim_state_is_refused_on_hardware_naming_both_keys_and_the_alternatives():
    with pytest.raises(ConfigError) as err:
        load_config(None, {"driver.adapter": "ros2_control"})
    text = str(err.value)
    assert "hil.reward.source" in text and "driver.adapter" in text and "ros2_control" in text
    assert all(name in text for name in ("'classifier'", "'human'", "'topic'"))
    for source in ("classifier", "human", "topic"):
        cfg = load_config(None, {"driver.adapter": "ros2_control", "hil.reward.source": source})
        assert cfg.hil.reward.source == source
    assert load_config(None).hil.reward.source == "sim_state"  # the sim demo keeps working


def test_sim_state_is_refused_in_the_dress_rehearsal():
    cfg = load_config(None)
    rehearsal = types.SimpleNamespace(
        driver=cfg.driver, hil=cfg.hil, sim=types.SimpleNamespace(rehearsal=True))
    with pytest.raises(ConfigError, match="sim.rehearsal is true"):
        check_reward_source(rehearsal)
    check_reward_source(cfg)  # the plain stand-in has simulator state


def test_consecutive_and_wait_are_checked_in_the_config():
    with pytest.raises(ConfigError, match="hil.reward.consecutive"):
        load_config(None, {"hil.reward.consecutive": 0})
    with pytest.raises(ConfigError, match="hil.reward.wait_s"):
        load_config(None, {"hil.reward.wait_s": -0.1})


# -- the classifier against the configuration -------------------------------------------------
def _frames(n=24, size=(16, 16)):
    rng = np.random.default_rng(0)
    bright = rng.integers(200, 256, (n, *size, 3), dtype=np.uint8)
    dark = rng.integers(0, 56, (n, *size, 3), dtype=np.uint8)
    return {"images_front": np.concatenate([bright, dark]),
            "labels": np.array([1] * n + [0] * n, np.uint8),
            "episode": np.arange(2 * n) // 4}


def test_a_classifier_for_other_cameras_or_another_size_is_refused_naming_both(tmp_path):
    train(_frames(), steps=20, log=None).save(tmp_path / "model")
    meta = read_meta(tmp_path / "model")
    ok = load_config(None, {"cameras": [{"name": "front", "width": 16, "height": 16}]})
    check_against_config(meta, ok)
    resized = load_config(None, {"cameras": [{"name": "front", "width": 64, "height": 48,
                                              "resize": [16, 16]}]})
    check_against_config(meta, resized)  # the size that matters is the delivered one
    other = load_config(None, {"cameras": [{"name": "wrist", "width": 16, "height": 16}]})
    with pytest.raises(ValueError, match=r"cameras \['front'\].*no camera \['front'\]"
                                         r".*configured: \['wrist'\]"):
        check_against_config(meta, other, "model")
    bigger = load_config(None, {"cameras": [{"name": "front", "width": 64, "height": 48}]})
    with pytest.raises(ValueError, match=r"trained on 16x16 .*front delivers 48x64"):
        check_against_config(meta, bigger, "model")


def test_a_model_folder_that_is_not_a_classifier_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        read_meta(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="format 'something else', expected"):
        read_meta(tmp_path)


def test_frames_without_a_success_label_are_refused(tmp_path, capsys):
    data = _frames()
    data["labels"][:] = 0
    with pytest.raises(ValueError, match="none of the 48 frames is labelled success"):
        require_both_labels(data["labels"], "frames.npz")
    with pytest.raises(ValueError, match="labelled success"):
        train(data, steps=5, log=None)
    path = tmp_path / "frames.npz"
    np.savez(path, **data)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "training would learn 'never'" in err
    assert not (tmp_path / "m").exists()


# -- the actor's episode loop ---------------------------------------------------------------
class _NeverRaised(Exception):
    """The in-process env has no stream to time out and no clock to jump back."""


def test_the_actor_ends_an_episode_on_a_failure_label_as_a_terminal_failure(tmp_path):
    """ActorCore on the real MuJoCo pick env; a wrapper plays the human's failure label at the
    third step (as RosRobotEnv reports it in ``info``)."""
    import json
    import logging

    import gymnasium as gym

    from robot_rl import transport
    from robot_rl.envs.pick_cube import PickCubeEnv
    from robot_rl.learning.actor_core import ActorCore

    class FailureAtThirdStep(gym.Wrapper):
        snapshot = property(lambda self: self.env.snapshot)

        def reset(self, **kwargs):
            self.steps = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, term, trunc, info = self.env.step(action)
            self.steps += 1
            failure = self.steps == 3
            return obs, reward, term or failure, trunc, {**info, "failure": failure}

    cfg = load_config(None, {"task.observations": ["state"], "cameras": [], "tactile": [],
                             "agent.hidden_dims": [16], "agent.num_critics": 2,
                             "task.max_episode_steps": 8,
                             "learner.run_dir": str(tmp_path / "run")})
    events, messages = [], []
    actor = ActorCore(cfg, messages.append, lambda text: None)

    def on_event(text):
        events.append(json.loads(text))
        if events[-1]["event"] in ("success", "failure", "timeout"):
            actor.stop.set()

    actor._send_event = on_event
    env = FailureAtThirdStep(PickCubeEnv(cfg))
    try:
        actor.run(env, _NeverRaised, _NeverRaised, logging.getLogger("actor"))
    finally:
        env.close()
        actor.close()
    assert events[-1]["event"] == "failure" and events[-1]["length"] == 3
    spec = transport.obs_spec_of(actor.obs_space)
    steps = [s for data in messages
             for s in transport.decode_transitions(data, spec, actor.adim).steps]
    assert [s.terminated for s in steps] == [False, False, True]
