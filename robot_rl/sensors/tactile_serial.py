"""Taxel-array tactile sensor on a serial port (USB-CDC / UART), via pyserial.

Wire format (all little-endian), one frame per sample:

    offset  size      field
    0       2         magic  0xA5 0x5A
    2       1         rows   (uint8)
    3       1         cols   (uint8)
    4       2         seq    uint16, device frame counter (wraps)
    6       4         tick   uint32, device clock in microseconds (wraps)
    10      2*R*C     taxels uint16, row-major
    10+2RC  2         crc    CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF,
                             no reflection, no final xor) over bytes [2, 10+2RC)

Total ``12 + 2*rows*cols`` bytes. The CRC covers the header after the magic,
so a corrupted rows/cols/seq is caught as well as corrupted taxels.

Parsing (``parse_frames``) is a pure function over a byte buffer so it can be
tested exhaustively; the backend feeds it whatever ``read()`` returns.
Resynchronisation rule: look for the magic; a candidate whose rows/cols do not
match the configured shape, or whose CRC fails, is rejected by advancing ONE
byte (not a whole frame), because a false magic inside noise may overlap the
start of a real frame.
"""

from __future__ import annotations

import binascii
import logging
import os
import struct
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ._stream import LatestFrameSlot, ReaderThread, StreamingSensor
from .base import DeviceNotFoundError, Frame, SensorError, SensorTimeout, TactileLayout
from .clock import DeviceClockMapper, host_time_ns
from .config import TactileConfig

log = logging.getLogger(__name__)

MAGIC = b"\xa5\x5a"
_HEADER = struct.Struct("<2sBBHI")   # magic, rows, cols, seq, tick_us
_CRC = struct.Struct("<H")
_READ_TIMEOUT_S = 0.05               # bounds each read(): how fast stop() is honoured
_JOIN_TIMEOUT_S = 2.0
_SHAPE_MISMATCH_FATAL = 3            # this many well-formed headers of another shape, and no good frame

INSTALL_HINT = "pyserial is not importable; install it with `pip install pyserial`"


def frame_size(shape: Sequence[int]) -> int:
    rows, cols = shape
    return _HEADER.size + 2 * rows * cols + _CRC.size


def crc16_ccitt(data: bytes | memoryview) -> int:
    # binascii.crc_hqx is CRC-CCITT (poly 0x1021, no reflection) in C; seeding
    # it with 0xFFFF gives the CCITT-FALSE variant that most MCU libraries ship.
    return binascii.crc_hqx(data, 0xFFFF)


def encode_frame(values: np.ndarray, seq: int, tick_us: int) -> bytes:
    """Build one wire frame (reference for firmware authors; used by tests)."""
    values = np.asarray(values)
    if values.ndim != 2 or not (1 <= values.shape[0] <= 255 and 1 <= values.shape[1] <= 255):
        raise ValueError(f"values must be a 2-D array with dims in 1..255, got {values.shape}")
    if values.min(initial=0) < 0 or values.max(initial=0) > 0xFFFF:
        raise ValueError("taxel values must fit in uint16")
    rows, cols = values.shape
    body = _HEADER.pack(MAGIC, rows, cols, seq & 0xFFFF, tick_us & 0xFFFFFFFF)[2:]
    body += values.astype("<u2").tobytes()
    return MAGIC + body + _CRC.pack(crc16_ccitt(body))


@dataclass(frozen=True)
class TaxelPacket:
    seq: int            # device counter (uint16)
    tick_us: int        # device clock (uint32 µs)
    values: np.ndarray  # uint16 (rows, cols)


@dataclass
class ParseResult:
    packets: list[TaxelPacket]
    consumed: int                # bytes of the input the caller can drop
    bad_checksum: int = 0        # well-formed candidates rejected by CRC
    bad_shape: int = 0           # headers announcing a different rows x cols
    skipped_bytes: int = 0       # bytes discarded while hunting for a frame
    last_bad_shape: tuple[int, int] | None = None


