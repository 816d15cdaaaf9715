import importlib.util
import sys
import threading
import time

import numpy as np
import pytest

from robot_rl.sensors import CameraBackend, CameraConfig, DeviceNotFoundError, SensorError, SensorTimeout
from robot_rl.sensors.clock import host_time_ns
from robot_rl.sensors.realsense import RealSenseCamera, run_bounded

from .fakes import FakeDeviceSpec, make_fake_rs

HAVE_RS = importlib.util.find_spec("pyrealsense2") is not None


def rs_cfg(**kw) -> CameraConfig:
    return CameraConfig(name="wrist", backend="realsense", **kw)


@pytest.fixture
def fake_rs(monkeypatch):
    def install(*specs: FakeDeviceSpec, pool_size: int = 8):
        mod = make_fake_rs(list(specs), pool_size=pool_size)
        monkeypatch.setitem(sys.modules, "pyrealsense2", mod)
        return mod
    return install


# --- real pyrealsense2, no device attached ----------------------------------

@pytest.mark.skipif(not HAVE_RS, reason="pyrealsense2 not installed")
def test_real_pyrealsense2_without_device_fails_fast():
    cam = RealSenseCamera(rs_cfg())
    t0 = time.monotonic()
    with pytest.raises(DeviceNotFoundError) as ei:
        cam.start()
    elapsed = time.monotonic() - t0
    assert elapsed < 5.0, elapsed
    msg = str(ei.value)
    assert "no RealSense device found" in msg
    assert "99-realsense-libusb.rules" in msg and "rs-enumerate-devices" in msg
    cam.stop()  # idempotent after a failed start


