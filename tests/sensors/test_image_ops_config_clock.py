import threading
import time

import numpy as np
import pytest

from robot_rl.sensors import CameraConfig, CameraIntrinsics, Frame, SensorError, SensorTimeout, TactileConfig
from robot_rl.sensors import make_camera, register_camera_backend
from robot_rl.sensors._stream import LatestFrameSlot
from robot_rl.sensors.clock import DeviceClockMapper, host_time_ns
from robot_rl.sensors.image_ops import ImageTransform, crop_resize, crop_resize_intrinsics

INTR = CameraIntrinsics(width=640, height=480, fx=600.0, fy=610.0, cx=318.3, cy=244.7,
                        model="brown_conrady", coeffs=(0.1, -0.05, 0.0, 0.0, 0.01))


# --- image_ops ----------------------------------------------------------------

def test_crop_shifts_principal_point_only():
    out = crop_resize_intrinsics(INTR, (100, 50, 300, 200), None)
    assert (out.width, out.height) == (300, 200)
    assert (out.fx, out.fy) == (600.0, 610.0)
    assert out.cx == pytest.approx(218.3) and out.cy == pytest.approx(194.7)
    assert out.coeffs == INTR.coeffs and out.model == "brown_conrady"


def test_resize_scales_focal_and_principal_point():
    out = crop_resize_intrinsics(INTR, None, (320, 120))  # sx = 0.5, sy = 0.25
    assert out.fx == pytest.approx(300.0) and out.fy == pytest.approx(152.5)
    assert out.cx == pytest.approx((318.3 + 0.5) * 0.5 - 0.5)
    assert out.cy == pytest.approx((244.7 + 0.5) * 0.25 - 0.5)


def test_crop_then_resize_composes():
    out = crop_resize_intrinsics(INTR, (100, 40, 400, 300), (200, 150))
    assert out.cx == pytest.approx((318.3 - 100 + 0.5) * 0.5 - 0.5)
    assert out.cy == pytest.approx((244.7 - 40 + 0.5) * 0.5 - 0.5)
    np.testing.assert_allclose(out.K, [[300, 0, out.cx], [0, 305, out.cy], [0, 0, 1]])


def _blob_centroid(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    w = img.astype(np.float64)
    return float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum())


@pytest.mark.parametrize("crop,resize", [((0, 0, 640, 480), (160, 120)),
                                         ((101, 37, 400, 300), (100, 75)),
                                         ((64, 48, 320, 240), None),
                                         ((64, 48, 320, 240), (480, 360))])
def test_intrinsics_match_pixels(crop, resize):
    """Project a 3-D point with the original intrinsics, draw it, crop/resize
    the image with cv2, and check the blob lands where the new intrinsics
    project the same point (the half-pixel convention matters here)."""
    P = np.array([0.05, -0.03, 1.0])
    u, v = INTR.fx * P[0] / P[2] + INTR.cx, INTR.fy * P[1] / P[2] + INTR.cy
    img = np.zeros((480, 640), np.float32)
    ui, vi = int(round(u)), int(round(v))
    img[vi - 4:vi + 4, ui - 4:ui + 4] = 1.0  # 8x8 block centred at (ui - 0.5, vi - 0.5)
    cu, cv_ = ui - 0.5, vi - 0.5
    # The drawn blob centre is (cu, cv_); project that point with the new K.
    out = crop_resize(img, crop, resize)
    k2 = crop_resize_intrinsics(INTR, crop, resize)
    expect = ((cu - INTR.cx) * k2.fx / INTR.fx + k2.cx, (cv_ - INTR.cy) * k2.fy / INTR.fy + k2.cy)
    got = _blob_centroid(out)
    assert got == pytest.approx(expect, abs=0.02)
    assert out.shape == (k2.height, k2.width)


@pytest.mark.parametrize("crop", [(-1, 0, 10, 10), (0, 0, 641, 10), (600, 0, 50, 10),
                                  (0, 470, 10, 11), (0, 0, 0, 10)])
def test_crop_outside_image_is_a_clear_error(crop):
    with pytest.raises(ValueError, match=r"crop"):
        ImageTransform(640, 480, crop, None)


def test_bad_resize_and_shape_mismatch():
    with pytest.raises(ValueError, match="resize"):
        ImageTransform(640, 480, None, (0, 10))
    with pytest.raises(ValueError, match="expects 640x480"):
        ImageTransform(640, 480).apply(np.zeros((10, 10, 3), np.uint8))


def test_apply_returns_contiguous_copy_on_crop():
    img = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    out = ImageTransform(64, 48, (1, 2, 10, 5)).apply(img)
    assert out.flags.c_contiguous and not np.shares_memory(out, img)
    np.testing.assert_array_equal(out, img[2:7, 1:11])


# --- config -----------------------------------------------------------------------

