"""ros2 launch robot_rl gazebo.launch.py [config:=...] [profile:=robot] [headless:=true]
    [out_dir:=/tmp/robot_rl_gazebo]

Gazebo (Harmonic) standing in for the arm behind robot_rl's contract: the world, robot URDF and
bridge YAML generated from the scene description (robot_rl/sim/gazebo.py) into out_dir, Gazebo
via ros_gz_sim, the robot spawned from robot_description, ros_gz_bridge, the ros2_control
controllers of config/ros2_controllers_panda.yaml, and the robot_rl nodes of robot_rl/graph.py
(the profile's plus gazebo_nodes), all on Gazebo's clock. What it starts is decided by
robot_rl.sim.gazebo.launch_plan (tested without ROS); this file only turns it into actions.
Needs ros-jazzy-ros-gz and ros-jazzy-gz-ros2-control (docs/simulators.md).
"""
import os


def _actions(context):
    from pathlib import Path

    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from robot_rl.config import load_config
    from robot_rl.graph import launch_node_arguments
    from robot_rl.sim.gazebo import launch_plan, write_gazebo_files

    def arg(name):
        return LaunchConfiguration(name).perform(context)

    try:
        from ament_index_python.packages import get_package_share_directory
        gz_share = get_package_share_directory("ros_gz_sim")
        get_package_share_directory("gz_ros2_control")
    except Exception as exc:  # PackageNotFoundError: say what to install
        raise RuntimeError(f"Gazebo's ROS packages are missing ({exc}): sudo apt install "
                           f"ros-jazzy-ros-gz ros-jazzy-gz-ros2-control") from None
    share = Path(get_package_share_directory("robot_rl"))
    config_file = arg("config") or str(share / "config" / "gazebo.yaml")
    cfg = load_config(config_file)
    files = write_gazebo_files(cfg, arg("out_dir"),
                               share / "config" / "ros2_controllers_panda.yaml")
    gz_args, external, nodes = launch_plan(cfg, config_file, files, arg("profile"),
                                           headless=arg("headless") == "true")
    actions = [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(gz_share, "launch", "gz_sim.launch.py")),
        launch_arguments={"gz_args": gz_args, "on_exit_shutdown": "true"}.items())]
    for item in external:
        name = {"name": item.name} if item.name else {}
        actions.append(Node(package=item.package, executable=item.executable,
                            arguments=item.arguments, parameters=[item.parameters],
                            output="screen", **name))
    return actions + [Node(**launch_node_arguments(spec)) for spec in nodes]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    arguments = [
        ("config", "", "robot_rl YAML configuration (default: the packaged gazebo.yaml)"),
        ("profile", "robot", "robot | train | deploy | teleop | demos (robot_rl/graph.py)"),
        ("headless", "true", "run the Gazebo server only (false: with its GUI)"),
        ("out_dir", "/tmp/robot_rl_gazebo", "where the generated world/URDF/bridge files go"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in arguments] + [OpaqueFunction(function=_actions)])
