import os
import threading
import time

import numpy as np
import pytest

from robot_rl.sensors import DeviceNotFoundError, SensorError, TactileBackend, TactileConfig, make_tactile
from robot_rl.sensors.clock import host_time_ns
from robot_rl.sensors.tactile_serial import (
    MAGIC,
    SerialTaxelTactile,
    TaxelStreamParser,
    crc16_ccitt,
    encode_frame,
    frame_size,
    parse_frames,
)

SHAPE = (4, 6)


def grid(k: int, shape=SHAPE) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) * 100 + k).astype(np.uint16)


# --- pure parser --------------------------------------------------------------

def test_crc_is_ccitt_false():
    assert crc16_ccitt(b"123456789") == 0x29B1  # the standard check value


def test_frame_layout():
    f = encode_frame(grid(1), seq=7, tick_us=123456)
    assert len(f) == frame_size(SHAPE) == 12 + 2 * 24
    assert f[:2] == MAGIC and f[2] == 4 and f[3] == 6
    assert int.from_bytes(f[4:6], "little") == 7 and int.from_bytes(f[6:10], "little") == 123456
    assert int.from_bytes(f[10:12], "little") == grid(1)[0, 0]


def test_parse_clean_stream():
    buf = b"".join(encode_frame(grid(k), k, 1000 * k) for k in range(3))
    res = parse_frames(buf, SHAPE)
    assert [p.seq for p in res.packets] == [0, 1, 2]
    assert res.consumed == len(buf) and res.bad_checksum == 0 and res.skipped_bytes == 0
    np.testing.assert_array_equal(res.packets[2].values, grid(2))
    assert res.packets[1].tick_us == 1000


def test_parse_resyncs_on_garbage_including_fake_magic():
    rng = np.random.default_rng(0)
    garbage = bytes(rng.integers(0, 256, 300, dtype=np.uint8)) + MAGIC + b"\x04\x06" + MAGIC[:1]
    buf = garbage + encode_frame(grid(1), 1, 10) + MAGIC + b"\x01" + encode_frame(grid(2), 2, 20)
    res = parse_frames(buf, SHAPE)
    assert [p.seq for p in res.packets] == [1, 2]
    assert res.consumed == len(buf)
    assert res.skipped_bytes == len(buf) - 2 * frame_size(SHAPE)


def test_parse_rejects_and_counts_bad_checksum():
    good = encode_frame(grid(1), 1, 10)
    bad = bytearray(encode_frame(grid(2), 2, 20))
    bad[20] ^= 0xFF  # flip a taxel byte
    res = parse_frames(bytes(bad) + good, SHAPE)
    assert [p.seq for p in res.packets] == [1]
    assert res.bad_checksum == 1


def test_parse_counts_shape_mismatch():
    res = parse_frames(encode_frame(grid(1, (3, 3)), 1, 0), SHAPE)
    assert res.packets == [] and res.bad_shape == 1 and res.last_bad_shape == (3, 3)


def test_partial_frames_across_chunks_byte_by_byte():
    stream = b"\x00\xa5" + encode_frame(grid(1), 1, 10) + b"\xa5" + encode_frame(grid(2), 2, 20)
    p = TaxelStreamParser(SHAPE)
    got = []
    for b in stream:
        got += p.feed(bytes([b]))
    assert [q.seq for q in got] == [1, 2]
    assert p.stats.frames == 2 and p.stats.skipped_bytes == 3


def test_parser_tail_is_bounded_on_noise():
    p = TaxelStreamParser(SHAPE)
    rng = np.random.default_rng(1)
    for _ in range(50):
        p.feed(bytes(rng.integers(0, 256, 1000, dtype=np.uint8)))
    # Never more than one partial frame retained.
    assert len(p._buf) < frame_size(SHAPE)


def test_device_drop_counter_wraps():
    p = TaxelStreamParser(SHAPE)
    p.feed(encode_frame(grid(0), 0xFFFE, 0) + encode_frame(grid(0), 1, 0))
    assert p.stats.device_frames_dropped == 2  # 0xFFFF and 0 were lost


# --- real pseudo-terminal end to end ----------------------------------------

