"""Isaac Lab (2.x, on Isaac Sim 5.x) environment of the pick task: thousands of GPU-parallel
scenes with domain randomisation behind robot_rl's vector-env interface.

    ~/isaacsim/python.sh -c "from robot_rl.sim.isaac.lab_env import make_vector_env; ..."

:func:`make_vector_env` returns a :class:`~robot_rl.sim.isaac.vector_env.PickVectorEnv` over
:class:`IsaacLabPickSim`: the scene of the scene description (robot_rl/sim/isaac/scene_spec.py),
cloned ``num_envs`` times; the TCP target of the task's action tracked by Isaac Lab's
operational-space controller with the stiffness and damping of ``cfg.controller`` (robot_rl's own
controller is per-arm pinocchio code on the CPU); the finger pads' contacts binned into taxels
as in MuJoCo (robot_rl/sim/contact_taxels.py); per-env randomisation of the object pose
(``sim.object_*_range``), its mass and the friction of object and table at every reset. The
observations, actions, reward and episode ends are robot_rl's task's
(robot_rl/sim/isaac/task_mapping.py), so the policy trained on it exports with
robot_rl/sim/isaac/export.py and deploys on the real arm.

Written against the Isaac Lab 2.x documentation; it has not run on this project's machines (no
RTX GPU, Python 3.11 without isaaclab): docs/simulators.md lists what was verified.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robot_rl.config import Config
from robot_rl.sim.contact_taxels import batched_taxel_image
from robot_rl.sim.isaac.scene_spec import isaac_scene_spec
from robot_rl.sim.isaac.vector_env import BatchState, PickVectorEnv
from robot_rl.sim.scene_description import scene_description

try:
    import isaaclab.sim as sim_utils
    from isaaclab.actuators import ImplicitActuatorCfg
    from isaaclab.assets import Articulation, ArticulationCfg, RigidObject, RigidObjectCfg
    from isaaclab.controllers import OperationalSpaceController, OperationalSpaceControllerCfg
    from isaaclab.scene import InteractiveScene, InteractiveSceneCfg
    from isaaclab.sensors import ContactSensor, ContactSensorCfg
    from isaaclab.utils.math import matrix_from_quat, subtract_frame_transforms
except ImportError as exc:  # pragma: no cover - exercised where isaaclab is absent
    raise ImportError(
        f"robot_rl.sim.isaac.lab_env needs Isaac Lab 2.x (isaaclab) running inside Isaac Sim 5.x "
        f"on an RTX GPU; it is not importable here ({exc}). Install Isaac Sim and Isaac Lab "
        f"(docs/simulators.md) and run with Isaac Sim's python.sh.") from None


@dataclass
class Randomisation:
    """Per-env ranges drawn at every reset (multipliers of the described value)."""
    object_mass_scale: tuple[float, float] = (0.5, 2.0)
    friction_scale: tuple[float, float] = (0.7, 1.3)


class IsaacLabPickSim:
    """The batched simulator (robot_rl.sim.isaac.vector_env.BatchedSim) on Isaac Lab."""

    def __init__(self, cfg: Config, num_envs: int, device: str = "cuda:0",
                 randomisation: Randomisation | None = None, env_spacing: float = 2.5):
        self.cfg, self.num_envs, self.device = cfg, num_envs, device
        self.desc = scene_description(cfg)
        self.spec = isaac_scene_spec(cfg, self.desc)
        self.randomisation = randomisation or Randomisation()
        self.substeps = max(1, round(1.0 / cfg.control_rate_hz / cfg.sim.physics_dt))
        self.sim = sim_utils.SimulationContext(sim_utils.SimulationCfg(dt=cfg.sim.physics_dt,
                                                                       device=device))
        self.scene = InteractiveScene(self._scene_cfg(num_envs, env_spacing))
        self.sim.reset()
        self.robot: Articulation = self.scene["robot"]
        self.cube: RigidObject = self.scene["object"]
        self.pads: dict[str, ContactSensor] = {p.name: self.scene[f"pad_{p.name}"] for p in self.desc.pads}
        names = self.robot.joint_names
        self.arm_ids = [names.index(j) for j in cfg.robot.arm_joints]
        self.grip_ids = [names.index(j) for j in cfg.robot.gripper_joints]
        self.tcp_id = self.robot.body_names.index(cfg.robot.ee_frame)
        self.pad_body = {p.name: self.robot.body_names.index(p.link) for p in self.desc.pads}
        c = cfg.controller
        self.osc = OperationalSpaceController(OperationalSpaceControllerCfg(
            target_types=["pose_abs"], impedance_mode="fixed", inertial_dynamics_decoupling=False,
            gravity_compensation=True,
            motion_stiffness_task=[c.stiffness_pos] * 3 + [c.stiffness_rot] * 3,
            motion_damping_ratio_task=[c.damping_ratio] * 6,
            nullspace_control="position", nullspace_stiffness=c.nullspace_stiffness),
            num_envs=num_envs, device=device)
        self.home = torch.tensor(cfg.robot.home, device=device).repeat(num_envs, 1)
        self.home_quat_xyzw = self._home_tcp_quat()
        self._rng = np.random.default_rng(cfg.sim.seed)
        self._grip_target = torch.full((num_envs, len(self.grip_ids)),
                                       self.spec["robot"]["gripper_open"], device=device)

    def _scene_cfg(self, num_envs: int, env_spacing: float):
        spec, desc = self.spec, self.desc
        robot = ArticulationCfg(
            prim_path="{ENV_REGEX_NS}/panda",
            spawn=sim_utils.UrdfFileCfg(
                asset_path=spec["robot"]["urdf"], fix_base=True, merge_fixed_joints=False,
                joint_drive=sim_utils.UrdfConverterCfg.JointDriveCfg(
                    gains=sim_utils.UrdfConverterCfg.JointDriveCfg.PDGainsCfg(stiffness=0.0, damping=0.0))),
            init_state=ArticulationCfg.InitialStateCfg(
                pos=tuple(spec["robot"]["base_position"]),
                joint_pos={**dict(zip(spec["robot"]["arm_joints"], spec["robot"]["home"])),
                           **{j: spec["robot"]["gripper_open"] for j in spec["robot"]["gripper_joints"]}}),
            # The arm is torque-driven (zero-gain drives: the controller's efforts act alone); the
            # fingers are a force-limited position servo, as MuJoCo's gripper actuator.
            actuators={
                "arm": ImplicitActuatorCfg(joint_names_expr=list(spec["robot"]["arm_joints"]),
                                           stiffness=0.0, damping=0.0, effort_limit=87.0),
                "fingers": ImplicitActuatorCfg(joint_names_expr=list(spec["robot"]["gripper_joints"]),
                                               stiffness=2000.0, damping=40.0,
                                               effort_limit=self.cfg.robot.gripper_force),
            })

        def cuboid(box, dynamic: bool):
            return sim_utils.CuboidCfg(
                size=tuple(box["size"]),
                rigid_props=sim_utils.RigidBodyPropertiesCfg(kinematic_enabled=not dynamic),
                mass_props=sim_utils.MassPropertiesCfg(mass=box["mass"]) if dynamic else None,
                collision_props=sim_utils.CollisionPropertiesCfg(),
                physics_material=sim_utils.RigidBodyMaterialCfg(
                    static_friction=box["static_friction"], dynamic_friction=box["dynamic_friction"]),
                visual_material=sim_utils.PreviewSurfaceCfg(diffuse_color=tuple(box["color"])))

        entities = {
            "robot": robot,
            "table": RigidObjectCfg(prim_path="{ENV_REGEX_NS}/table", spawn=cuboid(spec["table"], False),
                                    init_state=RigidObjectCfg.InitialStateCfg(pos=tuple(spec["table"]["position"]))),
            "object": RigidObjectCfg(prim_path="{ENV_REGEX_NS}/object", spawn=cuboid(spec["object"], True),
                                     init_state=RigidObjectCfg.InitialStateCfg(pos=tuple(spec["object"]["position"]))),
        }
        for pad in desc.pads:
            entities[f"pad_{pad.name}"] = ContactSensorCfg(
                prim_path="{ENV_REGEX_NS}/panda/" + pad.link, track_contact_points=True,
                filter_prim_paths_expr=["{ENV_REGEX_NS}/object"], max_contact_data_count_per_prim=16)
        # InteractiveScene spawns every asset / sensor config it finds among the cfg's attributes.
        scene_cfg = InteractiveSceneCfg(num_envs=num_envs, env_spacing=env_spacing)
        for name, entity in entities.items():
            setattr(scene_cfg, name, entity)
        return scene_cfg

    def _home_tcp_quat(self) -> np.ndarray:
        from robot_rl.robot.controller import matrix_to_quat_xyzw
        from robot_rl.robot.kinematics import ArmKinematics
        kin = ArmKinematics(self.cfg.robot.urdf, self.cfg.robot.arm_joints, self.cfg.robot.ee_frame)
        return matrix_to_quat_xyzw(kin.forward(np.array(self.cfg.robot.home)).rotation)

    # -- BatchedSim --------------------------------------------------------------------------------
    def reset_envs(self, env_ids, seeds) -> None:
        ids = torch.as_tensor(np.asarray(env_ids), device=self.device, dtype=torch.long)
        for seed in seeds:
            if seed is not None:
                self._rng = np.random.default_rng(seed)
                break
        from robot_rl.sim.placement import random_object_pose
        poses = [random_object_pose(self._rng, self.cfg, self.desc) for _ in env_ids]
        root = self.cube.data.default_root_state[ids].clone()
        root[:, :3] = torch.tensor(np.array([p for p, _ in poses]), device=self.device,
                                   dtype=root.dtype) + self.scene.env_origins[ids]
        root[:, 3:7] = torch.tensor(np.array([q for _, q in poses]), device=self.device, dtype=root.dtype)
        root[:, 7:] = 0.0
        self.cube.write_root_state_to_sim(root, ids)
        q = self.robot.data.default_joint_pos[ids].clone()
        self.robot.write_joint_state_to_sim(q, torch.zeros_like(q), env_ids=ids)
        self._grip_target[ids] = self.spec["robot"]["gripper_open"]
        self._randomise(ids)
        self.scene.write_data_to_sim()
        self.sim.step(render=False)
        self.scene.update(self.cfg.sim.physics_dt)

    def _randomise(self, ids: torch.Tensor) -> None:
        r, n = self.randomisation, len(ids)
        masses = self.cube.root_physx_view.get_masses()
        masses[ids.cpu()] = float(self.spec["object"]["mass"]) * torch.empty(n, 1).uniform_(*r.object_mass_scale)
        self.cube.root_physx_view.set_masses(masses, ids.cpu())
        materials = self.cube.root_physx_view.get_material_properties()
        scale = torch.empty(n, 1, 1).uniform_(*r.friction_scale)
        materials[ids.cpu(), :, 0:2] = self.spec["object"]["static_friction"] * scale
        self.cube.root_physx_view.set_material_properties(materials, ids.cpu())

    def advance(self, target_pos, target_quat, width) -> None:
        quat_wxyz = target_quat[:, [3, 0, 1, 2]].float()
        command = torch.cat([target_pos.float(), quat_wxyz], -1)
        self._grip_target[:] = (width.float() / len(self.grip_ids)).unsqueeze(-1)
        for _ in range(self.substeps):
            ee_pos, ee_quat, ee_vel = self._tcp_in_base()
            self.osc.set_command(command, current_ee_pose_b=torch.cat([ee_pos, ee_quat], -1))
            jac = self.robot.root_physx_view.get_jacobians()[:, self.tcp_id - 1, :, self.arm_ids]
            mass = self.robot.root_physx_view.get_generalized_mass_matrices()[:, self.arm_ids][:, :, self.arm_ids]
            gravity = self.robot.root_physx_view.get_gravity_compensation_forces()[:, self.arm_ids]
            effort = self.osc.compute(
                jacobian_b=jac, current_ee_pose_b=torch.cat([ee_pos, ee_quat], -1),
                current_ee_vel_b=ee_vel, mass_matrix=mass, gravity=gravity,
                current_joint_pos=self.robot.data.joint_pos[:, self.arm_ids],
                current_joint_vel=self.robot.data.joint_vel[:, self.arm_ids],
                nullspace_joint_pos_target=self.home)
            self.robot.set_joint_effort_target(effort, joint_ids=self.arm_ids)
            self.robot.set_joint_position_target(self._grip_target, joint_ids=self.grip_ids)
            self.scene.write_data_to_sim()
            self.sim.step(render=False)
            self.scene.update(self.cfg.sim.physics_dt)

    def _tcp_in_base(self):
        data = self.robot.data
        pos, quat = subtract_frame_transforms(data.root_pos_w, data.root_quat_w,
                                              data.body_pos_w[:, self.tcp_id], data.body_quat_w[:, self.tcp_id])
        return pos, quat, torch.cat([data.body_lin_vel_w[:, self.tcp_id],
                                     data.body_ang_vel_w[:, self.tcp_id]], -1)

    def read(self) -> BatchState:
        ee_pos, ee_quat_wxyz, ee_vel = self._tcp_in_base()
        data = self.robot.data
        tactile = {}
        for pad in self.desc.pads:
            sensor = self.pads[pad.name].data
            body = self.pad_body[pad.name]
            link_pos, link_quat = data.body_pos_w[:, body], data.body_quat_w[:, body]
            rot = matrix_from_quat(link_quat)                              # (N, 3, 3) world <- link
            points = torch.einsum("nji,nmj->nmi", rot, sensor.contact_pos_w[:, 0] - link_pos.unsqueeze(1))
            valid = torch.isfinite(points).all(-1)
            # Isaac Lab reports the net force per filtered body and the contact points: each
            # valid point carries an equal share of it.
            share = valid.float() / valid.float().sum(-1, keepdim=True).clamp(min=1.0)
            total = sensor.force_matrix_w[:, 0, 0]                        # (N, 3) world
            forces = torch.einsum("nji,nj->ni", rot, total).unsqueeze(1) * share.unsqueeze(-1)
            tactile[pad.name] = batched_taxel_image(pad, torch.nan_to_num(points), forces, valid)
        cube = self.cube.data.root_pos_w - self.scene.env_origins
        return BatchState(ee_pos=ee_pos, ee_quat=ee_quat_wxyz[:, [1, 2, 3, 0]], ee_vel=ee_vel,
                          gripper_width=data.joint_pos[:, self.grip_ids].sum(-1),
                          object_pos=cube, tactile=tactile)


def make_vector_env(cfg: Config, num_envs: int, device: str = "cuda:0",
                    randomisation: Randomisation | None = None) -> PickVectorEnv:
    """The pick task on ``num_envs`` Isaac Lab scenes as robot_rl's vector env."""
    return PickVectorEnv(cfg, IsaacLabPickSim(cfg, num_envs, device, randomisation), device,
                         torch.float32)
