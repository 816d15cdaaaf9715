"""Builds the MuJoCo model: scene + the robot's URDF + wrist camera, taxels, actuators.

A described scene (robot_rl/sim/scene_description.py, which the Gazebo and Isaac Sim scenes are
generated from too) becomes MJCF here; any other scene is an MJCF file in sim/ or a path. The
arm is torque-controlled (our impedance controller closes the loop every physics step, as a real
torque-controlled arm would); the gripper is a force-limited position servo, as a Panda hand.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.config import Config
from robot_rl.paths import shared_file
from robot_rl.robot.description import resolve_urdf, urdf_text_for_mujoco
from robot_rl.sim.scene_description import (DESCRIBED_SCENES, SceneDescription, TactilePad,
                                            robot_mounts, scene_description)

# Robot geoms collide with the world (bit 1) but not with each other: self-collision of an arm
# under a Cartesian controller is prevented by joint limits, as on the real robot.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1


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


def _add_taxels(spec: mujoco.MjSpec, pad: TactilePad) -> None:
    body = spec.body(pad.link)
    if body is None:
        raise ValueError(f"tactile sensor '{pad.name}': sim_body '{pad.link}' is "
                         f"not a body of the robot")
    half, centres = pad.taxel_half_size(), pad.taxel_centres()
    for r in range(pad.rows):
        for c in range(pad.cols):
            site = body.add_site(name=f"taxel_{pad.name}_{r}_{c}", type=mujoco.mjtGeom.mjGEOM_BOX,
                                 pos=centres[r, c], size=half, rgba=[0.1, 0.6, 0.9, 0.3], group=4)
            spec.add_sensor(name=site.name, type=mujoco.mjtSensor.mjSENS_TOUCH,
                            objtype=mujoco.mjtObj.mjOBJ_SITE, objname=site.name)


def _numbers(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def world_mjcf(desc: SceneDescription) -> str:
    """The MJCF of a described scene without the robot (attached at the site "robot_base")."""
    table, obj = desc.table, desc.object
    cameras = "".join(
        f'    <camera name="{cam.name}" pos="{_numbers(cam.pos)}" '
        + (f'xyaxes="{_numbers(cam.xyaxes)}"' if cam.xyaxes is not None
           else f'quat="{_numbers(cam.quat)}"') + f' fovy="{cam.fovy_deg!r}"/>\n'
        for cam in desc.cameras if cam.parent == "world")
    fixtures = "".join(_fixture_mjcf(fixture) for fixture in desc.fixtures)
    offwidth = max([640] + [c.width for c in desc.cameras])
    offheight = max([480] + [c.height for c in desc.cameras])
    # No shadows: they cost ~10x the render time on a CPU rasteriser.
    return f"""<mujoco model="{desc.name}">
  <option timestep="{desc.physics_dt!r}" gravity="{_numbers(desc.gravity)}" integrator="implicitfast"
          cone="elliptic" impratio="10"/>
  <visual>
    <headlight diffuse="0.6 0.6 0.6" ambient="0.3 0.3 0.3" specular="0 0 0"/>
    <global offwidth="{offwidth}" offheight="{offheight}"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.25 0.3 0.35" rgb2="0.2 0.25 0.3"
             width="256" height="256"/>
    <material name="floor" texture="grid" texrepeat="8 8"/>
    <material name="{table.name}" rgba="{_numbers(table.rgba)}"/>
    <material name="{obj.name}" rgba="{_numbers(obj.rgba)}"/>
  </asset>
  <worldbody>
    <light pos="0.4 0 1.8" dir="0 0 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom name="floor" type="plane" size="{_numbers(desc.floor_half_size)} 0.05"
          pos="0 0 {desc.floor_z!r}" material="floor" contype="1" conaffinity="3"/>
    <geom name="{table.name}" type="box" size="{_numbers(table.half_size)}"
          pos="{_numbers(table.pos)}" material="{table.name}" contype="1" conaffinity="3"
          friction="{_numbers(table.friction)}"/>
    <site name="robot_base" pos="{_numbers(desc.robot_base)}"/>
{cameras}    <body name="{obj.name}" pos="{_numbers(obj.pos)}">
      <freejoint name="{desc.object_joint}"/>
      <geom name="{obj.name}" type="box" size="{_numbers(obj.half_size)}" mass="{obj.mass!r}"
            material="{obj.name}" contype="1" conaffinity="3" friction="{_numbers(obj.friction)}"
            condim="4"/>
    </body>
{fixtures}  </worldbody>
</mujoco>
"""


def _fixture_mjcf(fixture) -> str:
    """A task's fixture as a mocap body: static for contacts, moved per episode by
    ``SimWorld.set_fixture_pose``."""
    parts = "".join(
        f'      <geom name="{part.name}" type="box" size="{_numbers(part.half_size)}" '
        f'pos="{_numbers(part.pos)}" '
        + (f'quat="{_numbers(part.quat)}" ' if part.quat is not None else "")
        + f'rgba="{_numbers(part.rgba)}" contype="1" conaffinity="3" '
        f'friction="{_numbers(part.friction)}" condim="4"/>\n' for part in fixture.parts)
    return (f'    <body name="{fixture.name}" pos="{_numbers(fixture.pos)}" mocap="true">\n'
            f'{parts}    </body>\n')


def object_names(cfg: Config) -> tuple[str, str]:
    """(body, free joint) of the scene's movable object: the description's (a task may swap
    the cube for its own object), or "cube" / "cube_joint" in an MJCF scene."""
    if cfg.sim.scene in DESCRIBED_SCENES:
        desc = scene_description(cfg)
        return desc.object.name, desc.object_joint
    return "cube", "cube_joint"


def build_model(cfg: Config) -> mujoco.MjModel:
    if cfg.sim.scene in DESCRIBED_SCENES:
        scene = mujoco.MjSpec.from_string(world_mjcf(scene_description(cfg)))
    else:  # an MJCF file brings its own world and world cameras
        scene = mujoco.MjSpec.from_file(str(scene_path(cfg.sim.scene)))
    robot_cameras, pads = robot_mounts(cfg)
    scene.option.timestep = cfg.sim.physics_dt
    robot = _prepare_robot(cfg)

    for cam in robot_cameras:
        mount = robot.body(cam.parent)
        if mount is None:
            raise ValueError(f"camera {cam.name!r} is mounted on {cam.parent!r}, which is not a "
                             f"body of the robot {cfg.robot.urdf}")
        mount.add_camera(name=cam.name, pos=list(cam.pos), quat=list(cam.quat), fovy=cam.fovy_deg)
    for pad in pads:
        _add_taxels(robot, pad)

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
