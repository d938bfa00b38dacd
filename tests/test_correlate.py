"""``snr correlate``: statistics checked against hand-computed values, and the command's contract.

Synthetic ``snr-report/1`` dicts stand in for analysed models (one test analyses
real tiny models on the fly). The expected numbers are worked out by hand in the
comments; scipy is what the module uses, so the hand values are the check.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from snrcli.reports.correlate import Run, correlate_runs, pair_stats, partial_stats, rank_residuals
from snrcli.errors import UsageError

# --------------------------------------------------------------------------- synthetic reports


def make_report(acc, g=(1.0, 2.0, 3.0), *, s=None, centred=(0.5, 2.5), network=None, baselines=None,
                settings=None, sha="d" * 64, model_sha=None, names=("fc1", "fc2", "fc3")) -> dict:
    """A 3-layer report; layer 3 is the classifier. ``g[i]`` is layer i+1's G_mean (S_mean = g/10 unless given)."""
    s = s or tuple(None if v is None else v / 10 for v in g)
    layers = []
    for k, (gv, sv, name) in enumerate(zip(g, s, names), 1):
        cls = k == len(g)
        layers.append({"index": k, "name": name, "op": "Gemm", "units": 10, "S_mean": sv, "G_mean": gv,
                       "S_mean_unweighted": sv, "G_mean_unweighted": gv, "activity_mean": 0.5, "classifier": cls,
                       "S_mean_centred": centred[0] if cls else None, "G_mean_centred": centred[1] if cls else None})
    hidden = None if any(v is None for v in g[:-1]) else sum(g[:-1])
    net = network or {"G_hidden": hidden, "G_final": centred[1],
                      "G_total": None if hidden is None else hidden + centred[1]}
    return {"schema": "snr-report/1",
            "model": {"path": "m.onnx", "sha256": model_sha or f"{abs(hash((acc, g))):064x}"[-64:]},
            "data": {"path": "d.npz", "sha256": sha, "samples": 100},
            "settings": {"min_level": 0.01, "min_activity": 0.01, "centre_classifier": True, **(settings or {})},
            "layers": layers, "network": net, "accuracy": acc, "labelled": None if acc is None else 100,
            "baselines": baselines or {"mean_max_softmax": 0.9, "sum_squared_weights": 10.0,
                                       "log_spectral_norm_product": 1.0}}


def write_reports(folder: Path, reports: list[dict], names=None) -> list[str]:
    paths = []
    for k, r in enumerate(reports):
        p = folder / f"{names[k] if names else f'run{k}'}.json"
        p.write_text(json.dumps(r))
        paths.append(str(p))
    return paths


def runs_of(reports: list[dict]) -> list[Run]:
    return [Run(report=r, label=f"run{k}", aliases=(f"run{k}",), source=f"run{k}.json") for k, r in enumerate(reports)]


def row(result, key: str) -> dict:
    if isinstance(result, dict):
        rows = result["rows"]
    else:
        rows = result.rows
    return next(r for r in rows if r["figure"] == key)


@pytest.fixture
def snr(run_cli):
    """``snr(*args, code=0)``: ``snr correlate ARGS`` through the real group (conftest's ``run_cli``)."""
    return lambda *args, code=0: run_cli("correlate", *args, code=code)


# --------------------------------------------------------------------------- the statistics, by hand


