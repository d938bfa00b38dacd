"""How many threads numpy's BLAS uses, read and set while the statistics run.

numpy's own OpenBLAS is called directly through ctypes when it can be found
among the process's mapped libraries (Linux, numpy's wheels); otherwise
``threadpoolctl`` does the job for every BLAS it finds. The direct route skips
threadpoolctl's scan of every loaded library (35 ms with onnxruntime and scipy
loaded) and its per-call bookkeeping.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

_SYMBOLS = [(f"{p}_get_num_threads{s}", f"{p}_set_num_threads{s}")
            for p in ("scipy_openblas", "openblas") for s in ("64_", "")]


class BlasThreads:
    """``get()`` and ``set(n)`` for numpy's BLAS thread count; both do nothing when no BLAS is found."""

    def __init__(self):
        self._get = self._set = None
        self._tpc = None
        lib = _numpy_openblas()
        if lib is not None:
            for get, set_ in _SYMBOLS:
                if hasattr(lib, get) and hasattr(lib, set_):
                    self._get, self._set = getattr(lib, get), getattr(lib, set_)
                    self._get.restype = ctypes.c_int
                    self._set.argtypes = [ctypes.c_int]
                    return
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:   # a declared dependency; without it the BLAS keeps its own thread count
            return
        self._tpc = ThreadpoolController().select(user_api="blas")

    @property
    def found(self) -> bool:
        return self._get is not None or bool(self._tpc)

    def get(self) -> int | None:
        if self._get is not None:
            return int(self._get())
        if self._tpc:
            return max(c.num_threads for c in self._tpc.lib_controllers)
        return None

    def set(self, n: int) -> None:
        if self._set is not None:
            self._set(int(n))
        elif self._tpc:
            for c in self._tpc.lib_controllers:
                c.set_num_threads(int(n))


def _numpy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library mapped from numpy's installation (``numpy.libs`` beside the package), if
    exactly one is; None elsewhere (other platforms, other BLAS builds)."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(np.__file__)))
    found = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and "openblas" in parts[5].lower():
                    path = parts[5].strip()
                    if os.path.dirname(path) in (os.path.join(root, "numpy.libs"), os.path.join(root, "numpy")):
                        found.add(path)
    except OSError:
        return None
    if len(found) != 1:
        return None
    try:
        return ctypes.CDLL(found.pop())
    except OSError:
        return None


_blas: BlasThreads | None = None
_lock = threading.Lock()


def blas_threads() -> BlasThreads:
    """The process's ``BlasThreads``, found once."""
    global _blas
    with _lock:
        if _blas is None:
            _blas = BlasThreads()
        return _blas
