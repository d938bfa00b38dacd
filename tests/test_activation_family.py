"""examples/activation_family: its committed results agree with each other and with its README."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import check_report_dict

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "activation_family"
RESULTS = EXAMPLE / "results"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"activation_family_{name}", EXAMPLE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_family_design():
    specs = load("run_family").family(["relu", "gelu", "tanh"], [1, 3, 10], [0, 1])
    assert len(specs) == 72 and len({s["run"] for s in specs}) == 72
    assert {(s["activation"], s["regulariser"]) for s in specs} == \
        {(a, r) for a in ("relu", "gelu", "tanh") for r in ("none", "wd", "dropout", "labelnoise")}


def test_heldout_is_a_fixed_subsample(tmp_path):
    rf = load("run_family")
    x = np.arange(50 * 784, dtype=np.float32).reshape(50, 784)
    y = np.arange(50) % 10
    path = rf.heldout(x, y, 20, tmp_path)
    with np.load(path, allow_pickle=False) as z:
        assert z["input"].shape == (20, 784)
        rows = (z["input"][:, 0] // 784).astype(int)
        assert list(rows) == sorted(set(rows))            # 20 distinct images, in test-split order
        assert np.array_equal(z["labels"], y[rows])
    (tmp_path / "again").mkdir()
    again = rf.heldout(x, y, 20, tmp_path / "again")
    with np.load(path) as a, np.load(again) as b:
        assert np.array_equal(a["input"], b["input"])


def test_committed_reports_match_the_correlation_tables():
    covariates = list(csv.DictReader((RESULTS / "covariates.csv").open()))
    assert len(covariates) == 72
    pooled = json.loads((RESULTS / "relu" / "pooled" / "correlation.json").read_text())
    by_label = {r["label"]: r for r in pooled["runs"]}
    assert len(by_label) == 72
    for row in covariates:
        report = json.loads((RESULTS / "relu" / "reports" / f"{row['run']}.json").read_text())
        check_report_dict(report)
        assert report["data"]["samples"] == 2000
        assert "/" not in report["model"]["path"] and "/" not in report["data"]["path"]   # no machine paths
        run = by_label[f"reports/{row['run']}.json"]
        assert run["target"] == pytest.approx(float(row["test_accuracy"]))
        assert run["figures"]["network.G_hidden"] == pytest.approx(report["network"]["G_hidden"], rel=1e-12)
        assert run["figures"]["network.G_final"] == pytest.approx(report["network"]["G_final"], rel=1e-12)


def test_readme_tables_are_the_committed_results():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        load("tables").main(RESULTS)
    readme = (EXAMPLE / "README.md").read_text()
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ") and "pending" not in line]
    assert len(rows) >= 12
    assert [r for r in rows if r not in readme] == []
