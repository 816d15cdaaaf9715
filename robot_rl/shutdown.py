"""Clean stops on SIGINT and SIGTERM for every robot_rl process (ROS-free).

``kill PID``, a service manager, ``docker stop`` and ``ros2 launch`` send SIGTERM; a terminal
sends SIGINT to the whole foreground process group. Both must stop a node, ``robot-rl up`` and
``robot-rl demo`` the same way: promptly, saving what they hold, without a traceback, leaving
no child behind.

* :func:`stop_on_signals` makes SIGTERM (and SIGHUP) raise :class:`Terminated`, a
  ``KeyboardInterrupt``, in the main thread, like Ctrl-C. Install it before ``rclpy.init``:
  rclpy's own handler (which shuts the ROS context down) then chains to it.
* :func:`stop_requested` stays true once a stop signal arrived, even where the interrupt it
  raised was turned into another error: a signal landing while rclpy's C++ code converts a
  message to Python surfaces as pybind11's ``RuntimeError`` ("Unable to convert call
  argument"), not as the ``KeyboardInterrupt`` it was.
* :func:`signals_deferred` is for the teardown that follows: a second signal (a user pressing
  Ctrl-C twice, or a group signal reaching a process that already stops) is recorded in
  :attr:`Deferred.count` instead of interrupting the save with a traceback.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP (or SIGINT) asked the process to stop; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(exc: BaseException) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


_stop = threading.Event()


def stop_requested() -> bool:
    """Whether SIGINT/SIGTERM/SIGHUP asked this process to stop (see the module docstring)."""
    return _stop.is_set()


def _raise_terminated(signum, _frame) -> None:
    _stop.set()
    raise Terminated(signum)


def _raise_interrupt(signum, frame) -> None:
    _stop.set()
    signal.default_int_handler(signum, frame)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop the process like Ctrl-C (main thread only; no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        return  # started with SIGINT ignored on purpose (nohup, background job): keep that
    signal.signal(signal.SIGINT, _raise_interrupt)


class Deferred:
    def __init__(self):
        self.count = 0
        self.last = 0

    def __call__(self, signum, _frame) -> None:
        _stop.set()
        self.count += 1
        self.last = signum


@contextlib.contextmanager
def signals_deferred(restore: bool = True) -> Iterator[Deferred]:
    """Within the block, SIGINT/SIGTERM/SIGHUP are counted, not raised (main thread only).
    ``restore=False`` keeps them deferred afterwards: for the last teardown before exit."""
    deferred = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return
    previous = {sig: signal.signal(sig, deferred) for sig in HANDLED}
    try:
        yield deferred
    finally:
        for sig, handler in previous.items() if restore else ():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
