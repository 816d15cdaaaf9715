import os
import time

import cv2
import numpy as np
import pytest

from robot_rl.sensors import DeviceNotFoundError, SensorError, TactileBackend, TactileConfig, make_tactile
from robot_rl.sensors.clock import host_time_ns
from robot_rl.sensors.tactile_usb import UsbOpticalTactile, find_video_node_by_serial, usb_serial_of_video_node

W, H, N = 64, 48, 12


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    """A real video file (lossless FFV1) read back through cv2.VideoCapture.
    Frame k: R = x * 4, G = y * 4, B = k * 20 (values chosen to survive BGR/RGB)."""
    path = str(tmp_path_factory.mktemp("vid") / "gel.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"FFV1"), 30, (W, H))
    assert writer.isOpened(), "OpenCV build lacks an FFV1 writer"
    ys, xs = np.mgrid[0:H, 0:W]
    for k in range(N):
        rgb = np.stack([xs * 4, ys * 4, np.full_like(xs, k * 20)], axis=-1).astype(np.uint8)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def opt_cfg(device: str, **kw) -> TactileConfig:
    return TactileConfig(name="gel", backend="usb_optical", device=device, **kw)


@pytest.mark.parametrize("device", ["/dev/video57", "57"])
def test_missing_video_device_fails_fast(device):
    t0 = time.monotonic()
    with pytest.raises(DeviceNotFoundError) as ei:
        make_tactile(opt_cfg(device)).start()
    assert time.monotonic() - t0 < 5.0  # no open/read retries; room for a loaded CI machine
    msg = str(ei.value)
    assert "/dev/video57" in msg and "v4l2-ctl --list-devices" in msg and "`video` group" in msg


def test_missing_serial_lookup_fails_clearly():
    with pytest.raises(DeviceNotFoundError, match="USB serial 'GS-NOPE'"):
        UsbOpticalTactile(opt_cfg("", serial="GS-NOPE")).start()


def test_video_file_processing_path(video_file):
    sensor = UsbOpticalTactile(opt_cfg(video_file, fps=100, crop=(8, 4, 32, 24), resize=(16, 12)))
    assert isinstance(sensor, TactileBackend)
    with sensor:
        lay = sensor.layout()
        assert lay.kind == "optical" and lay.shape == (12, 16, 3) and lay.units == "rgb8"
        f = sensor.latest(1.0)
        assert f.data.dtype == np.uint8 and f.data.shape == (12, 16, 3) and f.data.flags.c_contiguous
        # RGB order and crop origin: output (0, 0) averages source x 8..9, y 4..5.
        assert f.data[0, 0, 0] == pytest.approx(4 * 8.5, abs=1) and f.data[0, 0, 1] == pytest.approx(4 * 4.5, abs=1)
        assert 0 <= host_time_ns() - f.stamp_ns < 200_000_000
        seqs, blues = [], set()
        for _ in range(8):
            time.sleep(0.05)
            f = sensor.latest(0.5)
            seqs.append(f.seq)
            blues.add(int(f.data[0, 0, 2]))
        assert all(b > a for a, b in zip(seqs, seqs[1:]))
        assert all(b % 20 == 0 and b < N * 20 for b in blues)
        # 100 fps replay of 12 frames for ~0.4 s: it looped, seq kept increasing.
        assert seqs[-1] > N


def test_baseline_hook_installed_while_streaming(video_file):
    with UsbOpticalTactile(opt_cfg(video_file, fps=100)) as sensor:
        raw = sensor.latest(1.0).data
        baseline = raw.astype(np.int16)
        baseline[..., 2] = 0  # a "no-contact" image with blue 0

        sensor.set_baseline_hook(lambda img: img.astype(np.int16) - baseline, units="delta_rgb")
        time.sleep(0.05)
        f = sensor.latest(0.5)
        assert f.data.dtype == np.int16 and f.data.shape == (H, W, 3)
        assert np.abs(f.data[..., :2]).max() <= 1 and f.data[..., 2].min() >= 0
        assert sensor.layout() == sensor.layout().__class__("optical", (H, W, 3), "delta_rgb")


def test_crop_outside_frame_is_rejected_with_context(video_file):
    with pytest.raises(ValueError, match=r"gel.*64x48.*outside"):
        UsbOpticalTactile(opt_cfg(video_file, crop=(40, 0, 32, 16))).start()


def test_failing_hook_surfaces_in_latest(video_file):
    def bad(_img):
        raise RuntimeError("calibration bug")
    with pytest.raises(SensorError, match="no first frame.*calibration bug"):
        UsbOpticalTactile(opt_cfg(video_file, fps=100), baseline_hook=bad).start()
    with UsbOpticalTactile(opt_cfg(video_file, fps=100)) as sensor:
        sensor.latest(1.0)
        sensor.set_baseline_hook(bad)
        time.sleep(0.1)
        with pytest.raises(SensorError, match="reader failed: calibration bug"):
            sensor.latest(0.5)


def test_sysfs_serial_lookup(tmp_path):
    # Mirrors the real layout: /sys/class/video4linux/videoN/device -> USB
    # interface dir, whose parent USB device dir holds `serial`.
    usbdev = tmp_path / "devices" / "usb1" / "1-2"
    for n, intf in ((2, "1-2:1.0"), (3, "1-2:1.0")):
        (usbdev / intf).mkdir(parents=True, exist_ok=True)
        (tmp_path / "v4l" / f"video{n}").mkdir(parents=True)
        os.symlink(usbdev / intf, tmp_path / "v4l" / f"video{n}" / "device")
    (usbdev / "serial").write_text("2BNKH9ZD\n")
    root = str(tmp_path / "v4l")
    assert usb_serial_of_video_node("/dev/video3", root) == "2BNKH9ZD"
    assert find_video_node_by_serial("2BNKH9ZD", root) == "/dev/video2"
    assert find_video_node_by_serial("other", root) == ""
