"""The Isaac Sim / Isaac Lab path, as far as it runs without Isaac Sim: the scene spec against the
MuJoCo model, the batched task against robot_rl's task env by env, the vector env against N
MuJoCo envs step by step, the policy export with real onnxruntime into the controller's loader,
and the import guards."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.config import load_config
from robot_rl.sim.scene_description import quat_to_matrix, scene_description

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return load_config(str(ROOT / "config" / "isaac.yaml"))


@pytest.fixture(scope="module")
def spec(cfg):
    from robot_rl.sim.isaac.scene_spec import isaac_scene_spec
    return isaac_scene_spec(cfg)


@pytest.fixture(scope="module")
def model(cfg):
    from robot_rl.sim.scene import build_model
    return build_model(cfg)


def test_scene_spec_is_plain_data_matching_the_mujoco_model(cfg, spec, model):
    assert json.loads(json.dumps(spec)) == spec
    for key, geom in (("table", "table"), ("object", "cube")):
        np.testing.assert_allclose(spec[key]["size"], 2 * model.geom(geom).size)
        assert spec[key]["static_friction"] == model.geom(geom).friction[0]
    np.testing.assert_allclose(spec["object"]["position"], model.body("cube").pos)
    assert spec["object"]["mass"] == pytest.approx(model.body("cube").mass[0])
    assert spec["table"]["mass"] is None
    assert spec["physics_dt"] == model.opt.timestep
    np.testing.assert_allclose(spec["gravity"], model.opt.gravity)
    assert Path(spec["robot"]["urdf"]).is_file()
    assert spec["robot"]["arm_joints"] == cfg.robot.arm_joints
    assert spec["ros"]["joint_states"] == cfg.driver.hardware_state_topic
    assert spec["ros"]["effort_commands"] == cfg.driver.effort_command_topic


def test_scene_spec_cameras_match_the_mujoco_cameras(cfg, spec, model, world_factory):
    from robot_rl.sim.isaac.scene_spec import camera_intrinsics
    world = world_factory()
    configured = {c.name: c for c in cfg.cameras}
    for cam in spec["cameras"]:
        mj = model.camera(cam["name"])
        width, height = cam["resolution"]
        assert (width, height) == (configured[cam["name"]].width, configured[cam["name"]].height)
        fx, fy, cx, cy = camera_intrinsics(cam)
        K = world.camera_intrinsics(cam["name"], width, height)
        np.testing.assert_allclose([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], K, rtol=1e-12)
        np.testing.assert_allclose(cam["translation"], mj.pos, atol=1e-12)
        usd = quat_to_matrix(cam["orientation_usd"])
        np.testing.assert_allclose(usd, quat_to_matrix(mj.quat), atol=1e-6)
        # ROS optical frame: looks along +z (MuJoCo's -z), image y down.
        ros = quat_to_matrix(cam["orientation_ros"])
        np.testing.assert_allclose(ros[:, 2], -usd[:, 2], atol=1e-9)
        np.testing.assert_allclose(ros[:, 1], -usd[:, 1], atol=1e-9)
        parent = "world" if model.cam_bodyid[mj.id] == 0 else model.body(model.cam_bodyid[mj.id]).name
        assert cam["parent_prim"].endswith(parent) or (parent == "world" and cam["parent_prim"] == "/World")


def test_scene_spec_pads_sit_where_the_mujoco_taxels_are(spec, model):
    for pad in spec["tactile"]:
        sites = [model.site(f"taxel_{pad['name']}_{r}_{c}") for r in range(pad["rows"])
                 for c in range(pad["cols"])]
        assert {model.body(s.bodyid[0]).name for s in sites} == {pad["link"]}
        np.testing.assert_allclose(pad["translation"], np.mean([s.pos for s in sites], axis=0), atol=1e-12)
        assert pad["prim_path"].startswith(pad["link_prim"] + "/")


def test_batched_contact_binning_equals_the_per_env_binning(cfg):
    from robot_rl.sim.contact_taxels import batched_taxel_image, taxel_image
    pad = scene_description(cfg).pads[0]
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (5, 12, 3)) * (np.array(pad.half) * 1.3) + pad.centre
    forces = rng.normal(0, 3, (5, 12, 3))
    valid = rng.random((5, 12)) > 0.2
    batched = batched_taxel_image(pad, torch.as_tensor(points), torch.as_tensor(forces),
                                  torch.as_tensor(valid)).numpy()
    for n in range(5):
        expected = taxel_image(pad, points[n][valid[n]], forces[n][valid[n]])
        np.testing.assert_allclose(batched[n], expected, rtol=1e-6, atol=1e-9)
    assert batched.sum() > 0 and (batched == 0).any()


@pytest.mark.parametrize("overrides", [
    {"task.reward": "dense", "task.observations": ["state", "object", "tactile"]},
    {"task.relative_frame": True, "task.action_space": "xyz_yaw_gripper"},
])
def test_batched_task_matches_the_task_env_by_env(overrides):
    from robot_rl.envs.task import PickCubeTask, Snapshot, make_task
    from robot_rl.sim.isaac.task_mapping import BatchedPickTask
    cfg = load_config(None, overrides)
    rng = np.random.default_rng(1)
    home = np.array([1.0, 0.0, 0.0, 0.0])  # x, y, z, w: the Panda's TCP points down at home
    n = 6
    batched = BatchedPickTask(cfg, home, n)
    tasks = [make_task(cfg, home, check_graph=False) for _ in range(n)]
    assert isinstance(tasks[0], PickCubeTask)

    def snapshots():
        pos = rng.uniform([0.3, -0.2, 0.0], [0.7, 0.2, 0.3], (n, 3))
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        obj = pos + rng.normal(0, 0.03, (n, 3))
        obj[:, 2] = np.abs(obj[:, 2]) + 0.025
        tact = {t.name: rng.uniform(0, 5, (n, t.rows, t.cols)).astype(np.float32) for t in cfg.tactile}
        width = rng.uniform(0, 0.08, n)
        vel = rng.normal(size=(n, 6))
        snaps = [Snapshot(0.0, pos[i], q[i], vel[i], width[i], {k: v[i] for k, v in tact.items()},
                          object_pos=obj[i]) for i in range(n)]
        t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
        return snaps, dict(ee_pos=t(pos), ee_quat=t(q), ee_vel=t(vel), gripper_width=t(width),
                           tactile={k: t(v) for k, v in tact.items()}, object_pos=t(obj))

    snaps, state = snapshots()
    for task, snap in zip(tasks, snaps):
        task.reset(snap)
    batched.reset(torch.arange(n), state["ee_pos"], state["ee_quat"])
    for _ in range(8):
        actions = rng.uniform(-1.3, 1.3, (n, len(batched.action_names)))
        target, quat, width = batched.command(torch.as_tensor(actions), state["ee_pos"], state["ee_quat"])
        for i, (task, snap) in enumerate(zip(tasks, snaps)):
            t_i, q_i, w_i = task.command(actions[i], snap)
            np.testing.assert_allclose(target[i].numpy(), t_i, atol=1e-12)
            assert abs(abs(np.dot(quat[i].numpy(), q_i)) - 1) < 1e-9
            assert width[i].item() == w_i
        snaps, state = snapshots()
        obs = batched.observe(state["ee_pos"], state["ee_vel"], state["gripper_width"],
                              state["tactile"], state["object_pos"])
        reward = batched.reward(state["ee_pos"], state["object_pos"], state["gripper_width"])
        for i, (task, snap) in enumerate(zip(tasks, snaps)):
            expected = task.observe(snap)
            assert list(obs) == list(task.observation_space.spaces) and set(obs) == set(expected)
            for k in expected:
                np.testing.assert_allclose(obs[k][i].numpy(), expected[k], rtol=1e-6, atol=1e-6)
            assert reward[i].item() == pytest.approx(task.reward(snap), abs=1e-9)
    flat = batched.flatten(obs)
    assert flat.shape == (n, batched.flat_dim())


def test_vector_env_reproduces_n_mujoco_envs_step_by_step():
    from robot_rl.envs.pick_cube import SimTaskEnv
    from robot_rl.sim.isaac.vector_env import MujocoBatchSim, PickVectorEnv
    cfg = load_config(None, {"task.max_episode_steps": 6})
    n, seed = 2, 11
    env = PickVectorEnv(cfg, MujocoBatchSim(cfg, n))
    reference = gym.vector.SyncVectorEnv([lambda: SimTaskEnv(cfg) for _ in range(n)],
                                         autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert env.single_observation_space == reference.single_observation_space
    assert env.single_action_space == reference.single_action_space
    obs, _ = env.reset(seed=seed)
    ref_obs, _ = reference.reset(seed=seed)
    rng = np.random.default_rng(3)
    ends = 0
    for step in range(14):
        for k in ref_obs:
            np.testing.assert_allclose(obs[k], ref_obs[k], atol=1e-6, err_msg=f"{k} at step {step}")
        actions = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        actions[:, 3] = 1.0 if step % 6 > 2 else -1.0
        obs, reward, terminated, truncated, infos = env.step(actions)
        ref_obs, ref_reward, ref_term, ref_trunc, ref_infos = reference.step(actions)
        np.testing.assert_allclose(reward, ref_reward, atol=1e-9)
        np.testing.assert_array_equal(terminated, ref_term)
        np.testing.assert_array_equal(truncated, ref_trunc)
        for i in np.flatnonzero(terminated | truncated):
            ends += 1
            for k in ref_obs:
                np.testing.assert_allclose(infos["final_obs"][i][k], ref_infos["final_obs"][i][k], atol=1e-6)
    assert ends == 2 * n  # both envs truncated twice: autoreset was exercised
    # Gymnasium's own vector wrappers take it (they read the autoreset mode and the info layout).
    stats = gym.wrappers.vector.RecordEpisodeStatistics(env)
    stats.reset(seed=0)
    for _ in range(cfg.task.max_episode_steps):
        _, _, _, _, infos = stats.step(np.zeros((n, 4), np.float32))
    assert list(infos["episode"]["l"]) == [cfg.task.max_episode_steps] * n
    env.sim.close()
    reference.close()


def test_train_gym_learns_from_the_batched_vector_env(tmp_path):
    """The Isaac Lab side feeds the learner's vector interface: train() (issue 23's vector
    trainer) takes the batched env as it is, stores every sub-env's transitions and updates."""
    from robot_rl.learning.replay import ReplayBuffer
    from robot_rl.learning.train_gym import TrainGymConfig, train
    from robot_rl.learning.rlpd import RLPDConfig
    from robot_rl.sim.isaac.vector_env import MujocoBatchSim, PickVectorEnv
    cfg = load_config(None, {"task.max_episode_steps": 10})
    env = PickVectorEnv(cfg, MujocoBatchSim(cfg, 2))
    try:
        res = train(env, TrainGymConfig(agent=RLPDConfig(hidden_dims=[32, 32], num_critics=2,
                                                         batch_size=16),
                                        learning_starts=20, replay_dir=str(tmp_path / "replay"),
                                        verbose=False), steps=60)
    finally:
        env.sim.close()
    assert res["steps"] == 60 and res["num_envs"] == 2
    assert res["episodes"] == 6  # 2 sub-envs x 3 truncations of 10 steps
    online = ReplayBuffer.load(str(tmp_path / "replay"), capacity=100, resume=True, verbose=False)
    assert len(online) == 60


