#!/usr/bin/env python
"""How much slower is ``snr analyze`` than plain onnxruntime inference over the same data?

For each workload (see ``workloads.py``) this builds the model (random He-init
weights) and random non-negative data stored as ``.npy`` in a temporary folder,
then measures, each run in a fresh subprocess:

- ``ort``: plain onnxruntime inference over the data (same batch size, same
  session options: ``ORT_ENABLE_BASIC``, default thread counts), the data read
  from the memory-mapped ``.npy`` batch by batch and converted like ``snr`` does;
- ``snr``: ``snrcli.analyze(model, data, batch_size=...)`` in-process (model
  checks, session, statistics, figures and report included), timed after the
  imports, ``snrcli`` imported first;
- ``snr`` again on 10x the data, for its peak RSS;
- with ``--whole``: both as whole processes, start-up included: ``snr analyze
  MODEL --data DATA --batch-size B --json`` against a Python process running the
  plain onnxruntime loop above;
- with ``--import-order``: ``snrcli.analyze`` in a process that imported numpy
  (and ran one matrix product) before ``snrcli``, as a notebook does, against
  the ``snr`` runs above.

Each timed run first reads the model and data files once, so both sides find them in the page
cache. Times are the median of ``--repeat`` runs (the machine may be shared), taken in
adjacent ort/snr pairs; a ratio is the median (and range) of the pairs' snr / ort. CPU is the
process's user + system time over the same span (in-process: from the start of the clock;
whole process: everything). Peak RSS is the child's ``VmHWM`` (resident high-water mark,
file-backed pages of the memory-mapped data included). Prints the tables; ``--json FILE``
writes every measurement; ``--quick`` is a small smoke version (a few seconds a workload).

    .venv/bin/python benchmarks/analyze_vs_inference.py [--quick] [--json out.json]
        [--only mlp,cnn5] [--repeat 3] [--keep DIR] [--whole] [--import-order] [--no-rss10]
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


def _cpu_s() -> float:
    """This process's user + system time so far, every thread included."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def plain_inference(model: str, data: str, batch: int) -> None:
    """Plain onnxruntime inference over the data, batch by batch (the ``ort`` side)."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.load(data, mmap_mode="r")
    for lo in range(0, len(x), batch):
        sess.run(None, {name: np.ascontiguousarray(x[lo:lo + batch], dtype=np.float32)})


def _switch_off(names: str) -> None:
    """Turn pieces of speed machinery off (``SNR_BENCH_OFF``, comma-separated), to measure what each earns."""
    for name in filter(None, names.split(",")):
        if name == "threads":        # one statistics thread
            import snrcli.analysis.stream as stream

            stream.stats_threads = lambda requested, default_max: 1
        elif name == "rowbuf":       # dense rows multiplied batch by batch (256 rows), not 4,096 at a time
            import snrcli.stats.comoments as comoments

            comoments.BLOCK_ROWS = 256
        elif name == "wait":         # small dense layers' rows taken in batch by batch, not 64K values at a time
            import snrcli.stats.layer as layer

            layer.SMALL_PASS_VALUES = 0
        else:
            raise SystemExit(f"SNR_BENCH_OFF: unknown {name!r}")


def child(mode: str, model: str, data: str, batch: int) -> dict:
    if mode == "snr-numpy-first":   # as a notebook does: numpy loaded, and its BLAS used, before snrcli
        import numpy as np

        a = np.ones((512, 512), np.float32)
        a @ a
    if os.environ.get("SNR_BENCH_SNRCLI"):
        _use_snrcli_from(os.environ["SNR_BENCH_SNRCLI"])
    import snrcli  # (before numpy in the other modes, as the command imports it)
    import snrcli.analysis.api  # noqa: F401 - imported before the clock (numpy, onnx, onnxruntime)

    _switch_off(os.environ.get("SNR_BENCH_OFF", ""))

    where = os.path.dirname(os.path.dirname(snrcli.__file__))
    start_kb = _status_kb("VmRSS")
    t0, c0 = time.perf_counter(), _cpu_s()
    if mode == "ort":
        plain_inference(model, data, batch)
        extra = {}
    else:
        report = snrcli.analyze(model, data, batch_size=batch)
        d = report.to_dict()
        extra = {"G_total": d["network"]["G_total"], "S_means": [L["S_mean"] for L in d["layers"]]}
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {"mode": mode, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _status_kb("VmHWM") / 1024, "snrcli": where,
            "start_rss_mb": start_kb / 1024, "end_rss_file_mb": _status_kb("RssFile") / 1024, **extra}


# ----------------------------------------------------------------------------- driver side

def warm(*paths: Path) -> None:
    """Read the files once so the timed run finds them in the page cache: this VM's cache is small and
    drops files between runs, and a cold read (0.1-0.3 s) landed on whichever side ran first."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass


