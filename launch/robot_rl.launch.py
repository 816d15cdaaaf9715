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
    from robot_rl.graph import graph
    from robot_rl.sros2 import enclave_of, security_enabled

    config_file = LaunchConfiguration("config").perform(context) or str(default_config_path())
    profile = LaunchConfiguration("profile").perform(context)
    cfg = load_config(config_file)
    actions = []
    for spec in graph(cfg, config_file, profile):
        # A composed process keeps the names of the nodes it hosts (see NodeSpec.composed).
        name = {} if spec.composed else {"name": spec.name}
        if security_enabled():  # SROS2: docs/security.md (`robot-rl keys sros2`)
            name["ros_arguments"] = ["--enclave", enclave_of(spec.executable)]
        actions.append(Node(package="robot_rl", executable=spec.executable, output="screen",
                            parameters=[spec.parameters], emulate_tty=True, **name))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="",
                              description="robot_rl YAML configuration file"),
        DeclareLaunchArgument("profile", default_value="robot",
                              description="robot | train | deploy (see robot_rl/graph.py)"),
        OpaqueFunction(function=_nodes),
    ])
