"""Plumbing shared by the threaded backends: a latest-only frame slot and a
reader thread that is always joined on stop.

Sim backends may reuse these, but they are not part of the contract.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .base import Frame, SensorError, SensorTimeout

log = logging.getLogger(__name__)


class LatestFrameSlot:
    """Holds exactly one frame: the newest. Writers overwrite, readers never
    consume, so memory is constant no matter how fast the producer runs."""

    def __init__(self, what: str):
        self._what = what
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._recv_mono = 0.0
        self._error: BaseException | None = None
        self._note = ""
        self.received = 0  # frames published since reset (== last seq + 1)

    def reset(self) -> None:
        with self._cond:
            self._frame = None
            self._error = None
            self._note = ""
            self.received = 0

    def publish(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._recv_mono = time.monotonic()
            self.received += 1
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """Record a fatal reader error; every later ``get`` re-raises it."""
        with self._cond:
            self._error = exc
            self._cond.notify_all()

    def note(self, text: str) -> None:
        """Remember a transient problem to include in a later timeout message."""
        with self._cond:
            self._note = text

    def get(self, timeout_s: float) -> Frame:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._error is not None:
                    raise SensorError(f"{self._what}: reader failed: {self._error}") from self._error
                now = time.monotonic()
                if self._frame is not None and now - self._recv_mono <= timeout_s:
                    return self._frame
                remaining = deadline - now
                if remaining <= 0:
                    if self._frame is None:
                        msg = f"{self._what}: no frame received within {timeout_s:.3g} s"
                    else:
                        msg = (f"{self._what}: stream stalled, newest frame is "
                               f"{now - self._recv_mono:.3g} s old (timeout {timeout_s:.3g} s)")
                    if self._note:
                        msg += f"; last driver message: {self._note}"
                    raise SensorTimeout(msg)
                self._cond.wait(remaining)


class ReaderThread:
    """Runs ``step()`` in a loop on a daemon thread until stopped.

    ``step`` should block for a bounded time (a driver read with a timeout) so
    ``stop()`` can join promptly. An exception escaping ``step`` is fatal: it
    is handed to ``on_error`` and the loop ends.
    """

    def __init__(self, name: str, step: Callable[[threading.Event], None],
                 on_error: Callable[[BaseException], None]):
        self._name = name
        self._step = step
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step(self._stop)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            log.error("%s: reader thread failed: %s", self._name, exc)
            self._on_error(exc)

    def stop(self, join_timeout_s: float) -> bool:
        """Signal and join. Returns False if the thread did not exit in time
        (a driver call that ignores its own timeout); the caller must then
        not free resources the thread may still be using."""
        self._stop.set()
        t, self._thread = self._thread, None
        if t is None:
            return True
        t.join(join_timeout_s)
        if t.is_alive():
            log.error("%s: reader thread did not exit within %.1f s", self._name, join_timeout_s)
            return False
        return True

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def run_bounded(fn: Callable[[], Any], timeout_s: float, what: str,
                cleanup_late: Callable[[Any], None]) -> Any:
    """Run ``fn()`` on a helper thread and wait at most ``timeout_s``.

    Python cannot interrupt a blocked C call, so on timeout the helper is
    abandoned; if ``fn`` later succeeds, ``cleanup_late(result)`` undoes it
    (e.g. stops a pipeline nobody owns). On the normal path the helper is joined.
    """
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}
    abandoned = False

    def run() -> None:
        try:
            value, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            value, error = None, exc
        with lock:
            if abandoned:
                if error is None:
                    try:
                        cleanup_late(value)
                    except Exception as exc:  # noqa: BLE001 - nobody to report to
                        log.warning("%s: cleanup after late completion failed: %s", what, exc)
                return
            box["value"], box["error"] = value, error
            done.set()

    t = threading.Thread(target=run, name=f"bounded:{what}", daemon=True)
    t.start()
    if not done.wait(timeout_s):
        with lock:
            if not done.is_set():
                abandoned = True
                raise SensorError(f"{what} did not return within {timeout_s:.3g} s")
    t.join()
    if box["error"] is not None:
        raise box["error"]
    return box["value"]


class StreamingSensor:
    """What every threaded backend shares: a context manager around start()/stop(), and
    ``latest`` served from the reader's newest-frame slot. Subclasses set ``_what``,
    ``_reader`` (None until started) and ``_slot``."""

    _what: str
    _reader: "ReaderThread | None"
    _slot: LatestFrameSlot

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()

    def latest(self, timeout_s: float = 1.0) -> Frame:
        if self._reader is None:
            raise SensorError(f"{self._what}: not started")
        return self._slot.get(timeout_s)
