"""Where the package's shared files (config/, sim/, launch/, models/) live.

In a source checkout they sit beside the ``robot_rl`` package; after ``pip install`` or
``colcon build`` they are installed as data files under ``<prefix>/share/robot_rl``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "robot_rl"


def share_dir() -> Path:
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "package.xml").is_file() and (checkout / "sim").is_dir():
        return checkout
    candidates = [Path(sys.prefix) / "share" / PACKAGE]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE)
    for candidate in candidates:
        if (candidate / "sim").is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the installed share/{PACKAGE} folder (looked in "
        f"{', '.join(map(str, candidates))}); reinstall the package")


def shared_file(*parts: str) -> Path:
    return share_dir().joinpath(*parts)
