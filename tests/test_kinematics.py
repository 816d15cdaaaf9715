"""Pinocchio kinematics against MuJoCo, joint-order independence, IK and dynamics sanity."""
from __future__ import annotations

import mujoco
import numpy as np
import pinocchio as pin

from robot_rl.robot.kinematics import ArmKinematics




def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(pin.log3(a.T @ b)))


def random_q(kin, rng, n):
    return rng.uniform(kin.limits.lower, kin.limits.upper, size=(n, kin.nq))


def test_limits_match_panda_urdf(kin):
    assert kin.nq == 7
    assert np.all(kin.limits.lower < kin.limits.upper)
    np.testing.assert_allclose(kin.limits.effort, [87, 87, 87, 87, 12, 12, 12])
    assert kin.limits.upper[3] < 0 and kin.limits.lower[5] < 0 < kin.limits.upper[5]
    np.testing.assert_allclose(kin.limits.velocity[:4], 2.175)


def test_pinocchio_matches_mujoco_tcp(world):
    """≥200 random configurations within the limits: TCP position within 1 mm, rotation within
    1e-3 rad between pinocchio's frame and MuJoCo's body of the same name."""
    kin, m, d = world.kin, world.model, world.data
    body = m.body(world.cfg.robot.ee_frame).id
    rng = np.random.default_rng(0)
    pos_err, rot_err = [], []
    for q in random_q(kin, rng, 250):
        d.qpos[world._arm_qpos] = q
        mujoco.mj_forward(m, d)
        pose = kin.forward(q)
        pos_err.append(np.linalg.norm(pose.translation - d.xpos[body]))
        rot_err.append(rotation_angle(pose.rotation, d.xmat[body].reshape(3, 3)))
    assert max(pos_err) < 1e-3, max(pos_err)
    assert max(rot_err) < 1e-3, max(rot_err)


def test_pinocchio_matches_mujoco_every_link(world):
    """Not only the TCP: every arm link's frame agrees, so errors cannot cancel out."""
    kin, m, d = world.kin, world.model, world.data
    rng = np.random.default_rng(1)
    links = [f"panda_link{i}" for i in range(1, 8)] + ["panda_hand"]
    for q in random_q(kin, rng, 20):
        d.qpos[world._arm_qpos] = q
        mujoco.mj_forward(m, d)
        kin.forward(q)
        for link in links:
            oMf = kin.data.oMf[kin.model.getFrameId(link)]
            body = m.body(link).id
            assert np.linalg.norm(oMf.translation - d.xpos[body]) < 1e-3, link
            assert rotation_angle(oMf.rotation, d.xmat[body].reshape(3, 3)) < 1e-3, link


def test_home_tcp_points_down(kin, cfg):
    pose = kin.forward(np.array(cfg.robot.home))
    # The gripper's approach axis (z of the TCP) points at the table.
    assert pose.rotation[:, 2] @ np.array([0, 0, -1]) > 0.99
    assert 0.3 < pose.translation[0] < 0.6 and 0.2 < pose.translation[2] < 0.5


def test_joint_order_permutation(kin, cfg):
    rng = np.random.default_rng(2)
    perm = rng.permutation(7)
    assert not np.array_equal(perm, np.arange(7))
    shuffled_names = [cfg.robot.arm_joints[i] for i in perm]
    shuffled = ArmKinematics(cfg.robot.urdf, shuffled_names, cfg.robot.ee_frame)
    assert shuffled.joint_names == shuffled_names
    np.testing.assert_array_equal(shuffled.limits.lower, kin.limits.lower[perm])
    np.testing.assert_array_equal(shuffled.limits.effort, kin.limits.effort[perm])
    for q in random_q(kin, rng, 20):
        v = rng.normal(size=7)
        a, b = kin.forward(q), shuffled.forward(q[perm])
        np.testing.assert_allclose(a.translation, b.translation, atol=1e-12)
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
        # The Jacobian columns, gravity and mass matrix are permuted the same way.
        _, jac_a, g_a = kin.state(q, v)
        _, jac_b, g_b = shuffled.state(q[perm], v[perm])
        np.testing.assert_allclose(jac_b, jac_a[:, perm], atol=1e-12)
        np.testing.assert_allclose(g_b, g_a[perm], atol=1e-9)
        np.testing.assert_allclose(shuffled.mass_matrix(q[perm]),
                                   kin.mass_matrix(q)[np.ix_(perm, perm)], atol=1e-12)


def test_jacobian_matches_finite_differences(kin):
    rng = np.random.default_rng(3)
    eps = 1e-6
    for q in random_q(kin, rng, 5):
        _, jac, _ = kin.state(q, np.zeros(7))
        jac = jac.copy()
        base = kin.forward(q)
        for i in range(7):
            dq = np.zeros(7)
            dq[i] = eps
            moved = kin.forward(q + dq)
            np.testing.assert_allclose((moved.translation - base.translation) / eps,
                                       jac[:3, i], atol=1e-5)
            omega = pin.log3(moved.rotation @ base.rotation.T) / eps
            np.testing.assert_allclose(omega, jac[3:, i], atol=1e-5)


def test_gravity_matches_mujoco(world):
    """Pinocchio's gravity torques agree with MuJoCo's bias force at rest (the controller's
    gravity compensation relies on it). Fingers differ (locked closed vs open) by grams."""
    kin, m, d = world.kin, world.model, world.data
    rng = np.random.default_rng(4)
    for q in random_q(kin, rng, 10):
        d.qpos[world._arm_qpos] = q
        d.qvel[:] = 0
        mujoco.mj_forward(m, d)
        _, _, g = kin.state(q, np.zeros(7))
        np.testing.assert_allclose(g, d.qfrc_bias[world._arm_dof], atol=0.2)


def test_mass_matrix_symmetric_positive_definite(kin):
    rng = np.random.default_rng(5)
    for q in random_q(kin, rng, 5):
        M = kin.mass_matrix(q)
        np.testing.assert_allclose(M, M.T)
        assert np.all(np.linalg.eigvalsh(M) > 0)


def test_ik_round_trip(kin, cfg):
    home = np.array(cfg.robot.home)
    rng = np.random.default_rng(6)
    for _ in range(30):
        q = np.clip(home + rng.uniform(-0.4, 0.4, 7), kin.limits.lower, kin.limits.upper)
        target = kin.forward(q)
        solution = kin.inverse(target, home)
        assert np.all(solution >= kin.limits.lower) and np.all(solution <= kin.limits.upper)
        reached = kin.forward(solution)
        assert np.linalg.norm(reached.translation - target.translation) < 1e-3
        assert rotation_angle(reached.rotation, target.rotation) < 1e-3


def test_ik_reaches_workspace_points_pointing_down(kin, cfg):
    home = np.array(cfg.robot.home)
    down = kin.forward(home).rotation
    for point in ([0.3, -0.2, 0.05], [0.5, 0.0, 0.3], [0.6, 0.2, 0.1], [0.4, 0.25, 0.45]):
        target = pin.SE3(down, np.array(point))
        reached = kin.forward(kin.inverse(target, home))
        assert np.linalg.norm(reached.translation - target.translation) < 1e-3, point
