#!/usr/bin/env python
"""Markdown tables for README.md from the snr-correlate/1 JSON files and covariates.csv under results/.

  python examples/activation_family/tables.py examples/activation_family/results

One table per noise model (results/relu/, results/activation/): Spearman rho of each
network figure and baseline with test accuracy, and the partial rho given training
length, per activation and pooled. A noise model not yet run gets a placeholder.
Then, for the noise models that have been run: the mean network figures per
activation, and two checks: the pooled partial rho given activation and training
length together (``within_cells``), and the per-activation partial rho given
training length with the label-noise networks left out (``without_regulariser``,
the same method as ``snr correlate --control``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
GROUPS = [("relu", "ReLU"), ("gelu", "GELU"), ("tanh", "tanh"), ("pooled", "pooled")]
ROWS = ["network.G_hidden", "network.G_final", "network.G_total", "baselines.mean_max_softmax",
        "baselines.sum_squared_weights", "baselines.log_spectral_norm_product"]
NOISE_MODELS = [("relu", "relu noise model (the default)"), ("activation", "activation noise model")]


def _mnist_tables():
    """num, pval and load of the mnist_family example's tables.py."""
    spec = importlib.util.spec_from_file_location("mnist_family_tables", HERE.parent / "mnist_family" / "tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def accuracy_table(root: Path) -> None:
    """Test accuracy range per activation and training length, and per regulariser."""
    rows = list(csv.DictReader((root / "covariates.csv").open()))
    acts = list(dict.fromkeys(r["activation"] for r in rows))
    epochs = sorted({int(r["epochs"]) for r in rows})
    by = defaultdict(list)
    for r in rows:
        by[r["activation"], int(r["epochs"])].append(float(r["test_accuracy"]))
        by[r["activation"], r["regulariser"]].append(float(r["test_accuracy"]))
    regs = list(dict.fromkeys(r["regulariser"] for r in rows))
    head = ["activation"] + [f"{e} epoch{'s' * (e > 1)}" for e in epochs] + regs
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---|" * (len(head) - 1))
    for a in acts:
        cells = [a] + [f"{min(by[a, k]):.3f}-{max(by[a, k]):.3f}" for k in epochs + regs]
        print("| " + " | ".join(cells) + " |")


def figure_table(t, out: Path | None) -> None:
    head = ["figure"]
    for _, title in GROUPS:
        head += [f"{title} rho (p)", f"{title} partial rho given epochs (p)"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    tabs = {g: (t.load(out, g, "correlation"), t.load(out, g, "correlation_control_epochs")) if out else (None, None)
            for g, _ in GROUPS}
    n = {g: (next(iter(tabs[g][0].values()))["n"] if tabs[g][0] else None) for g, _ in GROUPS}
    for key in ROWS:
        label = key.split(".", 1)[1]
        cells = [label]
        for g, _ in GROUPS:
            plain, ctrl = tabs[g]
            r = plain.get(key) if plain else None
            c = ctrl.get(key) if ctrl else None
            cells.append(f"{t.num(r['spearman_rho'])} ({t.pval(r['spearman_p'])})" if r else "pending")
            cells.append(f"{t.num(c['partial_rho'])} ({t.pval(c['partial_p'])})" if c else "pending")
        print("| " + " | ".join(cells) + " |")
    if out:
        print("\nRuns per column: " + ", ".join(f"{title} {n[g]}" for g, title in GROUPS) + ".")


def family_runs(root: Path, names: list[str]) -> dict[str, list[dict]]:
    """Per noise model, the pooled correlation's runs (figures, target), each with its covariates row as "cov"."""
    covariates = {r["run"]: r for r in csv.DictReader((root / "covariates.csv").open())}
    runs = {}
    for name in names:
        runs[name] = json.loads((root / name / "pooled" / "correlation.json").read_text())["runs"]
        for r in runs[name]:
            r["cov"] = covariates[Path(r["model"]).stem]
    return runs


def within_cells(runs: list[dict], key: str) -> tuple[float, float]:
    """Partial Spearman rho of figure ``key`` and test accuracy within activation x training-length cells.

    As ``snr correlate --control``, but the control is the cell: the ranks (over all
    runs) of the figure and of the target are each centred within their cell (the
    least-squares residuals on one indicator per cell); rho of the two residuals,
    p from Student's t with n - 1 - (number of cells) degrees of freedom.
    """
    cells = [(r["cov"]["activation"], r["cov"]["epochs"]) for r in runs]
    names = sorted(set(cells))
    members = {name: [i for i, c in enumerate(cells) if c == name] for name in names}

    def residuals(values: list[float]) -> np.ndarray:
        ranks = stats.rankdata(values)
        means = {name: ranks[idx].mean() for name, idx in members.items()}
        return ranks - np.array([means[c] for c in cells])

    rho = float(stats.spearmanr(residuals([r["figures"][key] for r in runs]),
                                residuals([r["target"] for r in runs])).statistic)
    df = len(runs) - 1 - len(names)
    if abs(rho) >= 1.0:
        return rho, 0.0
    t = rho * np.sqrt(df / (1.0 - rho * rho))
    return rho, float(2.0 * stats.t.sf(abs(t), df))


def without_regulariser(runs: list[dict], activation: str, regulariser: str, key: str) -> dict:
    """``snr correlate``'s partial rho given epochs over one activation's runs, one regulariser left out."""
    from snrcli.reports.correlate import partial_stats

    kept = [r for r in runs if r["cov"]["activation"] == activation and r["cov"]["regulariser"] != regulariser]
    epochs = [float(r["cov"]["epochs"]) for r in kept]
    return partial_stats([r["figures"][key] for r in kept], [r["target"] for r in kept], epochs)[0]


def _row(label: str, cells: list[str]) -> None:
    print("| " + " | ".join([label] + cells) + " |")


def checks(t, root: Path, names: list[str]) -> None:
    """Mean figures per activation; pooled partial rho within cells; per activation without one regulariser."""
    runs, regulariser = family_runs(root, names), "labelnoise"
    cols = [(g, title, name) for g, title in GROUPS if g != "pooled" for name in names]
    print("\nMean figures over each activation's networks:\n")
    _row("figure", [f"{title}, {name} model" for _, title, name in cols])
    print("|---|" + "---:|" * len(cols))
    for key in ROWS[:3]:
        means = [np.mean([r["figures"][key] for r in runs[name] if r["cov"]["activation"] == g]) for g, _, name in cols]
        _row(key.split(".", 1)[1], [f"{m:.2f}" for m in means])

    print("\nPooled, partial rho given activation and training length together:\n")
    _row("figure", [f"{name} noise model: partial rho (p)" for name in names])
    print("|---|" + "---:|" * len(names))
    for key in ROWS:
        _row(key.split(".", 1)[1], [f"{t.num(rho)} ({t.pval(p)})" for rho, p in
                                    (within_cells(runs[name], key) for name in names)])
    first = runs[names[0]]
    print(f"\nRuns: {len(first)}, in {len({(r['cov']['activation'], r['cov']['epochs']) for r in first})} cells "
          "(activation x training length).")

    print("\nPer activation, partial rho given training length, label-noise networks left out:\n")
    _row("figure", [f"{title}, {name} model (p)" for _, title, name in cols])
    print("|---|" + "---:|" * len(cols))
    for key in ROWS:
        cells = []
        for g, _, name in cols:
            c = without_regulariser(runs[name], g, regulariser, key)
            cells.append(f"{t.num(c['partial_rho'])} ({t.pval(c['partial_p'])})")
        _row(key.split(".", 1)[1], cells)
    n = {g: sum(1 for r in first if r["cov"]["activation"] == g and r["cov"]["regulariser"] != regulariser)
         for g, _ in GROUPS if g != "pooled"}
    print("\nRuns per column: " + ", ".join(f"{title} {n[g]}" for g, title in GROUPS if g in n) + ".")


def main(root: Path | None = None) -> None:
    root = root or HERE / "results"
    t = _mnist_tables()
    print("Test accuracy (whole test split), lowest-highest:\n")
    accuracy_table(root)
    run = []
    for name, title in NOISE_MODELS:
        out = root / name
        present = (out / "pooled" / "correlation.json").exists()
        print(f"\nSpearman rho with test accuracy, {title}:\n")
        if not present:
            print(f"(not yet run: `run_family.py --analyse-only --noise-model {name}`)\n")
        figure_table(t, out if present else None)
        run += [name] if present else []
    if run:
        checks(t, root, run)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
