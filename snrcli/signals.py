"""Ctrl-C (SIGINT) and SIGTERM in the ``snr`` command: the first one ends a run by an exception, so
that temporary files are removed and worker processes stopped on the way out, then one line and
exit 130 or 143. Later ones are only recorded, so that they cannot break that clean-up.

``install`` is called by the command line only (importing snrcli changes no signal handling).
A signal that arrives while a module is being imported, or inside ``deferred()``, is acted on once
that is done (it is sent again every 50 ms until then): the initialisation of an extension module may not survive an
exception raised inside it (onnx's aborts the process). Which signals arrived is remembered, so a
library that turns the KeyboardInterrupt into another error still ends as an interruption.
Imports nothing but the standard library, so that it can be installed before anything heavy loads.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM arrived (raised like KeyboardInterrupt, and like it not an ``Exception``)."""


received: list[int] = []    # the signals that arrived since ``install``
_raised = [False]
_finishing = [False]
_deferring = [0]
RETRY_S = 0.05


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, a signal is only recorded, and acted on (sent again) once the block is left: for work
    that must not stop half-way, like starting a worker process."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    if signum not in received:
        received.append(signum)
    if _raised[0] or _finishing[0]:
        return            # already on the way out: a second Ctrl-C must not break the clean-up
    if _deferring[0] or _importing(frame):
        retry = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        retry.daemon = True
        retry.start()
        return
    _raised[0] = True
    if received[0] == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def install() -> dict[int, Any] | None:
    """Handle SIGINT and SIGTERM from now on; returns the handlers to put back (None when nothing was
    changed: not the main thread, or already installed). A signal ignored when the process started
    (``nohup``, a background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {s: signal.getsignal(s) for s in HANDLED}
    if all(h is _handler for h in previous.values()):
        return None
    received.clear()
    _raised[0] = _finishing[0] = False
    for s, h in previous.items():
        if h is not signal.SIG_IGN:
            signal.signal(s, _handler)
    return previous


def restore(previous: dict[int, Any] | None) -> None:
    """Put back the handlers that ``install`` replaced."""
    if previous is None:
        return
    for s, h in previous.items():
        signal.signal(s, h)
    _finishing[0] = False


def finishing() -> None:
    """From now on signals are only recorded: the run is ending anyway."""
    _finishing[0] = True


def interrupted_by() -> int | None:
    """The first signal that arrived since ``install``, if any."""
    return received[0] if received else None