def test_perfectly_monotone_gives_rho_one():
    # G rises with accuracy but not linearly: ranks agree exactly.
    st, why = pair_stats([1.0, 2.0, 4.0, 8.0, 16.0], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert why is None
    assert st["spearman_rho"] == pytest.approx(1.0)
    assert st["kendall_tau"] == pytest.approx(1.0)
    # exact Kendall null distribution, n = 5: only the identity (and its reverse) reach |tau| = 1 -> 2/120
    assert st["kendall_p"] == pytest.approx(2 / 120)
    assert st["spearman_p"] == pytest.approx(0.0, abs=1e-12)
    assert st["pearson_r"] < 1.0 and st["r2"] == pytest.approx(st["pearson_r"] ** 2)
    assert st["n"] == 5


def test_anti_monotone_gives_minus_one():
    st, _ = pair_stats([5.0, 3.0, 2.9, 0.0], [0.1, 0.2, 0.3, 0.4])
    assert st["spearman_rho"] == pytest.approx(-1.0)
    assert st["kendall_tau"] == pytest.approx(-1.0)
    assert st["n"] == 4


def test_ties_use_average_ranks_and_tau_b():
    # x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4); centred: (-1.5, 0, 0, 1.5) and (-1.5, -.5, .5, 1.5)
    # rho = 4.5 / sqrt(4.5 * 5) = 3/sqrt(10). Pairs: 5 concordant, 0 discordant, 1 tied in x only:
    # tau_b = 5 / sqrt((6 - 1) * 6) = 5/sqrt(30).
    st, _ = pair_stats([1.0, 2.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0])
    assert st["spearman_rho"] == pytest.approx(3 / math.sqrt(10))
    assert st["kendall_tau"] == pytest.approx(5 / math.sqrt(30))


def test_pearson_on_four_points_by_hand():
    # x = 1..4, y = (2, 1, 4, 3): deviations (-1.5, -.5, .5, 1.5) and (-.5, -1.5, 1.5, .5)
    # sum of products 3, sums of squares 5 and 5 -> r = 0.6, r^2 = 0.36.
    # Ranks are the values: d = (-1, 1, -1, 1), rho = 1 - 6*4/(4*15) = 0.6; with 2 df the t-test's
    # two-sided p is exactly 1 - |rho| = 0.4. Kendall: 4 concordant, 2 discordant -> tau = 1/3;
    # exact p: permutations of 4 with <= 2 or >= 4 inversions, (1+3+5)*2/24 = 0.75.
    st, _ = pair_stats([1, 2, 3, 4], [2, 1, 4, 3])
    assert st["pearson_r"] == pytest.approx(0.6)
    assert st["r2"] == pytest.approx(0.36)
    assert st["spearman_rho"] == pytest.approx(0.6)
    assert st["spearman_p"] == pytest.approx(0.4)
    assert st["kendall_tau"] == pytest.approx(1 / 3)
    assert st["kendall_p"] == pytest.approx(0.75)


def test_partial_rank_correlation_by_hand():
    # control z ranks 1..5 (centred -2..2, sum of squares 10)
    # x ranks (2,1,4,3,5): centred (-1,-2,1,0,2), slope 8/10 -> residuals ( .6, -1.2, 1, -.8, .4)
    # y ranks (1,3,2,5,4): centred (-2,0,-1,2,1), slope 8/10 -> residuals (-.4,   .8, -1, 1.2, -.6)
    # ranks of the residuals: (4,1,5,2,3) and (3,4,1,5,2), d^2 = 1+9+16+9+1 = 36
    # partial rho = 1 - 6*36/(5*24) = -0.8; t with n-3 = 2 df -> two-sided p = 1 - |rho| = 0.2
    x, y, z = [2, 1, 4, 3, 5], [1, 3, 2, 5, 4], [10, 20, 30, 40, 50]
    assert rank_residuals(np.array(x, float), np.array(z, float)) == pytest.approx([0.6, -1.2, 1.0, -0.8, 0.4])
    assert rank_residuals(np.array(y, float), np.array(z, float)) == pytest.approx([-0.4, 0.8, -1.0, 1.2, -0.6])
    pst, why = partial_stats(x, y, z)
    assert why is None
    assert pst["partial_rho"] == pytest.approx(-0.8)
    assert pst["partial_p"] == pytest.approx(0.2)
    assert pst["partial_n"] == 5
    # the plain rank correlation has the other sign: d = (1,-2,2,-2,1), rho = 1 - 6*14/120 = 0.3
    assert pair_stats(x, y)[0]["spearman_rho"] == pytest.approx(0.3)


def test_partial_with_constant_control_is_null():
    pst, why = partial_stats([1, 2, 3, 4], [1, 2, 3, 5], [7, 7, 7, 7])
    assert pst["partial_rho"] is None and "control is constant" in why


def test_constant_figure_gives_null_and_says_why():
    st, why = pair_stats([2.0, 2.0, 2.0, 2.0], [0.1, 0.2, 0.3, 0.4])
    assert all(st[k] is None for k in ("spearman_rho", "spearman_p", "kendall_tau", "kendall_p", "pearson_r", "r2"))
    assert st["n"] == 4 and "constant" in why


def test_null_figures_drop_runs_from_their_row_only():
    # run 2 has no G for layer 2: that row uses 4 runs, the others all 5
    reports = [make_report(a, g=(a * 10, None if k == 2 else a * 5, 3.0 + a)) for k, a in
               enumerate([0.5, 0.6, 0.7, 0.8, 0.9])]
    res = correlate_runs(runs_of(reports))
    assert row(res, "layers[2].G_mean")["n"] == 4
    assert row(res, "layers[2].G_mean")["spearman_rho"] == pytest.approx(1.0)
    assert row(res, "layers[1].G_mean")["n"] == 5
    # G_hidden is null where a term is null (spec 7): 4 runs
    assert row(res, "network.G_hidden")["n"] == 4


def test_rows_cover_layers_classifier_network_and_baselines():
    reports = [make_report(a) for a in (0.5, 0.6, 0.7)]
    res = correlate_runs(runs_of(reports))
    assert [r["figure"] for r in res.rows] == [
        "layers[1].S_mean", "layers[1].G_mean", "layers[2].S_mean", "layers[2].G_mean",
        "layers[3].S_mean", "layers[3].G_mean", "layers[3].S_mean_centred", "layers[3].G_mean_centred",
        "network.G_hidden", "network.G_final", "network.G_total",
        "baselines.mean_max_softmax", "baselines.sum_squared_weights", "baselines.log_spectral_norm_product"]
    assert row(res, "layers[2].G_mean")["label"] == "L2 fc2  G"


def test_too_few_runs_is_a_usage_error():
    with pytest.raises(UsageError, match="at least 3 runs"):
        correlate_runs(runs_of([make_report(0.5), make_report(0.6)]))


# --------------------------------------------------------------------------- the command


def family(tmp_path, accs=(0.6, 0.7, 0.8, 0.9), **kw) -> list[str]:
    """Four reports whose layer-1 G rises with accuracy, layer-2 G falls, sum of squared weights is mixed."""
    reps = []
    for k, a in enumerate(accs):
        v = 0.5 + k / 10 if a is None else a
        reps.append(make_report(a, g=(10 * v, 5 - v, 2.0 + k % 2),
                                baselines={"mean_max_softmax": v, "sum_squared_weights": [3.0, 1.0, 4.0, 2.0][k % 4],
                                           "log_spectral_norm_product": 1.0}, **kw))
    return write_reports(tmp_path, reps)


def test_table_layout_and_values(snr, tmp_path):
    res = snr(*family(tmp_path))
    out = res.stdout
    assert "Correlation of each figure with accuracy over 4 runs" in out
    header = next(l for l in out.splitlines() if "rho" in l and "tau" in l)
    assert [c for c in header.replace("│", " ").replace("┃", " ").split()] == \
        ["figure", "rho", "p", "tau", "p", "r", "r^2", "n"]
    l1 = next(l for l in out.splitlines() if "L1 fc1  G" in l)
    assert "1.000" in l1 and l1.rstrip("│┃ ").endswith("4")
    l2 = next(l for l in out.splitlines() if "L2 fc2  G" in l)
    assert "-1.000" in l2
    # layer 3's G (2, 3, 2, 3) is a figure; log_spectral_norm_product (all 1.0) is constant -> warned, dashes
    assert "baselines.log_spectral_norm_product: the figure is constant" in res.stderr
    lsn = next(l for l in out.splitlines() if "log_spectral_norm_product" in l)
    assert lsn.count("-") >= 6


def test_json_schema_and_values(snr, tmp_path):
    d = json.loads(snr(*family(tmp_path), "--json").stdout)
    assert d["schema"] == "snr-correlate/1"
    assert d["target"] == "accuracy" and d["control"] is None
    assert len(d["runs"]) == 4 and d["runs"][0]["target"] == 0.6
    assert d["runs"][0]["figures"]["layers[1].G_mean"] == pytest.approx(6.0)
    assert d["settings"]["settings.min_level"] == 0.01 and d["settings"]["data.sha256"] == "d" * 64
    r1 = row(d, "layers[1].G_mean")
    assert r1["spearman_rho"] == pytest.approx(1.0) and r1["pearson_r"] == pytest.approx(1.0)
    assert r1["kendall_p"] == pytest.approx(2 / 24)  # exact, n = 4
    assert set(r1) >= {"figure", "label", "group", "layer", "spearman_rho", "spearman_p", "kendall_tau",
                       "kendall_p", "pearson_r", "r2", "n"}
    # sum_squared_weights (3, 1, 4, 2) against accuracy ranks (1, 2, 3, 4): d = (2,-1,1,-2), rho = 1 - 60/60 = 0
    assert row(d, "baselines.sum_squared_weights")["spearman_rho"] == pytest.approx(0.0, abs=1e-12)
    const = row(d, "baselines.log_spectral_norm_product")
    assert const["spearman_rho"] is None and const["n"] == 4
    assert any("log_spectral_norm_product" in w for w in d["warnings"])
    assert "NaN" not in json.dumps(d)


def test_csv_content(snr, tmp_path):
    snr(*family(tmp_path), "--csv", tmp_path / "t.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert list(rows[0]) == ["figure", "label", "group", "layer", "spearman_rho", "spearman_p", "kendall_tau",
                             "kendall_p", "pearson_r", "r2", "n"]
    by = {r["figure"]: r for r in rows}
    assert float(by["layers[2].G_mean"]["spearman_rho"]) == pytest.approx(-1.0)
    assert by["layers[2].G_mean"]["layer"] == "2" and by["layers[2].G_mean"]["n"] == "4"
    assert by["baselines.log_spectral_norm_product"]["spearman_rho"] == ""
    assert by["network.G_total"]["group"] == "network"


def test_fewer_than_three_runs_exit_2(snr, tmp_path):
    res = snr(*family(tmp_path)[:2], code=2)
    assert res.stderr.strip() == "error: correlate needs at least 3 runs, got 2"


def test_missing_accuracy_exit_2_names_the_run(snr, tmp_path):
    paths = family(tmp_path, accs=(0.6, None, 0.8, 0.9))
    res = snr(*paths, code=2)
    assert "no accuracy in" in res.stderr and "run1.json" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_not_a_report_exit_2(snr, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "other/1"}')
    res = snr(*family(tmp_path)[:3], bad, code=2)
    assert "has schema \"other/1\"; this snr supports snr-report/1" in res.stderr


def test_settings_mismatch_refused_and_allowed(snr, tmp_path):
    paths = family(tmp_path)
    r = json.loads(Path(paths[2]).read_text())
    r["settings"]["min_activity"] = 0.05
    Path(paths[2]).write_text(json.dumps(r))
    res = snr(*paths, code=2)
    assert "settings.min_activity" in res.stderr and "--allow-different-settings" in res.stderr
    ok = snr(*paths, "--allow-different-settings", "--json")
    assert "settings.min_activity" in ok.stderr
    assert json.loads(ok.stdout)["settings"]["settings.min_activity"] is None


def test_different_data_refused(snr, tmp_path):
    paths = family(tmp_path)
    r = json.loads(Path(paths[0]).read_text())
    r["data"]["sha256"] = "e" * 64
    Path(paths[0]).write_text(json.dumps(r))
    assert "data.sha256" in snr(*paths, code=2).stderr


def test_run_folders(snr, tmp_path):
    folders = []
    for k, p in enumerate(family(tmp_path)):
        f = tmp_path / f"folder{k}"
        f.mkdir()
        Path(p).rename(f / "report.json")
        folders.append(f)
    d = json.loads(snr(*folders, "--json").stdout)
    assert [r["label"] for r in d["runs"]] == ["folder0", "folder1", "folder2", "folder3"]
    assert [r["kind"] for r in d["runs"]] == ["run-folder"] * 4
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "without report.json" in snr(*folders[:3], empty, code=2).stderr


def write_cov(tmp_path, text: str) -> Path:
    p = tmp_path / "cov.csv"
    p.write_text(text)
    return p


def test_covariates_target_and_control(snr, tmp_path):
    paths = family(tmp_path)  # run0..run3 (accuracy .6 .7 .8 .9; layer-1 G 6, 7, 8, 9)
    # gap ranks (4, 2, 3, 1), epochs distinct. Run names: a file stem, a file name, and the paths.
    cov = write_cov(tmp_path, "run,epochs,gap,regulariser\n"
                              f"run0,1,0.30,none\nrun1.json,2,0.10,l2\n{paths[2]},3,0.20,l2\n{paths[3]},4,0.05,none\n")
    d = json.loads(snr(*paths, "--covariates", cov, "--target", "gap", "--json").stdout)
    assert d["target"] == "gap"
    assert [r["target"] for r in d["runs"]] == [0.30, 0.10, 0.20, 0.05]
    # layer-1 G ranks (1,2,3,4) vs gap ranks (4,2,3,1): d = (-3,0,0,3), rho = 1 - 6*18/60 = -0.8
    assert row(d, "layers[1].G_mean")["spearman_rho"] == pytest.approx(-0.8)
    # control = epochs (ranks 1..4) explains the figure's ranks completely -> null partial, warned
    d2 = json.loads(snr(*paths, "--covariates", cov, "--control", "epochs", "--json").stdout)
    assert d2["control"] == "epochs"
    r = row(d2, "layers[1].G_mean")
    assert r["spearman_rho"] == pytest.approx(1.0) and r["partial_rho"] is None and r["partial_n"] == 4
    # table shows the partial columns
    t = snr(*paths, "--covariates", cov, "--target", "gap", "--control", "regulariser", code=2)
    assert "column is not numeric" in t.stderr and "'none'" in t.stderr


def test_partial_through_the_cli_matches_hand_example(snr, tmp_path):
    # the hand example of test_partial_rank_correlation_by_hand: figure x, target y, control z
    x, y, z = [2, 1, 4, 3, 5], [1, 3, 2, 5, 4], [10, 20, 30, 40, 50]
    reps = [make_report(0.5 + k / 100, g=(float(x[k]), 1.0 + k, 2.0)) for k in range(5)]
    paths = write_reports(tmp_path, reps)
    cov = write_cov(tmp_path, "run,score,epochs\n" + "".join(f"run{k},{y[k]},{z[k]}\n" for k in range(5)))
    res = snr(*paths, "--covariates", cov, "--target", "score", "--control", "epochs")
    line = next(l for l in res.stdout.splitlines() if "L1 fc1  G" in l)
    cells = [c.strip() for c in line.replace("│", "|").replace("┃", "|").split("|") if c.strip()]
    # figure, rho, p, tau, p, r, r^2, n, partial rho, p, n
    assert cells[1] == "0.3000" and cells[7] == "5"
    assert cells[8:] == ["-0.8000", "0.200", "5"]
    assert "rho | epochs" in res.stdout


def test_covariates_errors(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,2\nrun2,3\nrun3,4\nrun9,5\n")
    res = snr(*paths, "--covariates", cov, "--target", "epochs", "--json")       # extra rows: one note
    note = f"--covariates {cov}: 1 row for runs not given ignored ('run9')"
    assert res.stderr.count("warning: --covariates") == 1 and f"warning: {note}" in res.stderr
    assert json.loads(res.stdout)["warnings"][0] == note
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,2\nrun2,3\nrunX,4\n")
    res = snr(*paths, "--covariates", cov, "--target", "epochs", code=2)      # a typo leaves a run without a row
    assert "has no row for" in res.stderr and "ignored rows: 'runX'" in res.stderr
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,2\nrun2,3\n")
    assert "has no row for" in snr(*paths, "--covariates", cov, "--target", "epochs", code=2).stderr
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,2\nrun2,3\nrun3,4\n")
    res = snr(*paths, "--covariates", cov, "--target", "gap", code=2)
    assert res.stderr.strip() == f"error: --target gap: no such column in {cov} (columns: epochs)"
    assert "no such column" in snr(*paths, "--covariates", cov, "--control", "seed", code=2).stderr
    nocol = write_cov(tmp_path, "name,epochs\nrun0,1\n")
    assert "no 'run' column" in snr(*paths, "--covariates", nocol, code=2).stderr
    assert "pass --covariates" in snr(*paths, "--target", "gap", code=2).stderr
    blank = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,\nrun2,3\nrun3,4\n")
    err = snr(*paths, "--covariates", blank, "--target", "epochs", code=2).stderr
    assert "has no value for run" in err and err.strip().endswith("run1.json")


def test_constant_target_warns_once(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,seed\nrun0,1\nrun1,1\nrun2,1\nrun3,1\n")
    res = snr(*paths, "--covariates", cov, "--target", "seed", "--json")
    assert all(r["spearman_rho"] is None for r in json.loads(res.stdout)["rows"])
    assert res.stderr.count("warning:") == 1 and "the target seed is constant" in res.stderr


def test_plot_written(snr, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "corr.png"
    res = snr(*family(tmp_path), "--plot", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000
    assert "wrote" in res.stderr


def test_plot_without_matplotlib(snr, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    res = snr(*family(tmp_path), "--plot", tmp_path / "p.png", code=2)
    assert res.stderr.strip() == ("error: --plot needs matplotlib, the optional extra snrcli[plot]: "
                                  "pip install 'snrcli[plot]'")
    assert not (tmp_path / "p.png").exists()


def test_models_analysed_on_the_fly(snr, tmp_path, rng):
    """Three tiny MLPs analysed with --data give the same rows as their reports from analyze()."""
    from helpers import mlp, write

    from snrcli.analysis.api import analyze

    x = rng.normal(size=(200, 6)).astype(np.float32)
    w_true = rng.normal(size=(3, 6))
    labels = (x @ w_true.T).argmax(1).astype(np.int64)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, labels=labels)
    models = []
    for k, noise in enumerate((0.0, 0.5, 1.0, 2.0)):
        w1 = np.eye(6)[:5] + noise * rng.normal(size=(5, 6))
        w2 = (w_true @ np.eye(6)[:5].T) + noise * rng.normal(size=(3, 5))
        models.append(write(tmp_path, mlp([w1, w2], head="Softmax"), name=f"net{k}")[0])
    d = json.loads(snr(*models, "--data", data, "--json").stdout)
    assert [r["label"] for r in d["runs"]] == ["net0", "net1", "net2", "net3"]
    assert all(r["kind"] == "model" for r in d["runs"])
    reports = [analyze(m, data).to_dict() for m in models]
    assert [r["target"] for r in d["runs"]] == [r["accuracy"] for r in reports]
    expect = correlate_runs(runs_of(reports))
    for got, want in zip(d["rows"], expect.rows):
        assert got["figure"] == want["figure"]
        for k in ("spearman_rho", "kendall_tau", "pearson_r", "n"):
            assert got[k] == pytest.approx(want[k]) if want[k] is not None else got[k] is None
    # covariates by model file stem
    cov = write_cov(tmp_path, "run,noise\nnet0,0\nnet1,0.5\nnet2,1\nnet3,2\n")
    d2 = json.loads(snr(*models, "--data", data, "--covariates", cov, "--target", "noise", "--json").stdout)
    assert [r["target"] for r in d2["runs"]] == [0.0, 0.5, 1.0, 2.0]


def test_model_without_data_exit_2(snr, tmp_path):
    res = snr("a.onnx", "b.onnx", "c.onnx", code=2)
    assert "needs --data" in res.stderr


def test_bad_model_error_names_the_model(snr, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 2), np.float32))
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    res = snr(*family(tmp_path)[:2], bad, "--data", data, code=3)
    assert res.stderr.startswith(f"error: {bad}: ") and len(res.stderr.strip().splitlines()) == 1
