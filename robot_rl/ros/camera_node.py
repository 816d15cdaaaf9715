"""Camera node: ``/camera/<name>/image_raw`` (rgb8) and ``/camera/<name>/camera_info``.

With a real backend (RealSense) a reader thread publishes each new frame as it arrives; the
MuJoCo stand-in instead calls ``publish_frame`` once per rendered control period.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from robot_rl.config import CameraConfig
from robot_rl.ros import messages as m


class CameraNode(Node):
    def __init__(self, camera: CameraConfig | None = None, name: str | None = None):
        super().__init__(name or f"camera_{camera.name}")
        if camera is None:  # standalone process: the camera is named by a parameter
            from robot_rl.ros.node_utils import declare_config, pick_by_name
            camera = pick_by_name(self, "camera", declare_config(self).cameras)
        self.camera = camera
        self.frame_id = f"{camera.name}_optical_frame"
        self.pub_image = self.create_publisher(Image, m.camera_image_topic(camera.name),
                                               m.SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, m.camera_info_topic(camera.name),
                                              m.SENSOR_QOS)
        self.calibration = None
        if camera.info_file:
            from robot_rl.calibration.intrinsics import load_camera_info
            self.calibration = load_camera_info(camera.info_file)
        self._reader = None
        self.published = 0
        from robot_rl.diagnostics import HealthTracker
        from robot_rl.ros.diagnostics_topic import Diagnostics, sensor_health
        tracker = HealthTracker(warn=("timeouts",), alive=("published",))
        self.diagnostics = Diagnostics(
            self, lambda: sensor_health(tracker, self.published, self._reader),
            hardware_id=camera.serial)

    def publish_frame(self, image: np.ndarray, stamp: float, K: np.ndarray,
                      distortion: np.ndarray | None = None) -> None:
        if self.calibration is not None:  # a calibrated camera_info file wins over nominal values
            K, distortion = self.calibration.K, self.calibration.D
        height, width = image.shape[:2]
        self.pub_image.publish(m.image_to_msg(image, stamp, self.frame_id, "rgb8"))
        self.pub_info.publish(m.camera_info_msg(K, width, height, stamp, self.frame_id,
                                                distortion))
        self.published += 1

    def start_reader(self, backend) -> None:
        """Publish every new frame of a real backend from a thread of its own."""
        from robot_rl.ros.node_utils import SensorReader
        backend.start()
        intr = backend.intrinsics()
        distortion = np.array(intr.coeffs) if intr.coeffs else None
        self._reader = SensorReader(
            self, backend, lambda f: self.publish_frame(f.data, f.stamp_ns * 1e-9, intr.K,
                                                        distortion),
            self.camera.fps, f"camera {self.camera.name}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def main(args=None) -> int:
    from robot_rl.ros.node_utils import run_nodes
    from robot_rl.sensors import make_camera

    def make():
        node = CameraNode(name="camera")
        node.start_reader(make_camera(node.camera))
        return [node]

    return run_nodes(make, args)


if __name__ == "__main__":
    raise SystemExit(main())
