"""``/diagnostics`` for every node: a node's health (``robot_rl/diagnostics.py``, ROS-free) as a
``diagnostic_msgs/DiagnosticArray``, plus the message-type lookup the recorder and replay share."""
from __future__ import annotations

from typing import Callable

from rclpy.node import Node

from robot_rl.topics import DIAGNOSTICS


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
