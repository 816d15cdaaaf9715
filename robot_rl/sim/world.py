"""The MuJoCo stand-in for the hardware: physics, the arm controller, sensors and resets.

ROS-free. The sim node wraps it in the hardware topic contract; the in-process Gymnasium env
uses it directly for fast tests and algorithm work. The impedance controller runs inside
``step_physics`` on every physics step, as it would on a real torque-controlled arm.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.config import Config
from robot_rl.robot.adapter import JointReading
from robot_rl.robot.controller import ImpedanceController, matrix_to_quat_xyzw
from robot_rl.robot.kinematics import ArmKinematics
from robot_rl.sensors.base import CameraIntrinsics
from robot_rl.sensors.image_ops import ImageTransform
from robot_rl.sim.randomization import DomainRandomizer, append_log, apply_physics
from robot_rl.sim.scene import build_model, object_names, taxel_layouts

CUBE_HALF = 0.025


def _as_slice(index: np.ndarray):
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


class SimWorld:
    def __init__(self, cfg: Config, seed: int | None = None):
        self.cfg = cfg
        self.model = build_model(cfg)
        apply_physics(self.model, cfg.sim.physics)
        self.data = mujoco.MjData(self.model)
        m = self.model
        arm = cfg.robot.arm_joints
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in arm])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in arm])
        self._arm_act = np.array([m.actuator(f"{j}_torque").id for j in arm])
        self._grip_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in cfg.robot.gripper_joints])
        self._grip_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in cfg.robot.gripper_joints])
        self._grip_act = m.actuator("gripper").id
        object_body, object_joint = object_names(cfg)
        self._object_joint = m.joint(object_joint).id
        self._cube_qpos = m.jnt_qposadr[self._object_joint]
        self._cube_body = m.body(object_body).id
        self._object_rest_z = float(m.geom_size[m.body_geomadr[self._cube_body]][2])
        # The task's scene hooks (Task.scene built the model; Task.place_scene runs per reset).
        from robot_rl.envs.registry import task_base, task_class
        self._scene_task = task_class(cfg.task.name)
        self._places_scene = (self._scene_task.place_scene.__func__
                              is not task_base().place_scene.__func__)
        self.fixture_names = [m.body(b).name for b in range(m.nbody) if m.body_mocapid[b] >= 0]
        self._tcp_body = m.body(cfg.robot.ee_frame).id
        # Slices when the arm's entries are contiguous (they are for a URDF arm): cheaper than
        # fancy indexing in the physics loop.
        self._arm_qpos_view = _as_slice(self._arm_qpos)
        self._arm_dof_view = _as_slice(self._arm_dof)
        self._arm_act_view = _as_slice(self._arm_act)
        self.joint_names = list(arm) + list(cfg.robot.gripper_joints)
        self.kin = ArmKinematics(cfg.robot.urdf, arm, cfg.robot.ee_frame)
        self.controller = ImpedanceController(self.kin, cfg.controller, np.array(cfg.robot.home),
                                              period_s=cfg.sim.physics_dt,
                                              effort_limits=cfg.robot.effort_limits)
        self.taxels = {t.name: t for t in taxel_layouts(m, cfg)}
        self._tactile_zero = {name: np.zeros((t.rows, t.cols), np.float32)
                              for name, t in self.taxels.items()}
        self.rng = np.random.default_rng(cfg.sim.seed if seed is None else seed)
        self.substeps = max(1, round(1.0 / cfg.control_rate_hz / cfg.sim.physics_dt))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._transforms: dict[str, ImageTransform] = {}
        self.gripper_width_cmd = cfg.robot.gripper_max_width
        self._randomizer: DomainRandomizer | None = None
        # The values applied at the last reset (sim.randomization); None: the nominal model.
        self.episode_randomization: dict | None = None
        self.reset()

    # -- episode ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None, randomization: dict | None = None) -> np.ndarray:
        """Arm to home, gripper open, cube at a random pose within the configured bounds.
        With sim.randomization enabled, the episode's values are drawn (from ``seed`` when
        given) and applied; ``randomization``: apply these logged values instead (a replay)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        if randomization is not None or self.cfg.sim.randomization.enabled:
            randomizer = self.randomizer()
            values = randomization if randomization is not None else randomizer.draw(seed)
            randomizer.apply(values)
            self.episode_randomization = values
        elif self._randomizer is not None:  # a replay in a nominal world: back to nominal
            self._randomizer.restore()
            self._randomizer, self.episode_randomization = None, None
        now = self.data.time
        mujoco.mj_resetData(self.model, self.data)
        self.data.time = now  # sim time never runs backwards: it stamps every ROS message
        home = np.array(self.cfg.robot.home)
        self.data.qpos[self._arm_qpos] = home
        self.data.qpos[self._grip_qpos] = self.cfg.robot.gripper_max_width / 2
        draws = self.rng.bit_generator.state  # a task's placement replays from these draws
        x, y, yaw = self.random_object_pose()
        self._set_object(x, y, yaw)
        self.controller.reset(home)
        self.set_gripper(self.cfg.robot.gripper_max_width)
        mujoco.mj_forward(self.model, self.data)
        self._scene_task.place_scene(self, self.rng)
        log_file = self.cfg.sim.randomization.log_file
        if log_file and self.episode_randomization is not None:
            record = {"sim_time": now, "reset_seed": seed, "object_pose": [x, y, yaw],
                      "values": self.episode_randomization}
            if self._places_scene:
                record["scene_draws"] = draws
            append_log(log_file, record)
        return np.array([x, y, yaw])

    def randomizer(self) -> DomainRandomizer:
        """The domain randomiser of this world's model (made on first use)."""
        if self._randomizer is None:
            m = self.model
            robot = [b for b in range(1, m.nbody)
                     if b != self._cube_body and m.body_mocapid[b] < 0]
            self._randomizer = DomainRandomizer(m, self.cfg.sim.randomization,
                                                object_body=self._cube_body, robot_bodies=robot,
                                                arm_dofs=self._arm_dof, controller=self.controller)
        return self._randomizer

    def replay(self, record: dict) -> np.ndarray:
        """Reset into a logged episode (a line of sim.randomization.log_file): its values and
        its cube pose (and, for a task that places its scene, the same placement)."""
        if "scene_draws" in record:  # the same draws: the same object pose and placement
            self.rng.bit_generator.state = record["scene_draws"]
            self.reset(randomization=record["values"])
            return np.array(record["object_pose"])
        self.reset(randomization=record["values"])
        self.place_object(*record["object_pose"])
        return np.array(record["object_pose"])

    def random_object_pose(self) -> tuple[float, float, float]:
        """x, y, yaw drawn uniformly within sim.object_*_range."""
        sim = self.cfg.sim
        return (float(self.rng.uniform(*sim.object_x_range)),
                float(self.rng.uniform(*sim.object_y_range)),
                float(self.rng.uniform(*sim.object_yaw_range)))

    def _set_object(self, x: float, y: float, yaw: float) -> None:
        self.data.qpos[self._cube_qpos:self._cube_qpos + 7] = [
            x, y, self._object_rest_z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        dof = self.model.jnt_dofadr[self._object_joint]
        self.data.qvel[dof:dof + 6] = 0.0

    def set_object_pose(self, pos, quat_wxyz) -> None:
        """Put the object at ``pos`` with orientation ``quat_wxyz`` (w, x, y, z), at rest,
        anywhere (e.g. between the fingers: ``Task.place_scene``)."""
        pose = np.concatenate([np.asarray(pos, float), np.asarray(quat_wxyz, float)])
        if pose.shape != (7,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"object pose must be a finite position (3) and quaternion "
                             f"w, x, y, z (4), got {pos!r} / {quat_wxyz!r}")
        pose[3:] /= np.linalg.norm(pose[3:])
        self.data.qpos[self._cube_qpos:self._cube_qpos + 7] = pose
        dof = self.model.jnt_dofadr[self._object_joint]
        self.data.qvel[dof:dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def set_fixture_pose(self, name: str, pos, yaw: float = 0.0) -> None:
        """Move a task's fixture (``SceneDescription.fixtures``) to ``pos``, turned by ``yaw``
        rad about z. It stays there, immovable by contact, until moved again."""
        if name not in self.fixture_names:
            raise KeyError(f"no fixture {name!r} in the scene; it has {self.fixture_names}")
        pos = np.asarray(pos, float)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)) or not np.isfinite(yaw):
            raise ValueError(f"fixture {name!r}: expected a finite position (3) and yaw, got "
                             f"{pos!r}, {yaw!r}")
        mocap = self.model.body_mocapid[self.model.body(name).id]
        self.data.mocap_pos[mocap] = pos
        self.data.mocap_quat[mocap] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        mujoco.mj_forward(self.model, self.data)

    def fixture_pose(self, name: str) -> np.ndarray:
        """A fixture's pose: position (3) and quaternion x, y, z, w (4)."""
        mocap = self.model.body_mocapid[self.model.body(name).id]
        w, x, y, z = self.data.mocap_quat[mocap]
        return np.concatenate([self.data.mocap_pos[mocap], [x, y, z, w]])

    def hold_fingers(self, width: float) -> None:
        """Fingers at ``width`` apart and the gripper commanded closed on what is between
        them (a grasp at reset: ``Task.place_scene``)."""
        self.data.qpos[self._grip_qpos] = width / len(self._grip_qpos)
        self.data.qvel[self._grip_dof] = 0.0
        self.set_gripper(0.0)
        mujoco.mj_forward(self.model, self.data)

    def place_object(self, x: float, y: float, yaw: float) -> None:
        """Put the cube down at rest on the table at (x, y, yaw), as a person's hands would:
        only the cube moves; the arm, its controller and the sim time go on untouched."""
        self._set_object(x, y, yaw)
        mujoco.mj_forward(self.model, self.data)

    # -- actuation --------------------------------------------------------------------------
    def set_gripper(self, width: float) -> float:
        """Commanded opening between the fingers in m, clamped to [0, max width]."""
        if not np.isfinite(width):
            raise ValueError(f"gripper width must be finite, got {width}")
        width = float(np.clip(width, 0.0, self.cfg.robot.gripper_max_width))
        self.gripper_width_cmd = width
        self.data.ctrl[self._grip_act] = width / 2
        return width

    def step_physics(self, steps: int | None = None) -> None:
        """Advance ``steps`` physics steps (one control period by default), controller in loop."""
        m, d = self.model, self.data
        qpos, qvel, act = self._arm_qpos_view, self._arm_dof_view, self._arm_act_view
        compute = self.controller.compute
        for _ in range(self.substeps if steps is None else steps):
            d.ctrl[act] = compute(d.qpos[qpos], d.qvel[qvel])
            mujoco.mj_step(m, d)

    # -- sensing ----------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return float(self.data.time)

    def joints(self) -> JointReading:
        d = self.data
        idx_q = np.concatenate([self._arm_qpos, self._grip_qpos])
        idx_v = np.concatenate([self._arm_dof, self._grip_dof])
        return JointReading(self.joint_names, d.qpos[idx_q].copy(), d.qvel[idx_v].copy(),
                            d.qfrc_actuator[idx_v].copy())

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self._arm_qpos].copy()

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and quaternion (x, y, z, w) from pinocchio FK, as a real driver reports."""
        pose = self.kin.forward(self.arm_q())
        return pose.translation.copy(), matrix_to_quat_xyzw(pose.rotation)

    def ee_velocity(self) -> np.ndarray:
        """TCP linear and angular velocity (6,), base frame."""
        _, jac, _ = self.kin.state(self.arm_q(), self.data.qvel[self._arm_dof])
        return jac @ self.data.qvel[self._arm_dof]

    def gripper_width(self) -> float:
        return float(np.sum(self.data.qpos[self._grip_qpos]))

    def tactile(self, name: str) -> np.ndarray:
        """Normal force per taxel in N (rows × cols), minus the zeroed baseline."""
        layout = self.taxels[name]
        raw = self.data.sensordata[layout.sensor_adr].reshape(layout.rows, layout.cols)
        return raw.astype(np.float32) - self._tactile_zero[name]

    def zero_tactile(self, name: str) -> None:
        self._tactile_zero[name] = np.zeros_like(self._tactile_zero[name])
        self._tactile_zero[name] = self.tactile(name)

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos = self.data.xpos[self._cube_body].copy()
        w, x, y, z = self.data.xquat[self._cube_body]
        return pos, np.array([x, y, z, w])

    def render(self, camera: str, width: int, height: int) -> np.ndarray:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        renderer = self._renderers[key]
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def camera_frame(self, camera) -> tuple[np.ndarray, np.ndarray]:
        """Render a configured camera and apply its crop/resize exactly as a real camera node
        does; returns the image and the matching 3×3 intrinsics."""
        transform = self._transforms.get(camera.name)
        if transform is None:
            transform = ImageTransform(camera.width, camera.height, camera.crop, camera.resize)
            self._transforms[camera.name] = transform
        image = self.render(camera.name, camera.width, camera.height)
        K = self.camera_intrinsics(camera.name, camera.width, camera.height)
        if transform.is_identity:
            return image, K
        intr = transform.intrinsics(CameraIntrinsics(camera.width, camera.height, K[0, 0],
                                                     K[1, 1], K[0, 2], K[1, 2]))
        return transform.apply(image), intr.K

    def camera_intrinsics(self, camera: str, width: int, height: int) -> np.ndarray:
        """3×3 pinhole matrix of a MuJoCo camera: square pixels, centred principal point."""
        fovy = np.deg2rad(self.model.cam_fovy[self.model.camera(camera).id])
        f = 0.5 * height / np.tan(fovy / 2)
        return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
