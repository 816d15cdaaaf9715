"""HIL nodes over real DDS: the intervention node (Joy device, missing SpaceMouse, simulated
human against the sim), the reset node against the MuJoCo sim's joint driver, the reward node."""
import threading
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Image, Joy
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from robot_rl.config import load_config
from robot_rl.envs.ros_env import RosRobotEnv
from robot_rl.graph import NodeSpec
from robot_rl.hil.reset import home_pose
from robot_rl.launcher import NodeGraph
from robot_rl.ros import messages as m
from tests.ros.status_watch import wait_until

from .conftest import start_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hil_sim")
    cfg, nodes = start_sim(tmp, {"cameras": [], "tactile": []})
    yield cfg, tmp / "config.yaml", tmp
    nodes.stop()


@pytest.fixture(scope="module")
def spin(ros_context):
    """Spins the test's own nodes (helpers, in-process HIL nodes) on a background executor."""
    executor = MultiThreadedExecutor(num_threads=4)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    added = []

    def add(node):
        executor.add_node(node)
        added.append(node)
        return node

    yield add
    executor.shutdown(timeout_sec=2.0)
    thread.join(timeout=2.0)
    for node in added:
        if hasattr(node, "close"):
            node.close()
        node.destroy_node()


def call(node, srv_type, name, timeout=30.0):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=15.0), f"{name} not available"
    future = client.call_async(srv_type.Request())
    assert wait_until(future.done, timeout), f"{name} did not answer in {timeout} s"
    node.destroy_client(client)
    return future.result()


def test_intervention_node_joy_device_and_missing_spacemouse(sim, spin, tmp_path):
    _, config_file, _ = sim
    base = {"config_file": str(config_file)}
    specs = [
        NodeSpec("intervention_joy", "intervention", "robot_rl.ros.intervention_node",
                 {**base, "hil.device": "joy", "hil.joy.topic": "/test_joy",
                  "hil.topic": "/test_intervention"}),
        NodeSpec("intervention_sm", "intervention", "robot_rl.ros.intervention_node",
                 {**base, "hil.device": "spacemouse", "hil.topic": "/test_intervention_sm"}),
    ]
    node = spin(rclpy.create_node("test_intervention_client"))
    got, got_sm = [], []
    node.create_subscription(Joy, "/test_intervention", got.append, 10)
    node.create_subscription(Joy, "/test_intervention_sm", got_sm.append, 10)
    pub = node.create_publisher(Joy, "/test_joy", 10)
    with NodeGraph(specs, log_dir=tmp_path / "logs") as nodes:
        assert wait_until(lambda: len(got) >= 3 and len(got_sm) >= 3, 30.0), nodes.failed()
        # No Joy yet: the node publishes, but nobody holds the intervention.
        assert got[-1].buttons[0] == 0 and len(got[-1].axes) == 4
        assert all(msg.buttons[0] == 0 for msg in got_sm)

        def joy(lb, axes):
            msg = Joy()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.axes = axes
            msg.buttons = [1, 0, 0, 0, lb, 0, 0, 0, 0, 0, 0]  # A (close) held
            return msg

        stick = [0.0, 0.8, 0.0, 0.0, -0.5, 0.0]   # ROS joy: left stick up, right stick down
        def latest_active():
            pub.publish(joy(1, stick))
            return got[-1].buttons[0] == 1
        assert wait_until(latest_active, 10.0)
        msg = got[-1]
        expected_dx = (0.8 - 0.05) / 0.95
        np.testing.assert_allclose(msg.axes, [expected_dx, 0.0, -(0.5 - 0.05) / 0.95, 1.0],
                                   atol=1e-5)
        assert msg.header.stamp.sec > 0

        def latest_released():
            pub.publish(joy(0, stick))
            return got[-1].buttons[0] == 0
        assert wait_until(latest_released, 10.0)
        # Rate: at least the control rate (10 Hz) while the device works (a joy node publishing
        # at 20 Hz, as its autorepeat does). Over 2 s: one fresh-clone CI run measured 7.1/s over
        # a 1 s window, a moment's stall of the 2 cores weighing on ten messages.
        t0, n0 = time.monotonic(), len(got)
        while time.monotonic() - t0 < 2.0:
            pub.publish(joy(0, stick))
            time.sleep(0.05)
        rate = (len(got) - n0) / (time.monotonic() - t0)
        assert rate >= 10.0, rate
        # The Joy source goes silent: stale -> no intervention, and a log saying what to check.
        # (Waited for, not slept on: in fresh-clone CI the last message seen 1.5 s after the
        # press was still the active one; the node's 0.5 s stale timeout must end it.)
        n0 = len(got)
        pub.publish(joy(1, stick))
        assert wait_until(lambda: any(msg.buttons[0] == 1 for msg in got[n0:]), 10.0), \
            "the press never arrived"
        assert wait_until(lambda: got[-1].buttons[0] == 0, 10.0), "a silent Joy source still intervenes"
        assert not nodes.failed()
    joy_log = (tmp_path / "logs" / "intervention_joy.log").read_text()
    sm_log = (tmp_path / "logs" / "intervention_sm.log").read_text()
    assert "joy node" in joy_log
    assert "SpaceMouse" in sm_log and "udev" in sm_log and "retrying" in sm_log


