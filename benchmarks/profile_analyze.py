#!/usr/bin/env python
"""Where ``snr analyze`` spends its time on one model and data file.

    .venv/bin/python benchmarks/profile_analyze.py MODEL DATA [--batch 256] [--limit N]
        [--cprofile [--top 25]]

(``SNR_BENCH_SNRCLI=DIR`` profiles the ``snrcli`` package in DIR instead.)

Times plain onnxruntime over the same batches first, then one ``analyze`` with
timers around its phases (default) or under cProfile (``--cprofile``, which
sees the calling thread only). The phase table gives, per layer, its route and
the thread-seconds the statistics threads spent on its products and on the
other passes over its values, and the time the threads waited for each other
(thread count x the statistics' wall time, less their busy time). Build the
benchmark models with ``analyze_vs_inference.py --keep DIR``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import threading
import time

import importlib
import os
import sys

import numpy as np
import onnxruntime as ort

if os.environ.get("SNR_BENCH_SNRCLI"):   # another copy of snrcli (see analyze_vs_inference.py --snr-path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from analyze_vs_inference import _use_snrcli_from

    _use_snrcli_from(os.environ["SNR_BENCH_SNRCLI"])

from snrcli.analysis import accumulate, runner  # noqa: E402
from snrcli.analysis.api import analyze  # noqa: E402
from snrcli.stats import threads  # noqa: E402


def plain(model: str, data: str, batch: int, limit: int | None) -> float:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.load(data, mmap_mode="r")
    n = len(x) if limit is None else min(limit, len(x))
    for lo in range(0, n, batch):
        sess.run(None, {name: np.ascontiguousarray(x[lo:min(n, lo + batch)], dtype=np.float32)})
    return time.perf_counter() - t0


class Phases:
    """Timers patched around the pipeline's functions; per thread, so nested product time is
    attributed to the layer whose statistics are running on that thread."""

    def __init__(self):
        self.total = collections.defaultdict(float)      # (layer, what) -> thread-seconds
        self.wall = collections.defaultdict(float)       # phase -> wall seconds on the calling thread
        self.local = threading.local()
        self.lock = threading.Lock()
        self.routes: dict[str, str] = {}

    def _add(self, key, dt):
        with self.lock:
            self.total[key] += dt

    def wrap_wall(self, owner, name, phase):
        fn = getattr(owner, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.wall[phase] += time.perf_counter() - t0
        setattr(owner, name, timed)

    def wrap_layer(self):
        fn = accumulate.Analysis._add

        def timed(st, piece, pool=None, drain=False):
            name = st.layer.name
            self.routes[name] = st.route
            prev = getattr(self.local, "layer", None)
            self.local.layer = name
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(st, piece, pool, drain)
            finally:
                self._add((name, "busy"), time.perf_counter() - t0)
                self._add((name, "busy cpu"), time.thread_time() - c0)
                self.local.layer = prev
        accumulate.Analysis._add = staticmethod(timed)

    def wrap_product(self, owner, name):
        fn = getattr(owner, name)

        def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                where = getattr(self.local, "layer", None) or "?"
                self._add((where, "products"), time.perf_counter() - t0)
                self._add((where, "products cpu"), time.thread_time() - c0)
        setattr(owner, name, timed)

    def wrap_map(self):
        """A layer's work that ``StatThreads.map`` hands to other threads counts for that layer."""
        fn = threads.StatThreads.map
        me = self

        def timed_map(pool, work, n=None):
            name = getattr(me.local, "layer", None)
            caller = threading.get_ident()
            if name is None:
                return fn(pool, work, n)

            def run(t):
                if threading.get_ident() == caller:
                    return work(t)
                me.local.layer = name
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return work(t)
                finally:
                    me._add((name, "busy"), time.perf_counter() - t0)
                    me._add((name, "busy cpu"), time.thread_time() - c0)
                    me.local.layer = None
            return fn(pool, run, n)
        threads.StatThreads.map = timed_map

    def install(self):
        self.wrap_layer()
        self.wrap_map()
        self.wrap_wall(runner.Runner, "run", "onnxruntime")
        self.wrap_wall(accumulate.Analysis, "update", "statistics")
        self.wrap_wall(accumulate.Analysis, "drain", "statistics")
        for module in ("comoments", "conv", "layer", "products"):
            try:
                owner = importlib.import_module(f"snrcli.stats.{module}")
            except ImportError:
                continue
            for name in ("blocked_product", "rows_product"):
                if hasattr(owner, name):
                    self.wrap_product(owner, name)

    def report(self, threads: int, total: float) -> None:
        stats = self.wall["statistics"]
        busy = sum(v for (n, w), v in self.total.items() if w == "busy")
        print(f"analyze {total:.2f}s: onnxruntime {self.wall['onnxruntime']:.2f}s, statistics {stats:.2f}s "
              f"({threads} threads: {threads * stats:.2f} thread-s, busy {busy:.2f}, waiting "
              f"{threads * stats - busy:.2f}), the rest {total - self.wall['onnxruntime'] - stats:.2f}s")
        cpu = time.process_time() - self.cpu0
        print(f"process CPU {cpu:.2f}s; onnxruntime ran {self.wall['onnxruntime'] / total:.0%} of the wall time")
        print(f"{'layer':<24}{'route':<11}{'busy':>8}{'products':>10}{'passes':>8}   thread-seconds, wall (CPU)")
        for name, route in self.routes.items():
            b, p = self.total[(name, "busy")], self.total[(name, "products")]
            bc, pc = self.total[(name, "busy cpu")], self.total[(name, "products cpu")]
            print(f"{name:<24}{route:<11}{b:8.2f}{p:10.2f}{b - p:8.2f}   ({bc:.2f} {pc:.2f} {bc - pc:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--cprofile", action="store_true", help="cProfile (the calling thread only) instead of phases")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    t_ort = plain(args.model, args.data, args.batch, args.limit)
    phases = None if args.cprofile else Phases()
    if phases:
        phases.install()
        phases.cpu0 = time.process_time()
    prof = cProfile.Profile() if args.cprofile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    analyze(args.model, args.data, batch_size=args.batch, limit=args.limit)
    if prof:
        prof.disable()
    t_snr = time.perf_counter() - t0
    print(f"plain onnxruntime {t_ort:.2f}s, snr analyze {t_snr:.2f}s, ratio {t_snr / t_ort:.2f}")
    if prof:
        pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)
    else:
        from snrcli.analysis.settings import MAX_DEFAULT_THREADS
        from snrcli.stats.threads import stats_threads
        phases.report(stats_threads(None, MAX_DEFAULT_THREADS), t_snr)


if __name__ == "__main__":
    main()
