"""What every robot_rl node shares: the configuration as ROS parameters, and clean shutdown."""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Callable, Sequence

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from robot_rl.config import Config, load_config
from robot_rl.schema import ConfigError, flatten, to_dict

_DYNAMIC = ParameterDescriptor(dynamic_typing=True)


def _is_parameter_value(value) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return True
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value))


def declare_config(node: Node) -> Config:
    """Load the config named by the ``config_file`` parameter, then expose every scalar setting
    as a ROS parameter (``sim.rate``, ``controller.stiffness_pos``...) so ``-p key:=value``
    overrides it and ``ros2 param get`` shows what the node actually runs with."""
    config_file = node.declare_parameter("config_file", "").value
    base = load_config(config_file or None)
    overrides = {}
    for key, value in flatten(to_dict(base)).items():
        if not _is_parameter_value(value):
            continue  # lists of sections (cameras, tactile) come from the file only
        param = node.declare_parameter(key, value, _DYNAMIC)
        if param.value != value:
            overrides[key] = param.value
    if not overrides:
        return base
    try:
        return load_config(config_file or None, overrides)
    except ConfigError as exc:
        raise ConfigError(f"node {node.get_name()}: parameter override rejected: {exc}") from None


class SensorReader:
    """Publishes each new frame of a started sensor backend from a thread of its own, until
    :meth:`close`.

    A stalled stream is logged and retried; a fatal sensor error (unplugged device, bad frame)
    is logged once and ends the reader, so the node keeps answering while reporting it.
    """

    def __init__(self, node: Node, backend, publish: Callable, rate_hz: float, what: str):
        self.node, self.backend, self.publish = node, backend, publish
        self.rate_hz, self.what = rate_hz, what
        self.timeouts = 0
        self.failure: str | None = None  # the fatal sensor error that ended the reader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=what, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from robot_rl.sensors.base import SensorError, SensorTimeout

        last_seq = -1
        try:
            while not self._stop.is_set():
                try:
                    frame = self.backend.latest(timeout_s=1.0)
                except SensorTimeout as exc:
                    self.timeouts += 1
                    self.node.get_logger().error(f"{self.what}: {exc}", throttle_duration_sec=2.0)
                    continue
                if frame.seq != last_seq:
                    last_seq = frame.seq
                    self.publish(frame)
                else:
                    self._stop.wait(0.5 / self.rate_hz)
        except SensorError as exc:
            self.failure = str(exc)
            self.node.get_logger().fatal(f"{self.what}: sensor failed, no more frames: {exc}")
        finally:
            self.backend.stop()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3.0)


def pick_by_name(node: Node, parameter: str, items: list):
    """The config section (camera, tactile sensor) named by the node's ``parameter``."""
    wanted = node.declare_parameter(parameter, "").value
    names = [item.name for item in items]
    if wanted not in names:
        raise ConfigError(f"node {node.get_name()}: parameter {parameter}={wanted!r} must name "
                          f"one of the configured {parameter}s {names}")
    return items[names.index(wanted)]


class NodeFailed(RuntimeError):
    """A node can no longer do its work (raise it from a callback): run_nodes logs the reason
    without a traceback and the process exits 1, so the launcher and `ros2 launch` see it."""


def _shutting_down(exc: BaseException) -> bool:
    """An error that only says a stop signal arrived: the ROS context went away under a wait
    (between the executor's checks), or the signal's interrupt landed inside rclpy's C++
    message conversion and came out as a ``RuntimeError`` (seen in CI: the intervention node
    printed a traceback on SIGTERM). Not that anything failed."""
    from rclpy._rclpy_pybind11 import RCLError

    from robot_rl.shutdown import stop_requested
    return isinstance(exc, ExternalShutdownException) or (
        isinstance(exc, RCLError) and not rclpy.ok()) or (
        isinstance(exc, RuntimeError) and stop_requested())


