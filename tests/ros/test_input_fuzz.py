"""Fuzz of the String inputs of the real nodes, through their public interfaces.

* ROS-free, Hypothesis: any text handed to the learner core's ``episode_event`` (what the
  learner node does with each /episode/event message) returns, and is either counted as the
  episode it describes or refused and counted as such, exactly as ``parse_episode_event``
  judges it.
* Over real DDS: hostile texts published on /episode/event and /rl/learner_status reach the
  running learner, intervention and reward nodes and the demo's event recorder; every one of
  them keeps working (a good event published afterwards is processed by all) and counted what
  it refused.
"""
from __future__ import annotations

import json
import random
import threading
import time

import pytest
import rclpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.executors import MultiThreadedExecutor
from std_msgs.msg import String

from robot_rl import topics as T
from robot_rl.config import load_config, save_config
from robot_rl.parsing import EPISODE_EVENTS, InputError, parse_episode_event

SMALL = {"task.observations": ["state", "object"], "cameras": [], "tactile": [],
         "agent.hidden_dims": [32, 32], "agent.num_critics": 2, "agent.batch_size": 8,
         "learner.min_online": 10**6, "learner.tensorboard": False}
FIELD_NAMES = ["actor_id", "episode", "event", "return", "length", "interventions",
               "intervention_rate", "steps_since_intervention", "reason", "x"]
FIELDS = st.dictionaries(
    st.sampled_from(FIELD_NAMES),
    st.none() | st.booleans() | st.integers(-3, 2**65) | st.floats() | st.text(max_size=10)
    | st.sampled_from(EPISODE_EVENTS) | st.lists(st.integers(), max_size=2), max_size=8)
NASTY = ["[]", "null", "{", "[" * 5000, '{"a":' * 40 + "1" + "}" * 40, "", "NaN",
         '{"event": "success", "episode": 1e400}', '{"actor_id": -1, "event": "success"}']
TEXTS = (st.text(max_size=200) | FIELDS.map(lambda d: json.dumps(d, allow_nan=True))
         | st.sampled_from(NASTY))
# ROS strings cannot carry NUL or lone surrogates; anything else may arrive.
TEXTS = TEXTS.filter(lambda t: "\x00" not in t).map(
    lambda t: t.encode("utf-8", "replace").decode("utf-8"))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
GOOD = {"actor_id": 0, "episode": 7, "event": "success", "return": 1.0, "length": 12,
        "interventions": 2, "intervention_rate": 2 / 12, "steps_since_intervention": 3}


def _config(tmp, name: str, extra: dict | None = None):
    cfg = load_config(None, {**SMALL, "learner.run_dir": str(tmp / "run"), **(extra or {})})
    save_config(cfg, tmp / name)
    return cfg


@pytest.fixture(scope="module")
def learner_core(tmp_path_factory):
    from robot_rl.learning.learner_core import LearnerCore
    core = LearnerCore(_config(tmp_path_factory.mktemp("core"), "config.yaml"))
    yield core
    core.close()


@FUZZ
@given(TEXTS)
def test_the_learner_core_counts_or_refuses_any_episode_event(learner_core, text):
    events, refused = learner_core.episode_events, learner_core.rejected["bad_event"]
    try:
        expected = (events + int(parse_episode_event(text).ended), refused)
    except InputError:
        expected = (events, refused + 1)
    learner_core.episode_event(text)
    assert (learner_core.episode_events, learner_core.rejected["bad_event"]) == expected


def _hostile_texts(n: int, seed: int = 0) -> list[str]:
    """Random texts of the same families as TEXTS (seeded: the DDS test is reproducible)."""
    rng = random.Random(seed)
    values = [None, True, -3, 2**65, float("nan"), float("inf"), "x" * 9, [1, 2], "success",
              "resetting", 1e308]
    texts = list(NASTY)
    while len(texts) < n:
        kind = rng.random()
        if kind < 0.4:
            fields = {rng.choice(FIELD_NAMES): rng.choice(values) for _ in range(rng.randint(0, 8))}
            texts.append(json.dumps(fields, allow_nan=True))
        elif kind < 0.8:
            texts.append("".join(chr(rng.choice([rng.randint(1, 127), rng.randint(128, 0xD7FF)]))
                                 for _ in range(rng.randint(0, 200))))
        else:
            texts.append(json.dumps({**GOOD, rng.choice(FIELD_NAMES): rng.choice(values)},
                                    allow_nan=True))
    return texts