def run_child(mode: str, model: Path, data: Path, batch: int, timeout: float = 900, snr_path: str | None = None,
              off: str = "") -> dict:
    warm(model, data)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(model), str(data), str(batch)]
    env = dict(os.environ, SNR_BENCH_OFF=off)
    if snr_path and mode.startswith("snr"):   # another copy of the snrcli package (a before/after comparison)
        env["SNR_BENCH_SNRCLI"] = str(Path(snr_path).resolve())
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ORT_SCRIPT = f"import sys; sys.path.insert(0, {str(HERE)!r}); from analyze_vs_inference import plain_inference; " \
             "plain_inference(sys.argv[1], sys.argv[2], int(sys.argv[3]))"


def run_process(mode: str, model: Path, data: Path, batch: int, timeout: float = 900,
                snr_path: str | None = None) -> dict:
    """A whole process, start-up included: wall time and CPU (user + system) from ``wait4``."""
    warm(model, data)
    if mode == "ort":
        cmd = [sys.executable, "-c", ORT_SCRIPT, str(model), str(data), str(batch)]
    elif snr_path:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-cli", str(Path(snr_path).resolve()),
               "analyze", str(model), "--data", str(data), "--batch-size", str(batch), "--json"]
    else:
        cmd = [str(Path(sys.executable).parent / "snr"), "analyze", str(model), "--data", str(data),
               "--batch-size", str(batch), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} process failed ({proc.returncode}):\n{err[-3000:]}")
    return {"mode": mode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def pairs_summary(a_runs: list[dict], b_runs: list[dict]) -> dict:
    """Medians of each side, and the median and range of b / a over adjacent pairs (wall and CPU)."""
    wall = [b["wall_s"] / a["wall_s"] for a, b in zip(a_runs, b_runs)]
    cpu = [b["cpu_s"] / a["cpu_s"] for a, b in zip(a_runs, b_runs)]
    med = statistics.median
    return {"a_s": med(r["wall_s"] for r in a_runs), "b_s": med(r["wall_s"] for r in b_runs),
            "a_cpu_s": med(r["cpu_s"] for r in a_runs), "b_cpu_s": med(r["cpu_s"] for r in b_runs),
            "ratio": med(wall), "ratio_range": [min(wall), max(wall)], "cpu_ratio": med(cpu),
            "a_runs_s": [r["wall_s"] for r in a_runs], "b_runs_s": [r["wall_s"] for r in b_runs]}


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


def table(head: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    print(fmt_row(head, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in rows:
        print(fmt_row(row, widths))


def ratio_cell(r: dict, key: str = "ratio") -> str:
    return "{:.2f} ({:.2f}-{:.2f})".format(r[key], *r[key + "_range"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs=4, metavar=("MODE", "MODEL", "DATA", "BATCH"), help=argparse.SUPPRESS)
    ap.add_argument("--child-cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small data sets, one repeat: a smoke test")
    ap.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    ap.add_argument("--only", metavar="KEYS", help="comma-separated workload keys (digits,mlp,cnn5,resnet18,"
                    "transformer,cnn64,cifar)")
    ap.add_argument("--repeat", type=int, default=None, help="timing runs per side (default 3, 1 with --quick)")
    ap.add_argument("--no-rss10", action="store_true", help="skip the 10x-data RSS run")
    ap.add_argument("--whole", action="store_true", help="also time whole processes (the snr command)")
    ap.add_argument("--import-order", action="store_true", help="also time snrcli.analyze with numpy imported first")
    ap.add_argument("--off", metavar="NAMES", help="instead of the tables: snr with and without each piece of speed "
                    "machinery (threads, rowbuf, wait), interleaved")
    ap.add_argument("--keep", metavar="DIR", help="build models and data here and keep them")
    ap.add_argument("--snr-path", metavar="DIR", help="import snrcli from DIR in the snr runs (compare versions)")
    ap.add_argument("--before", metavar="DIR", help="also run the snrcli in DIR, interleaved, and show its ratios")
    args = ap.parse_args(argv)
    if args.child:
        mode, model, data, batch = args.child
        print(json.dumps(child(mode, model, data, int(batch))))
        return 0
    if args.child_cli is not None:   # the snr command from another copy of snrcli
        _use_snrcli_from(args.child_cli[0])
        from snrcli.cli import main as snr_main

        sys.argv = ["snr"] + args.child_cli[1:]
        return snr_main()

    from workloads import WORKLOADS, prepare

    repeat = args.repeat or (1 if args.quick else 3)
    chosen = [w for w in WORKLOADS if not args.only or w.key in args.only.split(",")]
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="snr-bench-")
    folder = Path(args.keep or tmp.name)
    scales = (1,) if args.no_rss10 or args.off else (1, 10)
    results, notes = [], []
    info = machine()
    started = time.perf_counter()
    sp = args.snr_path
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
            if args.off:
                for name in args.off.split(","):
                    on, off = [], []
                    for _ in range(repeat):
                        on.append(run_child("snr", model, data[1], w.batch, snr_path=sp))
                        off.append(run_child("snr", model, data[1], w.batch, snr_path=sp, off=name))
                    r = pairs_summary(on, off)
                    results.append({"key": w.key, "workload": w.title, "off": name, **r})
                    print(f"# {w.key}: {name} off / on: wall {r['b_s']:.2f} / {r['a_s']:.2f} s, {ratio_cell(r)}; "
                          f"CPU {r['b_cpu_s']:.2f} / {r['a_cpu_s']:.2f} s", file=sys.stderr)
                continue
            runs: dict[str, list[dict]] = {k: [] for k in ("ort", "snr", "numpy-first", "ort process", "snr process",
                                                           "before", "before process")}
            for _ in range(repeat):  # interleaved, so load from other users hits every side alike
                runs["ort"].append(run_child("ort", model, data[1], w.batch))
                runs["snr"].append(run_child("snr", model, data[1], w.batch, snr_path=sp))
                if args.before:
                    runs["before"].append(run_child("snr", model, data[1], w.batch, snr_path=args.before))
                if args.import_order:
                    runs["numpy-first"].append(run_child("snr-numpy-first", model, data[1], w.batch, snr_path=sp))
                if args.whole:
                    runs["ort process"].append(run_process("ort", model, data[1], w.batch))
                    runs["snr process"].append(run_process("snr", model, data[1], w.batch, snr_path=sp))
                    if args.before:
                        runs["before process"].append(run_process("snr", model, data[1], w.batch,
                                                                  snr_path=args.before))
            big = run_child("snr", model, data[10], w.batch, snr_path=sp) if 10 in data else None
            res = {"key": w.key, "workload": w.title, "kind": w.kind, "items": items, "batch": w.batch,
                   "target": w.target, "in_process": pairs_summary(runs["ort"], runs["snr"]),
                   "ort_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["ort"]),
                   "snr_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["snr"]),
                   "snr10_items": items * 10 if big else None,
                   "snr10_s": big["wall_s"] if big else None,
                   "snr10_peak_rss_mb": big["peak_rss_mb"] if big else None,
                   "G_total": runs["snr"][0].get("G_total"),
                   "G_total_10x": big.get("G_total") if big else None}
            res["rss10_growth"] = (big["peak_rss_mb"] / res["snr_peak_rss_mb"] - 1) if big else None
            if args.whole:
                res["whole_process"] = pairs_summary(runs["ort process"], runs["snr process"])
            if args.import_order:
                res["numpy_first"] = pairs_summary(runs["snr"], runs["numpy-first"])
            if args.before:
                res["before"] = pairs_summary(runs["ort"], runs["before"])
                if args.whole:
                    res["before_process"] = pairs_summary(runs["ort process"], runs["before process"])
            results.append(res)
            r = res["in_process"]
            print(f"# {w.key}: ort {r['a_s']:.2f}s snr {r['b_s']:.2f}s ratio {ratio_cell(r)}, CPU ratio "
                  f"{r['cpu_ratio']:.2f}" + (f"; whole process {ratio_cell(res['whole_process'])}" if args.whole else "")
                  + (f", RSS {res['snr_peak_rss_mb']:.0f} -> {big['peak_rss_mb']:.0f} MB (10x)" if big else ""),
                  file=sys.stderr)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.off:
        print(f"machine: {info['cpu']}, {info['cores']} cores; medians of {repeat} interleaved pairs")
        table(["workload", "switched off", "on s", "off s", "off / on (range)", "CPU on s", "CPU off s"],
              [[r["workload"], r["off"], f"{r['a_s']:.2f}", f"{r['b_s']:.2f}", ratio_cell(r), f"{r['a_cpu_s']:.2f}",
                f"{r['b_cpu_s']:.2f}"] for r in results])
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "repeat": repeat, "results": results}, indent=2))
        return 0
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; python {info['python']}, "
          f"numpy {info['numpy']}, onnxruntime {info['onnxruntime']}; times: median of {repeat} run(s); "
          "ratio: median (range) of snr / onnxruntime over adjacent pairs of runs; CPU: user + system"
          + (f"; snrcli from {sp}" if sp else "") + (f"; before: snrcli from {args.before}" if args.before else ""))
    rows = []
    for r in results:
        ip, target = r["in_process"], r["target"] or float("inf")
        miss = [] if ip["ratio"] <= target else ["in-process"]
        row = [r["workload"], r["items"], r["batch"], f"{ip['a_s']:.2f}", f"{ip['b_s']:.2f}", ratio_cell(ip),
               f"{ip['cpu_ratio']:.2f}"]
        if args.whole:
            wp = r["whole_process"]
            miss += [] if wp["ratio"] <= target else ["whole"]
            row += [f"{wp['a_s']:.2f}", f"{wp['b_s']:.2f}", ratio_cell(wp), f"{wp['cpu_ratio']:.2f}"]
        if args.before:
            row += [ratio_cell(r["before"])] + ([ratio_cell(r["before_process"])] if args.whole else [])
        row += [("-" if r["target"] is None else f"<= {r['target']:.1f}") + (" MISS " + ",".join(miss) if miss else ""),
                f"{r['snr_peak_rss_mb']:.0f}",
                "-" if r["rss10_growth"] is None else f"{100 * r['rss10_growth']:+.1f}%"]
        rows.append(row)
    head = ["workload", "items", "batch", "ort s", "snr s", "ratio (range)", "CPU ratio"]
    if args.whole:
        head += ["ort proc s", "snr proc s", "process ratio (range)", "proc CPU ratio"]
    if args.before:
        head += ["before ratio"] + (["before process ratio"] if args.whole else [])
    head += ["target", "RSS MB", "RSS 10x"]
    table(head, rows)
    if args.import_order:
        print("\nsnrcli.analyze with numpy imported (and its BLAS used) first, against snrcli imported first:")
        table(["workload", "snrcli first s", "CPU s", "numpy first s", "CPU s", "wall ratio (range)", "CPU ratio"],
              [[r["workload"], f"{r['numpy_first']['a_s']:.2f}", f"{r['numpy_first']['a_cpu_s']:.2f}",
                f"{r['numpy_first']['b_s']:.2f}", f"{r['numpy_first']['b_cpu_s']:.2f}", ratio_cell(r["numpy_first"]),
                f"{r['numpy_first']['cpu_ratio']:.2f}"] for r in results])
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
