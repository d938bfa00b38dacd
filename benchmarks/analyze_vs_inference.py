#!/usr/bin/env python
"""How much slower is ``snr analyze`` than plain onnxruntime inference over the same data?

For each workload (see ``workloads.py``) this builds the model (random He-init
weights) and random non-negative data stored as ``.npy`` in a temporary folder,
then measures, each run in a fresh subprocess:

- ``ort``: plain onnxruntime inference over the data (same batch size, same
  session options: ``ORT_ENABLE_BASIC``, default thread counts), the data read
  from the memory-mapped ``.npy`` batch by batch and converted like ``snr`` does;
- ``snr``: ``snrcli.analysis.api.analyze(model, data, batch_size=...)`` in-process
  (model checks, session, statistics, figures and report included);
- ``snr`` again on 10x the data, for its peak RSS.

Each timed run first reads the model and data files once, so both sides find them in the page
cache. Wall times are the median of ``--repeat`` runs (the machine may be shared), taken in
adjacent ort/snr pairs; the ratio is the median (and range) of the pairs' snr / ort;
peak RSS is the child's ``VmHWM`` (resident high-water mark, file-backed pages
of the memory-mapped data included). Prints one table; ``--json FILE`` writes
every measurement; ``--quick`` is a small smoke version (a few seconds a
workload).

    .venv/bin/python benchmarks/analyze_vs_inference.py [--quick] [--json out.json]
        [--only mlp,cnn5] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# ----------------------------------------------------------------------------- child side

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _use_snrcli_from(folder: str) -> None:
    """Import the ``snrcli`` package in ``folder`` instead of the installed one (an editable install's
    import hook would otherwise win over PYTHONPATH)."""
    import importlib.util

    pkg = os.path.join(folder, "snrcli")
    spec = importlib.util.spec_from_file_location("snrcli", os.path.join(pkg, "__init__.py"),
                                                  submodule_search_locations=[pkg])
    module = importlib.util.module_from_spec(spec)
    sys.modules["snrcli"] = module
    spec.loader.exec_module(module)


def child(mode: str, model: str, data: str, batch: int) -> dict:
    if os.environ.get("SNR_BENCH_SNRCLI"):
        _use_snrcli_from(os.environ["SNR_BENCH_SNRCLI"])
    import snrcli.analysis.api  # noqa: F401 - first, as the CLI does (it sets OpenBLAS's idle policy); before the clock

    import numpy as np
    import onnxruntime as ort

    where = os.path.dirname(os.path.dirname(snrcli.analysis.api.__file__))

    start_kb = _status_kb("VmRSS")
    t0 = time.perf_counter()
    if mode == "ort":
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.log_severity_level = 3
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = np.load(data, mmap_mode="r")
        for lo in range(0, len(x), batch):
            sess.run(None, {name: np.ascontiguousarray(x[lo:lo + batch], dtype=np.float32)})
        extra = {}
    else:
        from snrcli.analysis.api import analyze

        report = analyze(model, data, batch_size=batch)
        d = report.to_dict()
        extra = {"G_total": d["network"]["G_total"], "S_means": [L["S_mean"] for L in d["layers"]]}
    wall = time.perf_counter() - t0
    return {"mode": mode, "wall_s": wall, "peak_rss_mb": _status_kb("VmHWM") / 1024, "snrcli": where,
            "start_rss_mb": start_kb / 1024, "end_rss_file_mb": _status_kb("RssFile") / 1024, **extra}


# ----------------------------------------------------------------------------- driver side

def warm(*paths: Path) -> None:
    """Read the files once so the timed run finds them in the page cache: this VM's cache is small and
    drops files between runs, and a cold read (0.1-0.3 s) landed on whichever side ran first."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass


def run_child(mode: str, model: Path, data: Path, batch: int, timeout: float = 900, snr_path: str | None = None) -> dict:
    warm(model, data)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(model), str(data), str(batch)]
    env = dict(os.environ)
    if snr_path and mode == "snr":   # another copy of the snrcli package (a before/after comparison)
        env["SNR_BENCH_SNRCLI"] = str(Path(snr_path).resolve())
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import numpy as np
    import onnxruntime as ort
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": ort.__version__}


