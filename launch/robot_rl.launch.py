"""ros2 launch robot_rl robot_rl.launch.py config:=/path/to/config.yaml [profile:=robot]

Starts the graph described by robot_rl.graph from the given configuration (the packaged
config/default.yaml, i.e. the MuJoCo stand-in, when none is given). `robot-rl up` starts the
very same NodeSpecs as plain processes on machines without the ros2 CLI.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    from robot_rl.config import default_config_path, load_config
    from robot_rl.graph import graph, launch_node_arguments

    config_file = LaunchConfiguration("config").perform(context) or str(default_config_path())
    profile = LaunchConfiguration("profile").perform(context)
    cfg = load_config(config_file)
    return [Node(**launch_node_arguments(spec)) for spec in graph(cfg, config_file, profile)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="",
                              description="robot_rl YAML configuration file"),
        DeclareLaunchArgument("profile", default_value="robot",
                              description="robot | train | deploy (see robot_rl/graph.py)"),
        OpaqueFunction(function=_nodes),
    ])