@pytest.fixture
def running_nodes(tmp_path):
    from robot_rl.demo import EventRecorder
    from robot_rl.report import EpisodeLog
    from robot_rl.ros.intervention_node import InterventionNode
    from robot_rl.ros.learner_node import LearnerNode
    from robot_rl.ros.reward_node import RewardNode

    cfg = _config(tmp_path, "config.yaml")
    rclpy.init(args=["--ros-args", "-p", f"config_file:={tmp_path / 'config.yaml'}"])
    made, recorder, executor, spin = {}, None, None, None
    try:
        made["learner"] = LearnerNode()
        made["intervention"] = InterventionNode(cfg)
        made["reward"] = RewardNode(load_config(None, {  # recording labelled camera frames
            "cameras": [{"name": "front", "width": 64, "height": 48}],
            "hil.reward.record_dir": str(tmp_path / "frames")}))
        recorder = EventRecorder(EpisodeLog(tmp_path / "episodes.csv"), "train", 0.0)
        executor = MultiThreadedExecutor(num_threads=2)
        for node in made.values():
            executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        yield made, recorder
    finally:
        if recorder is not None:
            recorder.close()
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if spin is not None:
            spin.join(timeout=5.0)
        for node in made.values():
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


def test_running_nodes_survive_hostile_strings_and_still_work(running_nodes):
    made, recorder = running_nodes
    learner, intervention, reward = made["learner"], made["intervention"], made["reward"]
    sender = rclpy.create_node("fuzz_sender")
    try:
        events = sender.create_publisher(String, T.EPISODE_EVENT, 10)
        status = sender.create_publisher(String, T.LEARNER_STATUS, 10)
        deadline = time.monotonic() + 30.0
        while not (events.get_subscription_count() >= 4 and status.get_subscription_count() >= 1):
            assert time.monotonic() < deadline, "the nodes' subscriptions were never discovered"
            time.sleep(0.05)
        texts = _hostile_texts(150)
        refused = sum(1 for t in texts if _refused(t))
        assert refused > 50  # the sample is mostly hostile
        for i, text in enumerate(texts):
            events.publish(String(data=text))
            status.publish(String(data=text))
            if i % 5 == 4:
                time.sleep(0.02)  # keep-last-10 queues: let the executors drain
        good = json.dumps(GOOD)
        rows = len(recorder.episodes)
        processed = lambda: (intervention.sim_human.episode == 7 and reward.episode == 7  # noqa: E731
                             and len(recorder.episodes) > rows
                             and learner.core.episode_events >= 1)
        deadline = time.monotonic() + 30.0
        while not processed():
            assert time.monotonic() < deadline, (
                f"a good event after the fuzz was not processed by every node: intervention "
                f"episode {intervention.sim_human.episode}, reward episode {reward.episode}, "
                f"recorder rows {len(recorder.episodes)} (was {rows}), learner events "
                f"{learner.core.episode_events}")
            events.publish(String(data=json.dumps({**GOOD, "event": "resetting"})))
            events.publish(String(data=good))
            time.sleep(0.2)
        # every node counted refusals (queues may have dropped some under load, never all)
        assert learner.core.rejected["bad_event"] > 0
        assert intervention.rejected_events > 0 and reward.rejected_events > 0
        assert recorder.rejected > 0 and recorder.thread.is_alive()
        assert recorder.episodes[-1].episode == 7 and recorder.episodes[-1].success
    finally:
        sender.destroy_node()


def _refused(text: str) -> bool:
    try:
        parse_episode_event(text)
    except InputError:
        return True
    return False