def _quiet_shutdown_in_threads() -> None:
    """Spin threads of helper executors (the env's, a recorder's) end with the context on a
    signal; that is a stop, not a crash worth a traceback. Every other error still prints.

    Also the signal's interrupt landing inside rclpy's ``Future.__init__`` (the executor
    making a Task) leaves a half-built Task whose ``__del__`` then fails on a missing
    attribute, printed as "Exception ignored in ... Traceback" (seen once in CI, on SIGTERM).
    Only that one, after a stop signal, is silenced."""
    from robot_rl.shutdown import stop_requested
    previous = threading.excepthook
    previous_unraisable = sys.unraisablehook

    def hook(args) -> None:
        if args.exc_value is not None and _shutting_down(args.exc_value):
            return
        previous(args)

    def unraisable(args) -> None:
        if (stop_requested() and isinstance(args.exc_value, AttributeError)
                and getattr(args.object, "__qualname__", "") == "Future.__del__"):
            return
        previous_unraisable(args)

    threading.excepthook = hook
    sys.unraisablehook = unraisable


def run_nodes(make_nodes: Callable[[], Sequence[Node]], args: list[str] | None = None,
              threads: int = 2, on_shutdown: Callable[[], None] | None = None) -> int:
    """Init rclpy, spin the nodes until Ctrl-C/SIGTERM, then tear everything down.

    SIGINT and SIGTERM (to the process or its group) end the spin; the nodes' ``close()``
    then runs with further signals deferred, so a second one cannot interrupt a save with a
    traceback. Returns 0 after a signal, 2 for a configuration or key error."""
    from robot_rl.security import SecurityError
    from robot_rl.shutdown import signals_deferred, stop_on_signals

    stop_on_signals()  # before rclpy.init, so rclpy's handler chains to it
    exit_code_box = [0]
    atexit.register(_skip_finalization, exit_code_box)  # runs after later-registered handlers
    rclpy.init(args=args if args is not None else sys.argv)
    _quiet_shutdown_in_threads()
    nodes: Sequence[Node] = ()
    code = 0
    try:
        nodes = make_nodes()
        # rclpy's MultiThreadedExecutor can hold the GIL in its dispatch loop for seconds
        # while its worker threads wait (measured: the simulated human's answers stalled up to
        # 5 s); nodes whose callbacks are all short run single-threaded.
        executor = (SingleThreadedExecutor() if threads <= 1
                    else MultiThreadedExecutor(num_threads=threads))
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigError, SecurityError, FileNotFoundError, ValueError) as exc:
        print(f"[robot_rl] error: {exc}", file=sys.stderr)
        code = 2
    except NodeFailed as exc:
        print(f"[robot_rl] node failed: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:
        if not _shutting_down(exc):
            raise
    finally:
        with signals_deferred(restore=False):  # the process exits after this
            if on_shutdown is not None:
                on_shutdown()
            for node in nodes:
                close = getattr(node, "close", None)
                if callable(close):
                    close()
                node.destroy_node()
            rclpy.try_shutdown()
        _arm_exit_watchdog(code)
    exit_code_box[0] = code  # reached only without an exception in flight
    _TEARDOWN_DONE.set()
    return code


_TEARDOWN_DONE = threading.Event()


def _skip_finalization(code_box: list) -> None:
    """After a complete teardown (every node closed, files saved and closed), end the process
    without the interpreter's finalization: tearing down torch, numpy and the DDS participant
    module by module took 3-5 s under load, longer than the whole stop is allowed. Runs as an
    atexit handler, so every non-daemon thread has been joined and the handlers registered
    after run_nodes started (by the nodes and their libraries) have run."""
    if not _TEARDOWN_DONE.is_set():
        return  # an error path: let the interpreter finish normally
    import logging
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code_box[0])


EXIT_GRACE_S = 2.0


def _arm_exit_watchdog(code: int) -> None:
    """When the interpreter exits, it joins every non-daemon thread; one stuck in a callback
    (a service waiting on a thread that stopped) would keep a stopped node alive for ever.
    Give them EXIT_GRACE_S, then name them and exit anyway."""
    def arm() -> None:
        def expire() -> None:
            time.sleep(EXIT_GRACE_S)
            names = [t.name for t in threading.enumerate()
                     if not t.daemon and t is not threading.main_thread()]
            print(f"[robot_rl] threads {names} did not finish within {EXIT_GRACE_S:g} s of "
                  f"the shutdown; exiting anyway", file=sys.stderr, flush=True)
            os._exit(code)

        threading.Thread(target=expire, name="exit-watchdog", daemon=True).start()

    register = getattr(threading, "_register_atexit", None)  # runs before the joins
    if register is not None:
        register(arm)
