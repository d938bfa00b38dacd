#!/usr/bin/env python
"""Fortran-ordered arrays in an ``.npz``: how much slower than the same data in C order?

Writes the sample digits data, tiled to about ``--mb`` MB of float32 items (N, 1, 8, 8), as four
``.npz`` files (C or Fortran order, stored or compressed) and times ``snrcli.analyze`` on
``sample_models/digits_mlp.onnx`` over each, in-process, interleaved, ``--repeat`` times. Prints
the median seconds and the ratio of each file to C order with the same compression; the figures
must agree exactly.

    .venv/bin/python benchmarks/fortran_npz.py [--mb 6] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from snrcli import analyze

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=6.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    model = ROOT / "sample_models/digits_mlp.onnx"
    base = np.load(ROOT / "sample_models/digits_test.npz")["input"]
    n = int(args.mb * 1e6 / base[0].nbytes)
    x = np.resize(base, (n,) + base.shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for order in ("C", "F"):
            a = np.asarray(x, order=order)
            for how, save in (("stored", np.savez), ("compressed", np.savez_compressed)):
                files[order, how] = Path(tmp) / f"{order}_{how}.npz"
                save(files[order, how], input=a)
        times: dict = {k: [] for k in files}
        figures = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(args.repeat):
                for k, path in files.items():
                    t = time.perf_counter()
                    r = analyze(model, path, batch_size=256)
                    times[k].append(time.perf_counter() - t)
                    figures[k] = r.network
        print(f"{n} items, {x.nbytes / 1e6:.1f} MB, median of {args.repeat} interleaved runs")
        for (order, how), ts in times.items():
            ref = statistics.median(times["C", how])
            print(f"  {order} {how:<10} {statistics.median(ts):7.3f} s   x{statistics.median(ts) / ref:5.2f} of C order")
        assert all(f == figures["C", "stored"] for f in figures.values()), figures


if __name__ == "__main__":
    main()