class PtyDevice:
    """The master side of a pty, playing the sensor firmware."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def stream(self, rate_hz: float, value=lambda k: grid(k), garbage_every: int = 0,
               corrupt_every: int = 0, shape=SHAPE):
        def run():
            k, t0 = 0, time.monotonic()
            while not self._stop.is_set():
                f = bytearray(encode_frame(value(k), k, int((time.monotonic() - t0) * 1e6) + 5_000_000))
                if corrupt_every and k % corrupt_every == corrupt_every - 1:
                    f[-3] ^= 0x55
                if garbage_every and k % garbage_every == 0:
                    f = bytearray(b"\xa5\x13\x37noise") + f
                try:
                    os.write(self.master, bytes(f))
                except OSError:
                    return
                self.sent += 1
                k += 1
                self._stop.wait(1.0 / rate_hz)
        self._thread = threading.Thread(target=run, name="pty-device")
        self._thread.start()

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
            self._thread = None
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1


@pytest.fixture
def pty_dev():
    d = PtyDevice()
    yield d
    d.close()


def taxel_cfg(dev: str, **kw) -> TactileConfig:
    return TactileConfig(name="finger", backend="serial_taxel", device=dev, shape=SHAPE, **kw)


def test_missing_port_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(DeviceNotFoundError) as ei:
        make_tactile(taxel_cfg("/dev/ttyUSB_robot_rl_missing")).start()
    # Fast = no wait on a read timeout or a retry loop; listing the ports for the hint can
    # take over a second on a loaded 2-core CI machine, so the bound leaves room for that.
    assert time.monotonic() - t0 < 5.0
    msg = str(ei.value)
    assert "/dev/ttyUSB_robot_rl_missing" in msg and "dialout" in msg and "/dev/serial/by-id" in msg


def test_pty_end_to_end_with_noise_and_bad_crc(pty_dev):
    pty_dev.stream(rate_hz=400, garbage_every=3, corrupt_every=5)
    sensor = SerialTaxelTactile(taxel_cfg(pty_dev.path))
    assert isinstance(sensor, TactileBackend)
    with sensor:
        assert sensor.layout().kind == "taxel" and sensor.layout().shape == SHAPE
        assert sensor.serial == pty_dev.path  # a pty has no USB serial to report
        f = sensor.latest(1.0)
        assert f.data.dtype == np.float32 and f.data.shape == SHAPE
        seqs = []
        for _ in range(5):
            time.sleep(0.05)
            f = sensor.latest(0.5)
            seqs.append(f.seq)
            # Values are raw / 65535 of the k-th grid, i.e. consistent with a real frame.
            raw = np.rint(f.data * 65535).astype(int)
            k = raw[0, 0]
            np.testing.assert_array_equal(raw, grid(k).astype(int))
            assert 0 <= host_time_ns() - f.stamp_ns < 200_000_000
        assert all(b > a for a, b in zip(seqs, seqs[1:]))
        s = sensor.stats
        assert s.bad_checksum >= 2 and s.skipped_bytes > 0 and s.frames > 20
        # Corrupted frames are rejected, so the device counter shows them as lost.
        assert s.device_frames_dropped >= s.bad_checksum - 1


def test_zero_averages_next_frames(pty_dev):
    # Alternating offsets 10 / 30 -> baseline averages to 20 counts.
    pty_dev.stream(rate_hz=300, value=lambda k: np.full(SHAPE, 1000 + (10 if k % 2 else 30), np.uint16))
    with SerialTaxelTactile(taxel_cfg(pty_dev.path, units="newton", newtons_per_count=0.01,
                                      zero_frames=10)) as sensor:
        before = sensor.latest(1.0)
        assert min(abs(before.data.mean() - 10.1), abs(before.data.mean() - 10.3)) < 1e-3
        baseline = sensor.zero()
        np.testing.assert_allclose(baseline, 10.2, atol=1e-3)
        time.sleep(0.05)
        after = sensor.latest(0.2)
        assert np.abs(after.data).max() == pytest.approx(0.1, abs=1e-3)
        sensor.clear_zero()
        time.sleep(0.05)
        assert sensor.latest(0.2).data.mean() > 10


def test_wrong_shape_is_reported(pty_dev):
    pty_dev.stream(rate_hz=200, value=lambda k: grid(k, (3, 3)))
    with pytest.raises(SensorError, match=r"sends 3x3 frames but config shape is 4x6"):
        SerialTaxelTactile(taxel_cfg(pty_dev.path)).start()


def test_silent_device_times_out_clearly(pty_dev):
    t0 = time.monotonic()
    with pytest.raises(SensorError, match=r"no valid 4x6 frame.*baudrate"):
        SerialTaxelTactile(taxel_cfg(pty_dev.path, start_timeout_s=0.3)).start()
    assert time.monotonic() - t0 < 2.5  # bounded by start_timeout_s, not the 3 s default


def test_device_unplug_surfaces_as_error(pty_dev):
    pty_dev.stream(rate_hz=200)
    sensor = SerialTaxelTactile(taxel_cfg(pty_dev.path))
    with sensor:
        sensor.latest(1.0)
        pty_dev.close()  # hang up the line: reads now fail
        deadline = time.monotonic() + 2.0
        with pytest.raises(SensorError):
            while time.monotonic() < deadline:
                sensor.latest(0.1)
                time.sleep(0.02)