def test_missing_pyrealsense2_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import` raise ImportError
    with pytest.raises(SensorError, match="pip install pyrealsense2"):
        RealSenseCamera(rs_cfg()).start()


# --- fake pyrealsense2 --------------------------------------------------------

def test_unknown_serial_lists_connected(fake_rs):
    fake_rs(FakeDeviceSpec("111111111111"), FakeDeviceSpec("222222222222", name="Intel RealSense D405"))
    with pytest.raises(DeviceNotFoundError) as ei:
        RealSenseCamera(rs_cfg(serial="999")).start()
    msg = str(ei.value)
    assert "'999'" in msg and "111111111111" in msg and "222222222222" in msg and "D405" in msg


def test_ambiguous_without_serial(fake_rs):
    fake_rs(FakeDeviceSpec("111"), FakeDeviceSpec("222"))
    with pytest.raises(SensorError, match="set `serial`"):
        RealSenseCamera(rs_cfg()).start()


def test_no_device_with_fake(fake_rs):
    fake_rs()
    with pytest.raises(DeviceNotFoundError, match="no RealSense device found"):
        RealSenseCamera(rs_cfg()).start()


def test_selects_by_serial_and_streams(fake_rs):
    rs = fake_rs(FakeDeviceSpec("111", modes=[(640, 480, 30)]), FakeDeviceSpec("222"))
    cam = RealSenseCamera(rs_cfg(serial="222", width=64, height=48, fps=200))
    assert isinstance(cam, CameraBackend)
    with cam:
        assert cam.serial == "222"
        f = cam.latest(1.0)
        assert f.data.dtype == np.uint8 and f.data.shape == (48, 64, 3) and f.data.flags.c_contiguous
        # R encodes x, G encodes y: no crop means identity geometry.
        assert f.data[5, 7, 0] == 7 and f.data[5, 7, 1] == 5
        intr = cam.intrinsics()
        assert (intr.width, intr.height) == (64, 48)
        assert intr.fx == pytest.approx(60.0) and intr.cx == pytest.approx(32.05)
        assert intr.model == "inverse_brown_conrady" and intr.coeffs == (0.1, -0.2, 0.001, 0.002, 0.03)
        assert rs.stats.pipelines_running == 1
    assert rs.stats.pipelines_running == 0


def test_unsupported_mode_error_names_mode(fake_rs):
    fake_rs(FakeDeviceSpec("111"))
    with pytest.raises(SensorError, match=r"color 1280x720@90 rgb8.*rs-enumerate-devices -s 111"):
        RealSenseCamera(rs_cfg(width=1280, height=720, fps=90)).start()


def test_latest_only_under_fast_producer(fake_rs):
    rs = fake_rs(FakeDeviceSpec("111"), pool_size=4)
    cam = RealSenseCamera(rs_cfg(width=64, height=48, fps=200))
    with cam:
        seqs = []
        for _ in range(5):
            time.sleep(0.06)  # consumer ~16 Hz, producer 200 Hz
            f = cam.latest(1.0)
            seqs.append(f.seq)
            # The returned frame is the newest one: its frame number (blue)
            # is within a couple of frames of the device's newest.
            newest = rs.stats.last_frame_number
            assert (newest - int(f.data[0, 0, 2])) % 256 <= 2
        gaps = np.diff(seqs)
        assert (gaps > 1).all(), seqs  # frames in between were skipped, not queued
        # The reader released every librealsense frame: a pool of 4 would
        # otherwise have run dry and stalled the stream.
        assert rs.stats.max_live_frames <= 4 and rs.stats.frames_produced > 40
        assert cam._slot.received == seqs[-1] + 1 or cam._slot.received > seqs[-1]


def test_crop_resize_applied_to_frames_and_intrinsics(fake_rs):
    fake_rs(FakeDeviceSpec("111"))
    cam = RealSenseCamera(rs_cfg(crop=(100, 40, 400, 300), resize=(200, 150)))
    with cam:
        f = cam.latest(2.0)
        assert f.data.shape == (150, 200, 3)
        # Output pixel (0, 0) averages source x in {100, 101}, y in {40, 41}.
        assert f.data[0, 0, 0] in (100, 101) and f.data[0, 0, 1] in (40, 41)
        intr = cam.intrinsics()
        assert (intr.width, intr.height) == (200, 150)
        assert intr.fx == pytest.approx(600.0 * 0.5) and intr.fy == pytest.approx(601.0 * 0.5)
        assert intr.cx == pytest.approx((320.5 - 100 + 0.5) * 0.5 - 0.5)
        assert intr.cy == pytest.approx((240.25 - 40 + 0.5) * 0.5 - 0.5)


def test_crop_outside_stream_rejected_before_device_access():
    with pytest.raises(ValueError, match="outside"):
        rs_cfg(crop=(600, 0, 100, 100))


def test_timestamps_global_time_and_hardware_clock(fake_rs):
    for domain in ("global_time", "hardware_clock"):
        fake_rs(FakeDeviceSpec("111", timestamp_domain=domain))
        cam = RealSenseCamera(rs_cfg())
        with cam:
            stamps, seq = [], -1
            while len(stamps) < 4:  # four distinct frames: a loaded machine may hand one twice
                f = cam.latest(1.0)
                now = host_time_ns()
                assert 0 <= now - f.stamp_ns < 200_000_000, (domain, now - f.stamp_ns)
                if f.seq > seq:
                    stamps.append(f.stamp_ns)
                    seq = f.seq
                time.sleep(0.04)
            assert all(b > a for a, b in zip(stamps, stamps[1:])), (domain, stamps)


def test_aligned_depth(fake_rs):
    fake_rs(FakeDeviceSpec("111", modes=[(64, 48, 200)]))
    cam = RealSenseCamera(rs_cfg(width=64, height=48, fps=200, crop=(10, 0, 32, 48), enable_depth=True))
    with cam:
        d = cam.latest_depth(1.0)
        assert d.data.dtype == np.float32 and d.data.shape == (48, 32)
        assert d.data[0, 0] == pytest.approx((1000 + 10) * 0.001)


def test_depth_disabled_by_default(fake_rs):
    fake_rs(FakeDeviceSpec("111"))
    with RealSenseCamera(rs_cfg()) as cam:
        with pytest.raises(SensorError, match="enable_depth"):
            cam.latest_depth()


def test_pipeline_start_is_time_bounded(fake_rs):
    rs = fake_rs(FakeDeviceSpec("111", start_delay_s=3.0))
    cam = RealSenseCamera(rs_cfg(start_timeout_s=0.3))
    t0 = time.monotonic()
    with pytest.raises(SensorError, match="did not return within"):
        cam.start()
    assert time.monotonic() - t0 < 2.0  # well under the stuck start's 3 s; room for a loaded CI
    # When the stuck start finally returns, the abandoned helper stops the pipeline.
    for t in threading.enumerate():
        if t.name.startswith("bounded:"):
            t.join(5.0)
    assert rs.stats.pipelines_running == 0


def test_stall_reports_timeout_then_stop_joins(fake_rs):
    rs = fake_rs(FakeDeviceSpec("111", modes=[(64, 48, 200)]))
    cam = RealSenseCamera(rs_cfg(width=64, height=48, fps=200))
    with cam:
        cam.latest(1.0)
        rs.control.stalled = True  # device stops sending
        time.sleep(0.3)
        t0 = time.monotonic()
        with pytest.raises(SensorTimeout, match=r"stalled.*Frame didn't arrive"):
            cam.latest(0.1)
        assert time.monotonic() - t0 < 1.0  # bounded by the timeout, not by the stall
        rs.control.stalled = False  # recovers: fresh frames are served again
        assert cam.latest(0.2).seq > 0  # the 0.4 s old frame is too stale for 0.2 s


def test_latest_before_start_raises(fake_rs):
    fake_rs(FakeDeviceSpec("111"))
    cam = RealSenseCamera(rs_cfg())
    with pytest.raises(SensorError, match="not started"):
        cam.latest()
    with pytest.raises(SensorError, match="call start"):
        cam.intrinsics()


def test_run_bounded_propagates_errors_and_values():
    assert run_bounded(lambda: 3, 1.0, "x", lambda _v: None) == 3
    with pytest.raises(KeyError):
        run_bounded(lambda: {}["k"], 1.0, "x", lambda _v: None)
