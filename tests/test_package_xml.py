"""package.xml against what the package imports, so `rosdep install --from-paths` on a robot
brings everything the nodes need; ros2_ws/README.md against setup.py's executables.

Every third-party import of robot_rl/ and launch/ (exec) and tests/ (test) must map to a
depend, to requirements-ros-apt.txt (pip: not in rosdep for Jazzy) or to a package built from
source that the docs name; every depend must be used by an import or by what the launch files
start."""
import ast
import functools
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Python module -> rosdep key, where they differ from the module name.
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "yaml": "python3-yaml", "cv2": "python3-opencv",
    "rich": "python3-rich", "matplotlib": "python3-matplotlib", "serial": "python3-serial",
    "hid": "python3-hidapi", "pygame": "python3-pygame", "pyrealsense2": "librealsense2",
    "pinocchio": "pinocchio", "pytest": "python3-pytest", "hypothesis": "python3-hypothesis",
    "cryptography": "python3-cryptography", "PIL": "python3-pil", "pandas": "python3-pandas",
}
# Not in rosdep for Jazzy: pip, from requirements-ros-apt.txt (module -> distribution).
PIP_ONLY = {"mujoco": "mujoco", "torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime",
            "gymnasium": "gymnasium", "safetensors": "safetensors",
            "pyrealsense2": "pyrealsense2", "pyarrow": "pyarrow", "rerun": "rerun-sdk",
            "rerun_cli": "rerun-sdk", "mcap": "mcap", "mcap_ros2": "mcap-ros2-support",
            "rosbags": "rosbags"}
# Runtime needs that no module imports by name, with where they are used.
NOT_IMPORTED = {"example-robot-data": "pip: the Panda URDF (robot_rl/robot/description.py)",
                "tensorboard": "pip: torch.utils.tensorboard", "onnxscript": "pip: torch.onnx"}
# Released nowhere for Jazzy: built from source in the workspace (ros2_ws/README.md says how).
FROM_SOURCE = {"franka_msgs": "franka_ros2"}
# Only the benchmarks' reference implementation; not a dependency of the package. Gymnasium-
# Robotics: the stock task of bench/past_demos_fetch.py (and its test); robot_rl/envs/fetch.py
# imports it only when asked for a Fetch env and says how to install it (the test extra).
BENCH_ONLY = {"stable_baselines3", "gymnasium_robotics"}
# Only tests import these (pip: setup.py's test extra, scripts/install.sh); a robot needs none.
TEST_ONLY = {"websockets": "drives Chromium (tests/ros/headless_browser.py)",
             "ledataset": "lerobot-dataset: LeRobot's own loader reads our exports (tests/data)",
             "torchvision": "imported by LeRobot's loader when it can be (tests/data)"}
# Only on a simulator's own machine, installed with the simulator (docs/simulators.md); the
# modules that need them say so when they are missing.
SIMULATOR_ONLY = {"isaaclab": "Isaac Lab in Isaac Sim's Python (robot_rl/sim/isaac/lab_env.py)",
                  "simulation_interfaces": "apt, beside Isaac Sim (robot_rl/ros/isaac_adapter_node.py)",
                  "ros_gz_interfaces": "apt ros-jazzy-ros-gz, beside Gazebo (robot_rl/ros/gazebo_adapter_node.py)"}
# Started by launch/real_panda.launch.py (robot_rl/bringup.py) or named as controller types in
# config/ros2_controllers_panda.yaml (no import).
LAUNCHED = {"robot_state_publisher", "rviz2", "controller_manager", "joint_state_broadcaster",
            "forward_command_controller"}
ROS_SUFFIXES = ("_msgs", "_srvs", "_interfaces")
ROS_MODULES = {"rclpy", "launch", "launch_ros", "ament_index_python"}


