"""snr report (HTML pages), analyze --units and the per-unit readers; the page is read back with a parser.

Pages are checked in a real browser by test_report_browser.py.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import check_report_dict
from report_runs import ESCAPE_NAME, ODD_NAMES, Page, analyse, family, report_of
from snrcli.errors import ReportError, SnrError
from snrcli.reports.units import load_units, parse_units_csv, units_from_json

pytest.importorskip("matplotlib")

LAYER_FIGURES = {"activity": "activity_mean", "S": "S_mean", "G": "G_mean", "S_u": "S_mean_unweighted",
                 "G_u": "G_mean_unweighted", "S_c": "S_mean_centred", "G_c": "G_mean_centred"}


def cell_value(cell: dict):
    v = cell["attrs"].get("data-value")
    return None if v in (None, "") else float(v)


def assert_layer_table(page: Page, report: dict) -> None:
    """One row per layer, in order, with the report's values (exact in data-value, 4 decimals shown)."""
    rows = page.body_rows("layers")
    head = [c["text"] for c in page.tables["layers"][0]["cells"]]
    assert [int(r["attrs"]["data-layer"]) for r in rows] == [L["index"] for L in report["layers"]]
    for row, L in zip(rows, report["layers"]):
        cells = dict(zip(head, row["cells"]))
        assert cells["layer"]["text"].startswith(L["name"])
        assert cell_value(cells["units"]) == L["units"]
        assert cells["kept"]["text"] == f"{L['inputs_kept']}/{L['inputs']}"
        for col, key in LAYER_FIGURES.items():
            assert cell_value(cells[col]) == L[key], (col, L["index"])
            digits = 3 if key == "activity_mean" else 4
            assert cells[col]["text"] == ("-" if L[key] is None else f"{L[key]:.{digits}f}")


def svg_of(img: dict) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert img["src"].startswith(prefix)
    return base64.b64decode(img["src"][len(prefix):]).decode("utf-8")


