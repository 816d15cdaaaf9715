"""ros2 launch robot_rl real_panda.launch.py robot_ip:=<FCI address> [config:=...] [arm_id:=fr3]
    [use_fake_hardware:=true] [franka_bringup:=false] [rviz:=false] [profile:=robot|train|deploy]

A Franka (Panda or FR3) under robot_rl in one launch: franka_ros2's own bringup (its
joint_state_publisher and robot_state_publisher moved under /franka/), robot_rl's effort
controller spawned into its controller manager
(config/ros2_controllers_panda.yaml), robot_description and TF from robot_rl's URDF, rviz with
config/robot_rl.rviz, and the robot_rl nodes of robot_rl/graph.py. What it starts is decided
by robot_rl.bringup.bringup_plan (tested without ROS); this file only turns it into actions.
Edit config/real_panda.yaml first (docs/real_robot.md).
"""
import os


def _actions(context):
    from pathlib import Path

    from ament_index_python.packages import get_package_share_directory
    from launch.actions import GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node, PushRosNamespace, SetRemap

    from robot_rl.bringup import BringupOptions, Include, bringup_plan
    from robot_rl.config import load_config

    def arg(name):
        return LaunchConfiguration(name).perform(context)

    share = Path(get_package_share_directory("robot_rl"))
    config_file = arg("config") or str(share / "config" / "real_panda.yaml")
    options = BringupOptions(
        robot_ip=arg("robot_ip"), arm_id=arg("arm_id"),
        load_gripper=arg("load_gripper") == "true",
        use_fake_hardware=arg("use_fake_hardware") == "true",
        franka_bringup=arg("franka_bringup") == "true",
        rviz=arg("rviz") == "true", profile=arg("profile"))
    actions = []
    for item in bringup_plan(load_config(config_file), config_file, share, options):
        if isinstance(item, Include):
            try:
                package_share = get_package_share_directory(item.package)
            except Exception as exc:  # PackageNotFoundError: say where to get it
                raise RuntimeError(
                    f"{item.package} is not installed ({exc}); build franka_ros2 in this "
                    f"workspace (ros2_ws/README.md) or pass franka_bringup:=false") from None
            include = IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(package_share, item.launch_file)),
                launch_arguments=item.arguments.items())
            scope = [PushRosNamespace(item.namespace)] if item.namespace else []
            scope += [SetRemap(src=src, dst=dst) for src, dst in item.remappings]
            actions.append(GroupAction(scope + [include], scoped=True))
        else:  # robot_rl's graph nodes as every launch file starts them (SROS2 enclave too)
            actions.append(Node(**item.launch_arguments()))
    return actions


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    arguments = [
        ("config", "", "robot_rl YAML configuration (default: the packaged real_panda.yaml)"),
        ("robot_ip", "", "hostname or IP address of the arm's control unit (FCI)"),
        ("arm_id", "panda", "panda | fr3 (franka_ros2's arm_id / robot_type)"),
        ("load_gripper", "true", "start franka_gripper's action servers"),
        ("use_fake_hardware", "false", "franka_ros2's fake hardware instead of the arm"),
        ("franka_bringup", "true", "include franka_bringup (false: it runs elsewhere)"),
        ("rviz", "true", "start rviz with config/robot_rl.rviz"),
        ("profile", "robot", "robot | train | deploy | teleop (robot_rl/graph.py)"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in arguments] + [OpaqueFunction(function=_actions)])
