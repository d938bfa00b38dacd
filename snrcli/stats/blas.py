"""How many threads the BLAS libraries use, read and set while the statistics run; and numpy's
OpenBLAS ``ssyrk`` called directly (``upper_gram``).

The OpenBLAS libraries of numpy's and scipy's wheels are called directly
through ctypes when numpy's can be found among the process's mapped libraries
(Linux); otherwise ``threadpoolctl`` does the job for every BLAS it finds. The
direct route skips threadpoolctl's scan of every loaded library (35 ms with
onnxruntime and scipy loaded) and its per-call bookkeeping. scipy's is held too
because the weight baselines may call it on a side thread meanwhile.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable

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


# cblas_ssyrk of numpy's OpenBLAS (ILP64 in numpy's wheels, LP64 elsewhere), with its integer type
_SSYRK = [("scipy_cblas_ssyrk64_", ctypes.c_int64), ("cblas_ssyrk64_", ctypes.c_int64),
          ("scipy_cblas_ssyrk", ctypes.c_int), ("cblas_ssyrk", ctypes.c_int)]
CBLAS_ROW_MAJOR, CBLAS_UPPER, CBLAS_TRANS = 101, 121, 112


def _find_ssyrk() -> Callable[[np.ndarray, np.ndarray], None] | None:
    paths = _mapped_openblas()
    if not paths or paths[0][0] != "numpy":
        return None
    try:
        lib = ctypes.CDLL(paths[0][1])
    except OSError:
        return None
    for name, int_t in _SSYRK:
        fn = getattr(lib, name, None)
        if fn is None:
            continue
        fn.restype = None
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, ctypes.c_float, ctypes.c_void_p,
                       int_t, ctypes.c_float, ctypes.c_void_p, int_t]

        def call(a: np.ndarray, out: np.ndarray, fn=fn) -> None:
            k, n = a.shape
            fn(CBLAS_ROW_MAJOR, CBLAS_UPPER, CBLAS_TRANS, n, k, 1.0, a.ctypes.data, n, 0.0, out.ctypes.data, n)
        return call
    return None


def upper_gram(a: np.ndarray, out: np.ndarray) -> bool:
    """``out``'s upper triangle (diagonal included) := ``a^T a``, through numpy's OpenBLAS ``ssyrk``
    called directly (ctypes releases the GIL), leaving the rest of ``out`` as it was: numpy's ``a.T @ a``
    calls the same ``ssyrk`` and then mirrors the triangle, 3.5 of the 33.7 ms product of 2,048 x 1,024.
    ``a``: float32, C-contiguous (k, n); ``out``: float32, C-contiguous (n, n). False, with ``out``
    untouched, where the BLAS cannot be called so (not Linux, another BLAS, other arrays)."""
    global _ssyrk, _ssyrk_looked
    if not _ssyrk_looked:
        with _lock:
            if not _ssyrk_looked:
                _ssyrk = _find_ssyrk()
                _ssyrk_looked = True
    k, n = a.shape
    if (_ssyrk is None or a.dtype != np.float32 or out.dtype != np.float32 or not a.flags.c_contiguous
            or not out.flags.c_contiguous or out.shape != (n, n) or not out.flags.writeable or k == 0):
        return False
    _ssyrk(a, out)
    return True


_ssyrk: Callable[[np.ndarray, np.ndarray], None] | None = None
_ssyrk_looked = False
_blas: BlasThreads | None = None
_lock = threading.Lock()


def blas_threads() -> BlasThreads:
    """The process's ``BlasThreads``, found once."""
    global _blas
    with _lock:
        if _blas is None:
            _blas = BlasThreads()
        return _blas