def assert_self_contained(text: str) -> None:
    low = text.lower()
    for bad in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url(", 'src="http', "src='http",
                'href="http', "srcset"):
        assert bad not in low, bad
    page = Page(text)
    csp = [m for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    for img in page.images:
        assert img["src"].startswith("data:image/svg+xml;base64,")
        assert "<script" not in svg_of(img).lower()


# --------------------------------------------------------------------------- per-unit figures


def test_units_flag_adds_per_unit_lists_matching_units_csv(run_cli, tmp_path):
    folder = analyse(tmp_path, "a", seed=1)
    model, data = str(tmp_path / "models" / "a.onnx"), str(tmp_path / "data.npz")
    d = json.loads(run_cli("analyze", model, "--data", data, "--json", "--units").stdout)
    check_report_dict(d)
    rows = list(csv.DictReader(io.StringIO((Path(folder) / "units.csv").read_text())))
    for L in d["layers"]:
        pu = L["per_unit"]
        mine = [r for r in rows if int(r["layer_index"]) == L["index"]]
        assert len(pu["S"]) == len(pu["G"]) == len(pu["activity"]) == L["units"] == len(mine)
        assert pu["S"] == [None if r["S"] == "" else float(r["S"]) for r in mine]
        r = np.array(pu["activity"])
        s = np.array(pu["S"], dtype=float)
        ok = np.isfinite(s)
        assert (r[ok] * s[ok]).sum() / r[ok].sum() == pytest.approx(L["S_mean"], rel=1e-12)
        assert (pu["S_centred"] is None) == (not L["classifier"])
    plain = json.loads(run_cli("analyze", model, "--data", data, "--json").stdout)
    assert all("per_unit" not in L for L in plain["layers"])
    run_cli("analyze", model, "--data", data, "--out", "withunits", "--units")
    assert "per_unit" in json.loads((tmp_path / "withunits" / "report.json").read_text())["layers"][0]


def test_units_flag_alone_is_a_usage_error(run_cli, tmp_path):
    analyse(tmp_path, "a", seed=1, folder_run=False)
    res = run_cli("analyze", "models/a.onnx", "--data", "data.npz", "--units", code=2)
    assert res.stderr.strip() == "error: --units adds per-unit figures to the JSON report: give --json or --out DIR"


def test_per_unit_schema_rejects_out_of_range_S(tmp_path):
    d = report_of(analyse(tmp_path, "a", seed=1, units_json=True, folder_run=False))
    check_report_dict(d)
    d["layers"][0]["per_unit"]["S"][0] = 1.5
    with pytest.raises(AssertionError, match="per_unit"):
        check_report_dict(d)


def test_units_csv_parsing_and_errors(tmp_path):
    folder = Path(analyse(tmp_path, "a", seed=1))
    report = report_of(str(folder))
    text = (folder / "units.csv").read_text()
    units = parse_units_csv(text, report, "u.csv")
    assert sorted(units) == [1, 2, 3]
    assert units[1].count == 8 and units[1].S_centred is None and units[3].S_centred is not None
    same = units_from_json(report_of(analyse(tmp_path, "a2", seed=1, units_json=True, folder_run=False)), "j")
    for idx in units:
        np.testing.assert_array_equal(units[idx].G, same[idx].G)
        np.testing.assert_array_equal(units[idx].activity, same[idx].activity)
    lines = text.splitlines()
    with pytest.raises(ReportError, match="layer 1 has 8 units in the report but 7 per-unit rows"):
        parse_units_csv("\n".join(lines[:1] + lines[2:]), report, "u.csv")
    with pytest.raises(ReportError, match=r"u.csv, line 2: 'abc' is not a number"):
        parse_units_csv("\n".join([lines[0], lines[1].replace(lines[1].split(",")[3], "abc", 1)] + lines[2:]),
                        report, "u.csv")
    with pytest.raises(ReportError, match="not a units.csv"):
        parse_units_csv("a,b\n1,2\n", report, "u.csv")
    assert load_units(report, str(folder / "report.json"), "file", "x")[0] is None
    (folder / "units.csv").unlink()
    units, why = load_units(report, str(folder / "report.json"), "run-folder", "x")
    assert units is None and why == "the run folder has no units.csv"


# --------------------------------------------------------------------------- one run


def test_one_run_page(run_cli, tmp_path):
    run = analyse(tmp_path, "a", seed=1)
    res = run_cli("report", run, "--html", "out/a.html")
    assert res.stdout == "" and res.stderr == "wrote out/a.html\n"
    text = (tmp_path / "out" / "a.html").read_text()
    assert_self_contained(text)
    page = Page(text)
    report = report_of(run)
    assert_layer_table(page, report)
    # what was analysed, network figures, one figure per layer plus the overview
    assert report["model"]["sha256"] in page.text and report["data"]["sha256"] in page.text
    net = {r["cells"][0]["text"]: cell_value(r["cells"][1]) for r in page.body_rows("network")}
    assert net["G_total"] == report["network"]["G_total"] and net["accuracy"] == report["accuracy"]
    assert net["sum_squared_weights"] == report["baselines"]["sum_squared_weights"]
    assert "not a quality score" in page.text
    assert len(page.images) == 1 + len(report["layers"])
    centred = svg_of(page.images[-1])          # the classifier's figure has the centred panels
    assert "unit G, centred (classifier)" in centred and "centred" not in svg_of(page.images[1])
    assert "No per-unit figures" not in page.text
    assert not list(tmp_path.glob("out/.a.html.*"))   # no temporary file left


def test_escaping_of_names_from_the_model(run_cli, tmp_path):
    run = analyse(tmp_path, "odd", seed=3, names=ODD_NAMES)
    run_cli("report", run, "--html", "odd.html")
    text = (tmp_path / "odd.html").read_text()
    assert_self_contained(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert ESCAPE_NAME in page.text and ODD_NAMES[1] in page.text and ODD_NAMES[2] in page.text
    assert "script" not in page.tags and "b" not in page.tags
    assert_layer_table(page, report_of(run))
    svgs = "".join(svg_of(i) for i in page.images)
    assert "&lt;script&gt;" in svgs and "<script" not in svgs      # matplotlib's SVG text is escaped too


def test_run_without_per_unit_data_gets_layer_views_and_a_note(run_cli, tmp_path):
    json_run = analyse(tmp_path, "a", seed=1, folder_run=False)
    run_cli("report", json_run, "--html", "a.html")
    page = Page((tmp_path / "a.html").read_text())
    assert len(page.images) == 1                   # the layer overview only
    assert "No per-unit figures: the report carries no per-unit figures" in page.text
    assert "snr analyze MODEL --data FILE --out DIR" in page.text and "--json --units" in page.text
    assert_layer_table(page, report_of(json_run))
    with_units = analyse(tmp_path, "b", seed=1, folder_run=False, units_json=True)
    run_cli("report", with_units, "--html", "b.html")
    assert len(Page((tmp_path / "b.html").read_text()).images) == 4


def test_stdin_run(run_cli, tmp_path):
    run = analyse(tmp_path, "a", seed=1, folder_run=False, units_json=True)
    run_cli("report", "-", "--html", "s.html", input=Path(run).read_bytes())
    page = Page((tmp_path / "s.html").read_text())
    assert "<stdin>" in page.text and len(page.images) == 4


def test_same_input_same_bytes(run_cli, tmp_path):
    run = analyse(tmp_path, "a", seed=1)
    run_cli("report", run, "--html", "1.html")
    run_cli("report", run, "--html", "2.html")
    assert (tmp_path / "1.html").read_bytes() == (tmp_path / "2.html").read_bytes()


def test_refuses_to_overwrite_and_writes_atomically(run_cli, tmp_path, monkeypatch):
    run = analyse(tmp_path, "a", seed=1)
    target = tmp_path / "r.html"
    target.write_text("mine")
    res = run_cli("report", run, "--html", "r.html", code=2)
    assert res.stderr == "error: r.html exists; pass --force to replace it\n"
    assert target.read_text() == "mine"

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", broken)
        res = run_cli("report", run, "--html", "r.html", "--force", code=2)
    assert res.stderr == "error: --html r.html: cannot write it: No space left on device\n"
    assert target.read_text() == "mine" and sorted(p.name for p in tmp_path.glob("*.html*")) == ["r.html"]
    run_cli("report", run, "--html", "r.html", "--force")
    assert target.read_text().startswith("<!DOCTYPE html>")
    (tmp_path / "dir.html").mkdir()
    assert "is a folder" in run_cli("report", run, "--html", "dir.html", code=2).stderr


def test_without_matplotlib_exit_2_and_nothing_written(run_cli, tmp_path, monkeypatch):
    run = analyse(tmp_path, "a", seed=1)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = run_cli("report", run, "--html", "a.html", code=2)
    assert res.stderr == ("error: snr report needs matplotlib, the optional extra snrcli[plot]: "
                          "pip install 'snrcli[plot]'\n")
    assert not (tmp_path / "a.html").exists()


@pytest.mark.parametrize("args, message", [
    (["m.onnx"], "m.onnx is a model; snr report reads reports: analyse it first"),
    (["-", "-"], "'-' (stdin) may be given only once"),
    (["nothere"], "nothere: no such file or folder"),
    (["R", "--x", "epoch"], "--x names a column of --covariates CSV; pass --covariates"),
    (["R", "--covariates", "c.csv"], "--covariates is read for --x COLUMN; pass --x"),
    (["R", "R", "--covariates", "c.csv", "--x", "epoch"], "--x draws three or more runs along a column; got 2"),
])
def test_usage_errors(run_cli, tmp_path, args, message):
    run = analyse(tmp_path, "a", seed=1)
    (tmp_path / "m.onnx").write_bytes(b"x")
    res = run_cli("report", *[run if a == "R" else a for a in args], "--html", "x.html", code=2)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "x.html").exists()


def test_broken_units_csv_is_one_error_line(run_cli, tmp_path):
    folder = Path(analyse(tmp_path, "a", seed=1))
    lines = (folder / "units.csv").read_text().splitlines()
    (folder / "units.csv").write_text("\n".join(lines[:-1]) + "\n")
    res = run_cli("report", str(folder), "--html", "x.html", code=2)
    assert res.stderr.strip() == (f"error: {folder / 'units.csv'}: layer 3 has 3 units in the report but 2 "
                                  "per-unit rows; the per-unit figures belong to another analysis")


# --------------------------------------------------------------------------- two runs


def test_two_runs_side_by_side_with_compare_deltas(run_cli, tmp_path):
    a, b = analyse(tmp_path, "a", seed=1), analyse(tmp_path, "b", seed=2)
    run_cli("report", a, b, "--html", "ab.html")
    page = Page((tmp_path / "ab.html").read_text())
    ra, rb = report_of(a), report_of(b)
    cmp = json.loads(run_cli("compare", a, b, "--json", "--figures", "S,G,activity,S_c,G_c").stdout)
    rows = page.body_rows("layers")
    head = [c["text"] for c in page.tables["layers"][0]["cells"]]
    assert len(rows) == len(cmp["layers"]) == 3
    for row, crow in zip(rows, cmp["layers"]):
        cells = dict(zip(head, row["cells"]))
        for short, key in (("S", "S_mean"), ("G", "G_mean"), ("G_c", "G_mean_centred")):
            t = crow["figures"][key]
            assert [cell_value(cells[f"{short} {s}"]) for s in ("A", "B", "B-A")] == [t["a"], t["b"], t["delta"]]
    net = {r["cells"][0]["text"]: [cell_value(c) for c in r["cells"][1:]] for r in page.body_rows("network")}
    assert net["G_total"] == [ra["network"]["G_total"], rb["network"]["G_total"],
                              rb["network"]["G_total"] - ra["network"]["G_total"]]
    assert len(page.images) == 1 + 3
    assert "A filled, B outlined" in page.text


def test_two_runs_with_different_settings_refused_unless_allowed(run_cli, tmp_path):
    a = analyse(tmp_path, "a", seed=1)
    other = json.loads(Path(a, "report.json").read_text())
    other["settings"]["min_level"] = 0.05
    (tmp_path / "b.json").write_text(json.dumps(other))
    res = run_cli("report", a, "b.json", "--html", "ab.html", code=2)
    assert "settings.min_level is 0.01" in res.stderr and not (tmp_path / "ab.html").exists()
    res = run_cli("report", a, "b.json", "--html", "ab.html", "--allow-different-settings")
    assert "warning: settings.min_level" in res.stderr
    page = Page((tmp_path / "ab.html").read_text())
    assert "settings.min_level is 0.01" in page.text
    assert "No per-unit figures for B (b.json)" in page.text


# --------------------------------------------------------------------------- trajectories


def test_trajectory_in_the_order_given(run_cli, tmp_path):
    runs = family(tmp_path, 5)
    run_cli("report", *runs, "--html", "t.html")
    page = Page((tmp_path / "t.html").read_text())
    reports = [report_of(r) for r in runs]
    rows = page.body_rows("runs")
    assert [r["cells"][1]["text"] for r in rows] == runs
    head = [c["text"] for c in page.tables["runs"][0]["cells"]]
    for row, rep in zip(rows, reports):
        cells = dict(zip(head, row["cells"]))
        assert cell_value(cells["G_total"]) == rep["network"]["G_total"]
        assert cell_value(cells["accuracy"]) == rep["accuracy"]
    layer_rows = page.body_rows("layers")
    assert len(layer_rows) == 3
    for row in layer_rows:
        idx = int(row["attrs"]["data-layer"])
        assert [cell_value(c) for c in row["cells"][4:]] == [rep["layers"][idx - 1]["G_mean"] for rep in reports]
    assert len(page.images) == 2 + 3          # network and layer trajectories, one spread per layer


def test_trajectory_along_a_covariate(run_cli, tmp_path):
    runs = family(tmp_path, 4)
    # names as snr correlate accepts them: the run folder's name, or its path
    (tmp_path / "cov.csv").write_text(f"run,epoch,note\nep1,10,a\n{runs[1]},2,b\nep3,7,c\nep4,1,d\n")
    run_cli("report", *runs, "--covariates", "cov.csv", "--x", "epoch", "--html", "t.html")
    page = Page((tmp_path / "t.html").read_text())
    rows = page.body_rows("runs")
    head = [c["text"] for c in page.tables["runs"][0]["cells"]]
    assert head[:3] == ["#", "run", "epoch"]
    assert [r["cells"][1]["text"] for r in rows] == [runs[3], runs[1], runs[2], runs[0]]
    assert [cell_value(r["cells"][2]) for r in rows] == [1.0, 2.0, 7.0, 10.0]
    assert "trajectories along epoch" in page.text
    net = svg_of(page.images[0])
    assert ">epoch<" in net or "epoch</text>" in net

    for cov, message in (("run,epoch\nep1,1\n", "has no row for"),
                         ("run,step\nep1,1\nep2,2\nep3,3\nep4,4\n", "--x epoch: no such column"),
                         ("run,epoch\nep1,1\nep2,x\nep3,3\nep4,4\n", "column is not numeric")):
        (tmp_path / "bad.csv").write_text(cov)
        res = run_cli("report", *runs, "--covariates", "bad.csv", "--x", "epoch", "--html", "u.html", code=2)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "u.html").exists()
    # a row for a run not given is ignored with one note, as snr correlate does
    (tmp_path / "extra.csv").write_text("run,epoch\nep1,1\nep2,2\nep3,3\nep4,4\nep9,9\n")
    res = run_cli("report", *runs, "--covariates", "extra.csv", "--x", "epoch", "--html", "u.html")
    assert "runs not given ignored ('ep9')" in res.stderr and (tmp_path / "u.html").exists()