class _TinyActor(torch.nn.Module):
    def __init__(self, flat_dim: int, action_dim: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(flat_dim, 32), torch.nn.Tanh(),
                                       torch.nn.Linear(32, action_dim))

    def forward(self, x):
        return 3.0 * self.net(x)  # beyond [-1, 1]: the export must clip


def test_exported_isaac_policy_is_accepted_and_run_by_the_controller(cfg, tmp_path):
    from robot_rl.config import load_config as load
    from robot_rl.deploy.controller_core import load_policy
    from robot_rl.sim.isaac.export import export_isaac_policy, observation_layout
    from robot_rl.sim.isaac.task_mapping import BatchedPickTask
    layout = observation_layout(cfg)
    batched = BatchedPickTask(cfg, np.array([1.0, 0, 0, 0]), 1)
    assert layout == batched.observation_layout()
    actor = _TinyActor(batched.flat_dim(), 4).eval()
    path = tmp_path / "isaac_policy.onnx"
    result = export_isaac_policy(actor, cfg, path, run_id="isaac-lab-test")
    assert result.max_abs_diff <= 1e-5
    deploy_cfg = load(str(ROOT / "config" / "isaac.yaml"), {"deploy.model": str(path)})
    policy = load_policy(deploy_cfg, deploy_cfg.control_rate_hz)  # the controller's own gate
    rng = np.random.default_rng(0)
    obs = {name: rng.uniform(0, 2, shape).astype(np.float32) for name, shape in layout}
    action = np.asarray(policy(obs)).reshape(-1)
    with torch.no_grad():
        flat = torch.cat([torch.as_tensor(obs[k]).reshape(1, -1) for k, _ in layout], -1)
        expected = torch.clamp(actor(flat), -1, 1).numpy().reshape(-1)
    np.testing.assert_allclose(action, expected, atol=1e-5)
    assert np.all(np.abs(action) <= 1.0) and np.any(np.abs(actor(flat).detach().numpy()) > 1)
    # A robot configured differently (another task frame) refuses the policy.
    other = load(str(ROOT / "config" / "isaac.yaml"), {"deploy.model": str(path),
                                                      "task.relative_frame": True})
    from robot_rl.deploy.errors import ModelMismatchError
    with pytest.raises(ModelMismatchError):
        load_policy(other, other.control_rate_hz)


