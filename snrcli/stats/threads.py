"""Threads for the statistics of each batch.

Each layer's samples in a batch are split across T threads, every thread adding
its share to accumulators of its own (merged when the data is done, like
``--jobs`` shards). While they run, each BLAS call is held to cores // T threads
(``blas``): T narrower products side by side beat one multi-threaded
product followed by single-threaded element-wise passes (the patch copies,
shifts and counts), which left all but one core idle. Nothing starts, and the
BLAS is left alone, until a batch is large enough to split.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from ..analysis.settings import MAX_DEFAULT_THREADS
from .blas import blas_threads

T = TypeVar("T")


def available_cores() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)


THREADS_PER_CORE = 2      # --threads above this many per available core is capped (oversubscription only costs)


def capped_threads(requested: int | None) -> tuple[int | None, str | None]:
    """``requested`` held to THREADS_PER_CORE x the available cores, and the warning when it was cut.
    Measured on 2 cores (digits MLP, 10,800 items): 2 threads 0.13 s, 4 0.34 s, 64 0.76 s, 256 4.3 s."""
    cap = THREADS_PER_CORE * available_cores()
    if requested is None or requested <= cap:
        return requested, None
    return cap, (f"--threads {requested} is more than {THREADS_PER_CORE} per available core "
                 f"({available_cores()} cores): using {cap}")


def stats_threads(requested: int | None) -> int:
    """Statistics threads: ``--threads`` when given, else the available cores up to MAX_DEFAULT_THREADS."""
    return max(1, int(requested)) if requested else min(available_cores(), MAX_DEFAULT_THREADS)


class StatThreads:
    """``pool.map(fn)`` runs ``fn(0) .. fn(n - 1)`` at once, ``fn(0)`` on the calling thread, each BLAS
    call held to cores // n threads meanwhile. Worker threads start on first use; ``close`` ends them.

    The BLAS thread count set for a ``map`` stays set after it (setting it costs a call into the
    library, and the next batch's ``map`` wants it again): code that wants the whole BLAS between maps
    calls ``wide()`` first. ``close`` puts back the count found at the first ``map``."""

    def __init__(self, threads: int):
        self.threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None
        self._blas = None
        self._blas_found: list[int] = []   # the BLAS libraries' own thread counts, before the first map
        self._blas_now: list[int] = []

    def __enter__(self) -> "StatThreads":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self.wide()

    def _blas_for(self, n: int) -> None:
        """Hold each BLAS call to cores // n threads (n=1: the count the BLAS had before the first map)."""
        if self._blas is None:
            if n <= 1:
                return        # never narrowed
            self._blas = blas_threads()
            self._blas_found = self._blas.get()
            self._blas_now = self._blas_found
        if not self._blas_found:
            return
        want = self._blas_found if n <= 1 else [max(1, available_cores() // n)] * len(self._blas_found)
        if want != self._blas_now:
            self._blas.set(want)
            self._blas_now = want

    def wide(self) -> None:
        """Give the BLAS back its own thread count (before a large product outside ``map``)."""
        self._blas_for(1)

    def map(self, fn: Callable[[int], T], n: int | None = None) -> list[T]:
        """``[fn(0), ..., fn(n - 1)]`` (n defaults to the thread count), run concurrently; the first
        exception, in index order, is raised once all have finished."""
        n = self.threads if n is None else n
        if n <= 1:
            return [fn(i) for i in range(n)]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="snr-stats")
        self._blas_for(n)
        futures = [self._executor.submit(fn, i) for i in range(1, n)]
        results: list = [None] * n
        errors: list[BaseException] = []
        try:
            results[0] = fn(0)
        except BaseException as e:  # noqa: BLE001 - the other threads finish first
            errors.append(e)
        for i, f in enumerate(futures, start=1):
            try:
                results[i] = f.result()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        if errors:
            raise errors[0]
        return results