def test_trajectory_with_some_runs_lacking_per_unit_data(run_cli, tmp_path):
    runs = family(tmp_path, 3)
    (Path(runs[1]) / "units.csv").unlink()
    run_cli("report", *runs, "--html", "t.html")
    page = Page((tmp_path / "t.html").read_text())
    assert "1 of 3 runs have no per-unit figures" in page.text
    assert len(page.images) == 2 + 3


def test_checkpoints_example_results_render(run_cli, tmp_path):
    """The committed run folders of examples/checkpoints give the trajectory the example's page shows."""
    results = Path(__file__).resolve().parents[1] / "examples" / "checkpoints" / "results"
    runs = sorted(str(p) for p in (results / "runs").iterdir())
    assert len(runs) == 11
    run_cli("report", *runs, "--covariates", results / "covariates.csv", "--x", "epoch", "--html", "t.html")
    page = Page((tmp_path / "t.html").read_text())
    committed = Page((results / "training.html").read_text())
    assert [cell_value(r["cells"][2]) for r in page.body_rows("runs")] == list(range(11))
    for mine, theirs in zip(page.body_rows("runs"), committed.body_rows("runs")):
        assert [c["attrs"].get("data-value") for c in mine["cells"][2:]] == \
            [c["attrs"].get("data-value") for c in theirs["cells"][2:]]
    assert len(page.images) == len(committed.images) == 2 + 3


