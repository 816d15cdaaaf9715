"""Reward and success sources wired into the ROS env, over real DDS against the MuJoCo stand-in
in its own process: the learned classifier (trained here on frames rendered by the stand-in)
served by the reward node process ends an episode when the cube is lifted, with no
``/sim/object_pose`` subscription in the env; a std_msgs/Bool topic with N consecutive
positives; the human's success / failure buttons; the classifier checked against the cameras
in the reward node and in the env; ``robot-rl reward-classifier collect`` keeping its frames
when stopped."""
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from robot_rl.config import load_config, save_config
from robot_rl.envs.expert import PickExpert
from robot_rl.envs.ros_env import RosRobotEnv
from robot_rl.envs.task import CUBE_HALF, PickCubeTask
from robot_rl.graph import NodeSpec, graph
from robot_rl.launcher import NodeGraph
from robot_rl.ros import messages as m
from tests.ros.status_watch import wait_until

CAMERA = {"name": "front", "width": 64, "height": 64, "fps": 10}
BASE = {"task.observations": ["state"], "cameras": [CAMERA], "tactile": []}


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A reward classifier trained on labelled frames the MuJoCo stand-in renders."""
    from robot_rl.hil.reward_classifier import collect_sim_frames, train
    folder = tmp_path_factory.mktemp("classifier") / "model"
    cfg = load_config(None, {"task.observations": ["state"], "cameras": [CAMERA]})
    frames = collect_sim_frames(12, camera="front", size=64, seed=0, cfg=cfg)
    clf = train(frames, steps=300, log=None)
    assert clf.meta["train"]["false_positive_rate"] < 0.02
    clf.save(folder)
    return folder


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, classifier_dir):
    """The stand-in and the reward node (classifier) as processes, with their config."""
    tmp = tmp_path_factory.mktemp("reward_wiring")
    cfg = load_config(None, {**BASE, "hil.reward.source": "classifier",
                             "hil.reward.model": str(classifier_dir),
                             "hil.reward.consecutive": 2})
    path = tmp / "config.yaml"
    save_config(cfg, path)
    specs = graph(cfg, str(path)) + [
        NodeSpec("reward", "reward", "robot_rl.ros.reward_node", {"config_file": str(path)})]
    nodes = NodeGraph(specs, log_dir=tmp / "logs").start()
    yield cfg, path, tmp
    nodes.stop()
    assert not any(p.poll() is None for p in nodes.processes.values())


class GroundTruth:
    """The test's own view of the simulator state (to drive the scripted expert and to score),
    on a node of its own: never the env's."""

    def __init__(self):
        self.node = rclpy.create_node("ground_truth")
        self.object_pos = None
        self.node.create_subscription(PoseStamped, m.OBJECT_POSE, self._on_object, m.SENSOR_QOS)
        self.pub_success = self.node.create_publisher(Bool, "/test/success", 10)
        self.pub_joy = self.node.create_publisher(Joy, "/test/labels", 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_object(self, msg):
        self.object_pos = m.decode_input("object", msg, ())

    def snapshot(self, env):
        snap = env.snapshot
        return type(snap)(**{**snap.__dict__, "object_pos": np.array(self.object_pos)})

    def joy(self, buttons):
        msg = Joy()
        msg.buttons = list(buttons)
        self.pub_joy.publish(msg)

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()


@pytest.fixture(scope="module")
def truth(ros_context):
    gt = GroundTruth()
    yield gt
    gt.close()


def _subscribed_topics(env):
    return {name for name, _ in env.node.get_subscriber_names_and_types_by_node(
        env.node.get_name(), env.node.get_namespace())}


def test_the_classifier_ends_the_episode_when_the_cube_is_lifted(stand_in, truth):
    cfg, _, _ = stand_in
    env = RosRobotEnv(cfg, node_name="classifier_env", timeout=20.0, startup_timeout=60.0)
    try:
        topics = _subscribed_topics(env)
        assert m.OBJECT_POSE not in topics and cfg.hil.reward.success_topic in topics
        assert not env.use_object
        assert wait_until(lambda: truth.object_pos is not None, 30.0)
        # The reward node process is up once it judges the frames the idle stand-in sends.
        assert wait_until(lambda: env.reward_source.messages > 0, 90.0), \
            "no /task/success from the reward node"
        scorer = PickCubeTask(cfg, env.snapshot.ee_quat)
        expert = PickExpert(cfg.task.max_step_pos, cfg.task.lift_height)
        successes = 0
        for seed in range(3):
            env.reset(seed=seed)
            expert.reset()
            first_truth = None
            for step in range(cfg.task.max_episode_steps):
                _, reward, terminated, truncated, info = env.step(
                    expert.act(truth.snapshot(env)))
                now = truth.snapshot(env)
                if first_truth is None and scorer.success(now):
                    first_truth = step
                if terminated or truncated:
                    break
            if not terminated:
                assert first_truth is None, "the cube was lifted but the episode never ended"
                continue
            successes += 1
            # Ended by the classifier (not by the simulator's state): on camera frames that
            # show the cube up in the gripper. Its boundary is learned, so it may call a cube
            # a little below task.lift_height lifted; the lockstep stand-in runs as fast as the
            # env steps, so its answers may also come a few steps late under load.
            lift = now.object_pos[2] - CUBE_HALF
            assert lift >= 0.5 * cfg.task.lift_height, f"ended with the cube {lift:.3f} m up"
            assert np.linalg.norm(now.object_pos - now.ee_pos) < 0.04, "the cube is not held"
            assert info["success"] and not info["failure"] and reward == 1.0
        assert successes >= 2
        assert m.OBJECT_POSE not in _subscribed_topics(env)
    finally:
        env.close()


def test_a_bool_topic_needs_n_positives_in_a_row_within_the_episode(stand_in, truth):
    cfg, _, _ = stand_in
    topic_cfg = load_config(None, {**BASE, "hil.reward.source": "topic",
                                   "hil.reward.success_topic": "/test/success",
                                   "hil.reward.consecutive": 3})
    env = RosRobotEnv(topic_cfg, node_name="topic_env", timeout=20.0, startup_timeout=60.0)
    try:
        assert m.OBJECT_POSE not in _subscribed_topics(env)
        assert wait_until(lambda: truth.pub_success.get_subscription_count() >= 1)
        source = env.reward_source

        def say(*values):
            start = source.messages
            for v in values:
                truth.pub_success.publish(Bool(data=v))
            assert wait_until(lambda: source.messages >= start + len(values))

        env.reset()
        say(True, True, True)      # before the next reset: the previous episode's
        env.reset()
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert not terminated and not info["success"] and reward == 0.0
        say(True, True, False, True, True)
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert not terminated and reward == 0.0
        say(True)
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert terminated and not truncated and info["success"] and reward == 1.0
    finally:
        env.close()


def test_with_wait_s_a_step_waits_for_the_answer_sent_after_its_command(stand_in, truth):
    """A publisher that answers each new pose (as the reward node answers each frame): the
    step's outcome includes the answer to its own observation. The publisher says True only for
    poses it sees after the step's command, and nothing is in flight when the step starts (a
    False answer to an older pose, still on the wire, would count as "received after the
    command": Bool carries no stamp)."""
    waiting_cfg = load_config(None, {**BASE, "hil.reward.source": "topic",
                                     "hil.reward.success_topic": "/test/success",
                                     "hil.reward.wait_s": 30.0})
    lock = threading.Lock()
    state = {"mode": "false", "sent": 0}   # false | silent | armed (True after a command) | true

    def on_pose(_msg):
        with lock:
            if state["mode"] in ("false", "true"):
                truth.pub_success.publish(Bool(data=state["mode"] == "true"))
                state["sent"] += 1

    def on_command(_msg):
        with lock:
            if state["mode"] == "armed":
                state["mode"] = "true"

    poses = truth.node.create_subscription(PoseStamped, m.EE_POSE, on_pose, m.SENSOR_QOS)
    commands = truth.node.create_subscription(PoseStamped, m.EE_TARGET, on_command,
                                              m.COMMAND_QOS)
    env = RosRobotEnv(waiting_cfg, node_name="waiting_env", timeout=20.0, startup_timeout=60.0)
    try:
        assert wait_until(lambda: truth.pub_success.get_subscription_count() >= 1)
        env.reset()
        _, _, terminated, _, _ = env.step(np.zeros(4, np.float32))
        assert not terminated
        with lock:
            state["mode"] = "silent"
        assert wait_until(lambda: env.reward_source.received >= state["sent"], timeout=10.0)
        assert not env.reward_source.outcome().success
        received = env.reward_source.received
        with lock:
            state["mode"] = "armed"
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert env.reward_source.received > received
        assert terminated and info["success"] and reward == 1.0
    finally:
        env.close()
        truth.node.destroy_subscription(poses)
        truth.node.destroy_subscription(commands)


def test_the_human_labels_success_and_failure_with_buttons(stand_in, truth):
    cfg, _, _ = stand_in
    human_cfg = load_config(None, {**BASE, "hil.reward.source": "human",
                                   "hil.topic": "/test/labels"})
    env = RosRobotEnv(human_cfg, node_name="human_env", timeout=20.0, startup_timeout=60.0)
    try:
        assert m.OBJECT_POSE not in _subscribed_topics(env)
        assert wait_until(lambda: truth.pub_joy.get_subscription_count() >= 1)
        source = env.reward_source
        env.reset()
        truth.joy([1, 0, 0, 1])    # failure pressed
        assert wait_until(lambda: source.outcome().failure)
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert terminated and not truncated and info["failure"] and not info["success"]
        assert reward == 0.0
        env.reset()
        seen = source.messages
        truth.joy([1, 0, 0, 1])    # still held from the last episode: no new label
        assert wait_until(lambda: source.messages > seen)
        _, _, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert not terminated and not info["failure"]
        truth.joy([1, 0, 0, 0])
        truth.joy([1, 0, 1, 0])    # success pressed
        assert wait_until(lambda: source.outcome().success)
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert terminated and info["success"] and reward == 1.0
    finally:
        env.close()


def test_a_classifier_for_other_cameras_is_refused_by_the_env_and_the_reward_node(
        stand_in, classifier_dir, ros_context):
    from robot_rl.ros.reward_node import RewardNode
    wrong = load_config(None, {**BASE, "cameras": [{"name": "front", "width": 128,
                                                    "height": 96}],
                               "hil.reward.source": "classifier",
                               "hil.reward.model": str(classifier_dir)})
    expected = r"trained on 64x64 .* front delivers 96x128"
    with pytest.raises(ValueError, match=expected):
        RosRobotEnv(wrong, node_name="wrong_env", timeout=5.0)
    with pytest.raises(ValueError, match=expected):
        RewardNode(wrong, name="wrong_reward")


def test_collect_records_labelled_frames_and_keeps_them_when_stopped(stand_in, truth):
    cfg, path, tmp = stand_in
    out = tmp / "collected"
    env = RosRobotEnv(cfg, node_name="collect_env", timeout=20.0, startup_timeout=60.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "reward-classifier", "collect", "--out", str(out),
         "--config", str(path), "--set", "hil.topic=/test/labels"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    progress = re.compile(r"^(\d+) frames, (\d+) labelled success$")

    def counted():
        found = [progress.match(line.strip()) for line in list(lines)]
        return [tuple(map(int, f.groups())) for f in found if f]

    try:
        env.reset()
        step = 0
        # The operator presses success in every other block of 4 frames, until the collector
        # reports both labels (its subscriptions match the stand-in's publishers at some point).
        while not any(n >= 20 and 3 <= pos <= n - 3 for n, pos in counted()):
            assert proc.poll() is None, "".join(lines)
            assert step < 2000, f"no progress from collect: {''.join(lines)}"
            truth.joy([0, 0, (step // 4) % 2, 0])
            env.step(np.zeros(4, np.float32))
            step += 1
        reported = counted()[-1]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        env.close()
    output = "".join(lines)
    assert proc.returncode == 0, output
    files = list(out.glob("frames_*.npz"))
    assert len(files) == 1, output
    with np.load(files[0], allow_pickle=False) as data:
        labels, images = data["labels"], data["images_front"]
    assert images.shape[1:] == (64, 64, 3)
    # Everything reported before the stop is in the file.
    assert len(labels) >= reported[0] and labels.sum() >= reported[1]
    assert f"{len(labels)} frames, {int(labels.sum())} labelled success" in output


def test_the_frame_recorder_skips_bad_frames_and_never_drops_recorded_ones(
        ros_context, tmp_path, monkeypatch):
    import tempfile

    from robot_rl.ros.reward_node import RewardNode
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="record_dir .* cannot be created"):
        RewardNode(load_config(None, {**BASE, "hil.reward.record_dir": str(blocker / "x")}),
                   name="recorder_bad_dir")
    folder = tmp_path / "frames"
    node = RewardNode(load_config(None, {**BASE, "hil.reward.record_dir": str(folder)}),
                      name="recorder")
    try:
        good = np.full((64, 64, 3), 7, np.uint8)
        node._on_record("front", m.image_to_msg(good, 1.0, "front", "rgb8"), True)
        broken = m.image_to_msg(good, 2.0, "front", "rgb8")
        broken.data = bytes(broken.data)[:100]  # truncated on the wire
        node._on_record("front", broken, True)
        other_size = np.zeros((32, 32, 3), np.uint8)
        node._on_record("front", m.image_to_msg(other_size, 3.0, "front", "rgb8"), True)
        assert node.frames == 1 and node.rejected_frames == 2
        first = node.save()
        node._on_record("front", m.image_to_msg(good, 4.0, "front", "rgb8"), True)
        second = node.save()  # within the same second: a file of its own
        assert first != second and first.exists() and second.exists()
        # The folder is gone when the node saves: the frames go to the temporary folder.
        node._on_record("front", m.image_to_msg(good, 5.0, "front", "rgb8"), True)
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        folder.write_text("")  # a file where the folder was: saving into it fails
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "fallback"))
        (tmp_path / "fallback").mkdir()
        third = node.save()
        assert third.parent == tmp_path / "fallback"
        with np.load(third, allow_pickle=False) as data:
            assert data["images_front"].shape == (1, 64, 64, 3)
    finally:
        node.destroy_node()


def test_collect_without_cameras_is_refused_before_it_starts(tmp_path, capsys):
    from robot_rl.cli import main
    assert main(["reward-classifier", "collect", "--out", str(tmp_path / "f"),
                 "--set", "cameras=[]"]) == 2
    assert "cameras is empty: there are no frames to record" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
