"""The BLAS libraries held to one thread while an analysis streams its batches (``one_thread``).

snr runs onnxruntime and its own statistics threads in turns on the same cores.
A multi-threaded BLAS call would wake OpenBLAS's worker threads, which then
spin for about 0.1 s after it returns (unless ``OPENBLAS_THREAD_TIMEOUT`` was set
before numpy loaded it), taking cores from the next onnxruntime run; setting
the thread count back to 1 does not stop them. So no BLAS call made while the
batches stream uses more than one thread: the statistics threads are the
parallelism. ``threadpoolctl`` finds the BLAS libraries loaded by then (numpy's, and
scipy's where it is loaded), in 5-8 ms, and sets their thread counts; it looks again only when
modules were imported since it last looked (scipy brings its own OpenBLAS when it is imported).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_controller = None            # threadpoolctl's view of the BLAS libraries ...
_modules_seen = -1            # ... when this many modules were imported
_held = 0                     # holds in force
_limiter = None               # the one in force puts the counts back


@contextmanager
def one_thread() -> Iterator[None]:
    """Hold every BLAS library to one thread for the duration; the thread counts found are put back
    when the last of any overlapping holds (nested, or analyses on other threads) ends."""
    global _controller, _modules_seen, _held, _limiter
    with _lock:
        if _held == 0:
            if _controller is None or len(sys.modules) != _modules_seen:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController().select(user_api="blas")
                _modules_seen = len(sys.modules)
            _limiter = _controller.limit(limits=1)
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0:
                _limiter.restore_original_limits()
                _limiter = None
