"""One robot description (URDF) for pinocchio, MuJoCo and the other simulators."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

EXAMPLE_ROBOTS = {"panda": "panda_description/urdf/panda.urdf"}


def _share_roots() -> list[Path]:
    """Folders that may hold ROS-style packages: ament prefixes and cmeel's wheel prefix."""
    roots = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            roots.append(Path(prefix) / "share")
    for entry in sys.path:
        candidate = Path(entry) / "cmeel.prefix" / "share"
        if candidate.is_dir():
            roots.append(candidate)
    return roots


def find_package(name: str) -> Path:
    for root in _share_roots():
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"ROS package '{name}' referenced by the URDF was not found in "
        f"{[str(r) for r in _share_roots()]}; install it (pip install {name} or apt) "
        f"or source its workspace")


def resolve_urdf(spec: str) -> Path:
    """``example-robot-data:<robot>`` or a path to a URDF file."""
    if spec.startswith("example-robot-data:"):
        robot = spec.split(":", 1)[1]
        if robot not in EXAMPLE_ROBOTS:
            raise FileNotFoundError(f"unknown example robot '{robot}'; expected one of "
                                    f"{sorted(EXAMPLE_ROBOTS)}")
        path = find_package("example-robot-data") / "robots" / EXAMPLE_ROBOTS[robot]
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"robot description {spec!r} -> {path} does not exist; "
                                f"expected a URDF file (robot.urdf in the config)")
    return path


def _resolve_package_uris(text: str) -> str:
    def replace(match: re.Match) -> str:
        return str(find_package(match.group(1))) + "/"
    return re.sub(r"package://([^/]+)/", replace, text)


def urdf_text_for_mujoco(path: Path) -> str:
    """The URDF with mesh URIs made absolute and MuJoCo compiler options added.

    Visual meshes are dropped (MuJoCo cannot read COLLADA); collision meshes are rendered
    instead. ``fusestatic="false"`` keeps fixed links such as the TCP as bodies, so frames
    can be compared one to one with pinocchio.
    """
    text = _resolve_package_uris(path.read_text())
    text = re.sub(r"<visual>.*?</visual>", "", text, flags=re.S)
    options = ('<mujoco><compiler fusestatic="false" discardvisual="false" '
               'strippath="false" balanceinertia="true"/></mujoco>')
    text, count = re.subn(r"(<robot\b[^>]*>)", r"\1" + options, text, count=1)
    if count != 1:
        raise ValueError(f"{path} has no <robot> element; expected a URDF file")
    return text