def test_null_figures_and_layers_in_one_run_only(run_cli, tmp_path):
    """An all-undefined layer shows '-' and 'no defined unit'; a layer missing from B is 'A only'."""
    base = report_of(analyse(tmp_path, "a", seed=1, units_json=True, folder_run=False))
    odd = json.loads(json.dumps(base))
    L = odd["layers"][1]
    for key in ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted"):
        L[key] = None
    L["undefined_units"] = L["units"]
    L["undefined_reasons"] = {"no kept input": L["units"]}
    L["per_unit"]["S"] = [None] * L["units"]
    L["per_unit"]["G"] = [None] * L["units"]
    odd["network"] = {"G_hidden": None, "G_final": odd["network"]["G_final"], "G_total": None}
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    run_cli("report", "odd.json", "--html", "odd.html")
    page = Page((tmp_path / "odd.html").read_text())
    assert_layer_table(page, odd)
    assert "6 (no kept input: 6)" in page.text
    assert "no defined unit" in svg_of(page.images[2])
    net = {r["cells"][0]["text"]: r["cells"][1]["text"] for r in page.body_rows("network")}
    assert net["G_total"] == "-"

    short = json.loads(json.dumps(base))
    short["layers"] = short["layers"][:2]
    (tmp_path / "short.json").write_text(json.dumps(short))
    res = run_cli("report", "odd.json", "short.json", "--html", "ab.html")
    assert "layer 3 only in A" in res.stderr
    page = Page((tmp_path / "ab.html").read_text())
    rows = page.body_rows("layers")
    assert len(rows) == 3 and rows[2]["cells"][1]["text"] == "fc3 (A only)"
    assert "layer 3 only in A" in page.text and "(not in B)" in page.text