def parse_frames(buf: bytes | bytearray, shape: Sequence[int]) -> ParseResult:
    """Extract every complete valid frame from ``buf``.

    ``buf[result.consumed:]`` is an incomplete tail (a partial frame, or a
    lone first magic byte) that must be prepended to the next read.
    """
    rows, cols = int(shape[0]), int(shape[1])
    n = frame_size((rows, cols))
    mv = memoryview(buf)
    res = ParseResult(packets=[], consumed=0)
    i, end = 0, len(buf)
    while True:
        j = buf.find(MAGIC, i)
        if j < 0:
            # Keep a trailing 0xA5: the next read may complete the magic.
            keep = 1 if end > i and buf[end - 1] == MAGIC[0] else 0
            res.skipped_bytes += end - keep - i
            i = end - keep
            break
        res.skipped_bytes += j - i
        i = j
        if end - i < _HEADER.size:
            break
        _, r, c, seq, tick = _HEADER.unpack_from(buf, i)
        if (r, c) != (rows, cols):
            res.bad_shape += 1
            res.last_bad_shape = (r, c)
            res.skipped_bytes += 1
            i += 1
            continue
        if end - i < n:
            break
        (crc_rx,) = _CRC.unpack_from(buf, i + n - 2)
        if crc16_ccitt(mv[i + 2:i + n - 2]) != crc_rx:
            res.bad_checksum += 1
            res.skipped_bytes += 1
            i += 1
            continue
        vals = np.frombuffer(buf, dtype="<u2", count=rows * cols, offset=i + _HEADER.size)
        res.packets.append(TaxelPacket(seq=seq, tick_us=tick,
                                       values=vals.astype(np.uint16).reshape(rows, cols)))
        i += n
    res.consumed = i
    return res


@dataclass
class TaxelStreamStats:
    frames: int = 0
    bad_checksum: int = 0
    bad_shape: int = 0
    skipped_bytes: int = 0
    bytes_read: int = 0
    device_frames_dropped: int = 0   # gaps in the device's seq counter
    last_bad_shape: tuple[int, int] | None = None


class TaxelStreamParser:
    """Stateful wrapper: feed arbitrary chunks, get packets, keep counters."""

    def __init__(self, shape: Sequence[int]):
        self.shape = (int(shape[0]), int(shape[1]))
        self.stats = TaxelStreamStats()
        self._buf = bytearray()
        self._last_seq: int | None = None

    def feed(self, data: bytes) -> list[TaxelPacket]:
        self.stats.bytes_read += len(data)
        self._buf += data
        res = parse_frames(self._buf, self.shape)
        del self._buf[:res.consumed]
        s = self.stats
        s.frames += len(res.packets)
        s.bad_checksum += res.bad_checksum
        s.bad_shape += res.bad_shape
        s.skipped_bytes += res.skipped_bytes
        if res.last_bad_shape is not None:
            s.last_bad_shape = res.last_bad_shape
        for p in res.packets:
            if self._last_seq is not None:
                s.device_frames_dropped += (p.seq - self._last_seq - 1) & 0xFFFF
            self._last_seq = p.seq
        return res.packets


def _import_serial() -> Any:
    try:
        import serial  # noqa: PLC0415 - optional dependency
        import serial.tools.list_ports  # noqa: F401,PLC0415
    except ImportError as exc:
        raise SensorError(INSTALL_HINT) from exc
    return serial


def _port_hints(serial_mod: Any) -> str:
    ports = [f"{p.device} (serial {p.serial_number or '?'})"
             for p in serial_mod.tools.list_ports.comports() if p.device]
    listed = ", ".join(ports) if ports else "none"
    return (f"serial ports present: {listed}. Check the cable and `ls -l /dev/serial/by-id/`, "
            f"`dmesg | tail` after plugging in; the user needs the `dialout` group for /dev/tty*")


class _ZeroRequest:
    def __init__(self, n: int, shape: tuple[int, int]):
        self.n = n
        self.acc = np.zeros(shape, np.float64)
        self.count = 0
        self.done = threading.Event()