def test_configs_have_defaults_and_coerce_yaml_lists():
    c = CameraConfig(backend="realsense", serial=123456789012, crop=[0, 0, 320, 240], resize=[160, 120])
    assert c.serial == "123456789012" and c.crop == (0, 0, 320, 240) and c.output_size == (160, 120)
    t = TactileConfig(backend="serial_taxel", shape=[8, 8])
    assert t.shape == (8, 8) and CameraConfig().backend == "sim" and TactileConfig().backend == "sim"


@pytest.mark.parametrize("kw,match", [({"backend": "kinect"}, "backend"), ({"fps": 0}, "fps"),
                                      ({"crop": [0, 0, 10]}, "crop"), ({"crop": (600, 0, 100, 10)}, "outside"),
                                      ({"resize": (10, -1)}, "resize")])
def test_camera_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        CameraConfig(**kw)


@pytest.mark.parametrize("kw,match", [({"backend": "x"}, "backend"), ({"shape": (0, 4)}, "shape"),
                                      ({"units": "newton"}, "newtons_per_count"), ({"zero_frames": 0}, "zero")])
def test_tactile_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        TactileConfig(**kw)


def test_factory_unregistered_sim_and_registration():
    with pytest.raises(SensorError, match="'sim' is not registered"):
        make_camera(CameraConfig(backend="sim"))
    sentinel = object()
    register_camera_backend("sim", lambda cfg: sentinel)
    try:
        assert make_camera(CameraConfig()) is sentinel
    finally:
        from robot_rl import sensors
        sensors._CAMERA_FACTORIES.pop("sim")


# --- clock & latest slot ----------------------------------------------------------

def test_host_clock_is_wall_epoch_and_monotonic():
    a = host_time_ns()
    b = host_time_ns()
    assert b >= a and abs(a - time.time_ns()) < 1_000_000_000


def test_device_clock_mapper_min_filter():
    m = DeviceClockMapper(drift_ppm=0)
    offset = 1_000_000_000_000
    lat = [5_000_000, 1_000_000, 8_000_000, 2_000_000]  # transport latencies
    dev0 = 10_000_000_000  # device clock reads 10 s at our first sample
    out = [m.map(dev0 + k * 10_000_000, k * 10_000_000 + offset + lat[k]) for k in range(4)]
    # After the 1 ms sample, stamps are arrival-time-of-a-1-ms-transfer: latency spikes don't leak in.
    assert out[2] == 20_000_000 + offset + 1_000_000 and out[3] == 30_000_000 + offset + 1_000_000
    assert all(o <= k * 10_000_000 + offset + lat[k] for k, o in enumerate(out))  # never after arrival
    # A device clock reset (back to 0) re-seeds instead of producing a stamp 10 s in the past.
    assert m.map(0, 50_000_000 + offset + 3_000_000) == 50_000_000 + offset + 3_000_000


def test_latest_slot_semantics():
    slot = LatestFrameSlot("s")
    with pytest.raises(SensorTimeout, match="no frame received"):
        slot.get(0.05)
    f = Frame(np.zeros(1), 1, 0)
    t = threading.Timer(0.05, slot.publish, args=(f,))
    t.start()
    assert slot.get(1.0) is f  # waits for the first frame
    t.join()
    time.sleep(0.12)
    assert slot.get(1.0) is f  # 0.12 s old is fresh enough for a 1 s timeout
    with pytest.raises(SensorTimeout, match="stalled"):
        slot.get(0.05)  # but not for 0.05 s
    with pytest.raises(ValueError):
        slot.get(0)
    slot.fail(OSError("unplugged"))
    with pytest.raises(SensorError, match="unplugged"):
        slot.get(1.0)


def test_central_schema_sections_are_the_backend_configs():
    """One schema: the YAML's camera/tactile sections are these very classes, so the
    backends receive exactly what the user wrote; anything else is refused clearly."""
    from robot_rl.config import load_config
    from robot_rl.sensors import SensorError, make_camera, make_tactile

    cfg = load_config(None, {"cameras": [{"name": "front", "backend": "realsense", "serial": "123",
                                          "width": 128, "height": 128, "crop": [0, 0, 64, 64]}],
                             "tactile": [{"name": "left", "backend": "serial_taxel",
                                          "device": "/dev/ttyUSB0", "shape": [4, 5]}]})
    c, t = cfg.cameras[0], cfg.tactile[0]
    assert isinstance(c, CameraConfig) and isinstance(t, TactileConfig)
    assert (c.backend, c.serial, tuple(c.crop), c.start_timeout_s) == ("realsense", "123", (0, 0, 64, 64), 5.0)
    assert (t.shape, t.rows, t.cols, t.device) == ((4, 5), 4, 5, "/dev/ttyUSB0")
    with pytest.raises(TypeError, match="needs a CameraConfig"):
        make_camera({"backend": "realsense"})
    with pytest.raises(TypeError, match="needs a TactileConfig"):
        make_tactile({"backend": "serial_taxel"})
    unknown = CameraConfig()
    unknown.backend = "gazebo"  # past validation: only the registry can refuse it
    with pytest.raises(SensorError, match="'gazebo' is not registered"):
        make_camera(unknown)
