"""Builds the MuJoCo model: scene MJCF + the robot's URDF + wrist camera, taxels, actuators.

The arm is torque-controlled (our impedance controller closes the loop every physics step, as a
real torque-controlled arm would); the gripper is a force-limited position servo, as a Panda hand.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.config import Config, TactileConfig
from robot_rl.paths import shared_file
from robot_rl.robot.description import resolve_urdf, urdf_text_for_mujoco

# Robot geoms collide with the world (bit 1) but not with each other: self-collision of an arm
# under a Cartesian controller is prevented by joint limits, as on the real robot.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1

# Fingertip pad of the Panda finger in its link frame (from the URDF's "rubber tip" box):
# centre and half sizes along x (width), y (toward the object), z (along the finger).
PAD_CENTRE = np.array([0.0, 0.0, 0.04525])
PAD_HALF = np.array([0.00875, 0.002, 0.00925])


@dataclass
class TaxelLayout:
    name: str
    rows: int
    cols: int
    sensor_adr: np.ndarray  # start index in data.sensordata of each taxel, row-major


def scene_path(scene: str) -> Path:
    path = Path(scene)
    if path.suffix != ".xml":
        path = shared_file("sim", f"{scene}.xml")
    if not path.is_file():
        raise FileNotFoundError(f"scene {scene!r} -> {path} does not exist; expected the name "
                                f"of a scene in sim/ or a path to an MJCF file")
    return path


def _prepare_robot(cfg: Config) -> mujoco.MjSpec:
    robot = mujoco.MjSpec.from_string(urdf_text_for_mujoco(resolve_urdf(cfg.robot.urdf)))
    for geom in robot.geoms:
        geom.contype, geom.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
        geom.rgba = [0.92, 0.92, 0.92, 1.0]
    for name in cfg.robot.gripper_joints:
        finger = robot.body(robot.joint(name).parent.name)
        for geom in finger.geoms:
            geom.friction = [1.5, 0.005, 0.0001]
            geom.condim = 4
            geom.rgba = [0.2, 0.2, 0.2, 1.0]
    for name in cfg.robot.arm_joints:
        joint = robot.joint(name)
        if joint is None:
            raise ValueError(f"arm joint '{name}' is not in the URDF {cfg.robot.urdf}")
        # Reflected motor inertia: keeps the torque loop stable at a 2 ms step, as on hardware.
        joint.armature = 0.1
        joint.damping = [1.0, 0.0, 0.0]
    return robot


def _add_taxels(spec: mujoco.MjSpec, tactile: TactileConfig) -> None:
    body = spec.body(tactile.sim_body)
    if body is None:
        raise ValueError(f"tactile sensor '{tactile.name}': sim_body '{tactile.sim_body}' is "
                         f"not a body of the robot")
    width, length = 2 * PAD_HALF[0], 2 * PAD_HALF[2]
    for r in range(tactile.rows):
        for c in range(tactile.cols):
            x = -PAD_HALF[0] + (c + 0.5) * width / tactile.cols
            z = PAD_CENTRE[2] + PAD_HALF[2] - (r + 0.5) * length / tactile.rows
            site = body.add_site(name=f"taxel_{tactile.name}_{r}_{c}", type=mujoco.mjtGeom.mjGEOM_BOX,
                                 pos=[x, 0.0, z],
                                 size=[width / tactile.cols / 2, PAD_HALF[1],
                                       length / tactile.rows / 2],
                                 rgba=[0.1, 0.6, 0.9, 0.3], group=4)
            spec.add_sensor(name=site.name, type=mujoco.mjtSensor.mjSENS_TOUCH,
                            objtype=mujoco.mjtObj.mjOBJ_SITE, objname=site.name)


def build_model(cfg: Config) -> mujoco.MjModel:
    scene = mujoco.MjSpec.from_file(str(scene_path(cfg.sim.scene)))
    scene.option.timestep = cfg.sim.physics_dt
    robot = _prepare_robot(cfg)

    hand = robot.body("panda_hand")
    # The wrist camera looks along the gripper's approach axis (+z of the hand frame), offset
    # so the fingertips are in view, like a RealSense on a Panda wrist mount.
    hand.add_camera(name="wrist", pos=[0.06, 0.0, 0.03], quat=[0, 0.9659258, 0, 0.258819],
                    fovy=70)
    for tactile in cfg.tactile:
        if tactile.backend == "sim":
            _add_taxels(robot, tactile)

    for name in cfg.robot.arm_joints:
        joint = robot.joint(name)
        robot.add_actuator(name=f"{name}_torque", trntype=mujoco.mjtTrn.mjTRN_JOINT, target=name,
                           ctrllimited=True, ctrlrange=joint.actfrcrange if joint.actfrclimited
                           else [-87, 87])
    leader, *followers = cfg.robot.gripper_joints
    for name in followers:
        robot.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=leader, name2=name,
                           objtype=mujoco.mjtObj.mjOBJ_JOINT, data=[0, 1, 0, 0, 0] + [0] * 7,
                           solref=[0.005, 1])
    # The servo drives the mean finger opening through a tendon, so both fingers get half the
    # force at once, as through the Panda hand's gear. Driving the leader alone (the follower
    # dragged by the soft equality) shoved the cube sideways out of ~5-10% of grasps.
    split = robot.add_tendon(name="gripper_split")
    for name in cfg.robot.gripper_joints:
        split.wrap_joint(name, 1.0 / len(cfg.robot.gripper_joints))
    force = cfg.robot.gripper_force
    gripper = robot.add_actuator(name="gripper", trntype=mujoco.mjtTrn.mjTRN_TENDON,
                                 target="gripper_split", ctrllimited=True,
                                 ctrlrange=[0, cfg.robot.gripper_max_width / 2],
                                 forcelimited=True, forcerange=[-force, force])
    gripper.set_to_position(kp=2000, kv=40)

    base = scene.site("robot_base")
    if base is None:
        raise ValueError(f"scene {cfg.sim.scene} has no site 'robot_base' to mount the robot on")
    # An empty prefix keeps the URDF's joint and link names, which the whole stack addresses
    # joints by; MuJoCo only warns that such a model may not save back to XML.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
        scene.attach(robot, site=base, prefix="")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
            return scene.compile()
    except ValueError as exc:
        raise ValueError(f"MuJoCo could not compile scene {cfg.sim.scene} with robot "
                         f"{cfg.robot.urdf}: {exc}") from None


def taxel_layouts(model: mujoco.MjModel, cfg: Config) -> list[TaxelLayout]:
    layouts = []
    for tactile in cfg.tactile:
        if tactile.backend != "sim":
            continue
        adr = np.array([model.sensor_adr[model.sensor(f"taxel_{tactile.name}_{r}_{c}").id]
                        for r in range(tactile.rows) for c in range(tactile.cols)])
        layouts.append(TaxelLayout(tactile.name, tactile.rows, tactile.cols, adr))
    return layouts
