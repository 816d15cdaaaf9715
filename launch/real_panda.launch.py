"""ros2 launch robot_rl real_panda.launch.py [config:=...] -- driver, RealSense and tactile nodes
for a Panda under ros2_control (edit config/real_panda.yaml: serials, topics, devices)."""
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
                                                                   "real_panda.yaml")),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "robot_rl.launch.py")),
            launch_arguments={"config": LaunchConfiguration("config")}.items()),
    ])
