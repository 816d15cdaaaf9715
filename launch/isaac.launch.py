"""ros2 launch robot_rl isaac.launch.py [config:=...] [profile:=robot] [isaac_python:=~/isaacsim/python.sh]

The robot_rl side of Isaac Sim standing in for the arm: the nodes of robot_rl/graph.py
(``simulator_graph(cfg, config_file, profile, "isaac")``: the profile's nodes and the
isaac_adapter, on Isaac Sim's /clock). With isaac_python set it also starts the Isaac Sim app
(sim/isaac/app.py) with that interpreter; otherwise start the app yourself first
(docs/simulators.md).
"""


def _actions(context):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory
    from launch.actions import ExecuteProcess
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from robot_rl.config import load_config
    from robot_rl.graph import launch_node_arguments, simulator_graph

    def arg(name):
        return LaunchConfiguration(name).perform(context)

    share = Path(get_package_share_directory("robot_rl"))
    config_file = arg("config") or str(share / "config" / "isaac.yaml")
    cfg = load_config(config_file)
    actions = []
    if arg("isaac_python"):
        actions.append(ExecuteProcess(
            cmd=[str(Path(arg("isaac_python")).expanduser()), str(share / "sim" / "isaac" / "app.py"),
                 "--config", config_file] + (["--headless"] if arg("headless") == "true" else []),
            output="screen"))
    return actions + [Node(**launch_node_arguments(spec))
                      for spec in simulator_graph(cfg, config_file, arg("profile"), "isaac")]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    arguments = [
        ("config", "", "robot_rl YAML configuration (default: the packaged isaac.yaml)"),
        ("profile", "robot", "robot | train | deploy | teleop | demos (robot_rl/graph.py)"),
        ("isaac_python", "", "Isaac Sim's python.sh: also start sim/isaac/app.py"),
        ("headless", "true", "run the Isaac Sim app without its window"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in arguments] + [OpaqueFunction(function=_actions)])
