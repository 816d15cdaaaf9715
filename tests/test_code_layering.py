"""The import graph flows one way: ROS-free packages do not import ROS, and no module cycles.

Read from the source (AST), module-level and function-level imports alike, so a lazy import
inside a function counts (it still ties the modules together at run time). Imports under
``if TYPE_CHECKING:`` never run and are left out. The graph helpers are bench/code_shape.py's,
which prints the same figures.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_code_shape():
    spec = importlib.util.spec_from_file_location("robot_rl_code_shape", ROOT / "bench" / "code_shape.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


code_shape = _load_code_shape()

#: Packages described as ROS-free: their logic is tested without rclpy and reused by the nodes.
ROS_FREE_PACKAGES = ("robot", "sim", "envs", "learning", "deploy", "calibration", "sensors", "hil")
#: What counts as ROS: rclpy, the message/service packages and the node package.
ROS_ROOTS = ("rclpy", "rosidl_runtime_py", "builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs",
             "std_srvs", "trajectory_msgs", "rcl_interfaces", "robot_rl.ros")

#: Modules of those packages that talk ROS on purpose, with why. Keep this list short and true.
KNOWN_ROS_IMPORTS = {
    "robot_rl.envs.ros_env": "the Gymnasium env over the ROS 2 robot contract is a ROS client by design",
    "robot_rl.hil.devices": "JoyTopicDevice subscribes sensor_msgs/Joy on a node it is given (function-level import)",
}
#: Modules that name a ROS module for importlib instead of importing it.
KNOWN_ROS_BY_NAME = {
    "robot_rl.calibration.cli": "the `robot-rl calibrate` live steps (capture, guided, tactile-capture) start "
                                "robot_rl.ros.calibration_client by name; everything they call is ROS-free",
}

#: Import cycles that exist today, each as the set of modules in it (a strongly connected
#: component of the import graph), with why it is tolerated. Empty: none is.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _is_ros(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in ROS_ROOTS)


def _ros_free_modules() -> dict[str, Path]:
    return {name: path for name, path in code_shape.module_files().items()
            if name.count(".") >= 1 and name.split(".")[1] in ROS_FREE_PACKAGES}


def test_ros_free_packages_import_no_ros():
    offenders: dict[str, list[str]] = {}
    for name, path in _ros_free_modules().items():
        hits = sorted({f"{ref.imported} (line {ref.line}{', in a function' if ref.function_level else ''})"
                       for ref in code_shape.imports_of(name, path) if _is_ros(ref.imported)})
        if hits:
            offenders[name] = hits
    unexpected = {k: v for k, v in offenders.items() if k not in KNOWN_ROS_IMPORTS}
    assert not unexpected, (
        "ROS-free packages import ROS (move the ROS side into robot_rl/ros/ as a thin node around a "
        f"ROS-free core, or list the module in KNOWN_ROS_IMPORTS with a reason): {unexpected}")
    stale = sorted(set(KNOWN_ROS_IMPORTS) - set(offenders))
    assert not stale, f"KNOWN_ROS_IMPORTS lists modules that no longer import ROS; remove them: {stale}"


def test_ros_free_packages_name_no_ros_module_for_importlib():
    offenders = {}
    for name, path in _ros_free_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = sorted({node.value for node in ast.walk(tree)
                        if isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and _is_ros(node.value.partition(":")[0])})
        if named:
            offenders[name] = named
    assert set(offenders) == set(KNOWN_ROS_BY_NAME), (
        f"modules naming ROS modules: {offenders}; known: {sorted(KNOWN_ROS_BY_NAME)}")


def test_calibration_package_is_importable_without_ros():
    """Its own modules (not robot_rl.ros) import nothing of ROS, not even lazily."""
    calibration = {n: p for n, p in _ros_free_modules().items() if n.startswith("robot_rl.calibration")}
    assert "robot_rl.calibration.solve" in calibration and "robot_rl.calibration.robot_link" in calibration
    for name, path in calibration.items():
        assert not [r.imported for r in code_shape.imports_of(name, path) if _is_ros(r.imported)], name


def test_no_import_cycles_among_robot_rl_modules():
    graph = code_shape.import_graph()
    cycles = code_shape.strongly_connected(graph)
    unexpected = [" -> ".join(code_shape.a_cycle(graph, c)) + f" ({len(c)} modules)"
                  for c in cycles if c not in KNOWN_CYCLES]
    assert not unexpected, (
        "import cycles (module- or function-level imports; move the shared piece into a lower "
        f"module so imports flow one way): {unexpected}")


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "robot_rl"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from robot_rl.sub.c import g\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import x\n"
                                      "def g():\n    import robot_rl.sub.a\n")
    (pkg / "sub" / "d.py").write_text("from .c import g\n")
    modules = code_shape.module_files(tmp_path, "robot_rl")
    graph = code_shape.import_graph(modules)
    assert code_shape.strongly_connected(graph) == [frozenset({"robot_rl.sub.a", "robot_rl.sub.b", "robot_rl.sub.c"})]
    assert "robot_rl.sub.d" not in graph["robot_rl.sub.c"]  # TYPE_CHECKING-only
    refs = code_shape.imports_of("robot_rl.sub.b", modules["robot_rl.sub.b"])
    assert any(r.imported == "robot_rl.sub.c" and r.function_level for r in refs)


def test_calibration_node_shell_stays_thin():
    """The calibration flows' ROS side is a thin node (the issue's bound: under 300 lines)."""
    shell = ROOT / "robot_rl" / "ros" / "calibration_client.py"
    assert len(shell.read_text(encoding="utf-8").splitlines()) < 300
