"""Where the package's shared files (config/, sim/, launch/, models/) live.

In a source checkout they sit beside the ``robot_rl`` package; after ``pip install`` or
``colcon build`` they are installed as data files under ``<prefix>/share/robot_rl``.
"""
from __future__ import annotations

import os
import sys
import tempfile
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers (and a crash) see the old file or the whole new
    one, never a part: a flushed temporary sibling (``.<name>.*.tmp``) replaces it. Creates the
    parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))
