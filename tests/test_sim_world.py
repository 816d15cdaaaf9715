"""SimWorld: resets, sensing (joints, TCP, tactile, cameras) and the gripper."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl.sim.world import CUBE_HALF


def settle(world, seconds):
    world.step_physics(round(seconds / world.cfg.sim.physics_dt))


def test_reset_randomises_cube_within_bounds(world):
    sim = world.cfg.sim
    poses = []
    for seed in range(20):
        x, y, yaw = world.reset(seed=seed)
        assert sim.object_x_range[0] <= x <= sim.object_x_range[1]
        assert sim.object_y_range[0] <= y <= sim.object_y_range[1]
        assert sim.object_yaw_range[0] <= yaw <= sim.object_yaw_range[1]
        pos, quat = world.object_pose()
        np.testing.assert_allclose(pos, [x, y, CUBE_HALF], atol=1e-9)
        np.testing.assert_allclose(quat, [0, 0, np.sin(yaw / 2), np.cos(yaw / 2)], atol=1e-9)
        poses.append((x, y, yaw))
    poses = np.array(poses)
    assert len(np.unique(poses[:, 0])) == 20          # really random
    assert np.ptp(poses[:, 0]) > 0.5 * np.ptp(sim.object_x_range)
    assert np.ptp(poses[:, 1]) > 0.5 * np.ptp(sim.object_y_range)


def test_reset_reproducible_by_seed(world):
    a = world.reset(seed=42)
    settle(world, 0.2)
    q_a, cube_a = world.arm_q(), world.object_pose()[0]
    world.reset(seed=7)
    b = world.reset(seed=42)
    settle(world, 0.2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(world.arm_q(), q_a)          # physics is deterministic too
    np.testing.assert_array_equal(world.object_pose()[0], cube_a)
    assert not np.array_equal(world.reset(seed=43), a)


def test_reset_restores_home_and_time(world):
    world.controller.set_cartesian_target([0.6, 0.2, 0.2])
    world.set_gripper(0.0)
    settle(world, 1.0)
    before = world.time
    world.reset(seed=1)
    assert world.time >= before        # sim time never runs backwards (it stamps messages)
    np.testing.assert_allclose(world.arm_q(), world.cfg.robot.home)
    assert world.gripper_width() == pytest.approx(world.cfg.robot.gripper_max_width)
    assert world.gripper_width_cmd == world.cfg.robot.gripper_max_width
    assert world.controller.mode == "cartesian"
    np.testing.assert_allclose(world.controller.target_pos, world.ee_pose()[0])


def test_cube_rests_on_table(world):
    settle(world, 0.5)
    pos, _ = world.object_pose()
    assert pos[2] == pytest.approx(CUBE_HALF, abs=2e-3)


def test_joint_reading(world):
    reading = world.joints()
    assert reading.names == world.cfg.robot.arm_joints + world.cfg.robot.gripper_joints
    assert reading.position.shape == reading.velocity.shape == reading.effort.shape == (9,)
    np.testing.assert_allclose(reading.position[:7], world.cfg.robot.home)
    # Returned arrays are copies: mutating them does not touch the simulation.
    reading.position[:] = 0
    np.testing.assert_allclose(world.arm_q(), world.cfg.robot.home)


def test_ee_pose_matches_mujoco_body(world):
    world.controller.set_cartesian_target([0.55, -0.1, 0.2])
    settle(world, 0.5)
    mujoco.mj_forward(world.model, world.data)   # xpos lags qpos by one step after mj_step
    pos, quat = world.ee_pose()
    body = world._tcp_body
    np.testing.assert_allclose(pos, world.data.xpos[body], atol=1e-6)
    w, x, y, z = world.data.xquat[body]
    assert abs(np.dot(quat, [x, y, z, w])) == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(quat) == pytest.approx(1.0)


def test_ee_velocity_matches_finite_difference(world):
    world.controller.set_cartesian_target([0.6, 0.1, 0.25])
    settle(world, 0.1)
    p0 = world.ee_pose()[0]
    v = world.ee_velocity()
    assert v.shape == (6,)
    world.step_physics(1)
    p1 = world.ee_pose()[0]
    v1 = world.ee_velocity()
    fd = (p1 - p0) / world.cfg.sim.physics_dt
    np.testing.assert_allclose(fd, 0.5 * (v[:3] + v1[:3]), atol=2e-3)
    assert np.linalg.norm(v[:3]) > 0.05                # it was moving


def test_gripper_width_command_and_clamp(world):
    assert world.set_gripper(0.5) == world.cfg.robot.gripper_max_width
    assert world.set_gripper(-1.0) == 0.0
    assert world.set_gripper(0.04) == pytest.approx(0.04)
    settle(world, 0.5)
    assert world.gripper_width() == pytest.approx(0.04, abs=1e-3)
    with pytest.raises(ValueError):
        world.set_gripper(float("nan"))
    assert world.gripper_width_cmd == pytest.approx(0.04)


def _grasp(world):
    """Drive the controller directly: above the cube, down, close, lift."""
    cube = world.object_pose()[0]
    ctl = world.controller
    ctl.set_cartesian_target([cube[0], cube[1], cube[2] + 0.08])
    settle(world, 2.0)
    ctl.set_cartesian_target([cube[0], cube[1], cube[2] + 0.005])
    settle(world, 1.5)
    world.set_gripper(0.0)
    settle(world, 0.6)
    ctl.set_cartesian_target([cube[0], cube[1], cube[2] + 0.15])
    settle(world, 1.5)


def test_tactile_zero_without_contact_and_positive_when_grasped(world):
    names = [t.name for t in world.cfg.tactile]
    assert set(world.taxels) == set(names) == {"left", "right"}
    settle(world, 0.3)
    for name in names:
        reading = world.tactile(name)
        assert reading.shape == (4, 4) and reading.dtype == np.float32
        assert np.abs(reading).sum() < 1e-3, (name, reading)
    _grasp(world)
    assert world.object_pose()[0][2] > CUBE_HALF + 0.08, "the cube was not lifted"
    for name in names:
        reading = world.tactile(name)
        assert reading.sum() > 1.0, (name, reading)
        assert np.all(reading >= 0)
    # Closing on nothing reads nothing: the taxels sense contact, not the gripper command.
    world.reset(seed=0)
    world.set_gripper(0.0)
    settle(world, 0.6)
    for name in names:
        assert world.tactile(name).sum() < 1e-3


def test_zero_tactile_subtracts_baseline(world):
    _grasp(world)
    raw = world.tactile("left").copy()
    assert raw.sum() > 1.0
    try:
        world.zero_tactile("left")
        np.testing.assert_allclose(world.tactile("left"), 0.0, atol=1e-6)
    finally:
        world.zero_tactile("left")   # leave the session-cached world as found:
        world._tactile_zero["left"][:] = 0.0


def test_images_uint8_and_cameras_differ(world):
    front = world.render("front", 64, 48)
    wrist = world.render("wrist", 64, 48)
    for image in (front, wrist):
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert image.std() > 5.0                   # not a blank frame
    assert np.mean(np.abs(front.astype(int) - wrist.astype(int))) > 10
    # The red cube is in view of the front camera.
    red = (front[..., 0] > 120) & (front[..., 1] < 80) & (front[..., 2] < 80)
    assert red.sum() > 5
    # Rendering again without stepping gives the same frame; stepping the arm changes the
    # wrist view.
    np.testing.assert_array_equal(world.render("wrist", 64, 48), wrist)
    world.controller.set_cartesian_target([0.6, 0.15, 0.15])
    settle(world, 1.0)
    assert not np.array_equal(world.render("wrist", 64, 48), wrist)


def test_camera_intrinsics(world):
    K = world.camera_intrinsics("front", 128, 96)
    fovy = np.deg2rad(world.model.cam_fovy[world.model.camera("front").id])
    assert K[1, 1] == pytest.approx(48 / np.tan(fovy / 2))
    assert K[0, 0] == K[1, 1]
    assert (K[0, 2], K[1, 2]) == (63.5, 47.5)
