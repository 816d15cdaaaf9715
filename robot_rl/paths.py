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


def find_user_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Where a configured path such as ``deploy.model: models/policy.onnx`` points.

    An absolute path is taken as is. A relative one is looked up first in the working directory
    (a user's project: ``robot-rl export --out models/policy.onnx`` then ``robot-rl up`` from the
    same folder), then in the share folder (a model placed in the checkout's ``models/`` before
    ``pip install`` / ``colcon build`` is installed under ``share/robot_rl/models`` and found
    from any directory, e.g. by ``ros2 launch``). Raises FileNotFoundError naming every place
    it looked."""
    path = Path(path).expanduser()
    if path.is_absolute():
        if path.exists():
            return path
        raise FileNotFoundError(f"{what} {path} does not exist")
    tried = [Path.cwd() / path]
    try:
        tried.append(share_dir() / path)
    except FileNotFoundError:
        pass
    for candidate in tried:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{what} {path} not found; looked in {' and '.join(str(c) for c in tried)} "
                            "(a relative path is tried against the working directory, then the "
                            f"{PACKAGE} share folder)")


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no thread-safe getter elsewhere: set and restore
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` would leave: a replaced file keeps its own, a new one
    gets 0o666 less the umask. (mkstemp's 0o600 would hide a model's metadata or a calibration
    file from the service user that runs the robot.)"""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers (and a crash) see the old file or the whole new
    one, never a part: a flushed temporary sibling (``.<name>.*.tmp``) replaces it. Creates the
    parent folder; the file gets the permissions a plain write would give it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode(path))
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
