#!/usr/bin/env python
"""How long does ``snr report`` take, as a whole process (start-up, matplotlib, reading, figures, writing)?

Cases (the reports are made first, in a temporary folder, and not timed):

- ``one``: the one-run page of the sample MLP's run folder (3 layers, 58 units);
- ``pair``: the sample MLP against the sample CNN (two runs side by side);
- ``family36``: a trajectory of 36 run folders of networks of the paper's shape
  (64-1024-1000-10 on the sample digits (8x8, flattened), random weights, 2,034 units each, units.csv included);
- ``family36-json``: the same 36 runs as report JSON files without per-unit figures.

Each case runs ``--repeat`` times in a fresh ``python -m snrcli report`` process, the cases
interleaved (the machine may be shared); printed: the median wall time and its range, the median
CPU time (user + system) of the process, and the page's size.

    .venv/bin/python benchmarks/report_time.py [--repeat 5] [--only one,family36] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"


def _mlp(path: Path, widths: tuple[int, ...], seed: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes, x = [], [helper.make_node("Flatten", ["input"], ["flat"], name="flatten", axis=1)], "flat"
    for k in range(1, len(widths)):
        w = (rng.normal(size=(widths[k], widths[k - 1])) * np.sqrt(2 / widths[k - 1])).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{k}"),
                  numpy_helper.from_array((rng.normal(size=widths[k]) * 0.1).astype(np.float32), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [f"z{k}"], name=f"fc{k}", transB=1))
        if k < len(widths) - 1:
            nodes.append(helper.make_node("Relu", [f"z{k}"], [f"h{k}"], name=f"relu{k}"))
            x = f"h{k}"
    nodes.append(helper.make_node("Softmax", [f"z{len(widths) - 1}"], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", widths[-1]])],
                              initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def prepare(work: Path) -> dict[str, list[str]]:
    from snrcli.analysis.api import analyze
    from snrcli.reports.report import write_run_folder

    data = str(SAMPLES / "digits_test.npz")
    write_run_folder(analyze(str(SAMPLES / "digits_mlp.onnx"), data), work / "mlp")
    write_run_folder(analyze(str(SAMPLES / "digits_cnn.onnx"), data), work / "cnn")
    (work / "models").mkdir()
    folders, files = [], []
    for k in range(36):
        model = work / "models" / f"m{k:02d}.onnx"
        _mlp(model, (64, 1024, 1000, 10), seed=k)
        report = analyze(str(model), data)
        folders.append(str(write_run_folder(report, work / "family" / f"m{k:02d}")))
        files.append(str(work / "json" / f"m{k:02d}.json"))
        Path(files[-1]).parent.mkdir(exist_ok=True)
        Path(files[-1]).write_text(report.to_json())
    return {"one": [str(work / "mlp")], "pair": [str(work / "mlp"), str(work / "cnn")],
            "family36": folders, "family36-json": files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated case names")
    ap.add_argument("--keep", default=None, help="make the reports and pages in this folder and keep them")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="snr-report-time-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        cases = prepare(work)
        print(f"reports made in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if args.only:
            cases = {k: v for k, v in cases.items() if k in args.only.split(",")}
        times: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeat):
            for name, runs in cases.items():
                out = work / f"{name}.html"
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "snrcli", "report", *runs, "--html", str(out), "--force",
                                "-q"], check=True)
                times[name].append(time.perf_counter() - t)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(f"{'case':<15} {'runs':>4} {'wall s':>7} {'range s':>13} {'CPU s':>6} {'page KB':>8}")
        for name, ts in times.items():
            size = (work / f"{name}.html").stat().st_size / 1024
            print(f"{name:<15} {len(cases[name]):>4} {statistics.median(ts):>7.2f} "
                  f"{min(ts):>6.2f}-{max(ts):<6.2f} {statistics.median(cpu[name]):>6.2f} {size:>8.0f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
