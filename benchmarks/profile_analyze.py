#!/usr/bin/env python
"""Profile ``snr analyze`` on one model and data file with cProfile; print where the time goes.

    .venv/bin/python benchmarks/profile_analyze.py MODEL DATA [--batch 256] [--limit N] [--top 25]

Also times plain onnxruntime over the same batches for comparison. Build the
benchmark models first with ``analyze_vs_inference.py --keep DIR``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from snrcli.analysis.api import analyze  # first, as the CLI does (it sets OpenBLAS's idle policy)

import numpy as np
import onnxruntime as ort


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    t_ort = plain(args.model, args.data, args.batch, args.limit)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    analyze(args.model, args.data, batch_size=args.batch, limit=args.limit)
    prof.disable()
    t_snr = time.perf_counter() - t0
    print(f"plain onnxruntime {t_ort:.2f}s, snr analyze {t_snr:.2f}s (under cProfile), ratio {t_snr / t_ort:.2f}")
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
