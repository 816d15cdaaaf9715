"""The contract's one messages -> Snapshot reader (robot_rl/ros/messages.py), used by the ROS env,
the controller's polled inputs, the simulated human, the reward and teleop nodes."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.config import Config
from robot_rl.deploy.controller_core import sensor_names
from robot_rl.envs.task import Snapshot
from robot_rl.ros import messages as m

CFG = Config()
JOINTS = [*CFG.robot.arm_joints, *CFG.robot.gripper_joints]


def test_every_controller_input_has_a_topic_in_the_contract():
    cfg = Config(task=type(CFG.task)(observations=["state", "tactile", "images", "object"]))
    topics = {name: m.input_topic(name)[1] for name in sensor_names(cfg)}
    assert topics["joint_states"] == m.JOINT_STATES and topics["object"] == m.OBJECT_POSE
    assert topics["tactile_left"] == m.tactile_topic("left")
    assert topics["image_front"] == m.camera_image_topic("front")
    with pytest.raises(ValueError, match="unknown robot input 'wrench'"):
        m.input_topic("wrench")


def test_decode_and_assemble_a_snapshot():
    # joints out of order: matched by name, never by index
    order = list(reversed(JOINTS))
    joints = m.joint_state_msg(order, [0.02 if n in CFG.robot.gripper_joints else 1.0 for n in order],
                               [0.0] * 9, [0.0] * 9, 3.0)
    values = {
        "joint_states": m.decode_input("joint_states", joints, CFG.robot.gripper_joints),
        "ee_pose": m.decode_input("ee_pose", m.pose_msg([0.5, 0.1, 0.3], [0, 0, 0, 1], 3.0, "b"), ()),
        "ee_twist": m.decode_input("ee_twist", m.twist_msg([1, 2, 3, 4, 5, 6], 3.0, "b"), ()),
        "object": m.decode_input("object", m.pose_msg([0.6, 0.0, 0.02], [0, 0, 0, 1], 3.0, "b"), ()),
        "tactile_left": m.decode_input("tactile_left", m.image_to_msg(np.ones((4, 4)), 3.0, "f", "32FC1"), ()),
        "image_front": m.decode_input("image_front", m.image_to_msg(np.zeros((2, 3, 3)), 3.0, "f", "rgb8"), ()),
    }
    snap = m.snapshot_from_inputs(values, 3.0)
    assert isinstance(snap, Snapshot) and snap.stamp == 3.0
    assert snap.gripper_width == pytest.approx(0.04)
    np.testing.assert_allclose(snap.ee_pos, [0.5, 0.1, 0.3])
    np.testing.assert_allclose(snap.ee_vel, [1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(snap.object_pos, [0.6, 0.0, 0.02])
    assert snap.tactile["left"].dtype == np.float32 and snap.images["front"].shape == (2, 3, 3)
    # only a pose: no velocity, no opening, no object
    bare = m.snapshot_from_inputs({"ee_pose": values["ee_pose"]}, 1.0)
    assert bare.gripper_width == 0.0 and bare.object_pos is None and not bare.ee_vel.any()


def test_bad_messages_are_refused_naming_the_input():
    missing = m.joint_state_msg(JOINTS[:-1], [0.0] * 8, [], [], 0.0)
    with pytest.raises(ValueError, match=r"/joint_states: .*lacks joints \['panda_finger_joint2'\]"):
        m.decode_input("joint_states", missing, CFG.robot.gripper_joints)
    short = m.joint_state_msg(JOINTS, [0.0] * 8, [], [], 0.0)
    with pytest.raises(ValueError, match="9 names but 8 positions"):
        m.decode_input("joint_states", short, CFG.robot.gripper_joints)
    rgb_taxels = m.image_to_msg(np.zeros((4, 4, 3)), 0.0, "f", "rgb8")
    with pytest.raises(ValueError, match="tactile_left: encoding rgb8 gives uint8, expected float32"):
        m.decode_input("tactile_left", rgb_taxels, ())
    # the environment leaves the dtype to the task's observation space (optical tactile is rgb8)
    assert m.decode_input("tactile_left", rgb_taxels, (), check_dtype=False).shape == (4, 4, 3)
