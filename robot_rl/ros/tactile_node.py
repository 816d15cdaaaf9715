"""Tactile node: ``/tactile/<name>/image`` and the ``/tactile/<name>/zero`` service.

Taxel arrays publish ``32FC1`` images (rows × cols, one float per taxel: newtons in the sim,
normalised units on a serial array); optical sensors publish ``rgb8``. ``zero`` (std_srvs/Trigger)
takes the current reading as the no-contact baseline.

Stored per-serial baselines (``robot-rl calibrate tactile-capture``): with ``baseline_dir`` set
(constructor argument, else a ``baseline_dir`` attribute of the sensor config, else the node
parameter ``tactile_baseline_dir`` of a standalone node) and the sensor's ``serial`` configured,
taxel frames are published normalised, ``(raw - mean) / max(std, noise_floor)``
(robot_rl.calibration.tactile). A missing or mismatched baseline is an error at start-up.
Optical (rgb8) frames are published raw.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from robot_rl.config import TactileConfig
from robot_rl.ros import messages as m


class TactileNode(Node):
    def __init__(self, sensor: TactileConfig | None = None, name: str | None = None,
                 zero: Callable[[], None] | None = None, baseline_dir: str | None = None):
        super().__init__(name or f"tactile_{sensor.name}")
        if sensor is None:
            from robot_rl.ros.node_utils import declare_config, pick_by_name
            sensor = pick_by_name(self, "tactile", declare_config(self).tactile)
            if baseline_dir is None:
                baseline_dir = self.declare_parameter("tactile_baseline_dir", "").value
        self.sensor = sensor
        self.baseline = None
        baseline_dir = baseline_dir if baseline_dir is not None else getattr(sensor, "baseline_dir", "")
        if baseline_dir and sensor.serial:
            from robot_rl.calibration.tactile import load_baseline
            shape = (sensor.rows, sensor.cols) if sensor.backend in ("sim", "serial_taxel") else None
            self.baseline = load_baseline(baseline_dir, sensor.serial, shape)
        self.frame_id = f"{sensor.name}_tactile_frame"
        self.pub = self.create_publisher(Image, m.tactile_topic(sensor.name), m.SENSOR_QOS)
        self._zero = zero
        self.create_service(Trigger, m.tactile_zero_service(sensor.name), self._on_zero)
        self._reader = None
        self.published = 0
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics, sensor_health
        tracker = HealthTracker(warn=("timeouts",), alive=("published",))
        self.diagnostics = Diagnostics(
            self, lambda: sensor_health(tracker, self.published, self._reader),
            hardware_id=sensor.serial or "")

    def publish_reading(self, data: np.ndarray, stamp: float) -> None:
        if self.baseline is not None and data.ndim == 2:
            data = self.baseline.apply(data).astype(np.float32)
        encoding = "32FC1" if data.dtype == np.float32 and data.ndim == 2 else "rgb8"
        self.pub.publish(m.image_to_msg(data, stamp, self.frame_id, encoding))
        self.published += 1

    def _on_zero(self, request, response):
        if self._zero is None:
            response.success, response.message = False, "this tactile backend cannot zero"
            return response
        try:
            self._zero()
        except Exception as exc:  # report any backend failure to the caller, keep running
            response.success, response.message = False, f"zeroing failed: {exc}"
            return response
        response.success, response.message = True, f"{self.sensor.name}: baseline zeroed"
        return response

    def start_reader(self, backend) -> None:
        from robot_rl.ros.node_utils import SensorReader
        backend.start()
        if self._zero is None and hasattr(backend, "zero"):
            self._zero = backend.zero
        self._reader = SensorReader(
            self, backend, lambda f: self.publish_reading(f.data, f.stamp_ns * 1e-9),
            self.sensor.fps, f"tactile {self.sensor.name}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    from robot_rl.sensors import make_tactile

    def make():
        node = TactileNode(name="tactile")
        node.start_reader(make_tactile(node.sensor))
        return [node]

    return run_nodes(make, args)


if __name__ == "__main__":
    raise SystemExit(main())
