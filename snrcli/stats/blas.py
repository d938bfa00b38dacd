"""The BLAS libraries held to one thread while an analysis runs (``one_thread``).

snr runs onnxruntime and its own statistics threads in turns on the same cores.
A multi-threaded BLAS call would wake OpenBLAS's worker threads, which then
spin for about 0.1 s after it returns (unless ``OPENBLAS_THREAD_TIMEOUT`` was set
before numpy loaded it), taking cores from the next onnxruntime run; setting
the thread count back to 1 does not stop them. So no BLAS call of an analysis
uses more than one thread: the statistics threads are the parallelism.

numpy's and scipy's OpenBLAS (scipy's: the weight baselines) are set through
OpenBLAS's own ``openblas_set_num_threads``, found with ctypes in the libraries
the process has mapped from those wheels (Linux, 1-2 ms); elsewhere
``threadpoolctl`` does it for every BLAS it finds (its scan of the loaded
libraries takes about 30 ms, once per process).
"""

from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

_SYMBOLS = [(f"{p}_get_num_threads{s}", f"{p}_set_num_threads{s}")
            for p in ("scipy_openblas", "openblas") for s in ("64_", "")]


class BlasThreads:
    """``get()`` (each library's thread count) and ``set(n)`` (one count for all, or one each, in the
    order ``get`` gave); both do nothing when no BLAS is found."""

    def __init__(self):
        self._libs: list[tuple] = []
        self._tpc = None
        paths = _mapped_openblas()
        if paths and paths[0][0] == "numpy":
            for _, path in paths:
                calls = _thread_calls(path)
                if calls is not None:
                    self._libs.append(calls)
            if self._libs:
                return
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:   # a declared dependency; without it the BLAS keeps its own thread count
            return
        self._tpc = ThreadpoolController().select(user_api="blas")

    @property
    def found(self) -> bool:
        return bool(self._libs) or bool(self._tpc)

    def get(self) -> list[int]:
        if self._libs:
            return [int(get()) for get, _ in self._libs]
        if self._tpc:
            return [c.num_threads for c in self._tpc.lib_controllers]
        return []

    def set(self, n: int | list[int]) -> None:
        setters = [set_ for _, set_ in self._libs] if self._libs else \
            [c.set_num_threads for c in self._tpc.lib_controllers] if self._tpc else []
        counts = [n] * len(setters) if isinstance(n, int) else n
        for set_, k in zip(setters, counts):
            set_(int(k))


def _mapped_openblas() -> list[tuple[str, str]]:
    """("numpy" or "scipy", path) of each OpenBLAS library mapped from those packages' wheels (their
    ``.libs`` folders), numpy's first; empty where /proc/self/maps cannot be read (not Linux)."""
    site = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))
    folders = {os.path.join(site, f"{pkg}{tail}"): pkg for pkg in ("numpy", "scipy") for tail in (".libs", "")}
    found: dict[str, str] = {}
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and "openblas" in parts[5].lower():
                    path = parts[5].strip()
                    pkg = folders.get(os.path.dirname(path))
                    if pkg:
                        found[path] = pkg
    except OSError:
        return []
    if list(found.values()).count("numpy") != 1:
        return []
    return sorted(((pkg, path) for path, pkg in found.items()), key=lambda t: t[0] != "numpy")


def _thread_calls(path: str) -> tuple | None:
    """(get, set) of a library's thread count, or None when it has neither."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for get, set_ in _SYMBOLS:
        if hasattr(lib, get) and hasattr(lib, set_):
            g, s = getattr(lib, get), getattr(lib, set_)
            g.restype, s.argtypes = ctypes.c_int, [ctypes.c_int]
            return g, s
    return None


_blas: BlasThreads | None = None
_lock = threading.Lock()
_held = 0                     # analyses running (one_thread)
_found: list[int] = []        # the thread counts put back when the last one ends


def blas_threads() -> BlasThreads:
    """The process's ``BlasThreads``, found once."""
    global _blas
    with _lock:
        if _blas is None:
            _blas = BlasThreads()
        return _blas


@contextmanager
def one_thread() -> Iterator[None]:
    """Hold every BLAS found to one thread for the duration; the counts found are put back when the last
    of any overlapping holds ends."""
    global _held, _found
    b = blas_threads()
    with _lock:
        if _held == 0:
            _found = b.get()
            if any(n != 1 for n in _found):
                b.set(1)
        _held += 1
    try:
        yield
    finally:
        with _lock:
            _held -= 1
            if _held == 0 and any(n != 1 for n in _found):
                b.set(_found)
