"""One scene description -> MuJoCo, Gazebo SDF/URDF/bridge and the Isaac Sim spec: the generated
artefacts agree with the compiled MuJoCo model (dimensions, masses, camera intrinsics and poses,
pad placement)."""
from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from robot_rl import topics
from robot_rl.config import Config, load_config
from robot_rl.sim import gazebo
from robot_rl.sim.scene_description import matrix_to_quat, quat_to_matrix, scene_description

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return load_config(str(ROOT / "config" / "gazebo.yaml"))


@pytest.fixture(scope="module")
def desc(cfg):
    return scene_description(cfg)


@pytest.fixture(scope="module")
def model(cfg):
    from robot_rl.sim.scene import build_model
    return build_model(cfg)


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


def _rpy_matrix(roll, pitch, yaw) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return (np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
            @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
            @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]]))


def test_every_constant_copy_of_the_cube_size_matches_the_description(desc):
    from robot_rl import view
    from robot_rl.envs import task
    from robot_rl.sim import world
    assert desc.object.half_size == (world.CUBE_HALF,) * 3 == (task.CUBE_HALF,) * 3
    assert view.CUBE_HALF == world.CUBE_HALF


def test_mujoco_model_is_built_from_the_description(desc, model):
    table, cube = model.geom("table"), model.geom("cube")
    np.testing.assert_array_equal(table.size, desc.table.half_size)
    np.testing.assert_array_equal(table.pos, desc.table.pos)
    np.testing.assert_array_equal(cube.size, desc.object.half_size)
    np.testing.assert_array_equal(cube.friction, desc.object.friction)
    assert model.body("cube").mass[0] == pytest.approx(desc.object.mass)
    np.testing.assert_allclose(model.body("cube").inertia, desc.object.inertia_diagonal, rtol=1e-12)
    assert model.opt.timestep == desc.physics_dt
    for cam in desc.cameras:
        mj = model.camera(cam.name)
        assert mj.fovy[0] == cam.fovy_deg
        np.testing.assert_allclose(mj.pos, cam.pos, atol=1e-12)
        np.testing.assert_allclose(quat_to_matrix(mj.quat), cam.rotation(), atol=1e-6)
        parent = "world" if model.cam_bodyid[mj.id] == 0 else model.body(model.cam_bodyid[mj.id]).name
        assert parent == cam.parent


def test_camera_intrinsics_match_the_simulator(desc, world_factory):
    world = world_factory()
    for cam in desc.cameras:
        fx, fy, cx, cy = cam.intrinsics()
        K = world.camera_intrinsics(cam.name, cam.width, cam.height)
        np.testing.assert_allclose(K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        # Gazebo's horizontal field of view gives the same focal length in x.
        assert cam.width / 2 / np.tan(cam.fovx_rad / 2) == pytest.approx(fx)


def test_taxel_sites_sit_on_the_description_pads(cfg, desc, model):
    assert [p.name for p in desc.pads] == [t.name for t in cfg.tactile]
    for pad in desc.pads:
        centres = pad.taxel_centres()
        for r in range(pad.rows):
            for c in range(pad.cols):
                site = model.site(f"taxel_{pad.name}_{r}_{c}")
                assert model.body(site.bodyid[0]).name == pad.link
                np.testing.assert_allclose(site.pos, centres[r, c], atol=1e-12)
                np.testing.assert_allclose(site.size, pad.taxel_half_size(), atol=1e-12)
                assert pad.taxel_at(site.pos) == (r, c)


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-12)


def test_description_refuses_an_unmounted_camera():
    cfg = load_config(None, {"sim.scene": "pick_cube"})
    cfg.cameras[0].name = "ceiling"
    with pytest.raises(ValueError, match="'ceiling'.*no mount"):
        scene_description(cfg)
    with pytest.raises(ValueError, match="no simulator-neutral description"):
        scene_description(load_config(None, {"sim.scene": "calibration"}))


# -- Gazebo --------------------------------------------------------------------------------------
def _pose(el) -> tuple[np.ndarray, np.ndarray]:
    v = _floats(el.find("pose").text)
    return v[:3], _rpy_matrix(*v[3:])


