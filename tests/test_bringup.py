"""The real-robot bringup as data: what launch/real_panda.launch.py starts, the controller
configuration it loads and the rviz view it ships (launch/launch_ros are not installable here,
so the launch file's plan is tested, and the file itself only for importing without them)."""
import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_rl import bringup
from robot_rl.bringup import BringupOptions, Include, NodeAction, bringup_plan
from robot_rl.config import load_config
from robot_rl.graph import graph

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "config" / "real_panda.yaml"


def plan(options=None, overrides=None, path=REAL):
    cfg = load_config(path, overrides)
    return cfg, bringup_plan(cfg, str(path), REPO, options or BringupOptions(robot_ip="172.16.0.2"))


def test_plan_includes_the_arms_bringup_spawns_our_controllers_and_starts_the_graph():
    cfg, items = plan()
    include = items[0]
    assert isinstance(include, Include) and include.package == "franka_bringup"
    assert include.launch_file == "launch/franka.launch.py"
    assert include.arguments["robot_ip"] == "172.16.0.2"
    assert include.arguments["use_rviz"] == "false"  # robot_rl's rviz shows the robot
    assert include.namespace == ""  # franka's parameter file names the root-namespace nodes
    # Only franka's own joint_state_publisher and robot_state_publisher outputs move: node-
    # specific rules, so that its joint_state_broadcaster (which franka.launch.py remaps to
    # franka/joint_states, robot_rl's hardware state) is untouched.
    remapped = {src.split(":")[0] for src, _ in include.remappings}
    assert remapped == {"joint_state_publisher", "robot_state_publisher", "controller_manager"}
    assert all(dst.startswith("/franka/") for _, dst in include.remappings)
    assert ("joint_state_publisher:/joint_states", "/franka/joint_states_merged") in include.remappings
    assert cfg.driver.hardware_state_topic == "/franka/joint_states"
    nodes = {item.name: item for item in items if isinstance(item, NodeAction)}
    spawner = nodes["robot_rl_controllers"]
    assert spawner.package == "controller_manager" and spawner.executable == "spawner"
    args = spawner.arguments
    assert args[args.index("--controller-manager") + 1] == "/controller_manager"
    assert Path(args[args.index("--param-file") + 1]) == REPO / "config" / bringup.CONTROLLERS_FILE
    # franka_gripper serves the fingers: no gripper controller on a Franka.
    assert bringup.EFFORT_CONTROLLER in args and bringup.GRIPPER_CONTROLLER not in args
    rviz = nodes["rviz2"]
    assert Path(rviz.arguments[1]) == REPO / "config" / bringup.RVIZ_FILE
    assert "workspace_marker" in nodes
    graph_names = [spec.name for spec in graph(cfg, str(REAL))]
    assert graph_names and all(name in nodes for name in graph_names)
    assert nodes["joint_driver"].parameters == [{"config_file": str(REAL)}]


def test_robot_description_is_the_projects_urdf_with_resolvable_meshes():
    cfg, items = plan()
    rsp = next(i for i in items if isinstance(i, NodeAction) and i.package == "robot_state_publisher")
    urdf = rsp.parameters[0]["robot_description"]
    root = ET.fromstring(urdf)
    joints = {j.get("name") for j in root.iter("joint")}
    assert set(cfg.robot.arm_joints + cfg.robot.gripper_joints) <= joints
    assert "package://" not in urdf
    meshes = [m.get("filename") for m in root.iter("mesh")]
    assert meshes and all(m.startswith("file://") and Path(m[7:]).is_file() for m in meshes)
    assert cfg.robot.base_frame in {link.get("name") for link in root.iter("link")}


def test_plan_refuses_inconsistent_settings():
    with pytest.raises(ValueError, match="robot_ip"):
        plan(BringupOptions())
    with pytest.raises(ValueError, match="effort_command_topic"):
        plan(overrides={"driver.effort_command_topic": "/franka/effort_controller/commands"})
    with pytest.raises(ValueError, match="sim.launch.py"):
        plan(overrides={"driver.adapter": "sim", "robot.hardware_compensates_gravity": False})
    # The arm's bringup started elsewhere (a generic ros2_control arm): the root controller
    # manager, and the gripper's forward controller where the fingers are ros2_control joints.
    cfg, items = plan(BringupOptions(franka_bringup=False, rviz=False),
                      {"driver.gripper_backend": "position_controller"})
    assert not any(isinstance(i, Include) for i in items)
    spawner = next(i for i in items if i.name == "robot_rl_controllers")
    assert "/controller_manager" in spawner.arguments and "gripper_controller" in spawner.arguments
    assert not any(getattr(i, "package", "") == "rviz2" for i in items)