def fmt_row(cols, widths) -> str:
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=4, metavar=("MODE", "MODEL", "DATA", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small data sets, one repeat: a smoke test")
    ap.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated workload keys (digits,mlp,cnn5,resnet18,"
                    "transformer,cnn64)")
    ap.add_argument("--repeat", type=int, default=None, help="timing runs per side (default 3, 1 with --quick)")
    ap.add_argument("--no-rss10", action="store_true", help="skip the 10x-data RSS run")
    ap.add_argument("--keep", metavar="DIR", help="build models and data here and keep them")
    ap.add_argument("--snr-path", metavar="DIR", help="import snrcli from DIR in the snr runs (compare versions)")
    args = ap.parse_args(argv)
    if args.child:
        mode, model, data, batch = args.child
        print(json.dumps(child(mode, model, data, int(batch))))
        return 0

    from workloads import WORKLOADS, prepare

    repeat = args.repeat or (1 if args.quick else 3)
    chosen = [w for w in WORKLOADS if not args.only or w.key in args.only.split(",")]
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="snr-bench-")
    folder = Path(args.keep or tmp.name)
    scales = (1,) if args.no_rss10 else (1, 10)
    rows, results, notes = [], [], []
    info = machine()
    started = time.perf_counter()
    try:
        for w in chosen:
            made = prepare(w, folder / w.key, scales, args.quick)
            if made is None:
                notes.append(f"{w.key}: skipped, sample_models/digits_mlp.onnx or digits_test.npz is missing")
                print(f"# {notes[-1]}", file=sys.stderr)
                continue
            model, data = made
            import numpy as np
            items = len(np.load(data[1], mmap_mode="r"))
            ort_runs, snr_runs = [], []
            for _ in range(repeat):  # interleaved, so load from other users hits both sides alike
                ort_runs.append(run_child("ort", model, data[1], w.batch))
                snr_runs.append(run_child("snr", model, data[1], w.batch, snr_path=args.snr_path))
            big = run_child("snr", model, data[10], w.batch, snr_path=args.snr_path) if 10 in data else None
            t_ort = statistics.median(r["wall_s"] for r in ort_runs)
            t_snr = statistics.median(r["wall_s"] for r in snr_runs)
            pairs = [b["wall_s"] / a["wall_s"] for a, b in zip(ort_runs, snr_runs)]   # adjacent runs
            rss1 = max(r["peak_rss_mb"] for r in snr_runs)
            res = {"key": w.key, "workload": w.title, "kind": w.kind, "items": items, "batch": w.batch,
                   "ort_s": t_ort, "snr_s": t_snr, "ratio": statistics.median(pairs),
                   "ratio_range": [min(pairs), max(pairs)], "target": w.target,
                   "ort_runs_s": [r["wall_s"] for r in ort_runs], "snr_runs_s": [r["wall_s"] for r in snr_runs],
                   "ort_peak_rss_mb": max(r["peak_rss_mb"] for r in ort_runs),
                   "snr_peak_rss_mb": rss1,
                   "snr10_items": items * 10 if big else None,
                   "snr10_s": big["wall_s"] if big else None,
                   "snr10_peak_rss_mb": big["peak_rss_mb"] if big else None,
                   "rss10_growth": (big["peak_rss_mb"] / rss1 - 1) if big else None,
                   "G_total": snr_runs[0].get("G_total"),
                   "G_total_10x": big.get("G_total") if big else None}
            results.append(res)
            print(f"# {w.key}: ort {t_ort:.2f}s snr {t_snr:.2f}s ratio {res['ratio']:.2f} "
                  f"({min(pairs):.2f}-{max(pairs):.2f})"
                  + (f", RSS {rss1:.0f} -> {big['peak_rss_mb']:.0f} MB (10x)" if big else ""), file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    head = ["workload", "items", "batch", "ort s", "snr s", "ratio", "range", "target", "RSS MB", "RSS 10x MB",
            "growth"]
    for r in results:
        rows.append([r["workload"], r["items"], r["batch"], f"{r['ort_s']:.2f}", f"{r['snr_s']:.2f}",
                     f"{r['ratio']:.2f}", "{:.2f}-{:.2f}".format(*r["ratio_range"]), f"<= {r['target']:.1f}" + ("" if r["ratio"] <= r["target"] else " MISS"),
                     f"{r['snr_peak_rss_mb']:.0f}",
                     "-" if r["snr10_peak_rss_mb"] is None else f"{r['snr10_peak_rss_mb']:.0f}",
                     "-" if r["rss10_growth"] is None else f"{100 * r['rss10_growth']:+.1f}%"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; python {info['python']}, "
          f"numpy {info['numpy']}, onnxruntime {info['onnxruntime']}; times: median of {repeat} run(s); "
          "ratio: median (range) of snr / onnxruntime over adjacent pairs of runs"
          + (f"; snrcli from {args.snr_path}" if args.snr_path else ""))
    print(fmt_row(head, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in rows:
        print(fmt_row(row, widths))
    for n in notes:
        print(f"note: {n}")
    total = time.perf_counter() - started
    print(f"total benchmark time {total:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "repeat": repeat, "quick": args.quick,
                                               "results": results, "notes": notes, "total_s": total}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