def test_sdf_world_is_well_formed_and_matches_the_mujoco_model(cfg, desc, model):
    root = ET.fromstring(gazebo.world_sdf(cfg))
    assert root.tag == "sdf" and root.get("version") == "1.9"
    world = root.find("world")
    assert world.get("name") == desc.name
    assert float(world.find("physics/max_step_size").text) == model.opt.timestep
    np.testing.assert_allclose(_floats(world.find("gravity").text), model.opt.gravity)
    systems = {p.get("name") for p in world.findall("plugin")}
    assert {"gz::sim::systems::Physics", "gz::sim::systems::Sensors", "gz::sim::systems::Contact",
            "gz::sim::systems::UserCommands"} <= systems
    models = {m.get("name"): m for m in world.findall("model")}
    for name in ("table", "cube"):
        geom = model.geom(name)
        sdf = models[name]
        pos, _ = _pose(sdf)
        body_pos = model.body(geom.bodyid[0]).pos if name == "cube" else geom.pos
        np.testing.assert_allclose(pos, body_pos)
        for part in ("collision", "visual"):
            size = _floats(sdf.find(f"link/{part}/geometry/box/size").text)
            np.testing.assert_allclose(size, 2 * geom.size)
        assert float(sdf.find("link/collision/surface/friction/ode/mu").text) == geom.friction[0]
    assert models["table"].find("static").text == "true"
    cube = models["cube"]
    assert cube.find("static").text == "false"
    assert float(cube.find("link/inertial/mass").text) == pytest.approx(model.body("cube").mass[0])
    inertia = [float(cube.find(f"link/inertial/inertia/{k}").text) for k in ("ixx", "iyy", "izz")]
    np.testing.assert_allclose(inertia, model.body("cube").inertia, rtol=1e-12)
    assert cube.find("plugin").get("name") == "gz::sim::systems::PosePublisher"
    floor_z = _pose(models["floor"])[0][2]
    assert floor_z == model.geom("floor").pos[2]


def _check_camera_sensor(sensor, cam, world_rot_of_sensor, model, cfg):
    assert sensor.get("type") == "camera"
    width = int(sensor.find("camera/image/width").text)
    height = int(sensor.find("camera/image/height").text)
    assert (width, height) == (cam.width, cam.height)
    configured = {c.name: c for c in cfg.cameras}
    if cam.name in configured:
        assert (width, height) == (configured[cam.name].width, configured[cam.name].height)
        assert float(sensor.find("update_rate").text) == configured[cam.name].fps
    hfov = float(sensor.find("camera/horizontal_fov").text)
    fy = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[model.camera(cam.name).id]) / 2)
    assert width / 2 / np.tan(hfov / 2) == pytest.approx(fy)
    assert float(sensor.find("camera/lens/intrinsics/fx").text) == pytest.approx(fy)
    assert float(sensor.find("camera/lens/intrinsics/cx").text) == (width - 1) / 2
    assert sensor.find("topic").text == gazebo.gz_camera_topic(cam.name)
    # Gazebo's camera looks along its +x with +z up: MuJoCo's -z and +y.
    mj_rot = quat_to_matrix(model.camera(cam.name).quat)
    np.testing.assert_allclose(world_rot_of_sensor[:, 0], -mj_rot[:, 2], atol=1e-6)
    np.testing.assert_allclose(world_rot_of_sensor[:, 2], mj_rot[:, 1], atol=1e-6)


def test_sdf_cameras_match_the_mujoco_cameras(cfg, desc, model):
    world = ET.fromstring(gazebo.world_sdf(cfg)).find("world")
    front = next(m for m in world.findall("model") if m.get("name") == "camera_front")
    pos, rot = _pose(front)
    np.testing.assert_allclose(pos, model.camera("front").pos, atol=1e-12)
    _check_camera_sensor(front.find("link/sensor"), desc.camera("front"), rot, model, cfg)


@pytest.fixture(scope="module")
def urdf(cfg):
    return ET.fromstring(gazebo.robot_urdf(cfg, "/opt/robot_rl/config/ros2_controllers_panda.yaml"))


