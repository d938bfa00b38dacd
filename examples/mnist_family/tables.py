#!/usr/bin/env python
"""Markdown tables for README.md from the snr-correlate/1 JSON files under results/.

  python examples/mnist_family/tables.py examples/mnist_family/results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# the paper's Table 1 (MNIST, Spearman rho against test accuracy), by our row names
PAPER = {"layers[1].G_mean": ("G1", 0.700), "layers[2].G_mean": ("G2", 0.818),
         "network.G_final": ("G3 (centred)", 0.416), "network.G_hidden": ("G(1..2)", 0.799)}
DATASETS = [("mnist", "MNIST"), ("fashion_mnist", "Fashion-MNIST")]


def num(v, d=3):
    return "-" if v is None else f"{v:.{d}f}"


def pval(v):
    return "-" if v is None else (f"{v:.1e}" if v < 0.001 else f"{v:.3f}")


def load(root: Path, ds: str, name: str):
    p = root / ds / f"{name}.json"
    return {r["figure"]: r for r in json.loads(p.read_text())["rows"]} if p.exists() else None


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    have = [(ds, title) for ds, title in DATASETS if (root / ds / "correlation.json").exists()]
    # 1. beside the paper
    head = ["figure", "paper rho (MNIST)"]
    for _, title in have:
        head += [f"{title} rho (p)", f"{title} partial rho given epochs (p)", f"{title} rho, 40-epoch runs only"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    tabs = {ds: (load(root, ds, "correlation"), load(root, ds, "correlation_control_epochs"),
                 load(root, ds, "correlation_longest")) for ds, _ in have}
    first = tabs[have[0][0]][0]
    for key in first:
        label, paper = PAPER.get(key, (first[key]["label"], None))
        if key in PAPER:
            label = f"{first[key]['label']} = paper's {label}"
        cells = [label, num(paper)]
        for ds, _ in have:
            plain, ctrl, longest = tabs[ds]
            r, c = plain.get(key), ctrl.get(key) if ctrl else None
            lg = longest.get(key) if longest else None
            cells.append(f"{num(r['spearman_rho'])} ({pval(r['spearman_p'])})" if r else "-")
            cells.append(f"{num(c['partial_rho'])} ({pval(c['partial_p'])})" if c else "-")
            cells.append(f"{num(lg['spearman_rho'])} (n={lg['n']})" if lg else "-")
        print("| " + " | ".join(cells) + " |")
    # 2. full tables
    for ds, title in have:
        for name, what in [("correlation", "against test accuracy"),
                           ("correlation_gap", "against the gap (train - test accuracy), partial given epochs")]:
            rows = load(root, ds, name)
            if not rows:
                continue
            partial = any("partial_rho" in r for r in rows.values())
            print(f"\n{title}, {what}:\n")
            cols = ["figure", "rho", "p", "tau", "p", "r", "r^2", "n"] + (["rho given epochs", "p"] if partial else [])
            print("| " + " | ".join(cols) + " |")
            print("|---|" + "---:|" * (len(cols) - 1))
            for r in rows.values():
                cells = [r["label"], num(r["spearman_rho"]), pval(r["spearman_p"]), num(r["kendall_tau"]),
                         pval(r["kendall_p"]), num(r["pearson_r"]), num(r["r2"]), str(r["n"])]
                if partial:
                    cells += [num(r.get("partial_rho")), pval(r.get("partial_p"))]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