def test_sim_human_node_takes_over_a_drifting_policy(sim, spin, tmp_path):
    cfg, config_file, _ = sim
    spec = NodeSpec("intervention", "intervention", "robot_rl.ros.intervention_node",
                    {"config_file": str(config_file), "hil.device": "sim_human"})
    node = spin(rclpy.create_node("test_sim_human_client"))
    got = []
    node.create_subscription(Joy, "/intervention/action", got.append, 10)
    with NodeGraph([spec], log_dir=tmp_path / "logs") as nodes:
        env = RosRobotEnv(cfg, node_name="hil_env", timeout=30.0)
        try:
            assert wait_until(lambda: got, 30.0), nodes.failed()  # the human is watching
            env.reset(seed=7)
            took_over = None
            away = np.array([-0.3, 0.8, 0.2, -1.0], np.float32)
            for step in range(cfg.task.max_episode_steps):
                # The human answers each control period with a Joy stamped with that period's
                # sim time: wait for the answer to the current observation (load-proof).
                now = env.snapshot.stamp
                wait_until(lambda: got and m.from_time(got[-1].header.stamp) >= now - 1e-6, 2.0)
                answer = got[-1]
                active = answer.buttons[0] == 1
                action = np.array(answer.axes, np.float32) if active else away
                if took_over is None and active:
                    took_over = step
                _, _, done, truncated, info = env.step(action)
                if done or truncated:
                    break
        finally:
            env.close()
        assert not nodes.failed()
    log = (tmp_path / "logs" / "intervention.log").read_text()
    assert took_over is not None and took_over > 3, log
    assert "sim human takes over" in log
    assert info["success"], log  # the correction picked the cube


def test_reset_node_moves_the_sim_arm_home(sim, spin, tmp_path):
    cfg, config_file, _ = sim
    spec = NodeSpec("reset", "reset", "robot_rl.ros.reset_node",
                    {"config_file": str(config_file), "hil.reset.service": "/robot_reset"})
    node = spin(rclpy.create_node("test_reset_client"))
    poses = []
    node.create_subscription(PoseStamped, m.EE_POSE, poses.append, m.SENSOR_QOS)
    target = node.create_publisher(PoseStamped, m.EE_TARGET, m.COMMAND_QOS)
    home, _ = home_pose(cfg)
    with NodeGraph([spec], log_dir=tmp_path / "logs") as nodes:
        assert wait_until(lambda: poses, 20.0)
        away = home + np.array([0.12, 0.15, -0.2])
        for _ in range(30):  # the lockstep sim advances one period per command
            target.publish(m.pose_msg(away, [0, 0, 0, 0], 0.0, cfg.robot.base_frame))
            time.sleep(0.03)
        assert np.linalg.norm(m.pose_from_msg(poses[-1])[0] - home) > 0.15
        start = time.monotonic()
        result = call(node, Trigger, "/robot_reset", timeout=30.0)
        took = time.monotonic() - start
        assert result.success, (result.message, (tmp_path / "logs" / "reset.log").read_text())
        assert "home + offset" in result.message
        time.sleep(0.3)
        pos, _ = m.pose_from_msg(poses[-1])
        r = cfg.hil.reset
        offset = pos - home
        assert r.x_range[0] - 0.015 <= offset[0] <= r.x_range[1] + 0.015, offset
        assert r.y_range[0] - 0.015 <= offset[1] <= r.y_range[1] + 0.015, offset
        assert abs(offset[2]) < 0.015, offset
        assert took < cfg.hil.reset.timeout
        assert not nodes.failed()


