#!/usr/bin/env python
"""What the activation noise model's slopes cost: ``snr analyze`` with ``--noise-model activation``
against the default ``relu``, on the transformer MLP block of ``workloads.py`` (ReLU) and on the
same block with GELU as exporters write it (Div, Erf, Add, Mul, Mul).

Each run is ``snrcli.analysis.api.analyze`` in a fresh subprocess (timed inside it, the data in
the page cache), the two noise models in adjacent pairs so that load from other users hits both
alike; the ratio is the median of the pairs' activation / relu (and their range).

    .venv/bin/python benchmarks/noise_model_cost.py [--repeat 5] [--items 1024] [--only transformer]

Measured on a 2-core machine shared with other jobs (so the ranges are wide), 5 pairs each,
ratio median (range):

    workload           before             after
    transformer        1.014 (0.90-1.30)  0.923 (0.90-1.11)
    transformer_gelu   2.241 (1.84-2.45)  1.270 (1.16-1.51)

"Before" evaluated every slope in float64 with scipy's erf (~12 ns a value, ~75% of the slopes'
time) in blocks of whole rows of 131k values; "after" reads the Erf node's output from
onnxruntime (the slope Phi(z) + z phi(z) then needs only exp), evaluates float32 sites in
float32 (float64 sums) and in blocks of 32k values. Other runs of the same code gave 1.30,
1.40, 1.29, 1.33 for the GELU block; with float64 evaluation instead of float32, 1.45-1.48.
The rest is the chain rule's ~15 passes over each block and the per-channel sums of s^2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(model: str, data: str, batch: int, noise_model: str) -> dict:
    import snrcli.analysis.api  # noqa: F401 - before the clock, as the CLI imports it

    from snrcli.analysis.api import analyze

    t0 = time.perf_counter()
    report = analyze(model, data, batch_size=batch, noise_model=noise_model)
    wall = time.perf_counter() - t0
    d = report.to_dict()
    return {"wall_s": wall, "G_total": d["network"]["G_total"],
            "sites": [L["unit_activation"] for L in d["layers"]]}


def run_child(model: Path, data: Path, batch: int, noise_model: str) -> dict:
    for p in (model, data):
        p.read_bytes()                      # page cache
    cmd = [sys.executable, __file__, "--child", str(model), str(data), str(batch), noise_model]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=5, help="pairs of runs per workload (default 5)")
    ap.add_argument("--items", type=int, default=1024, help="items of [128, 256] (default 1024)")
    ap.add_argument("--only", default="transformer,transformer_gelu", help="comma-separated workloads")
    args = ap.parse_args(argv)
    if args.child:
        model, data, batch, noise_model = args.child
        print(json.dumps(child(model, data, int(batch), noise_model)))
        return 0

    import numpy as np
    import onnx

    from workloads import transformer_mlp, transformer_mlp_gelu

    builds = {"transformer": transformer_mlp, "transformer_gelu": transformer_mlp_gelu}
    rows = []
    with tempfile.TemporaryDirectory(prefix="snr-noise-") as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, np.random.default_rng(0).random((args.items, 128, 256), dtype=np.float32))
        for key in args.only.split(","):
            model = Path(tmp) / f"{key}.onnx"
            onnx.save_model(builds[key](), model)
            runs = {"relu": [], "activation": []}
            for _ in range(args.repeat):
                for nm in ("relu", "activation"):
                    runs[nm].append(run_child(model, data, 32, nm))
            pairs = [b["wall_s"] / a["wall_s"] for a, b in zip(runs["relu"], runs["activation"])]
            t = {nm: statistics.median(r["wall_s"] for r in rs) for nm, rs in runs.items()}
            rows.append((key, t["relu"], t["activation"], statistics.median(pairs), min(pairs), max(pairs),
                         runs["activation"][0]["sites"][0]))
            print(f"# {key}: relu {t['relu']:.2f}s activation {t['activation']:.2f}s "
                  f"ratio {rows[-1][3]:.3f} ({min(pairs):.3f}-{max(pairs):.3f})", file=sys.stderr)
    print(f"{args.items} items of [128, 256], batch 32; times: median of {args.repeat} runs; ratio: median (range) "
          "of activation / relu over adjacent pairs")
    print(f"{'workload':18} {'relu s':>8} {'activation s':>13} {'ratio':>7} {'range':>13}  site")
    for key, a, b, r, lo, hi, site in rows:
        print(f"{key:18} {a:8.2f} {b:13.2f} {r:7.3f} {lo:6.3f}-{hi:.3f}  {' '.join(site or ['-'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