def test_gazebo_urdf_carries_the_drivers_ros2_control_controllers(cfg, urdf):
    block = urdf.find("ros2_control")
    assert block.find("hardware/plugin").text == "gz_ros2_control/GazeboSimSystem"
    joints = {j.get("name"): j for j in block.findall("joint")}
    assert list(joints) == cfg.robot.arm_joints + cfg.robot.gripper_joints
    controllers = yaml.safe_load((ROOT / "config" / "ros2_controllers_panda.yaml").read_text())
    effort = controllers["/**/effort_controller"]["ros__parameters"]
    gripper = controllers["/**/gripper_controller"]["ros__parameters"]
    for name in effort["joints"]:
        assert [c.get("name") for c in joints[name].findall("command_interface")] == [effort["interface_name"]]
    for name in gripper["joints"]:
        assert [c.get("name") for c in joints[name].findall("command_interface")] == [gripper["interface_name"]]
    for name, q in zip(cfg.robot.arm_joints, cfg.robot.home):
        initial = joints[name].find("state_interface[@name='position']/param[@name='initial_value']")
        assert float(initial.text) == q
    # gz_ros2_control refuses command interfaces on a mimic joint: the driver commands both.
    assert urdf.find(".//mimic") is None
    plugin = urdf.find("gazebo/plugin[@name='gz_ros2_control::GazeboSimROS2ControlPlugin']")
    assert plugin.get("filename") == "gz_ros2_control-system"
    assert plugin.find("parameters").text.endswith("ros2_controllers_panda.yaml")
    assert plugin.find("ros/remapping").text == f"/joint_states:={cfg.driver.hardware_state_topic}"
    assert "package://" not in ET.tostring(urdf, encoding="unicode")


def test_gazebo_urdf_pads_and_wrist_camera_match_the_mujoco_model(cfg, desc, model, urdf):
    links = {link.get("name") for link in urdf.findall("link")}
    for pad in desc.pads:
        link = gazebo.pad_link(pad.name)
        assert link in links
        joint = urdf.find(f"joint[@name='{link}_joint']")
        assert joint.find("parent").get("link") == pad.link
        centre = _floats(joint.find("origin").get("xyz"))
        # The pad's centre is the centre of MuJoCo's taxel sites on that finger.
        sites = [model.site(f"taxel_{pad.name}_{r}_{c}").pos for r in range(pad.rows)
                 for c in range(pad.cols)]
        np.testing.assert_allclose(centre, np.mean(sites, axis=0), atol=1e-12)
        size = _floats(urdf.find(f"link[@name='{link}']/collision/geometry/box").get("size"))
        half = model.site(f"taxel_{pad.name}_0_0").size
        np.testing.assert_allclose(size, 2 * half * [pad.cols, 1, pad.rows], atol=1e-12)
        sensor = urdf.find(f"gazebo[@reference='{link}']/sensor")
        assert sensor.get("type") == "contact"
        assert sensor.find("contact/collision").text == gazebo.pad_collision(pad.name)
        assert sensor.find("contact/topic").text == gazebo.gz_contact_topic(pad.name)
        assert urdf.find(f"gazebo[@reference='{link}_joint']/preserveFixedJoint").text == "true"
    wrist = desc.camera("wrist")
    sensor = urdf.find(f"gazebo[@reference='{wrist.parent}']/sensor")
    pos, rot = _pose(sensor)
    np.testing.assert_allclose(pos, model.camera("wrist").pos, atol=1e-12)
    _check_camera_sensor(sensor, wrist, rot, model, cfg)


