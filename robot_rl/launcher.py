"""Starts a node graph as separate processes, and stops all of them on Ctrl-C or exit.

This is how the graph runs where ``ros2 launch`` does not exist (ROS 2 from pip): the same
``NodeSpec`` list the launch files use, each node a ``python -m <module> --ros-args ...``.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from robot_rl.graph import NodeSpec

_PR_SET_PDEATHSIG = 1


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...), read from /proc: what a
    stopped graph must not leave behind."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running, or stopped but not yet reaped (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _die_with_parent() -> None:
    # If the launcher is killed outright (SIGKILL, a crashed test), its nodes must not linger.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _param(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_param(v) for v in value) + "]"
    return str(value)


def node_command(spec: NodeSpec, overrides: dict | None = None,
                 env: dict | None = None) -> list[str]:
    from robot_rl.sros2 import enclave_of, security_enabled
    cmd = [sys.executable, "-m", spec.module, "--ros-args"]
    if security_enabled(env):  # SROS2 (apt ROS): each node in its own enclave
        cmd += ["--enclave", enclave_of(spec.executable)]
    if not spec.composed:
        cmd += ["-r", f"__node:={spec.name}"]
    for key, value in {**spec.parameters, **(overrides or {})}.items():
        cmd += ["-p", f"{key}:={_param(value)}"]
    return cmd


class NodeGraph:
    def __init__(self, specs: list[NodeSpec], overrides: dict | None = None,
                 log_dir: str | os.PathLike | None = None, env: dict | None = None):
        self.specs = specs
        self.overrides = overrides or {}
        self.log_dir = Path(log_dir) if log_dir else None
        self.env = {**os.environ, **(env or {})}
        self.processes: dict[str, subprocess.Popen] = {}
        self.stop_seconds: dict[str, float] = {}  # node -> seconds from SIGINT to exit
        self._logs = []

    def start(self) -> "NodeGraph":
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.specs:
                out = None
                if self.log_dir:
                    out = open(self.log_dir / f"{spec.name}.log", "ab")
                    self._logs.append(out)
                self.processes[spec.name] = subprocess.Popen(
                    node_command(spec, self.overrides, self.env), env=self.env, stdout=out,
                    stderr=subprocess.STDOUT if out else None, start_new_session=True,
                    preexec_fn=_die_with_parent)
        except BaseException:  # a signal or a failed exec half-way: stop what runs already
            self.stop()
            raise
        return self

    def failed(self) -> dict[str, int]:
        """Nodes that have exited, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def wait(self) -> int:
        """Block until a node exits (its code), or Ctrl-C / SIGTERM (0 after a clean shutdown)."""
        try:
            while True:
                done = self.failed()
                if done:
                    name, code = next(iter(done.items()))
                    print(f"[robot_rl] node {name} exited with code {code}", file=sys.stderr)
                    return code or 1
                time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through robot_rl.shutdown
            return 0
        finally:
            self.stop()

    def _wait_all(self, deadline: float, deferred, t0: float) -> None:
        while time.monotonic() < deadline and not deferred.count:
            running = False
            for name, proc in self.processes.items():
                if proc.poll() is None:
                    running = True
                elif name not in self.stop_seconds:
                    self.stop_seconds[name] = time.monotonic() - t0
            if not running:
                return
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every node (rclpy shuts down cleanly on it), then SIGTERM, then SIGKILL.

        The nodes get ``timeout`` s to save and exit; a second Ctrl-C/SIGTERM to this process
        meanwhile skips straight to the next escalation instead of raising in the middle."""
        from robot_rl.shutdown import signals_deferred

        if not self._logs and all(p.poll() is not None for p in self.processes.values()):
            return  # stopped already (wait() and the with-block both call stop)
        with signals_deferred() as deferred:
            t0 = time.monotonic()
            for proc in self.processes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            self._wait_all(t0 + timeout, deferred, t0)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                alive = [p for p in self.processes.values() if p.poll() is None]
                if not alive:
                    break
                names = [n for n, p in self.processes.items() if p.poll() is None]
                print(f"[robot_rl] {names} still running: {signal.Signals(sig).name}",
                      file=sys.stderr)
                for proc in alive:
                    proc.send_signal(sig)
                deferred.count = 0
                self._wait_all(time.monotonic() + 3.0, deferred, t0)
            for proc in self.processes.values():
                proc.wait()
            slowest = max(self.stop_seconds.items(), key=lambda kv: kv[1], default=None)
            if slowest and slowest[1] > 2.0:
                print(f"[robot_rl] nodes stopped in {slowest[1]:.1f} s (slowest {slowest[0]}; "
                      + ", ".join(f"{n} {t:.1f} s" for n, t in self.stop_seconds.items()) + ")",
                      file=sys.stderr)
            for log in self._logs:
                log.close()
            self._logs.clear()

    def __enter__(self) -> "NodeGraph":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
