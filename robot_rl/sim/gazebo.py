"""Gazebo (Harmonic) behind robot_rl's topic contract, generated from the scene description.

ROS-free and Gazebo-free: this module only writes text. What it generates, and how it fits:

* :func:`world_sdf`: the SDF world (table, cube, front camera, floor, light, the systems the
  contract needs). The robot is not in it: the launch file spawns it from ``robot_description``.
* :func:`robot_urdf`: the robot's URDF plus a ``<ros2_control>`` block for the
  ``gz_ros2_control/GazeboSimSystem`` hardware (effort command interfaces on the arm joints,
  position on the fingers: the controllers of config/ros2_controllers_panda.yaml, which the
  joint driver of ``driver.adapter: ros2_control`` talks to, as on a real arm), the
  ``gz_ros2_control-system`` plugin, the wrist camera and one contact sensor per tactile pad.
* :func:`bridge_config`: the ``ros_gz_bridge`` YAML (clock, images, camera_info, pad contacts,
  the object pose under /sim/ for scoring only), named from robot_rl/topics.py.
* :func:`launch_plan`: what launch/gazebo.launch.py starts (tested without ROS).

Written against the Gazebo Harmonic / ros_gz (Jazzy) / gz_ros2_control documentation; never run
here (docs/simulators.md says what was verified).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import yaml

from robot_rl import topics
from robot_rl.config import Config
from robot_rl.sim.scene_description import (BoxBody, CameraSpec, SceneDescription,
                                            refuse_fixtures, scene_description)

#: Where the generated files go inside ``gazebo_files``'s output folder.
WORLD_FILE, ROBOT_FILE, BRIDGE_FILE = "world.sdf", "robot.urdf", "bridge.yaml"
ROBOT_MODEL = "panda"
#: Simulator-only ROS topic of a pad's raw contacts (the adapter node turns them into taxels).
CONTACTS_PREFIX = topics.SIM_ONLY_PREFIX + "gazebo/contacts/"

# (library, class) of the world systems the contract needs.
WORLD_SYSTEMS = (
    ("gz-sim-physics-system", "gz::sim::systems::Physics"),
    ("gz-sim-user-commands-system", "gz::sim::systems::UserCommands"),   # /world/<w>/set_pose
    ("gz-sim-scene-broadcaster-system", "gz::sim::systems::SceneBroadcaster"),
    ("gz-sim-sensors-system", "gz::sim::systems::Sensors"),              # cameras
    ("gz-sim-contact-system", "gz::sim::systems::Contact"),              # tactile pads
)


def gz_camera_topic(name: str) -> str:
    return f"/camera/{name}/image"


def gz_camera_info_topic(name: str) -> str:
    return f"/camera/{name}/camera_info"


def gz_contact_topic(pad: str) -> str:
    return f"/tactile/{pad}/contacts"


def gz_object_pose_topic(desc: SceneDescription) -> str:
    return f"/model/{desc.object.name}/pose"


def set_pose_service(desc: SceneDescription) -> str:
    """Gazebo's service (gz.msgs.Pose -> gz.msgs.Boolean) the reset moves the object with."""
    return f"/world/{desc.name}/set_pose"


def contacts_topic(pad: str) -> str:
    return CONTACTS_PREFIX + pad


