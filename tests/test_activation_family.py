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
from scipy import stats

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


@pytest.mark.parametrize("noise_model", ["relu", "activation"])
def test_committed_reports_match_the_correlation_tables(noise_model):
    covariates = list(csv.DictReader((RESULTS / "covariates.csv").open()))
    assert len(covariates) == 72
    pooled = json.loads((RESULTS / noise_model / "pooled" / "correlation.json").read_text())
    by_label = {r["label"]: r for r in pooled["runs"]}
    assert len(by_label) == 72
    for row in covariates:
        report = json.loads((RESULTS / noise_model / "reports" / f"{row['run']}.json").read_text())
        check_report_dict(report)
        assert report["data"]["samples"] == 2000
        assert "/" not in report["model"]["path"] and "/" not in report["data"]["path"]   # no machine paths
        run = by_label[f"reports/{row['run']}.json"]
        assert run["target"] == pytest.approx(float(row["test_accuracy"]))
        assert run["figures"]["network.G_hidden"] == pytest.approx(report["network"]["G_hidden"], rel=1e-12)
        assert run["figures"]["network.G_final"] == pytest.approx(report["network"]["G_final"], rel=1e-12)


def test_activation_reports_found_the_sites_and_leave_relu_networks_alone():
    op = {"relu": "Relu", "gelu": "Gelu", "tanh": "Tanh"}
    for row in csv.DictReader((RESULTS / "covariates.csv").open()):
        act = json.loads((RESULTS / "activation" / "reports" / f"{row['run']}.json").read_text())
        assert act["settings"]["noise_model"] == "activation"
        a = op[row["activation"]]
        assert [(l["input_activation"], l["unit_activation"]) for l in act["layers"]] == \
            [(None, [a]), ([a], [a]), ([a], None)]
        relu = json.loads((RESULTS / "relu" / "reports" / f"{row['run']}.json").read_text())
        assert act["accuracy"] == relu["accuracy"]
        assert act["baselines"] == pytest.approx(relu["baselines"], rel=1e-12)
        for key in ("G_hidden", "G_final", "G_total"):
            if row["activation"] == "relu":   # ReLUs read directly: both noise models give the same figures
                assert act["network"][key] == pytest.approx(relu["network"][key], rel=1e-9)
            else:                             # GELU and tanh units are no longer counted as always on
                assert act["network"][key] < relu["network"][key]


def test_within_cells_known_answers():
    tables = load("tables")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    one = [{"cov": {"activation": "relu", "epochs": "1"}, "figures": {"f": a}, "target": b} for a, b in zip(x, y)]
    rho, p = tables.within_cells(one, "f")                # one cell: plain Spearman
    ref = stats.spearmanr(x, y)
    assert rho == pytest.approx(ref.statistic, abs=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)
    # three cells: within each the figure orders the runs as the target does, across cells it is reversed
    runs = [{"cov": {"activation": "tanh", "epochs": str(c)}, "figures": {"f": -10.0 * c + k}, "target": c + 0.1 * k}
            for c in range(3) for k in range(5)]
    assert stats.spearmanr([r["figures"]["f"] for r in runs], [r["target"] for r in runs]).statistic < -0.7
    assert tables.within_cells(runs, "f") == (pytest.approx(1.0), 0.0)


@pytest.mark.parametrize("noise_model", ["relu", "activation"])
def test_leave_out_check_uses_snr_correlates_partial(noise_model):
    """Leaving out a regulariser no run has gives back the committed ``--control epochs`` table."""
    tables = load("tables")
    runs = tables.family_runs(RESULTS, [noise_model])[noise_model]
    for act in ("relu", "gelu", "tanh"):
        committed = json.loads((RESULTS / noise_model / act / "correlation_control_epochs.json").read_text())
        rows = {r["figure"]: r for r in committed["rows"]}
        for key in tables.ROWS:
            got = tables.without_regulariser(runs, act, "no such regulariser", key)
            assert got["partial_n"] == 24
            assert got["partial_rho"] == pytest.approx(rows[key]["partial_rho"], abs=1e-12)
            assert got["partial_p"] == pytest.approx(rows[key]["partial_p"], rel=1e-9)


def test_readme_tables_are_the_committed_results():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        load("tables").main(RESULTS)
    printed = out.getvalue()
    assert "pending" not in printed and "not yet run" not in printed     # both noise models are committed
    readme = (EXAMPLE / "README.md").read_text()
    assert "pending" not in readme and "placeholder" not in readme
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(rows) >= 3 + 2 * 6 + 3 + 6 + 6          # accuracy, two noise models, means, two checks
    assert [r for r in rows if r not in readme] == []


def test_readme_section_table_is_the_committed_results():
    """The top-level README's section "Networks other than ReLU" quotes the committed partial correlations."""
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    start = readme.index("### Networks other than ReLU")
    section = readme[start:readme.index("\n## ", start)]
    assert len(section.splitlines()) <= 35
    assert "--noise-model activation" in section
    groups = ("relu", "gelu", "tanh", "pooled")

    def partial(noise_model: str, group: str, key: str) -> str:
        rows = json.loads((RESULTS / noise_model / group / "correlation_control_epochs.json").read_text())["rows"]
        return f"{next(r for r in rows if r['figure'] == key)['partial_rho']:.2f}"

    for key in ("G_hidden", "G_final", "G_total"):
        cells = [f"{partial('relu', g, 'network.' + key)} / {partial('activation', g, 'network.' + key)}"
                 for g in groups]
        assert f"| {key} | " + " | ".join(cells) + " |" in section
    for key, label in (("sum_squared_weights", "sum of squared weights"),
                       ("log_spectral_norm_product", "log spectral norm product")):
        cells = [partial("activation", g, "baselines." + key) for g in groups]
        assert cells == [partial("relu", g, "baselines." + key) for g in groups]
        assert f"| {label} | " + " | ".join(cells) + " |" in section
