"""Hypothesis fuzz of every String input callback of the real nodes (in process, real rclpy
nodes, not spun): the learner's, the intervention node's and the reward node's
/episode/event, the demo recorder's /episode/event and /rl/learner_status, and the command
gate's tokens. Whatever the text, the callback returns and the node keeps working."""
from __future__ import annotations

import json

import pytest
import rclpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from std_msgs.msg import String

from robot_rl.config import load_config, save_config
from robot_rl.parsing import EPISODE_EVENTS, InputError, parse_episode_event

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8,
         "learner.min_online": 10**6, "learner.tensorboard": False}
FIELDS = st.dictionaries(
    st.sampled_from(["actor_id", "episode", "event", "return", "length", "interventions",
                     "intervention_rate", "steps_since_intervention", "reason", "x"]),
    st.none() | st.booleans() | st.integers(-3, 2**65) | st.floats() | st.text(max_size=10)
    | st.sampled_from(EPISODE_EVENTS) | st.lists(st.integers(), max_size=2), max_size=8)
TEXTS = (st.text(max_size=200) | FIELDS.map(lambda d: json.dumps(d, allow_nan=True))
         | st.sampled_from(["[]", "null", "{", "[" * 5000, '{"a":' * 40 + "1" + "}" * 40]))
# ROS strings cannot carry NUL or lone surrogates; anything else may arrive.
TEXTS = TEXTS.filter(lambda t: "\x00" not in t).map(
    lambda t: t.encode("utf-8", "replace").decode("utf-8"))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    from robot_rl.demo import EventRecorder
    from robot_rl.report import EpisodeLog
    from robot_rl.ros.intervention_node import InterventionNode
    from robot_rl.ros.learner_node import LearnerNode
    from robot_rl.ros.reward_node import RewardNode

    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = load_config(None, {**SMALL, "learner.run_dir": str(tmp / "run")})
    save_config(cfg, tmp / "config.yaml")
    rclpy.init(args=["--ros-args", "-p", f"config_file:={tmp / 'config.yaml'}"])
    made = {}
    try:
        made["learner"] = LearnerNode()
        made["intervention"] = InterventionNode(cfg)
        made["reward"] = RewardNode(load_config(None, {  # recording labelled camera frames
            "cameras": [{"name": "front", "width": 64, "height": 48}],
            "hil.reward.record_dir": str(tmp / "frames")}))
        recorder = EventRecorder(EpisodeLog(tmp / "episodes.csv"), "train", 0.0)
    except BaseException:
        for node in made.values():
            node.destroy_node()
        rclpy.try_shutdown()
        raise
    yield made, recorder
    recorder.close()
    for node in made.values():
        node.close()
        node.destroy_node()
    rclpy.try_shutdown()


@FUZZ
@given(TEXTS)
def test_episode_event_callbacks_survive_anything(nodes, text):
    made, recorder = nodes
    learner = made["learner"]
    events, refused = learner.core.episode_events, learner.core.rejected["bad_event"]
    try:
        expected = (events + int(parse_episode_event(text).ended), refused)
    except InputError:
        expected = (events, refused + 1)
    msg = String(data=text)
    learner.core.episode_event(text)
    for name, node in made.items():
        if name != "learner":
            node._on_event(msg)
    recorder._on_event(msg)
    recorder._on_status(msg)
    assert (learner.core.episode_events, learner.core.rejected["bad_event"]) == expected
    assert recorder.thread.is_alive()
    assert made["intervention"].sim_human.episode >= 0


def test_good_events_still_work_after_the_fuzz(nodes):
    made, recorder = nodes
    learner = made["learner"]
    n, rows = learner.core.episode_events, len(recorder.episodes)
    event = {"actor_id": 0, "episode": 7, "event": "success", "return": 1.0, "length": 12,
             "interventions": 2, "intervention_rate": 2 / 12, "steps_since_intervention": 3}
    msg = String(data=json.dumps(event))
    learner.core.episode_event(msg.data)
    recorder._on_event(msg)
    made["intervention"]._on_event(String(data=json.dumps({**event, "event": "resetting"})))
    assert learner.core.episode_events == n + 1 and len(recorder.episodes) == rows + 1
    assert made["intervention"].sim_human.episode == 7
    assert made["intervention"].rejected_events > 0  # the fuzz's refusals were counted
