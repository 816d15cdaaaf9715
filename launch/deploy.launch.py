"""ros2 launch robot_rl deploy.launch.py [config:=...] -- hardware (or sim) + the deployment
controller node running the exported ONNX policy (deploy.model)."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    share = get_package_share_directory("robot_rl")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config",
                                                                   "default.yaml")),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot_rl.launch.py")),
            launch_arguments={"config": LaunchConfiguration("config"),
                              "profile": "deploy"}.items()),
    ])