def test_controller_configuration_matches_the_driver():
    cfg = load_config(REAL)
    data = yaml.safe_load((REPO / "config" / bringup.CONTROLLERS_FILE).read_text())
    manager = data["controller_manager"]["ros__parameters"]
    assert manager["update_rate"] >= cfg.driver.loop_rate_hz
    assert manager["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    effort = data["/**/effort_controller"]["ros__parameters"]
    assert manager["effort_controller"]["type"] == bringup.FORWARD_COMMAND
    # The driver sends torques in robot.arm_joints order: the controller's joint order.
    assert effort["joints"] == cfg.robot.arm_joints and effort["interface_name"] == "effort"
    gripper = data["/**/gripper_controller"]["ros__parameters"]
    assert gripper["joints"] == cfg.robot.gripper_joints
    assert gripper["interface_name"] == "position"


def test_rviz_config_shows_robot_target_box_and_every_camera():
    data = yaml.safe_load((REPO / "config" / bringup.RVIZ_FILE).read_text())
    manager = data["Visualization Manager"]
    displays = manager["Displays"]
    by_class = {}
    for display in displays:
        by_class.setdefault(display["Class"].split("/")[-1], []).append(display)
    assert by_class["RobotModel"][0]["Description Topic"]["Value"] == "/robot_description"
    assert "TF" in by_class
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert "/robot/ee_target" in topics
    box = by_class["MarkerArray"][0]["Topic"]
    assert box["Value"] == bringup.WORKSPACE_TOPIC
    assert box["Durability Policy"] == "Transient Local"  # the marker node latches the box
    cfg = load_config(REAL)
    assert manager["Global Options"]["Fixed Frame"] == cfg.robot.base_frame
    images = {d["Topic"]["Value"] for d in by_class["Image"]}
    assert {f"/camera/{c.name}/image_raw" for c in cfg.cameras} <= images


def test_box_edges_outline_the_box():
    points = np.array(bringup.box_edges([0.3, -0.25, 0.02], [0.7, 0.25, 0.45]))
    assert points.shape == (24, 3)
    lengths = sorted(np.round(np.linalg.norm(points[0::2] - points[1::2], axis=1), 6))
    assert lengths == [0.4] * 4 + [0.43] * 4 + [0.5] * 4
    assert set(map(tuple, points)) == {(x, y, z) for x in (0.3, 0.7) for y in (-0.25, 0.25)
                                       for z in (0.02, 0.45)}


def test_launch_files_import_without_launch_installed():
    """Only generate_launch_description needs launch/launch_ros: the module imports anywhere
    (so `ros2 launch --show-args` and these tests can load it)."""
    spec = importlib.util.spec_from_file_location("real_panda_launch",
                                                  REPO / "launch" / "real_panda.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.generate_launch_description)
    if "launch" not in sys.modules and importlib.util.find_spec("launch") is None:
        with pytest.raises(ModuleNotFoundError, match="launch"):
            module.generate_launch_description()


def test_teleop_profile_on_a_real_robot_needs_a_persons_device():
    cfg, items = plan(BringupOptions(robot_ip="172.16.0.2", profile="teleop"))
    names = [item.name for item in items if isinstance(item, NodeAction)]
    assert "teleop" in names and "intervention" in names
    assert cfg.hil.device == "spacemouse"
    with pytest.raises(ValueError, match="hil.device"):
        plan(BringupOptions(robot_ip="172.16.0.2", profile="teleop"),
             {"hil.device": "sim_human"})


def test_every_launch_file_starts_a_node_spec_the_same_way():
    """graph.launch_node_arguments: the one NodeSpec -> launch_ros Node conversion of
    robot_rl.launch.py, gazebo.launch.py and isaac.launch.py (names, parameters, SROS2 enclave)."""
    from robot_rl.graph import NodeSpec, launch_node_arguments
    plain = NodeSpec("learner", "learner", "robot_rl.ros.learner_node", {"config_file": "c.yaml"})
    composed = NodeSpec("mujoco_sim", "mujoco_sim", "robot_rl.ros.sim_node", {}, composed=True)
    args = launch_node_arguments(plain, env={})
    assert args["name"] == "learner" and args["parameters"] == [{"config_file": "c.yaml"}]
    assert args["package"] == "robot_rl" and "ros_arguments" not in args
    assert "name" not in launch_node_arguments(composed, env={})  # keeps its nodes' own names
    secure = launch_node_arguments(plain, env={"ROS_SECURITY_ENABLE": "true"})
    assert secure["ros_arguments"] == ["--enclave", "/robot_rl/learner"]
    with pytest.raises(ValueError, match="no SROS2 policy for executable 'nope'"):
        launch_node_arguments(NodeSpec("x", "nope", "m"), env={"ROS_SECURITY_ENABLE": "true"})
    for launch_file in ("robot_rl.launch.py", "gazebo.launch.py", "isaac.launch.py"):
        text = (REPO / "launch" / launch_file).read_text()
        assert "Node(**launch_node_arguments(spec))" in text, launch_file


@pytest.mark.parametrize("env", [{}, {"ROS_SECURITY_ENABLE": "true"}], ids=["plain", "sros2"])
def test_real_panda_starts_robot_rl_nodes_as_every_launch_file_does(env):
    """real_panda.launch.py's robot_rl graph nodes get graph.launch_node_arguments (names,
    parameters and, with SROS2 on, each process's enclave), like robot_rl.launch.py; the arm's
    own processes keep the plan's package, arguments and parameters."""
    from robot_rl.graph import launch_node_arguments
    cfg, items = plan(BringupOptions(robot_ip="172.16.0.2", profile="train"))
    specs = graph(cfg, str(REAL), "train")
    started = {item.name: item.launch_arguments(env) for item in items
               if isinstance(item, NodeAction) and item.spec is not None}
    assert set(started) == {spec.name for spec in specs} and "learner" in started
    for spec in specs:
        assert started[spec.name] == launch_node_arguments(spec, env), spec.name
    if env:
        assert started["learner"]["ros_arguments"] == ["--enclave", "/robot_rl/learner"]
    spawner = next(item for item in items if isinstance(item, NodeAction) and item.executable == "spawner")
    args = spawner.launch_arguments(env)
    assert (args["package"], args["name"], args["arguments"]) == \
        ("controller_manager", "robot_rl_controllers", spawner.arguments)
    assert "ros_arguments" not in args  # franka's and ROS's own tools have no robot_rl enclave
    text = (REPO / "launch" / "real_panda.launch.py").read_text()
    assert "Node(**item.launch_arguments())" in text and "Node(package=" not in text