def test_bridge_carries_every_contract_topic_with_its_ros_type(cfg, desc):
    from robot_rl.check_backend import contract
    entries = gazebo.bridge_config(cfg)
    assert yaml.safe_load(yaml.safe_dump(entries)) == entries
    by_ros = {e["ros_topic_name"]: e for e in entries}
    assert all(e["direction"] == "GZ_TO_ROS" for e in entries)
    want = contract(cfg, sim_clock=True)  # what `check-backend --sim-clock` checks
    assert topics.CLOCK in {s.topic for s in want.streams}
    assert topics.CLOCK not in {s.topic for s in contract(cfg).streams}
    # The joint driver publishes joint states / TCP pose / twist; the adapter the tactile images.
    driver_or_adapter = {topics.JOINT_STATES, topics.EE_POSE, topics.EE_TWIST} | {
        topics.tactile_topic(t.name) for t in cfg.tactile}
    for stream in want.streams:
        if stream.topic in driver_or_adapter:
            continue
        assert stream.topic in by_ros, f"{stream.topic} is not bridged"
        assert by_ros[stream.topic]["ros_type_name"] == stream.type
    assert by_ros[topics.CLOCK]["gz_type_name"] == "gz.msgs.Clock"
    pose = by_ros[topics.OBJECT_POSE]
    assert pose["ros_topic_name"].startswith(topics.SIM_ONLY_PREFIX)
    assert pose["ros_type_name"] == "geometry_msgs/msg/PoseStamped"
    for pad in desc.pads:
        e = by_ros[gazebo.contacts_topic(pad.name)]
        assert e["ros_topic_name"].startswith(topics.SIM_ONLY_PREFIX)
        assert (e["ros_type_name"], e["gz_type_name"]) == ("ros_gz_interfaces/msg/Contacts",
                                                           "gz.msgs.Contacts")
    world = ET.fromstring(gazebo.world_sdf(cfg))
    gz_topics = {el.text for el in world.iter("topic")} | {el.text for el in world.iter("camera_info_topic")}
    urdf_text = gazebo.robot_urdf(cfg, "c.yaml")
    for e in entries:
        if e["gz_topic_name"] in ("/clock", gazebo.gz_object_pose_topic(desc)):
            continue  # published by Gazebo itself / the pose publisher system
        assert e["gz_topic_name"] in gz_topics or f">{e['gz_topic_name']}<" in urdf_text


def test_gazebo_refuses_a_config_it_cannot_drive():
    from robot_rl.schema import ConfigError
    with pytest.raises(ConfigError, match="set driver.adapter to ros2_control"):
        gazebo.check_gazebo_config(Config())