ODD_VALUES = ["text", -1, 10 ** 15, 1.5e300, [], {}, None, True, "<b>x</b>"]
LAYER_PATHS = [("layers", 0, "name"), ("layers", 0, "units"), ("layers", 0, "S_mean"), ("layers", 0, "inputs"),
               ("layers", 0, "classifier"), ("layers", 2, "G_mean_centred"), ("layers", 0, "activity_mean")]
OTHER_PATHS = [("model",), ("model", "path"), ("data", "samples"), ("settings",), ("settings", "min_level"),
               ("settings", "scale"), ("warnings",), ("skipped",), ("network", "G_total"), ("accuracy",),
               ("baselines",), ("baselines", "sum_squared_weights"), ("meta", "command"),
               ("layers", 0, "undefined_reasons"), ("layers", 0, "weight_shape"), ("layers", 0, "index"),
               ("layers", 1, "per_unit"), ("layers", 1, "per_unit", "S")]


def _odd_pages(tmp_path, paths, counts, units_json):
    """Render a report with each path set to each odd value; count pages and refusals (ReportError)."""
    from snrcli.reports.pages import load_runs, render

    base = report_of(analyse(tmp_path, "a", seed=1, units_json=units_json, folder_run=False))
    outcomes = {"page": 0, "refused": 0}
    for path in paths:
        for value in ODD_VALUES:
            d = json.loads(json.dumps(base))
            cur = d
            for step in path[:-1]:
                cur = cur[step]
            cur[path[-1]] = value
            f = tmp_path / "odd.json"
            f.write_text(json.dumps(d))
            for n in counts:
                try:
                    text = render(load_runs([str(f)] * n), allow_different_settings=True)
                except SnrError as e:
                    assert e.exit_code == 2, e
                    outcomes["refused"] += 1
                    continue
                assert "<b>x</b>" not in text and "<script" not in text.lower()
                outcomes["page"] += 1
    return outcomes


