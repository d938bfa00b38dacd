#!/usr/bin/env python
"""Markdown tables for README.md from the snr-correlate/1 JSON files and covariates.csv under results/.

  python examples/activation_family/tables.py examples/activation_family/results

One table per noise model (results/relu/, results/activation/): Spearman rho of each
network figure and baseline with test accuracy, and the partial rho given training
length, per activation and pooled. A noise model not yet run gets a placeholder.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

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


def main(root: Path | None = None) -> None:
    root = root or HERE / "results"
    t = _mnist_tables()
    print("Test accuracy (whole test split), lowest-highest:\n")
    accuracy_table(root)
    for name, title in NOISE_MODELS:
        out = root / name
        present = (out / "pooled" / "correlation.json").exists()
        print(f"\nSpearman rho with test accuracy, {title}:\n")
        if not present:
            print(f"(not yet run: `run_family.py --analyse-only --noise-model {name}`)\n")
        figure_table(t, out if present else None)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