def test_reset_node_timeouts_and_human_confirmation(sim, spin):
    from robot_rl.ros.reset_node import ResetNode
    cfg, _, _ = sim
    client = spin(rclpy.create_node("test_reset_modes"))
    strict = load_config(None, {"hil.reset.service": "/strict_reset", "hil.reset.tolerance": 1e-6,
                                "hil.reset.timeout": 2.0, "hil.reset.confirm_service": "/c1",
                                "hil.reset.clearance": 0.0})
    spin(ResetNode(strict, name="strict_reset"))
    result = call(client, Trigger, "/strict_reset")
    assert not result.success and "did not converge within 2.0 s" in result.message

    human = load_config(None, {"hil.reset.service": "/human_reset", "hil.reset.mode": "human",
                               "hil.reset.confirm_service": "/human_confirm",
                               "hil.reset.confirm_timeout": 1.0, "hil.topic": "/human_joy"})
    spin(ResetNode(human, name="human_reset"))
    start = time.monotonic()
    result = call(client, Trigger, "/human_reset")
    assert not result.success and "no confirmation" in result.message
    assert 0.9 < time.monotonic() - start < 5.0
    refused = call(client, Trigger, "/human_confirm")
    assert not refused.success  # nothing is waiting

    # Confirmed by the device's confirm button (Joy buttons[1] on the intervention topic).
    joy_pub = client.create_publisher(Joy, "/human_joy", 10)
    human_ok = load_config(None, {"hil.reset.service": "/human_reset2", "hil.reset.mode": "human",
                                  "hil.reset.confirm_service": "/human_confirm2",
                                  "hil.reset.confirm_timeout": 10.0, "hil.topic": "/human_joy"})
    spin(ResetNode(human_ok, name="human_reset2"))
    c = client.create_client(Trigger, "/human_reset2")
    assert c.wait_for_service(timeout_sec=10.0)
    future = c.call_async(Trigger.Request())
    time.sleep(0.5)
    assert not future.done()
    joy_pub.publish(Joy(buttons=[0, 0, 0]))
    time.sleep(0.1)
    joy_pub.publish(Joy(buttons=[0, 1, 0]))
    assert wait_until(future.done, 5.0)
    assert future.result().success and "human confirmed" in future.result().message
    # ... or by the /scene/confirm-style service.
    future = c.call_async(Trigger.Request())
    time.sleep(0.3)
    assert call(client, Trigger, "/human_confirm2").success
    assert wait_until(future.done, 5.0) and future.result().success


def test_reward_node_serves_the_classifier_and_the_sim_state_reward(sim, spin, tmp_path):
    from robot_rl.hil.reward_classifier import train
    from robot_rl.ros.reward_node import RewardNode
    rng = np.random.default_rng(0)
    bright = rng.integers(200, 256, (20, 16, 16, 3), dtype=np.uint8)
    dark = rng.integers(0, 56, (20, 16, 16, 3), dtype=np.uint8)
    data = {"images_front": np.concatenate([bright, dark]),
            "labels": np.array([1] * 20 + [0] * 20, np.uint8), "episode": np.zeros(40)}
    train(data, steps=100, log=None).save(tmp_path / "model")
    cfg = load_config(None, {"hil.reward.source": "classifier",
                             "hil.reward.model": str(tmp_path / "model"),
                             "cameras": [{"name": "front", "width": 16, "height": 16}],
                             "hil.reward.success_topic": "/t/success",
                             "hil.reward.reward_topic": "/t/reward",
                             "hil.reward.probability_topic": "/t/prob"})
    spin(RewardNode(cfg, name="reward_learned"))
    client = spin(rclpy.create_node("test_reward_client"))
    success, reward = [], []
    client.create_subscription(Bool, "/t/success", success.append, 10)
    client.create_subscription(Float32, "/t/reward", reward.append, 10)
    pub = client.create_publisher(Image, m.camera_image_topic("front"), m.SENSOR_QOS)
    frame = lambda img: m.image_to_msg(img, 0.0, "front", "rgb8")  # noqa: E731
    # The sim fixture's own front camera also streams on this topic, so wait for answers to
    # our frames rather than trusting whichever message came last.
    assert wait_until(lambda: (pub.publish(frame(bright[0])),
                               any(s.data for s in success))[1], 10.0)
    assert 1.0 in [r.data for r in reward]
    n, k = len(success), len(reward)
    assert wait_until(lambda: (pub.publish(frame(dark[0])),
                               any(not s.data for s in success[n:]))[1], 10.0)
    assert wait_until(lambda: 0.0 in [r.data for r in reward[k:]], 5.0)

    scripted = load_config(None, {"hil.reward.source": "sim_state",
                                  "hil.reward.success_topic": "/s/success",
                                  "hil.reward.reward_topic": "/s/reward",
                                  "hil.reward.probability_topic": "/s/prob"})
    spin(RewardNode(scripted, name="reward_scripted"))
    s_success = []
    client.create_subscription(Bool, "/s/success", s_success.append, 10)
    # The lockstep sim publishes a pose at least every lockstep_timeout (0.5 s).
    assert wait_until(lambda: s_success, 10.0)
    assert s_success[-1].data is False  # the cube rests on the table
