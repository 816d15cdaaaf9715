from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_rl"

# Console scripts land in lib/robot_rl under colcon (setup.cfg), where `ros2 run` looks, and on
# PATH under pip. Node executables are named as in launch/ and robot_rl/graph.py.
NODES = {
    "mujoco_sim": "robot_rl.ros.sim_node:main",
    "joint_driver": "robot_rl.ros.joint_driver_node:main",
    "camera": "robot_rl.ros.camera_node:main",
    "tactile": "robot_rl.ros.tactile_node:main",
    "actor": "robot_rl.ros.actor_node:main",
    "learner": "robot_rl.ros.learner_node:main",
    "intervention": "robot_rl.ros.intervention_node:main",
    "reset": "robot_rl.ros.reset_node:main",
    "reward": "robot_rl.ros.reward_node:main",
    "controller": "robot_rl.ros.controller_node:main",
    "standin_hardware": "robot_rl.ros.standin_hardware_node:main",
    "workspace_marker": "robot_rl.ros.workspace_marker_node:main",
    "teleop": "robot_rl.ros.teleop_node:main",
    "recorder": "robot_rl.ros.recorder_node:main",
    "replay": "robot_rl.ros.replay_node:main",
    "gazebo_adapter": "robot_rl.ros.gazebo_adapter_node:main",
    "isaac_adapter": "robot_rl.ros.isaac_adapter_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/sim", glob("sim/*.xml")),
        (f"share/{PACKAGE}/sim/assets", glob("sim/assets/*")),
        (f"share/{PACKAGE}/sim/isaac", glob("sim/isaac/*.py")),
        # Exported policies put here before the build are found from any directory (models/README.md).
        (f"share/{PACKAGE}/models", ["models/README.md"] + glob("models/*.onnx") + glob("models/*.json")),
        (f"share/{PACKAGE}/calibration", ["calibration/README.md"]),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26",
        "pyyaml>=6",
        "mujoco>=3.2",
        "pin>=3",
        "example-robot-data>=4",
        "torch==2.13.0",
        "onnx>=1.16",
        "onnxscript>=0.5",  # torch.onnx dynamo exporter
        "onnxruntime>=1.18",
        "gymnasium>=1.0",
        "safetensors>=0.4",
        "tensorboard>=2.16",
        "opencv-python-headless>=4.9",
        "rich>=13",
        "matplotlib>=3.8",
        "cryptography>=42",  # Ed25519 signatures of learning traffic (robot_rl/security.py)
        "mcap>=1.2",  # recordings (robot_rl/data/mcap_io.py)
        "mcap-ros2-support>=0.5",
        "rosbags>=0.10",  # ROS 2 Jazzy message definitions for MCAP schemas
        "pillow>=9",  # the demo report's GIF
        "pyarrow>=15",  # LeRobot v3.0 datasets (robot_rl/data/lerobot.py)
        "pandas>=2",  # the dataset's meta/tasks.parquet keeps LeRobot's pandas index
        "rerun-sdk>=0.41,<0.42",  # robot-rl view; its viewer/server binary ships in the wheel
    ],
    extras_require={
        # A real rclpy on Fast DDS from PyPI, for machines without ROS 2 from apt.
        "ros": [
            "ros-jazzy-rclpy[fastrtps]",
            "ros-jazzy-std-msgs",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-std-srvs",
            "ros-jazzy-trajectory-msgs",
            # test_msgs' Fibonacci action: the stand-in type for franka_gripper's actions in tests
            "ros-jazzy-test-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-visualization-msgs",  # the workspace box marker for rviz
        ],
        "hardware": ["pyrealsense2", "pyserial", "hidapi", "pygame"],
        "test": ["pytest>=8", "hypothesis>=6", "pytest-timeout>=2",
                 # LeRobot's dataset loader (lerobot-dataset, installed --no-deps by
                 # scripts/install.sh: its opencv<4.13 pin would downgrade opencv and numpy)
                 # reads the exports in tests/data; these are the dependencies it imports.
                 "datasets>=4.0,<4.2", "huggingface-hub>=0.34.2,<0.36", "av>=15,<16",
                 "websockets>=13",  # tests/ros/headless_browser.py drives Chromium
                 "gymnasium-robotics==1.4.2"],  # a stock task for tests/learning/test_fetch_task.py
    },
    zip_safe=True,
    entry_points={
        "console_scripts": ["robot-rl = robot_rl.cli:main"]
        + [f"{name} = {target}" for name, target in NODES.items()],
    },
)
