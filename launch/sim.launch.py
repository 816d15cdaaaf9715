"""ros2 launch robot_rl sim.launch.py  -- the MuJoCo stand-in with the default configuration."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


def generate_launch_description():
    share = get_package_share_directory("robot_rl")
    return LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot_rl.launch.py")),
        launch_arguments={"config": os.path.join(share, "config", "default.yaml")}.items())])