def test_odd_values_in_a_report_never_crash(tmp_path, monkeypatch):
    """Any field replaced by a value of another type: a page, or one ReportError, in every mode (figures
    stubbed here; the next test draws them)."""
    import snrcli.reports.figures as figures

    for name in ("layer_overview", "unit_distributions", "trajectory_network", "trajectory_layers",
                 "trajectory_units"):
        monkeypatch.setattr(figures, name, lambda *a, **k: "data:image/svg+xml;base64,")
    outcomes = _odd_pages(tmp_path, LAYER_PATHS + OTHER_PATHS, (1, 2, 3), units_json=True)
    assert outcomes["page"] > outcomes["refused"] > 0


def test_odd_layer_values_are_drawn(tmp_path):
    """The layer overview figure with every layer field of layers 1 and 3 set to each odd value at once."""
    from snrcli.reports.figures import layer_overview

    base = report_of(analyse(tmp_path, "a", seed=1, folder_run=False))
    for value in ODD_VALUES:
        layers = json.loads(json.dumps(base["layers"]))
        for L in (layers[0], layers[2]):
            for key in ("name", "units", "S_mean", "G_mean", "inputs", "inputs_kept", "classifier",
                        "G_mean_centred", "S_mean_centred", "activity_mean"):
                L[key] = value
        uri = layer_overview([("a", layers), ("b", base["layers"])])
        assert uri.startswith("data:image/svg+xml;base64,") and len(uri) > 1000
