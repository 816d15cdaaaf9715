"""What ``ros2 launch robot_rl real_panda.launch.py`` starts, as plain data (no ROS imports).

The launch file turns this plan into launch actions; tests check the plan itself on machines
without ``launch``/``launch_ros``. In order:

1. the arm's own bringup: ``franka_bringup``'s ``franka.launch.py`` (``ros2_control_node`` with
   the Franka hardware interface and its own controller configuration,
   ``joint_state_broadcaster``, the gripper's action servers), as its authors run it. Only the
   outputs of its ``joint_state_publisher`` and ``robot_state_publisher`` are moved under
   ``/franka/`` by node-specific remapping rules: they would otherwise publish ``/joint_states``,
   ``/robot_description`` and TF next to robot_rl's. (A namespace for the whole include would
   detach the controller manager from franka's parameter file, whose keys name
   ``controller_manager`` in the root namespace.) The controller manager reads the Franka
   description from ``/franka/robot_description`` where it subscribes to one;
2. a spawner loading robot_rl's controllers from ``config/ros2_controllers_panda.yaml`` into that
   controller manager (``/controller_manager``): the effort ``forward_command_controller`` the
   joint driver commands (and, for arms whose fingers are ros2_control joints, the gripper's);
3. ``robot_state_publisher`` with the URDF robot_rl uses (``robot.urdf``): ``robot_description``
   and TF from robot_rl's ``/joint_states``;
4. rviz with ``config/robot_rl.rviz`` (robot, TF, TCP target, workspace box, camera images) and
   the ``workspace_marker`` node that draws the box;
5. the robot_rl graph of ``robot_rl.graph`` for the chosen profile.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from robot_rl import topics as T
from robot_rl.config import Config
from robot_rl.graph import NodeSpec, graph, launch_node_arguments

CONTROLLERS_FILE = "ros2_controllers_panda.yaml"
RVIZ_FILE = "robot_rl.rviz"
EFFORT_CONTROLLER = "effort_controller"
GRIPPER_CONTROLLER = "gripper_controller"
FORWARD_COMMAND = "forward_command_controller/ForwardCommandController"
WORKSPACE_TOPIC = T.WORKSPACE_BOX


@dataclass
class BringupOptions:
    robot_ip: str = ""
    arm_id: str = "panda"               # franka_ros2's name for the arm: panda or fr3
    load_gripper: bool = True
    use_fake_hardware: bool = False
    franka_bringup: bool = True         # false: the arm's ros2_control is started elsewhere
    rviz: bool = True
    profile: str = "robot"


@dataclass
class Include:
    package: str
    launch_file: str                    # relative to the package's share folder
    arguments: dict[str, str]
    namespace: str = ""
    remappings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class NodeAction:
    package: str
    executable: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    parameters: list = field(default_factory=list)   # dicts and parameter-file paths
    composed: bool = False
    spec: NodeSpec | None = None  # a node of the robot_rl graph: started as every launch file does

    def launch_arguments(self, env=None) -> dict:
        """The keyword arguments of ``launch_ros.actions.Node`` for this action. A robot_rl
        graph node gets ``graph.launch_node_arguments`` (its SROS2 enclave included), as in
        robot_rl.launch.py; a composed process keeps the names of the nodes it hosts."""
        if self.spec is not None:
            return launch_node_arguments(self.spec, env)
        name = {} if self.composed or not self.name else {"name": self.name}
        return {"package": self.package, "executable": self.executable, "arguments": self.arguments,
                "parameters": self.parameters, "output": "screen", "emulate_tty": True, **name}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def urdf_for_rviz(path: Path) -> str:
    """The URDF with ``package://`` mesh URIs made ``file://`` paths: the pip-installed
    example-robot-data is not an ament package, so rviz could not resolve them."""
    from robot_rl.robot.description import find_package

    def replace(match: re.Match) -> str:
        return f"file://{find_package(match.group(1))}/"
    return re.sub(r"package://([^/]+)/", replace, path.read_text())


CONTROLLER_MANAGER = "/controller_manager"
# franka.launch.py's own publishers, moved out of robot_rl's topics ("node:topic" rules apply to
# that node only). The controller manager's description topic follows its publisher.
FRANKA_REMAPS = [
    ("joint_state_publisher:/joint_states", "/franka/joint_states_merged"),
    ("robot_state_publisher:/robot_description", "/franka/robot_description"),
    ("robot_state_publisher:/tf", "/franka/tf"),
    ("robot_state_publisher:/tf_static", "/franka/tf_static"),
    ("controller_manager:~/robot_description", "/franka/robot_description"),
]


def bringup_plan(cfg: Config, config_file: str, share: Path,
                 options: BringupOptions) -> list[Include | NodeAction]:
    """Everything the real-robot launch starts, for ``cfg`` read from ``config_file``."""
    if cfg.driver.adapter != "ros2_control":
        raise ValueError(f"real_panda.launch.py drives the arm through ros2_control; "
                         f"{config_file} has driver.adapter={cfg.driver.adapter!r} (use "
                         f"sim.launch.py for the MuJoCo stand-in)")
    if options.franka_bringup and not options.robot_ip and not options.use_fake_hardware:
        raise ValueError("robot_ip:=<address of the arm's control unit> is required "
                         "(or use_fake_hardware:=true, or franka_bringup:=false when the "
                         "arm's bringup runs elsewhere)")
    effort_topic = f"/{EFFORT_CONTROLLER}/commands"
    if cfg.driver.effort_command_topic != effort_topic:
        raise ValueError(f"driver.effort_command_topic is {cfg.driver.effort_command_topic!r} "
                         f"in {config_file}, but the {EFFORT_CONTROLLER} this launch spawns "
                         f"listens on {effort_topic!r}; set it so")
    plan: list[Include | NodeAction] = []
    if options.franka_bringup:
        plan.append(Include(
            "franka_bringup", "launch/franka.launch.py",
            {"robot_ip": options.robot_ip or "dont-care", "arm_id": options.arm_id,
             "robot_type": options.arm_id, "load_gripper": _flag(options.load_gripper),
             "use_fake_hardware": _flag(options.use_fake_hardware),
             "fake_sensor_commands": "false", "use_rviz": "false"},
            remappings=list(FRANKA_REMAPS)))
    controllers_file = str(share / "config" / CONTROLLERS_FILE)
    spawn = [EFFORT_CONTROLLER]
    # With franka_ros2 the fingers belong to franka_gripper's action servers, not ros2_control.
    if cfg.driver.gripper_backend == "position_controller" and not options.franka_bringup:
        spawn.append(GRIPPER_CONTROLLER)
    plan.append(NodeAction(
        "controller_manager", "spawner", "robot_rl_controllers",
        arguments=[*spawn, "--controller-manager", CONTROLLER_MANAGER,
                   "--param-file", controllers_file,
                   "--controller-type", FORWARD_COMMAND]))
    from robot_rl.robot.description import resolve_urdf
    plan.append(NodeAction(
        "robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
        parameters=[{"robot_description": urdf_for_rviz(resolve_urdf(cfg.robot.urdf))}]))
    if options.rviz:
        plan.append(NodeAction("rviz2", "rviz2", "rviz2",
                               arguments=["-d", str(share / "config" / RVIZ_FILE)]))
        plan.append(NodeAction("robot_rl", "workspace_marker", "workspace_marker",
                               parameters=[{"config_file": config_file}]))
    for spec in graph(cfg, config_file, options.profile):
        plan.append(NodeAction("robot_rl", spec.executable, spec.name,
                               parameters=[spec.parameters], composed=spec.composed, spec=spec))
    return plan


def box_edges(box_min, box_max) -> list[tuple[float, float, float]]:
    """The 12 edges of an axis-aligned box as 24 points (pairs), for a LINE_LIST marker."""
    lo, hi = [float(v) for v in box_min], [float(v) for v in box_max]
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    points = []
    for i, a in enumerate(corners):
        for b in corners[i + 1:]:
            if sum(p != q for p, q in zip(a, b)) == 1:  # neighbours differ in one axis
                points += [a, b]
    return points