class SerialTaxelTactile(StreamingSensor):
    """Taxel array streaming the framing above. Frame.data is float32 (rows, cols)."""

    def __init__(self, config: TactileConfig):
        if config.backend != "serial_taxel":
            raise ValueError(f"SerialTaxelTactile needs backend 'serial_taxel', got {config.backend!r}")
        self.config = config
        self._what = f"serial taxel sensor {config.name!r}"
        self._shape: tuple[int, int] = tuple(config.shape)  # type: ignore[assignment]
        self._scale = np.float32(1.0 / 65535.0 if config.units == "normalized" else config.newtons_per_count)
        self._slot = LatestFrameSlot(self._what)
        self._reader: ReaderThread | None = None
        self._port: Any = None
        self._port_name = ""
        self._serial = config.serial
        self._parser = TaxelStreamParser(self._shape)
        self._mapper = DeviceClockMapper()
        self._tick_last: int | None = None
        self._tick_wrap = 0
        self._seq = 0
        self._lock = threading.Lock()    # guards baseline and zero request
        self._baseline: np.ndarray | None = None
        self._zero: _ZeroRequest | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._reader is not None:
            return
        serial_mod = _import_serial()
        cfg = self.config
        port = self._resolve_port(serial_mod)
        # Check the path ourselves: pyserial's message for a missing port is a
        # bare errno, and a permission problem deserves its own fix.
        if not os.path.exists(port):
            raise DeviceNotFoundError(f"{self._what}: serial port {port} does not exist; "
                                      f"{_port_hints(serial_mod)}")
        if not os.access(port, os.R_OK | os.W_OK):
            raise SensorError(f"{self._what}: no read/write permission on {port}; add the user to the "
                              f"`dialout` group (`sudo usermod -aG dialout $USER`, then log in again) "
                              f"or install a udev rule for the device")
        try:
            ser = serial_mod.Serial(port, baudrate=cfg.baudrate, timeout=_READ_TIMEOUT_S,
                                    exclusive=True)
        except (serial_mod.SerialException, OSError, ValueError) as exc:
            raise SensorError(f"{self._what}: cannot open {port} at {cfg.baudrate} baud: {exc}; "
                              f"is another process using it (`fuser {port}`)?") from exc
        self._port, self._port_name = ser, port
        self._check_serial_number(serial_mod, port)
        self._parser = TaxelStreamParser(self._shape)
        self._mapper.reset()
        self._tick_last, self._tick_wrap, self._seq = None, 0, 0
        self._slot.reset()
        ser.reset_input_buffer()  # drop bytes buffered before we were listening
        self._reader = ReaderThread(f"taxel-{cfg.name}", self._step, self._slot.fail)
        self._reader.start()
        try:
            self._slot.get(cfg.start_timeout_s)
        except SensorTimeout as exc:
            s = self._parser.stats
            self.stop()
            raise SensorError(
                f"{self._what}: {port} opened but no valid {self._shape[0]}x{self._shape[1]} frame in "
                f"{cfg.start_timeout_s:.3g} s (bytes read {s.bytes_read}, bad checksums {s.bad_checksum}, "
                f"skipped bytes {s.skipped_bytes}); check baudrate ({cfg.baudrate}), that the device "
                f"is streaming, and the framing in docs/sensors.md") from exc
        except BaseException:
            self.stop()
            raise

    def _resolve_port(self, serial_mod: Any) -> str:
        cfg = self.config
        if cfg.device:
            return cfg.device
        if not cfg.serial:
            raise SensorError(f"{self._what}: set `device` (e.g. /dev/ttyACM0) or `serial`")
        for p in serial_mod.tools.list_ports.comports():
            if p.serial_number == cfg.serial:
                return p.device
        raise DeviceNotFoundError(f"{self._what}: no serial port with USB serial {cfg.serial!r}; "
                                  f"{_port_hints(serial_mod)}")

    def _check_serial_number(self, serial_mod: Any, port: str) -> None:
        real = os.path.realpath(port)
        reported = next((p.serial_number for p in serial_mod.tools.list_ports.comports()
                         if p.device and os.path.realpath(p.device) == real and p.serial_number), None)
        if reported is None:
            # pty / UART without USB descriptor: nothing to verify against.
            self._serial = self.config.serial or port
            return
        if self.config.serial and reported != self.config.serial:
            self.stop()
            raise SensorError(f"{self._what}: {port} has USB serial {reported!r}, config expects "
                              f"{self.config.serial!r}; use /dev/serial/by-id/ paths to pin devices")
        self._serial = reported

    def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop(_JOIN_TIMEOUT_S)  # read() is bounded by _READ_TIMEOUT_S
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except OSError as exc:
                log.debug("%s: close: %s", self._what, exc)
        with self._lock:
            if self._zero is not None:
                self._zero.done.set()  # wake a zero() caller; it sees the cancellation
                self._zero = None

    # -- data --------------------------------------------------------------
    def layout(self) -> TactileLayout:
        return TactileLayout(kind="taxel", shape=self._shape, units=self.config.units)

    @property
    def serial(self) -> str:
        return self._serial

    @property
    def stats(self) -> TaxelStreamStats:
        return self._parser.stats

    @property
    def baseline(self) -> np.ndarray | None:
        with self._lock:
            return None if self._baseline is None else self._baseline.copy()

    def zero(self, num_frames: int | None = None, timeout_s: float = 5.0) -> np.ndarray:
        """Average the next ``num_frames`` (default ``config.zero_frames``)
        frames and subtract that baseline from every later frame.

        Blocks until done; call with nothing touching the sensor. Returns the
        baseline (float32, in the layout's units). Raises SensorTimeout if the
        frames do not arrive in time (the old baseline is kept).
        """
        if self._reader is None:
            raise SensorError(f"{self._what}: not started")
        n = self.config.zero_frames if num_frames is None else int(num_frames)
        if n < 1:
            raise ValueError("num_frames must be >= 1")
        req = _ZeroRequest(n, self._shape)
        with self._lock:
            self._zero = req
        finished = req.done.wait(timeout_s)
        with self._lock:
            if self._zero is req:
                self._zero = None
            if not finished or req.count < n:
                raise SensorTimeout(f"{self._what}: zero() got {req.count}/{n} frames in {timeout_s:.3g} s")
            return self._baseline.copy()  # type: ignore[union-attr]

    def clear_zero(self) -> None:
        with self._lock:
            self._baseline = None

    # -- reader thread -----------------------------------------------------
    def _step(self, stop: threading.Event) -> None:
        port = self._port
        # Read what is buffered, or block (<= _READ_TIMEOUT_S) for one byte:
        # returns as soon as data exists, so no added latency.
        data = port.read(port.in_waiting or 1)
        if not data:
            return
        arrival = host_time_ns()
        packets = self._parser.feed(data)
        s = self._parser.stats
        if not packets:
            if s.frames == 0 and s.bad_shape >= _SHAPE_MISMATCH_FATAL:
                r, c = s.last_bad_shape or (0, 0)
                raise SensorError(f"device on {self._port_name} sends {r}x{c} frames but config shape is "
                                  f"{self._shape[0]}x{self._shape[1]}")
            return
        newest = None
        for p in packets:
            values = p.values.astype(np.float32) * self._scale
            with self._lock:
                z = self._zero
                if z is not None and z.count < z.n:
                    z.acc += values
                    z.count += 1
                    if z.count == z.n:
                        self._baseline = (z.acc / z.n).astype(np.float32)
                        z.done.set()
                baseline = self._baseline
            if baseline is not None:
                values -= baseline
            newest = (values, self._stamp(p.tick_us, arrival))
            self._seq += 1
        assert newest is not None
        # Only the newest of a burst is published; seq still counts all of them.
        self._slot.publish(Frame(data=newest[0], stamp_ns=newest[1], seq=self._seq - 1))

    def _stamp(self, tick_us: int, arrival_ns: int) -> int:
        # Unwrap the 32-bit µs counter (wraps every ~71.6 min).
        if self._tick_last is not None and tick_us < self._tick_last - (1 << 31):
            self._tick_wrap += 1 << 32
        self._tick_last = tick_us
        return self._mapper.map((tick_us + self._tick_wrap) * 1000, arrival_ns)
