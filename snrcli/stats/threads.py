"""Threads for the statistics of each batch.

A conv layer's items in a batch are split across T threads, every thread adding
its share to accumulators of its own (merged when the data is done, like
``--jobs`` shards); a dense layer's rows and buffered products are shared
out the same way. Every BLAS call runs on one thread meanwhile
(``blas.one_thread``): T single-threaded products side by side beat one
multi-threaded product followed by single-threaded element-wise passes (the
patch copies, shifts and counts), which left all but one core idle. Nothing
starts until a batch is large enough to split.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

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


def stats_threads(requested: int | None, default_max: int) -> int:
    """Statistics threads: ``--threads`` when given, else the available cores up to ``default_max``."""
    return max(1, int(requested)) if requested else min(available_cores(), default_max)


class StatThreads:
    """``pool.map(fn)`` runs ``fn(0) .. fn(n - 1)`` at once, ``fn(0)`` on the calling thread. Worker
    threads start on first use; ``close`` ends them."""

    def __init__(self, threads: int):
        self.threads = max(1, threads)
        self._executor: ThreadPoolExecutor | None = None

    def __enter__(self) -> "StatThreads":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def map(self, fn: Callable[[int], T], n: int | None = None) -> list[T]:
        """``[fn(0), ..., fn(n - 1)]`` (n defaults to the thread count), run concurrently; the first
        exception, in index order, is raised once all have finished."""
        n = self.threads if n is None else n
        if n <= 1:
            return [fn(i) for i in range(n)]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="snr-stats")
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