# -- SDF ------------------------------------------------------------------------------------------
def _v(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def _pose(pos, rot: np.ndarray | None = None) -> str:
    """SDF pose "x y z roll pitch yaw" (fixed-axis XYZ, as SDF reads it)."""
    if rot is None:
        return _v(list(pos) + [0.0, 0.0, 0.0])
    r = np.asarray(rot)
    pitch = np.arcsin(-np.clip(r[2, 0], -1.0, 1.0))
    roll, yaw = np.arctan2(r[2, 1], r[2, 2]), np.arctan2(r[1, 0], r[0, 0])
    return _v(list(pos) + [roll, pitch, yaw])


def gz_camera_rotation(cam: CameraSpec) -> np.ndarray:
    """Parent <- Gazebo camera frame (x forward, y left, z up) of a described camera."""
    mj = cam.rotation()  # x right, y up, looking along -z
    return np.column_stack([-mj[:, 2], -mj[:, 0], mj[:, 1]])


def _box_surface(box: BoxBody) -> str:
    mu = box.friction[0]
    return (f"<surface><friction><ode><mu>{mu!r}</mu><mu2>{mu!r}</mu2></ode>"
            f"<torsional><coefficient>{box.friction[1]!r}</coefficient></torsional>"
            f"</friction></surface>")


def _material(rgba) -> str:
    return f"<material><ambient>{_v(rgba)}</ambient><diffuse>{_v(rgba)}</diffuse></material>"


def camera_sensor_sdf(cam: CameraSpec, pose: str, fps: float) -> str:
    fx, fy, cx, cy = cam.intrinsics()
    return f"""<sensor name="{cam.name}" type="camera">
  <pose>{pose}</pose>
  <always_on>true</always_on>
  <update_rate>{float(fps)!r}</update_rate>
  <topic>{gz_camera_topic(cam.name)}</topic>
  <gz_frame_id>{cam.name}_optical_frame</gz_frame_id>
  <camera name="{cam.name}">
    <camera_info_topic>{gz_camera_info_topic(cam.name)}</camera_info_topic>
    <horizontal_fov>{cam.fovx_rad!r}</horizontal_fov>
    <image><width>{cam.width}</width><height>{cam.height}</height><format>R8G8B8</format></image>
    <clip><near>0.01</near><far>10.0</far></clip>
    <lens><intrinsics><fx>{fx!r}</fx><fy>{fy!r}</fy><cx>{cx!r}</cx><cy>{cy!r}</cy><s>0</s></intrinsics></lens>
  </camera>
</sensor>"""


def _camera_fps(cfg: Config, name: str) -> float:
    for cam in cfg.cameras:
        if cam.name == name:
            return float(cam.fps)
    return float(cfg.control_rate_hz)


def _box_model(box: BoxBody) -> str:
    static = box.mass is None
    inertial = ""
    if not static:
        ixx, iyy, izz = (float(v) for v in box.inertia_diagonal)
        inertial = (f"<inertial><mass>{box.mass!r}</mass><inertia><ixx>{ixx!r}</ixx><iyy>{iyy!r}"
                    f"</iyy><izz>{izz!r}</izz><ixy>0</ixy><ixz>0</ixz><iyz>0</iyz></inertia>"
                    f"</inertial>")
    geometry = f"<geometry><box><size>{_v(box.size)}</size></box></geometry>"
    publisher = "" if static else (
        '<plugin filename="gz-sim-pose-publisher-system" name="gz::sim::systems::PosePublisher">'
        "<publish_link_pose>false</publish_link_pose><publish_model_pose>true"
        "</publish_model_pose><use_pose_vector_msg>false</use_pose_vector_msg>"
        "<update_frequency>-1</update_frequency></plugin>")
    return f"""<model name="{box.name}">
  <static>{str(static).lower()}</static>
  <pose>{_pose(box.pos)}</pose>
  <link name="{box.name}">
    {inertial}
    <collision name="{box.name}_collision">{geometry}{_box_surface(box)}</collision>
    <visual name="{box.name}_visual">{geometry}{_material(box.rgba)}</visual>
  </link>
  {publisher}
</model>"""


def world_sdf(cfg: Config, desc: SceneDescription | None = None) -> str:
    """The SDF 1.9 world of the described scene, without the robot."""
    desc = desc or scene_description(cfg)
    refuse_fixtures(desc, "Gazebo")
    systems = "\n".join(
        f'<plugin filename="{lib}" name="{cls}">'
        + ("<render_engine>ogre2</render_engine>" if cls.endswith("Sensors") else "")
        + "</plugin>" for lib, cls in WORLD_SYSTEMS)
    cameras = "\n".join(
        f"""<model name="camera_{cam.name}">
  <static>true</static>
  <pose>{_pose(cam.pos, gz_camera_rotation(cam))}</pose>
  <link name="camera_{cam.name}">
    {camera_sensor_sdf(cam, _pose((0, 0, 0)), _camera_fps(cfg, cam.name))}
  </link>
</model>""" for cam in desc.cameras if cam.parent == "world")
    fx, fy = desc.floor_half_size
    return f"""<?xml version="1.0"?>
<sdf version="1.9">
<world name="{desc.name}">
<physics name="robot_rl" type="dart">
  <max_step_size>{desc.physics_dt!r}</max_step_size>
  <real_time_factor>1.0</real_time_factor>
</physics>
<gravity>{_v(desc.gravity)}</gravity>
{systems}
<light name="sun" type="directional">
  <pose>0.4 0 1.8 0 0 0</pose><direction>0 0 -1</direction>
  <diffuse>0.6 0.6 0.6 1</diffuse><cast_shadows>false</cast_shadows>
</light>
<model name="floor">
  <static>true</static>
  <pose>{_pose((0, 0, desc.floor_z))}</pose>
  <link name="floor">
    <collision name="floor_collision"><geometry><plane><normal>0 0 1</normal><size>{_v((2 * fx, 2 * fy))}</size></plane></geometry></collision>
    <visual name="floor_visual"><geometry><plane><normal>0 0 1</normal><size>{_v((2 * fx, 2 * fy))}</size></plane></geometry>{_material((0.25, 0.3, 0.35, 1))}</visual>
  </link>
</model>
{_box_model(desc.table)}
{_box_model(desc.object)}
{cameras}
</world>
</sdf>
"""


# -- the robot: URDF + ros2_control + sensors -----------------------------------------------------------
def pad_link(pad_name: str) -> str:
    return f"tactile_pad_{pad_name}"


def pad_collision(pad_name: str) -> str:
    """The collision name SDFormat gives the pad link's one unnamed URDF collision."""
    return f"{pad_link(pad_name)}_collision"


def _ros2_control_block(cfg: Config) -> str:
    arm = "".join(
        f'<joint name="{j}"><command_interface name="effort"/>'
        f'<state_interface name="position"><param name="initial_value">{q!r}</param>'
        f'</state_interface><state_interface name="velocity"/><state_interface name="effort"/>'
        f"</joint>" for j, q in zip(cfg.robot.arm_joints, cfg.robot.home))
    opening = cfg.robot.gripper_max_width / len(cfg.robot.gripper_joints)
    fingers = "".join(
        f'<joint name="{j}"><command_interface name="position"/>'
        f'<state_interface name="position"><param name="initial_value">{opening!r}</param>'
        f'</state_interface><state_interface name="velocity"/><state_interface name="effort"/>'
        f"</joint>" for j in cfg.robot.gripper_joints)
    return (f'<ros2_control name="GazeboSimSystem" type="system"><hardware>'
            f"<plugin>gz_ros2_control/GazeboSimSystem</plugin></hardware>{arm}{fingers}"
            f"</ros2_control>")


def robot_urdf(cfg: Config, controllers_file: str | Path, desc: SceneDescription | None = None,
               urdf_text: str | None = None) -> str:
    """The robot's URDF for Gazebo: ``<ros2_control>`` + gz_ros2_control plugin (its
    joint_state_broadcaster remapped to ``driver.hardware_state_topic``), the robot-mounted
    cameras, and a pad link with a contact sensor per tactile pad. The fingers' ``<mimic>`` is
    dropped: the gripper controller commands every finger joint (half the opening each), as
    robot_rl's driver sends it, and gz_ros2_control refuses command interfaces on a mimic joint."""
    from robot_rl.robot.description import find_package, resolve_urdf

    desc = desc or scene_description(cfg)
    text = urdf_text if urdf_text is not None else resolve_urdf(cfg.robot.urdf).read_text()
    # file:// mesh URIs: Gazebo (and rviz) then need no ROS package index for the meshes.
    text = re.sub(r"package://([^/]+)/",
                  lambda match: f"file://{find_package(match.group(1)).resolve()}/", text)
    text = re.sub(r"<mimic\b[^>]*/>", "", text)
    extra = [_ros2_control_block(cfg)]
    extra.append(
        '<gazebo><plugin filename="gz_ros2_control-system" '
        'name="gz_ros2_control::GazeboSimROS2ControlPlugin">'
        f"<parameters>{escape(str(controllers_file))}</parameters>"
        f"<ros><remapping>/joint_states:={cfg.driver.hardware_state_topic}</remapping></ros>"
        "</plugin></gazebo>")
    for cam in desc.cameras:
        if cam.parent == "world":
            continue
        rot = gz_camera_rotation(cam)
        extra.append(f'<gazebo reference="{cam.parent}">'
                     f"{camera_sensor_sdf(cam, _pose(cam.pos, rot), _camera_fps(cfg, cam.name))}"
                     f"</gazebo>")
    for pad in desc.pads:
        size = _v(2 * np.asarray(pad.half))
        link, joint = pad_link(pad.name), f"{pad_link(pad.name)}_joint"
        # A tiny mass keeps SDFormat from dropping the link; preserveFixedJoint keeps it (and
        # its collision name) from being lumped into the finger.
        extra.append(
            f'<link name="{link}"><inertial><mass value="0.001"/>'
            f'<inertia ixx="1e-9" iyy="1e-9" izz="1e-9" ixy="0" ixz="0" iyz="0"/></inertial>'
            f'<collision><origin xyz="0 0 0"/><geometry><box size="{size}"/></geometry>'
            f"</collision></link>"
            f'<joint name="{joint}" type="fixed"><parent link="{pad.link}"/>'
            f'<child link="{link}"/><origin xyz="{_v(pad.centre)}" rpy="0 0 0"/></joint>'
            f'<gazebo reference="{joint}"><preserveFixedJoint>true</preserveFixedJoint></gazebo>'
            f'<gazebo reference="{link}"><sensor name="{pad.name}_contact" type="contact">'
            f"<always_on>true</always_on><update_rate>{float(cfg.control_rate_hz)!r}</update_rate>"
            f"<contact><collision>{pad_collision(pad.name)}</collision>"
            f"<topic>{gz_contact_topic(pad.name)}</topic></contact></sensor></gazebo>")
    text, count = re.subn(r"</robot>\s*$", "\n".join(extra) + "\n</robot>\n", text.rstrip())
    if count != 1:
        raise ValueError(f"the URDF of {cfg.robot.urdf} does not end with </robot>")
    return text


def contacts_image(pad, contacts, link_pos, link_rot) -> np.ndarray:
    """A pad's taxel image from one ros_gz_interfaces/Contacts message's ``contacts`` (world
    frame positions; per position a JointWrench whose ``body_1_wrench`` acts on collision1): the
    force on the pad's side of each contact, binned in the pad link's frame (``link_rot``:
    world <- link)."""
    from robot_rl.sim.contact_taxels import taxel_image, to_link_frame
    collision = pad_collision(pad.name)
    points, forces = [], []
    for contact in contacts:
        pad_is_first = collision in contact.collision1.name
        for i, p in enumerate(contact.positions):
            points.append([p.x, p.y, p.z])
            if i < len(contact.wrenches):
                w = contact.wrenches[i]
                f = w.body_1_wrench.force if pad_is_first else w.body_2_wrench.force
                forces.append([f.x, f.y, f.z])
            else:
                forces.append([0.0, 0.0, 0.0])
    points = np.array(points, dtype=float).reshape(-1, 3)
    forces = np.array(forces, dtype=float).reshape(-1, 3)
    return taxel_image(pad, to_link_frame(points, link_pos, link_rot), forces @ link_rot)


# -- ros_gz_bridge ----------------------------------------------------------------------------------
def bridge_config(cfg: Config, desc: SceneDescription | None = None) -> list[dict]:
    """The ros_gz_bridge entries (its YAML file is this list), every one Gazebo -> ROS."""
    desc = desc or scene_description(cfg)

    def entry(ros, gz, ros_type, gz_type):
        return {"ros_topic_name": ros, "gz_topic_name": gz, "ros_type_name": ros_type,
                "gz_type_name": gz_type, "direction": "GZ_TO_ROS"}

    entries = [entry(topics.CLOCK, "/clock", "rosgraph_msgs/msg/Clock", "gz.msgs.Clock")]
    for cam in cfg.cameras:
        if cam.backend != "sim":
            continue
        desc.camera(cam.name)  # a configured camera must be mounted in the scene
        entries.append(entry(topics.camera_image_topic(cam.name), gz_camera_topic(cam.name),
                             "sensor_msgs/msg/Image", "gz.msgs.Image"))
        entries.append(entry(topics.camera_info_topic(cam.name), gz_camera_info_topic(cam.name),
                             "sensor_msgs/msg/CameraInfo", "gz.msgs.CameraInfo"))
    for pad in desc.pads:
        entries.append(entry(contacts_topic(pad.name), gz_contact_topic(pad.name),
                             "ros_gz_interfaces/msg/Contacts", "gz.msgs.Contacts"))
    entries.append(entry(topics.OBJECT_POSE, gz_object_pose_topic(desc),
                         "geometry_msgs/msg/PoseStamped", "gz.msgs.Pose"))
    return entries


# -- files and launch -----------------------------------------------------------------------------------
@dataclass
class GazeboFiles:
    world: Path
    robot: Path
    bridge: Path
    controllers: Path


def write_gazebo_files(cfg: Config, out_dir: str | Path, controllers_file: str | Path) -> GazeboFiles:
    """Write world.sdf, robot.urdf and bridge.yaml for ``cfg`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    desc = scene_description(cfg)
    files = GazeboFiles(out / WORLD_FILE, out / ROBOT_FILE, out / BRIDGE_FILE, Path(controllers_file))
    files.world.write_text(world_sdf(cfg, desc))
    files.robot.write_text(robot_urdf(cfg, controllers_file, desc))
    files.bridge.write_text(yaml.safe_dump(bridge_config(cfg, desc), sort_keys=False))
    return files


#: The controllers of config/ros2_controllers_panda.yaml the spawners activate, in order.
CONTROLLERS = ("joint_state_broadcaster", "effort_controller", "gripper_controller")


@dataclass
class ExternalNode:
    """A node of another package (ros_gz_sim, ros_gz_bridge, controller_manager...)."""
    package: str
    executable: str
    arguments: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    name: str = ""


def check_gazebo_config(cfg: Config) -> None:
    """Gazebo stands in for the hardware behind the ros2_control driver path."""
    from robot_rl.schema import ConfigError
    if cfg.driver.adapter != "ros2_control":
        raise ConfigError(f"Gazebo drives the arm through gz_ros2_control: set driver.adapter to "
                          f"ros2_control (it is {cfg.driver.adapter!r}; config/gazebo.yaml does)")
    if cfg.driver.gripper_backend != "position_controller":
        raise ConfigError(f"Gazebo's gripper is gripper_controller (a forward position "
                          f"controller): set driver.gripper_backend to position_controller "
                          f"(it is {cfg.driver.gripper_backend!r})")
    scene_description(cfg)


def launch_plan(cfg: Config, config_file: str, files: GazeboFiles, profile: str = "robot",
                headless: bool = True):
    """What gazebo.launch.py starts: Gazebo, the robot, the bridge, the controllers, and the
    robot_rl nodes of robot_rl/graph.py (``graph(cfg, profile)`` + ``gazebo_nodes``), all on
    Gazebo's clock. Returns ``(gz_args, external_nodes, robot_rl_nodes)``."""
    from robot_rl.graph import simulator_graph

    check_gazebo_config(cfg)
    desc = scene_description(cfg)
    gz_args = f"-r {'-s ' if headless else ''}{files.world}"
    external = [
        ExternalNode("robot_state_publisher", "robot_state_publisher",
                     parameters={"robot_description": files.robot.read_text(),
                                 "use_sim_time": True}),
        ExternalNode("ros_gz_sim", "create", name="spawn_robot",
                     arguments=["-world", desc.name, "-topic", "robot_description",
                                "-name", ROBOT_MODEL, "-x", repr(desc.robot_base[0]),
                                "-y", repr(desc.robot_base[1]), "-z", repr(desc.robot_base[2])]),
        ExternalNode("ros_gz_bridge", "parameter_bridge", name="gz_bridge",
                     parameters={"config_file": str(files.bridge), "use_sim_time": True}),
    ]
    for controller in CONTROLLERS:
        external.append(ExternalNode("controller_manager", "spawner", name=f"spawn_{controller}",
                                     arguments=[controller, "--param-file", str(files.controllers)]))
    return gz_args, external, simulator_graph(cfg, config_file, profile, "gazebo")

