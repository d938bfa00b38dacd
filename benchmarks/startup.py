#!/usr/bin/env python
"""Start-up: how long whole ``snr`` processes take, against the imports they cannot avoid.

Each row is a fresh process. The rows are run round by round (every row once per
round, the order shuffled each round), so a busy moment of a shared machine
spreads over all of them; each row shows the median wall and CPU (user + system)
time over the rounds and the difference of the medians to its reference:

- ``python -c "import click, rich"`` for the commands that need neither onnx nor
  onnxruntime: ``--help``, ``--version``, shell completion, and ``compare``, ``check``
  ``correlate`` and ``report`` on existing report files (``report`` also beside
  ``import matplotlib.pyplot``, the plotting library it needs);
- ``python -c "import numpy, onnxruntime"`` and the same plus the inference itself
  (a plain onnxruntime script that reads the data and runs the model over it in
  batches of 256, snr's default) for ``snr analyze`` on the sample MLP, and for
  ``snrcli.analyze`` called in-process after ``import numpy`` (as a notebook would).

The reports used by compare/check/correlate are made first, in a temporary folder
(the sample MLP and CNN, and the MLP with its first layer's weights halved). Every
row runs once unmeasured first (files in the page cache, bytecode written even when
PYTHONDONTWRITEBYTECODE is set here, as an installed package has it).

It measures the ``snr`` and ``snrcli`` installed for the Python that runs it (the rows
run in the temporary folder, so a checkout in the current folder is not imported).

    .venv/bin/python benchmarks/startup.py [--rounds 15] [--only help,analyze]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "sample_models" / "digits_mlp.onnx"
CNN = ROOT / "sample_models" / "digits_cnn.onnx"
DATA = ROOT / "sample_models" / "digits_test.npz"
PY = sys.executable

INFERENCE = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
with np.load(sys.argv[2], allow_pickle=False) as z:
    x = z[name].astype(np.float32)
for lo in range(0, len(x), 256):
    s.run(None, {name: x[lo:lo + 256]})
"""

IN_PROCESS = """
import sys, numpy
import snrcli
snrcli.analyze(sys.argv[1], sys.argv[2])
"""


def snr_command() -> list[str]:
    """The ``snr`` console script beside this Python (what users run), else ``python -m snrcli``."""
    script = Path(PY).with_name("snr")
    return [str(script)] if script.exists() else [PY, "-m", "snrcli"]


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall s, CPU s of the child, exit code) of one process run in ``cwd``, its output thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.returncode


def make_reports(folder: Path, env: dict[str, str]) -> list[Path]:
    """Reports of three models on the sample data (the third: the MLP, first layer's weights halved)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(MLP))
    first = next(n for n in model.graph.node if n.op_type in ("Gemm", "MatMul"))
    for t in model.graph.initializer:
        if t.name == first.input[1]:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 0.5, t.name))
    halved = folder / "digits_mlp_half.onnx"
    onnx.save(model, str(halved))
    reports = []
    for m in (MLP, CNN, halved):
        out = folder / f"{m.stem}.json"
        with open(out, "w") as f:
            subprocess.run(snr_command() + ["analyze", str(m), "--data", str(DATA), "--json", "-q"],
                           env=env, cwd=folder, stdout=f, check=True)
        reports.append(out)
    return reports


def rows(reports: list[Path]) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(name, reference name or "", argv, extra environment) of every row, references first."""
    snr = snr_command()
    a, b, c = (str(r) for r in reports)
    light, heavy = "import click, rich", "import numpy, onnxruntime"
    inference = "onnxruntime inference"
    plotting = "import matplotlib.pyplot"   # what snr report draws with (the plot extra)
    return [
        (light, "", [PY, "-c", light], {}),
        ("snr --help", light, snr + ["--help"], {}),
        ("snr --version", light, snr + ["--version"], {}),
        ("snr analyze --help", light, snr + ["analyze", "--help"], {}),
        ("snr correlate --help", light, snr + ["correlate", "--help"], {}),
        ("completion script (bash)", light, snr, {"_SNR_COMPLETE": "bash_source"}),
        ("completion script (zsh)", light, snr, {"_SNR_COMPLETE": "zsh_source"}),
        ("completion script (fish)", light, snr, {"_SNR_COMPLETE": "fish_source"}),
        ("complete 'snr an<TAB>'", light, snr,
         {"_SNR_COMPLETE": "bash_complete", "COMP_WORDS": "snr an", "COMP_CWORD": "1"}),
        ("snr compare A B", light, snr + ["compare", a, b], {}),
        ("snr check A --require", light, snr + ["check", a, "--require", "network.G_total > -1e9"], {}),
        ("snr correlate A B C", light, snr + ["correlate", a, b, c], {}),
        (plotting, "", [PY, "-c", plotting], {}),
        ("snr report A --html", light, snr + ["report", a, "--html", str(Path(a).with_suffix(".html")), "--force"],
         {}),
        (heavy, "", [PY, "-c", heavy], {}),
        (inference, "", [PY, "-c", INFERENCE, str(MLP), str(DATA)], {}),
        ("snr analyze (sample MLP)", inference, snr + ["analyze", str(MLP), "--data", str(DATA)], {}),
        ("numpy, then snrcli.analyze", inference, [PY, "-c", IN_PROCESS, str(MLP), str(DATA)], {}),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="runs of every row (default 15)")
    ap.add_argument("--only", default=None, help="comma-separated substrings: rows whose name holds one "
                                                   "(their references always run)")
    args = ap.parse_args()

    # bytecode written by the unmeasured first run, as an installed package has it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("_SNR_COMPLETE") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_COLOR="1", COLUMNS="100")
    tmp = Path(tempfile.mkdtemp(prefix="snr-startup-"))
    try:
        table = rows(make_reports(tmp, env))
        if args.only:
            keys = [k.strip() for k in args.only.split(",") if k.strip()]
            keep = {name for name, _, _, _ in table if any(k in name for k in keys)}
            keep |= {ref for name, ref, _, _ in table if name in keep and ref}
            table = [r for r in table if r[0] in keep]
        walls: dict[str, list[float]] = {r[0]: [] for r in table}
        cpus: dict[str, list[float]] = {r[0]: [] for r in table}
        for name, _, argv, extra in table:    # once, unmeasured: files into the page cache, .pyc written
            code = run_once(argv, {**env, **extra}, tmp)[2]
            if code != 0:
                sys.exit(f"{name}: exit code {code}")
        for _ in range(args.rounds):
            order = list(table)
            random.shuffle(order)
            for name, _, argv, extra in order:
                wall, cpu, _code = run_once(argv, {**env, **extra}, tmp)
                walls[name].append(wall)
                cpus[name].append(cpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in walls.items()}
    medc = {k: statistics.median(v) for k, v in cpus.items()}
    print(f"# {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; medians of {args.rounds} interleaved runs; seconds")
    print(f"{'row':<30} {'wall':>6} {'cpu':>6}  {'vs reference':<26} {'wall +':>7} {'cpu +':>7}")
    for name, ref, _, _ in table:
        extra = f"{ref[:26]:<26} {med[name] - med[ref]:>+7.3f} {medc[name] - medc[ref]:>+7.3f}" if ref else ""
        print(f"{name:<30} {med[name]:>6.3f} {medc[name]:>6.3f}  {extra}")


if __name__ == "__main__":
    main()
