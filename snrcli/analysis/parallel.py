"""Sharded analysis: worker processes (``--jobs N``) or a Dask cluster (``--scheduler``).

Each shard is a contiguous range of items; a worker reads the model and data
files itself, runs its own onnxruntime session and sends back the mergeable
statistics (``Analysis``), which are merged here in shard order.

Workers write nothing to the caller's terminal or pipes (their stdin, stdout and stderr are
/dev/null), ignore Ctrl-C once started (the terminal sends it to them too; the parent stops them),
and exit quietly, within 0.1 s, when the parent stops them (an error, Ctrl-C, SIGTERM) or dies.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Callable, Iterator

from .. import signals
from ..errors import UsageError


def _threads_per_worker(settings, workers: int):
    if settings.threads:
        return settings
    per = max(1, (os.cpu_count() or 1) // max(1, workers))
    return dataclasses.replace(settings, threads=per)


def run_sharded(info, model_path: str, data_path: str, settings, items: int, *, align: int, jobs: int,
                scheduler: str | None, progress: Callable[[int], None] | None = None):
    """Run every shard and return the merged ``Analysis`` (statistics equal to one pass up to rounding)."""
    from .accumulate import Analysis
    from .stream import run_shard, shard_ranges

    model_path, data_path = os.path.abspath(model_path), os.path.abspath(data_path)
    if scheduler:
        results = _on_dask(scheduler, model_path, data_path, settings, items, align, progress)
    else:
        ranges = shard_ranges(items, jobs, align)
        settings = _threads_per_worker(settings, len(ranges))
        ctx = multiprocessing.get_context("spawn")
        with _starting_workers():    # multiprocessing's helper process starts here, the workers in submit()
            stop = ctx.Event()
            pool = ProcessPoolExecutor(max_workers=len(ranges), mp_context=ctx, initializer=_worker_start,
                                       initargs=(stop, os.getpid()))
        futures = {}
        try:
            with _starting_workers():
                for a, b in ranges:
                    futures[pool.submit(run_shard, model_path, data_path, settings, a, b)] = (a, b)
            for f in as_completed(futures):
                f.result()
                if progress:
                    a, b = futures[f]
                    progress(b - a)
            results = [f.result() for f in sorted(futures, key=lambda f: futures[f][0])]
        except BaseException:
            stop.set()         # each worker exits at once, whatever it was doing
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    merged = Analysis(info, noise_model=settings.noise_model)
    for r in results:
        merged.merge(r)
    merged.providers = getattr(results[0], "providers", None) if results else None
    return merged


@contextmanager
def _starting_workers() -> Iterator[None]:
    """Worker processes started inside get /dev/null as stdin, stdout and stderr: they never hold the
    caller's pipes, and nothing they might print (a Ctrl-C traceback while they start, an onnxruntime
    log line) breaks the one-line stderr contract; their errors come back as exceptions. For those few
    ms this process's own descriptors point there too. SIGINT and SIGTERM are acted on after the
    block (a worker stopped half-way through its start would fail loudly)."""
    saved = {}
    for fd in (0, 1, 2):
        try:
            saved[fd] = os.dup(fd)
        except OSError:         # closed (snr ... <&-): left pointing at /dev/null afterwards
            saved[fd] = None
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        with signals.deferred():
            yield
    finally:
        for fd, copy in saved.items():
            if copy is not None:
                os.dup2(copy, fd)
                os.close(copy)
        os.close(null)


def _worker_start(stop, parent: int) -> None:
    """In each worker, first: Ctrl-C stays ignored (the parent stops the workers), and a watchdog ends the
    process, quietly, once the parent sets ``stop`` or is gone (killed: this process is then adopted)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while not stop.wait(0.1):
            if os.getppid() != parent:
                break
        os._exit(1)

    threading.Thread(target=watch, name="snr-watchdog", daemon=True).start()


def _client(scheduler: str):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise UsageError("--scheduler needs Dask: pip install 'snrcli[dask]'") from e
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--scheduler {scheduler!r}: expected local:N with N a number of workers") from None
        if n < 1:
            raise UsageError("--scheduler local:N needs N >= 1")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(scheduler, timeout="10s"), None
    except OSError as e:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e


def _on_dask(scheduler: str, model_path: str, data_path: str, settings, items: int, align: int,
             progress: Callable[[int], None] | None):
    from dask.distributed import as_completed as dask_completed

    from .stream import run_shard, shard_ranges

    client, cluster = _client(scheduler)
    try:
        workers = max(1, sum(client.nthreads().values()))
        ranges = shard_ranges(items, 2 * workers, align)
        settings = dataclasses.replace(settings, threads=settings.threads or 1)
        futures = [client.submit(run_shard, model_path, data_path, settings, a, b, pure=False)
                   for a, b in ranges]
        sizes = {f.key: b - a for f, (a, b) in zip(futures, ranges)}
        for f in dask_completed(futures):
            f.result()
            if progress:
                progress(sizes[f.key])
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
