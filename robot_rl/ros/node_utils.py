"""What every robot_rl node shares: the configuration as ROS parameters, and clean shutdown."""
from __future__ import annotations

import sys
import threading
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


def run_nodes(make_nodes: Callable[[], Sequence[Node]], args: list[str] | None = None,
              threads: int = 2, on_shutdown: Callable[[], None] | None = None) -> int:
    """Init rclpy, spin the nodes until Ctrl-C/SIGTERM, then tear everything down."""
    rclpy.init(args=args if args is not None else sys.argv)
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
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"[robot_rl] error: {exc}", file=sys.stderr)
        code = 2
    finally:
        if on_shutdown is not None:
            on_shutdown()
        for node in nodes:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


DIAGNOSTICS = "/diagnostics"


def resolve_type(type_name: str):
    """The rclpy message class of ``pkg/msg/Type`` (``sensor_msgs/msg/Image``)."""
    import importlib
    package, kind, name = type_name.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {type_name!r} is not installed; expected its Python "
                         f"package {package} (apt ros-jazzy-{package.replace('_', '-')} or "
                         f"pip ros-jazzy-{package.replace('_', '-')})") from None


def sensor_health(tracker, published: int, reader):
    """Health of a camera/tactile node: frames flowing, timeouts, a failed sensor."""
    failed = [("ERROR", f"sensor failed: {reader.failure}")] if reader and reader.failure else []
    return tracker.assess({"published": published,
                           "timeouts": reader.timeouts if reader else 0}, failed)


class Diagnostics:
    """Publishes a node's health on ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``).

    ``health()`` returns a :class:`robot_rl.diagnostics.Health`; it is called once a period
    from a timer on the node's executor, or, with ``timer=False``, whenever the owner calls
    :meth:`publish` (the controller does, from its control thread's slack).
    """

    def __init__(self, node: Node, health: Callable, period_s: float = 1.0, timer: bool = True,
                 hardware_id: str = ""):
        from diagnostic_msgs.msg import DiagnosticArray
        self.node, self.health, self.period_s = node, health, period_s
        self.name = f"robot_rl: {node.get_fully_qualified_name().lstrip('/')}"
        self.hardware_id = hardware_id
        self.published = 0
        self._pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self._timer = node.create_timer(period_s, self.publish) if timer else None

    def publish(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        from robot_rl.diagnostics import LEVELS, Health, flat_values
        try:
            health = self.health()
        except Exception as exc:  # a broken health check is itself the node's health
            health = Health("ERROR", f"health check failed: {exc!r}", {})
        status = DiagnosticStatus(level=bytes([LEVELS.index(health.level)]), name=self.name,
                                  message=health.message, hardware_id=self.hardware_id)
        status.values = [KeyValue(key=k, value=v) for k, v in flat_values(health.values).items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        try:
            self._pub.publish(array)
            self.published += 1
        except Exception:
            pass  # shutting down

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