@functools.lru_cache(maxsize=None)
def imports(folder: str) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it (function-level imports included)."""
    found: dict[str, set[str]] = {}
    local = {"robot_rl", "tests", "bench"}
    for path in (REPO / folder).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("importorskip", "import_module") and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]  # pytest.importorskip / importlib.import_module
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def depends() -> dict[str, set[str]]:
    root = ET.parse(REPO / "package.xml").getroot()
    tags: dict[str, set[str]] = {}
    for element in root:
        if element.tag.endswith("depend"):
            tags.setdefault(element.tag, set()).add(element.text.strip())
    return tags


def requirement_names() -> set[str]:
    names = set()
    for line in (REPO / "requirements-ros-apt.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!\[ ]", line)[0].lower())
    return names


def is_ros(module: str) -> bool:
    return module in ROS_MODULES or module.endswith(ROS_SUFFIXES)


def keys_for(modules, tests: bool = False) -> tuple[set[str], list[str]]:
    """rosdep keys the modules need, and the modules nothing accounts for."""
    keys, unknown = set(), []
    for module in modules:
        if (module in FROM_SOURCE or module in BENCH_ONLY or module in SIMULATOR_ONLY
                or (tests and module in TEST_ONLY)):
            continue
        if is_ros(module):
            keys.add(module)
        elif module in ROSDEP_KEYS:
            keys.add(ROSDEP_KEYS[module])
        elif module not in PIP_ONLY:
            unknown.append(module)
    return keys, unknown


def test_every_import_has_a_depend():
    tags = depends()
    run = tags.get("exec_depend", set()) | tags.get("depend", set())
    test = tags.get("test_depend", set())
    package_imports = imports("robot_rl") | imports("launch")
    needed, unknown = keys_for(package_imports)
    assert not unknown, (f"imports with no rosdep key or pip requirement: "
                         f"{ {m: sorted(package_imports[m]) for m in unknown} }; add them to "
                         f"package.xml (or requirements-ros-apt.txt) and to this test's tables")
    missing = needed - run
    assert not missing, f"package.xml lacks exec_depend for {sorted(missing)}"
    test_needed, unknown = keys_for(imports("tests"), tests=True)
    assert not unknown, f"test imports with no key: {unknown}"
    missing = test_needed - run - test
    assert not missing, f"package.xml lacks test_depend for {sorted(missing)}"


def test_every_depend_is_used():
    tags = depends()
    used, _ = keys_for(imports("robot_rl") | imports("launch"))
    test_used, _ = keys_for(imports("tests"), tests=True)
    bringup = ((REPO / "robot_rl" / "bringup.py").read_text()
               + (REPO / "config" / "ros2_controllers_panda.yaml").read_text())
    for package in LAUNCHED:
        assert re.search(rf"\b{package}\b", bringup), (
            f"{package}: neither robot_rl/bringup.py nor the controller configuration uses it")
    unused = tags["exec_depend"] - used - LAUNCHED
    assert not unused, f"exec_depend nobody imports or launches: {sorted(unused)}"
    unused = tags.get("test_depend", set()) - test_used
    assert not unused, f"test_depend no test imports: {sorted(unused)}"
    assert "trajectory_msgs" not in tags["exec_depend"]


def test_pip_requirements_cover_what_rosdep_cannot():
    names = requirement_names()
    imported = imports("robot_rl")
    for module, distribution in PIP_ONLY.items():
        if module in imported:
            assert distribution in names, f"{distribution} missing from requirements-ros-apt.txt"
    for distribution in NOT_IMPORTED:
        assert distribution in names, f"{distribution} missing from requirements-ros-apt.txt"
    text = (REPO / "package.xml").read_text()
    assert "requirements-ros-apt.txt" in text and "requirements.txt " not in text
    for module, source in FROM_SOURCE.items():
        assert source in (REPO / "ros2_ws" / "README.md").read_text(), source
        assert source in text


def test_ros2_ws_readme_names_every_executable():
    setup = (REPO / "setup.py").read_text()
    block = re.search(r"NODES = \{(.*?)\n\}", setup, re.S).group(1)
    executables = set(re.findall(r'"([a-z_]+)": "robot_rl', block)) | {"robot-rl"}
    readme = (REPO / "ros2_ws" / "README.md").read_text()
    listed = set(re.findall(r"`([a-z_-]+)`", readme))
    missing = executables - listed
    assert not missing, f"ros2_ws/README.md does not name {sorted(missing)}"
    assert len(executables) >= 10