def test_launch_plan_starts_graph_py_nodes(cfg, tmp_path):
    from robot_rl.graph import gazebo_nodes, graph
    files = gazebo.write_gazebo_files(cfg, tmp_path, ROOT / "config" / "ros2_controllers_panda.yaml")
    for path in (files.world, files.robot):
        ET.parse(path)
    assert yaml.safe_load(files.bridge.read_text()) == gazebo.bridge_config(cfg)
    for profile in ("robot", "train", "deploy"):
        gz_args, external, nodes = gazebo.launch_plan(cfg, "c.yaml", files, profile)
        expected = graph(cfg, "c.yaml", profile) + gazebo_nodes(cfg, "c.yaml")
        assert [(n.name, n.executable, n.module) for n in nodes] == \
            [(n.name, n.executable, n.module) for n in expected]
        assert all(n.parameters["use_sim_time"] is True for n in nodes)
        assert str(files.world) in gz_args
        spawners = [e.arguments[0] for e in external if e.executable == "spawner"]
        assert spawners == list(gazebo.CONTROLLERS)
    # The launch files turn exactly these node lists into actions (no node list of their own).
    for launch_file, planner, nodes_per_loop in (("gazebo.launch.py", "launch_plan", 2),
                                                 ("isaac.launch.py", "simulator_graph", 1)):
        tree = ast.parse((ROOT / "launch" / launch_file).read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert planner in {n.func.id for n in calls}
        assert sum(n.func.id == "Node" for n in calls) == nodes_per_loop
        if planner == "simulator_graph":
            call = next(n for n in calls if n.func.id == planner)
            assert isinstance(call.args[-1], ast.Constant) and call.args[-1].value == "isaac"


def test_isaac_graph_is_the_profile_plus_its_adapter_on_sim_time():
    from robot_rl.graph import graph, isaac_nodes, simulator_graph
    cfg = load_config(str(ROOT / "config" / "isaac.yaml"))
    for profile in ("robot", "train", "deploy"):
        nodes = simulator_graph(cfg, "c.yaml", profile, "isaac")
        expected = graph(cfg, "c.yaml", profile) + isaac_nodes(cfg, "c.yaml")
        assert [n.name for n in nodes] == [n.name for n in expected]
        assert nodes[-1].name == "isaac_adapter"
        assert all(n.parameters["use_sim_time"] is True for n in nodes)
    with pytest.raises(ValueError, match="unknown simulator 'webots'"):
        simulator_graph(cfg, "c.yaml", "robot", "webots")


def test_gazebo_adapter_is_a_console_script():
    import re
    setup = (ROOT / "setup.py").read_text()
    assert re.search(r'"gazebo_adapter": "robot_rl\.ros\.gazebo_adapter_node:main"', setup)
    from robot_rl.graph import gazebo_nodes
    assert gazebo_nodes(Config(), "c.yaml")[0].module == "robot_rl.ros.gazebo_adapter_node"


# -- contact-based tactile (Gazebo, Isaac Sim) against MuJoCo's touch sensors ----------------------
def test_contact_binning_reproduces_mujoco_taxels(world_factory):
    from robot_rl.sim.contact_taxels import taxel_image, to_link_frame
    world = world_factory()
    desc = scene_description(world.cfg)
    cube = world.object_pose()[0]
    ctl = world.controller
    steps = lambda s: world.step_physics(round(s / world.cfg.sim.physics_dt))  # noqa: E731
    ctl.set_cartesian_target([cube[0], cube[1], cube[2] + 0.08])
    steps(2.0)
    ctl.set_cartesian_target([cube[0], cube[1], cube[2] + 0.005])
    steps(1.5)
    world.set_gripper(0.0)
    steps(0.8)
    m, d = world.model, world.data
    for pad in desc.pads:
        body = m.body(pad.link).id
        points, forces = [], []
        for i in range(d.ncon):
            contact = d.contact[i]
            if body not in (m.geom_bodyid[contact.geom1], m.geom_bodyid[contact.geom2]):
                continue
            wrench = np.zeros(6)
            mujoco.mj_contactForce(m, d, i, wrench)
            # The contact's normal force only, as a touch sensor (and Gazebo's wrench) reports.
            force_world = contact.frame.reshape(3, 3)[0] * wrench[0]
            rot = d.xmat[body].reshape(3, 3)
            points.append(to_link_frame(contact.pos[None], d.xpos[body], rot)[0])
            forces.append(force_world @ rot)
        image = taxel_image(pad, np.array(points), np.array(forces))
        reading = world.tactile(pad.name)
        assert reading.sum() > 1.0, "no grasp: nothing to compare"
        # Every taxel MuJoCo reads is read here, in the same cell with the same force.
        touched = reading > 1e-6
        np.testing.assert_allclose(image[touched], reading[touched], rtol=5e-3)
        # Box-on-box contacts lie on the pad's corners; MuJoCo's touch sensor (a ray along the
        # contact normal into the site) counts some of those and not others: nothing else differs.
        extra = np.argwhere((image > 1e-6) & ~touched)
        assert all(r in (0, pad.rows - 1) and c in (0, pad.cols - 1) for r, c in extra), extra


def test_sim_scene_command_writes_every_backends_files(tmp_path):
    import json

    from robot_rl.cli import main
    assert main(["sim-scene", "--config", str(ROOT / "config" / "gazebo.yaml"), "--out",
                 str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bridge.yaml", "isaac_scene.json", "mujoco_world.xml", "robot.urdf", "world.sdf"]
    # The MJCF written is the world the stand-in compiles: it loads and has the described table.
    spec = mujoco.MjSpec.from_file(str(tmp_path / "mujoco_world.xml"))
    model = spec.compile()
    np.testing.assert_array_equal(model.geom("table").size, scene_description(
        load_config(str(ROOT / "config" / "gazebo.yaml"))).table.half_size)
    assert json.loads((tmp_path / "isaac_scene.json").read_text())["scene"] == "pick_cube"
    for name in ("world.sdf", "robot.urdf"):
        ET.parse(tmp_path / name)


def test_gazebo_urdf_meshes_are_files_that_exist(cfg):
    import re
    text = gazebo.robot_urdf(cfg, "c.yaml")
    meshes = re.findall(r'<mesh filename="([^"]+)"', text)
    assert meshes and all(m.startswith("file:///") for m in meshes)
    assert all(Path(m[len("file://"):]).is_file() for m in meshes)


def test_gazebo_contacts_message_binned_with_the_adapters_finger_pose(world_factory):
    """What gazebo_adapter does with a Contacts message, fed MuJoCo's contacts of a real grasp
    in that message's layout (either collision order), with the finger pose from pinocchio FK of
    the joint readings (the adapter's LinkPoser), gives MuJoCo's taxel image back."""
    from types import SimpleNamespace as NS

    from robot_rl.sim.contact_taxels import LinkPoser
    world = world_factory()
    cube = world.object_pose()[0]
    steps = lambda s: world.step_physics(round(s / world.cfg.sim.physics_dt))  # noqa: E731
    world.controller.set_cartesian_target([cube[0], cube[1], cube[2] + 0.08])
    steps(2.0)
    world.controller.set_cartesian_target([cube[0], cube[1], cube[2] + 0.005])
    steps(1.5)
    world.set_gripper(0.0)
    steps(0.8)
    m, d = world.model, world.data
    desc = scene_description(world.cfg)
    poser = LinkPoser(world.cfg.robot.urdf, desc.robot_base)
    reading = world.joints()
    joints = dict(zip(reading.names, reading.position))
    vec = lambda v: NS(x=float(v[0]), y=float(v[1]), z=float(v[2]))  # noqa: E731
    for k, pad in enumerate(desc.pads):
        body = m.body(pad.link).id
        pos, rot = poser.pose(pad.link, joints)
        np.testing.assert_allclose(pos, d.xpos[body], atol=1e-6)
        np.testing.assert_allclose(rot, d.xmat[body].reshape(3, 3), atol=1e-6)
        contacts = []
        for i in range(d.ncon):
            c = d.contact[i]
            if body not in (m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]):
                continue
            wrench = np.zeros(6)
            mujoco.mj_contactForce(m, d, i, wrench)
            on_pad = c.frame.reshape(3, 3)[0] * wrench[0]
            pad_first = (i + k) % 2 == 0  # both orders of the pair occur in Gazebo's messages
            names = (gazebo.pad_collision(pad.name), "cube::cube::cube_collision")
            first, second = names if pad_first else names[::-1]
            f1, f2 = (on_pad, -on_pad) if pad_first else (-on_pad, on_pad)
            contacts.append(NS(collision1=NS(name=f"panda::{first}"), collision2=NS(name=second),
                               positions=[vec(c.pos)],
                               wrenches=[NS(body_1_wrench=NS(force=vec(f1)),
                                            body_2_wrench=NS(force=vec(f2)))]))
        image = gazebo.contacts_image(pad, contacts, pos, rot)
        taxels = world.tactile(pad.name)
        assert taxels.sum() > 1.0
        touched = taxels > 1e-6
        np.testing.assert_allclose(image[touched], taxels[touched], rtol=5e-3)


def test_an_mjcf_scene_keeps_its_own_world_cameras(tmp_path):
    """A user's MJCF scene with a camera of another name still builds (only described scenes
    refuse cameras they have no mount for), with the robot's wrist camera and taxels added."""
    from robot_rl.sim.scene import build_model, world_mjcf
    desc = scene_description(Config())
    text = world_mjcf(desc).replace('<camera name="front"', '<camera name="top"')
    path = tmp_path / "my_scene.xml"
    path.write_text(text)
    cfg = load_config(None, {"sim.scene": str(path),
                             "cameras": [{"name": "top"}, {"name": "wrist"}]})
    model = build_model(cfg)
    assert {model.camera(i).name for i in range(model.ncam)} == {"top", "wrist"}
    assert model.nsensor == sum(t.rows * t.cols for t in cfg.tactile)
    with pytest.raises(ValueError, match="'top'.*no mount"):
        scene_description(load_config(None, {"cameras": [{"name": "top"}]}))