def test_export_refuses_an_actor_of_another_observation_size(cfg, tmp_path):
    from robot_rl.sim.isaac.export import export_isaac_policy
    with pytest.raises(ValueError, match="flat observation of 40 values"):
        export_isaac_policy(_TinyActor(7, 4), cfg, tmp_path / "p.onnx", run_id="x")
    assert not (tmp_path / "p.onnx").exists()


# -- import guards: a clear error naming what to install ---------------------------------------
def test_isaac_app_without_isaac_sim_names_what_is_missing():
    proc = subprocess.run([sys.executable, str(ROOT / "sim" / "isaac" / "app.py"), "--config",
                           str(ROOT / "config" / "isaac.yaml"), "--headless"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0
    assert "Isaac Sim is not importable here" in proc.stderr and "python.sh" in proc.stderr


def test_isaac_lab_env_without_isaaclab_names_what_is_missing():
    sys.modules.pop("robot_rl.sim.isaac.lab_env", None)
    with pytest.raises(ImportError, match="needs Isaac Lab 2.x \\(isaaclab\\)"):
        import robot_rl.sim.isaac.lab_env  # noqa: F401


def test_ros_adapters_name_the_missing_simulator_packages():
    from robot_rl.ros.gazebo_adapter_node import _require
    from robot_rl.ros.isaac_adapter_node import _simulation_interfaces
    with pytest.raises(ImportError, match="ros-jazzy-ros-gz-interfaces"):
        _require("ros_gz_interfaces.msg", "apt: ros-jazzy-ros-gz-interfaces")
    with pytest.raises(ImportError, match="ros-jazzy-simulation-interfaces"):
        _simulation_interfaces()


def test_object_placement_rests_on_the_table_within_the_ranges(cfg):
    from robot_rl.sim.placement import random_object_pose
    desc = scene_description(cfg)
    rng = np.random.default_rng(0)
    for _ in range(50):
        pos, quat = random_object_pose(rng, cfg, desc)
        assert cfg.sim.object_x_range[0] <= pos[0] <= cfg.sim.object_x_range[1]
        assert cfg.sim.object_y_range[0] <= pos[1] <= cfg.sim.object_y_range[1]
        assert pos[2] == pytest.approx(desc.table_top_z + desc.object.half_size[2])
        yaw = 2 * np.arctan2(quat[3], quat[0])
        assert cfg.sim.object_yaw_range[0] - 1e-12 <= yaw <= cfg.sim.object_yaw_range[1] + 1e-12
        assert np.linalg.norm(quat) == pytest.approx(1.0)


def test_batched_quaternion_conversion_round_trips_at_every_angle():
    from robot_rl.sim.isaac.task_mapping import matrix_to_quat_xyzw, quat_xyzw_to_matrix
    q = torch.randn(2000, 4, dtype=torch.float64)
    q = torch.cat([q, torch.tensor([[0.928, -0.372, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)])
    q = q / q.norm(dim=1, keepdim=True)
    back = matrix_to_quat_xyzw(quat_xyzw_to_matrix(q))
    assert torch.all(back[:, 3] >= 0)
    np.testing.assert_allclose((q * back).sum(1).abs().numpy(), 1.0, atol=1e-12)  # same rotation
