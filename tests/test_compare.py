"""snr compare, report loading (reports_io) and report paths (paths): synthetic reports in tmp_path."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snrcli.reports.compare import (Run, compare_runs, delta, parse_figures, rank_path, rank_runs)
from snrcli.errors import EXIT_USAGE, ReportError, UsageError
from snrcli.reports.paths import Path as RPath
from snrcli.reports.paths import PathError, format_path, parse_path, resolve, scan_path
from snrcli.reports.files import load_report, read_report, report_sha256

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- synthetic reports


def layer(index: int, name: str, op: str = "Gemm", units: int = 8, S: float | None = 0.5,
          G: float | None = 1.5, activity: float | None = 0.75, classifier: bool = False, **extra):
    L = {"index": index, "name": name, "op": op, "units": units, "inputs": 16, "inputs_kept": 12, "samples": 100,
         "S_mean": S, "G_mean": G, "S_mean_unweighted": None if S is None else S - 0.125,
         "G_mean_unweighted": None if G is None else G - 0.25, "activity_mean": activity, "undefined_units": 0,
         "classifier": classifier, "S_mean_centred": S if classifier else None,
         "G_mean_centred": G if classifier else None}
    L.update(extra)
    return L


def make_report(layers=None, *, G_hidden=3.0, G_final=1.5, G_total=4.5, accuracy=0.875, min_level=0.01,
                min_activity=0.01, centre=True, data_sha="d" * 64, samples=100, model="m.onnx", **top):
    if layers is None:
        layers = [layer(1, "fc1", S=0.5, G=1.25, activity=0.75),
                  layer(2, "fc2", S=0.625, G=1.75, activity=0.5),
                  layer(3, "fc3", units=10, S=0.75, G=1.5, activity=1.0, classifier=True)]
    r = {"schema": "snr-report/1", "tool": {"version": "0.1.0"},
         "model": {"path": model, "sha256": hashlib.sha256(model.encode()).hexdigest()},
         "data": {"path": "d.npz", "sha256": data_sha, "samples": samples},
         "settings": {"min_level": min_level, "min_activity": min_activity, "centre_classifier": centre,
                      "batch_size": 256, "limit": None},
         "layers": layers, "skipped": [],
         "network": {"G_hidden": G_hidden, "G_final": G_final, "G_total": G_total},
         "accuracy": accuracy, "labelled": 100,
         "baselines": {"mean_max_softmax": 0.9, "sum_squared_weights": 10.0, "log_spectral_norm_product": 2.0},
         "meta": {"timestamp": "2024-01-01T00:00:00Z", "command": "snr analyze"}}
    r.update(top)
    return r


def write(path: Path, report) -> str:
    """Write a report; returns its path relative to the working folder (tmp_path, see ``_in_tmp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return os.path.relpath(path)


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def snr(run_cli):
    """``snr(*args, code=0, input=None)``: the real ``snr`` group in tmp_path (conftest's ``run_cli``)."""
    return run_cli


@pytest.fixture
def ab(tmp_path):
    """Two comparable reports: B differs from A in every figure by a known amount."""
    a = make_report()
    b = make_report(layers=[layer(1, "fc1", S=0.625, G=1.0, activity=0.75),
                            layer(2, "fc2", S=0.5, G=2.0, activity=0.25),
                            layer(3, "fc3", units=10, S=0.75, G=1.75, activity=1.0, classifier=True)],
                    G_hidden=3.0, G_final=1.75, G_total=4.75, accuracy=0.9375, model="b.onnx")
    return write(tmp_path / "a.json", a), write(tmp_path / "b.json", b), a, b


def one_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- reports_io


def test_load_report_file_folder_and_label(tmp_path):
    rep = make_report()
    f = write(tmp_path / "x" / "r.json", rep)
    write(tmp_path / "run" / "report.json", rep)
    data, label = load_report(f)
    assert data == rep and label == f
    data, label = load_report(str(tmp_path / "run") + "/")
    assert data == rep and label == str(tmp_path / "run")
    assert load_report("run")[1] == "run"
    loaded = read_report(tmp_path / "run")
    assert loaded.kind == "run-folder" and loaded.path == str(tmp_path / "run" / "report.json")
    raw = (tmp_path / "run" / "report.json").read_bytes()
    assert loaded.sha256 == hashlib.sha256(raw).hexdigest() == report_sha256(tmp_path / "run")
    assert report_sha256(raw) == loaded.sha256
    with pytest.raises(ReportError, match="stdin"):
        report_sha256("-")


def test_load_report_stdin_reads_bytes_once():
    rep = make_report()
    raw = json.dumps(rep).encode()
    loaded = read_report("-", stdin=io.TextIOWrapper(io.BytesIO(raw)))
    assert loaded.report == rep and loaded.label == "<stdin>" and loaded.kind == "stdin"
    assert loaded.sha256 == hashlib.sha256(raw).hexdigest()
    assert load_report("-", stdin=io.StringIO(json.dumps(rep)))[0] == rep


@pytest.mark.parametrize("content, pattern", [
    ('{"schema": "snr-report/1",\n "layers": [1,}', r"malformed JSON at line 2, column 15: Expecting value"),
    ("", r"is empty"),
    ("[1, 2]", r"holds a list, not a JSON object"),
    ('{"layers": []}', r"has no 'schema' key; this snr reads snr-report/1"),
    ('{"schema": "snr-report/2", "layers": []}', r'has schema "snr-report/2"; this snr supports snr-report/1'),
    ('{"schema": "snr-compare/1"}', r"output of snr compare --json"),
    ('{"schema": "snr-report/1", "layers": [], "accuracy": NaN}', r"holds NaN"),
    ('{"schema": "snr-report/1"}', r"'layers' is missing"),
    ('{"schema": "snr-report/1", "layers": [3]}', r"layers\[0\] is not an object"),
])
def test_load_report_rejects(tmp_path, content, pattern):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(ReportError, match=pattern) as e:
        load_report(str(f))
    assert "\n" not in str(e.value) and str(f) in str(e.value)
    assert e.value.exit_code == EXIT_USAGE


def test_load_report_missing_and_folder_without_report(tmp_path):
    with pytest.raises(ReportError, match=r"nope\.json: no such file or folder"):
        load_report(str(tmp_path / "nope.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"folder without report\.json"):
        load_report(str(tmp_path / "empty"))
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReportError, match="not UTF-8"):
        load_report(str(tmp_path / "bin.json"))


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("text, steps", [
    ("accuracy", ("accuracy",)),
    ("network.G_hidden", ("network", "G_hidden")),
    ("layers[1].S_mean", ("layers", 1, "S_mean")),
    ("layers[-1].G_mean_centred", ("layers", -1, "G_mean_centred")),
    ("layers[+1].G_mean", ("layers", 1, "G_mean")),
    ("  baselines.x  ", ("baselines", "x")),
    ("a[1][-2].b_2", ("a", 1, -2, "b_2")),
])
def test_parse_path(text, steps):
    p = parse_path(text)
    assert p.steps == steps
    assert parse_path(p.text).steps == steps
    assert format_path(steps) == p.text


@pytest.mark.parametrize("text, pattern", [
    ("", "empty path"),
    ("layers[x].S", r"expected an integer list position at column 8"),
    ("layers[1.S", r"expected '\]' at column 9"),
    ("network.", r"expected a name \(letter or _\) at column 9"),
    ("1abc", r"expected a name .* at column 1"),
    ("network G_total", r"unexpected 'G_total' at column 9"),
    ("layers[1]S_mean", r"unexpected 'S_mean' at column 10"),
    ("network..G", r"at column 9"),
])
def test_parse_path_errors(text, pattern):
    with pytest.raises(PathError, match=pattern) as e:
        parse_path(text)
    assert isinstance(e.value, UsageError)


@pytest.mark.parametrize("text, message", [
    ("layers[0].S_mean", "layers[0]: positions count from 1: layers[1] is the first layer (index 1), "
                         "layers[-1] the last"),
    ("layers[+0]", "layers[0]: positions count from 1: layers[1] is the first layer (index 1), layers[-1] the last"),
    ("layers[-0].G_mean", "layers[0]: positions count from 1: layers[1] is the first layer (index 1), "
                          "layers[-1] the last"),
    ("a[2][0].b", "a[2][0]: positions count from 1: a[2][1] is the first item, a[2][-1] the last"),
])
def test_position_zero_is_an_error(text, message):
    with pytest.raises(PathError) as e:
        parse_path(text)
    assert str(e.value) == message and isinstance(e.value, UsageError)
    with pytest.raises(PathError) as e:       # resolve says the same, also for a Path built by hand
        resolve(make_report(), text)
    assert str(e.value) == message
    with pytest.raises(PathError, match=r"^layers\[0\]: positions count from 1"):
        resolve(make_report(), RPath(("layers", 0, "S_mean")))


def test_scan_path_stops_at_operator():
    p, end = scan_path("layers[-1].G_mean>=2")
    assert p.steps == ("layers", -1, "G_mean") and end == 17


def test_resolve_values_and_list_positions():
    rep = make_report()
    assert resolve(rep, "network.G_total") == 4.5
    assert resolve(rep, "layers[1].name") == "fc1"          # positions count from 1: the first layer
    assert resolve(rep, "layers[2].S_mean") == 0.625        # the second layer (index 2)
    assert resolve(rep, "layers[3].name") == "fc3"          # the last one, by position ...
    assert resolve(rep, "layers[-1].G_mean_centred") == 1.5  # ... and from the end
    assert resolve(rep, "layers[-3].index") == 1
    assert [resolve(rep, f"layers[{i}].index") for i in (1, 2, 3)] == [1, 2, 3]   # layers[i] has index i
    assert resolve(rep, "layers[1].S_mean_centred") is None  # null stays None
    assert resolve(rep, "accuracy") == 0.875
    assert resolve(rep, "baselines.sum_squared_weights") == 10.0
    assert resolve(rep, RPath(("layers",))) == rep["layers"]
    rep["baselines"] = None
    assert resolve(rep, "baselines.sum_squared_weights") is None  # through a null: None


@pytest.mark.parametrize("path, pattern", [
    ("network.G_totl", r"no key 'G_totl' in network \(did you mean 'G_total'\? keys there: G_hidden, G_final, G_total\)"),
    ("nothing", r"no key 'nothing' in the report"),
    ("layers[4].S_mean", r"^layers\[4\]\.S_mean: position 4 is out of range, layers has 3 items "
                         r"\(valid: 1\.\.3 or -3\.\.-1\); layers\[i\] is the layer with index i, counted from 1$"),
    ("layers[-4].S_mean", r"position -4 is out of range, layers has 3 items \(valid: 1\.\.3 or -3\.\.-1\)"),
    ("layers[2].x[1]", r"no key 'x' in layers\[2\]"),
    ("network[1]", r"network is an object, not a list"),
    ("layers.S_mean", r"layers is a list, not an object, so \.S_mean does not apply; use \[i\] on a list, "
                      r"e\.g\. layers\[1\]"),
    ("accuracy.x", r"accuracy is a number, not an object"),
    ("layers[1].name[1]", r"layers\[1\]\.name is a string, not a list"),
])
def test_resolve_errors(path, pattern):
    with pytest.raises(PathError, match=pattern):
        resolve(make_report(), path)


def test_resolve_empty_list():
    with pytest.raises(PathError, match=r"layers has 0 items \(valid: none: the list is empty\)"):
        resolve(make_report(layers=[]), "layers[1]")
    with pytest.raises(PathError, match=r"layers has 0 items"):
        resolve(make_report(layers=[]), "layers[-1]")


# --------------------------------------------------------------------------- compare: pure logic


def test_delta_and_figures():
    assert delta(1.5, 2.25) == 0.75 and delta(2, 5) == 3
    assert delta(None, 1.0) is None and delta(1.0, None) is None and delta(True, 1.0) is None
    assert parse_figures("S,G,activity") == ["S_mean", "G_mean", "activity_mean"]
    assert parse_figures("S_u, G_u,S_c,G_c,S_c,S") == ["S_mean_unweighted", "G_mean_unweighted", "S_mean_centred",
                                                       "G_mean_centred", "S_mean"]
    assert parse_figures("G_mean,inputs_kept") == ["G_mean", "inputs_kept"]
    with pytest.raises(UsageError, match="unknown figure 'T'"):
        parse_figures("S,T")
    with pytest.raises(UsageError, match="no figure named"):
        parse_figures(" , ")
    assert rank_path("G_hidden").text == "network.G_hidden"
    assert rank_path("layers[1].G_mean").steps == ("layers", 1, "G_mean")
    with pytest.raises(UsageError, match=r"^--rank-by: layers\[0\]: positions count from 1: layers\[1\] is the first"):
        rank_path("layers[0].G_mean")
    with pytest.raises(UsageError, match="--rank-by"):
        rank_path("layers[")


def _runs(*reports):
    return [Run(copy.deepcopy(r), f"r{i}", f"r{i}.json", "file") for i, r in enumerate(reports)]


def test_rank_runs_order_ties_and_nulls():
    reps = [make_report(G_total=4.0), make_report(G_total=None), make_report(G_total=6.0),
            make_report(G_total=4.0), make_report(G_total=5.0)]
    warned = []
    ranking = rank_runs(_runs(*reps), rank_path("G_total"), warn=warned.append)
    assert [r["run"] for r in ranking] == [2, 4, 0, 3, 1]
    assert [r["rank"] for r in ranking] == [1, 2, 3, 3, None]
    assert [r["value"] for r in ranking] == [6.0, 5.0, 4.0, 4.0, None]
    assert warned == ["--rank-by network.G_total is null in r1; ranked last"]
    asc = rank_runs(_runs(*reps), rank_path("G_total"), ascending=True)
    assert [r["run"] for r in asc] == [0, 3, 4, 2, 1] and [r["rank"] for r in asc] == [1, 1, 3, 4, None]


def test_rank_runs_missing_path_in_some_or_all():
    short = make_report(layers=[layer(1, "fc1", G=9.0)])
    warned = []
    ranking = rank_runs(_runs(make_report(), short, make_report()), rank_path("layers[2].G_mean"),
                        warn=warned.append)
    assert [r["run"] for r in ranking] == [0, 2, 1] and ranking[2]["value"] is None
    assert [r["value"] for r in ranking[:2]] == [1.75, 1.75]            # layer 2 ("fc2") of the full reports
    assert len(warned) == 1 and "position 2 is out of range" in warned[0] and "(in r1)" in warned[0]
    ranking = rank_runs(_runs(make_report(), short), rank_path("layers[1].G_mean"))   # layer 1 exists in both
    assert [(r["run"], r["value"]) for r in ranking] == [(1, 9.0), (0, 1.25)]
    with pytest.raises(UsageError, match=r"--rank-by: network\.G_x: no key 'G_x'"):
        rank_runs(_runs(make_report(), make_report()), rank_path("network.G_x"))
    with pytest.raises(UsageError, match=r"it is an object in r0, not a number"):
        rank_runs(_runs(make_report(), make_report()), rank_path("network"))


def test_compare_runs_pair_values():
    a = make_report()
    b = make_report(layers=[layer(1, "fc1", S=0.75), layer(2, "fc2", S=None)], G_total=None, accuracy=None)
    cmp = compare_runs(_runs(a, b), figures=["S_mean"])
    rows = {r["index"]: r for r in cmp.layers}
    assert rows[1]["figures"]["S_mean"] == {"a": 0.5, "b": 0.75, "delta": 0.25}
    assert rows[2]["figures"]["S_mean"] == {"a": 0.625, "b": None, "delta": None}
    assert rows[3]["figures"]["S_mean"] == {"a": 0.75, "b": None, "delta": None}
    assert rows[3]["name_b"] is None and rows[3]["name_a"] == "fc3"
    assert cmp.network["G_total"] == {"a": 4.5, "b": None, "delta": None}
    assert cmp.network["G_hidden"] == {"a": 3.0, "b": 3.0, "delta": 0.0}
    assert cmp.accuracy == {"a": 0.875, "b": None, "delta": None}
    assert [r["run"] for r in cmp.ranking] == [0, 1] and cmp.ranking[1]["rank"] is None


def test_nan_and_infinity_in_report_dicts_compare_as_null():
    """Reports handed over as dicts (the Python API) may hold NaN or Inf; compare turns them into null,
    so its JSON never holds an Infinity or NaN token (a file holding 1e999 is refused when read)."""
    inf, nan = float("inf"), float("nan")
    a = make_report()
    b = make_report(layers=[layer(1, "fc1", S=inf), layer(2, "fc2", S=nan, G=-inf),
                            layer(3, "fc3", units=10, S=0.75, G=1.5, classifier=True)],
                    G_hidden=nan, G_total=inf, accuracy=-inf,
                    baselines={"mean_max_softmax": nan, "sum_squared_weights": inf, "log_spectral_norm_product": 2.0})
    cmp = compare_runs(_runs(a, b), figures=["S_mean", "G_mean"], rank_by="G_final")
    rows = {r["index"]: r for r in cmp.layers}
    assert rows[1]["figures"]["S_mean"] == {"a": 0.5, "b": None, "delta": None}
    assert rows[2]["figures"]["S_mean"] == {"a": 0.625, "b": None, "delta": None}
    assert rows[2]["figures"]["G_mean"] == {"a": 1.75, "b": None, "delta": None}
    assert cmp.network["G_total"] == {"a": 4.5, "b": None, "delta": None}
    assert cmp.network["G_hidden"] == {"a": 3.0, "b": None, "delta": None}
    assert cmp.accuracy == {"a": 0.875, "b": None, "delta": None}
    assert cmp.baselines["sum_squared_weights"] == {"a": 10.0, "b": None, "delta": None}
    assert cmp.baselines["mean_max_softmax"] == {"a": 0.9, "b": None, "delta": None}
    assert cmp.ranking[1]["network"]["G_total"] is None and cmp.ranking[1]["accuracy"] is None
    text = json.dumps(cmp.to_dict())
    assert "Infinity" not in text and "NaN" not in text
    assert delta(1.7e308, -1.7e308) is None and delta(-1.7e308, 1.7e308) is None   # overflowing differences


finite = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64))


@settings(max_examples=60, deadline=None)
@given(figs=st.lists(st.tuples(finite, finite, finite, finite), min_size=0, max_size=6),
       net=st.tuples(finite, finite, finite, finite))
def test_compare_with_itself_has_zero_deltas(figs, net):
    layers = [layer(i + 1, f"l{i}", S=s, G=g, activity=act, classifier=(i == len(figs) - 1),
                    S_mean_unweighted=su) for i, (s, g, act, su) in enumerate(figs)]
    rep = make_report(layers, G_hidden=net[0], G_final=net[1], G_total=net[2], accuracy=net[3])
    rep = json.loads(json.dumps(rep))   # what a report file gives back
    all_figs = parse_figures("S,G,S_u,G_u,activity,S_c,G_c,units")
    cmp = compare_runs(_runs(rep, rep), figures=all_figs)
    assert len(cmp.layers) == len(figs)
    for row in cmp.layers:
        for f, t in row["figures"].items():
            if t["a"] is None:
                assert t["b"] is None and t["delta"] is None
            else:
                assert t["a"] == t["b"] and t["delta"] == 0 and not str(t["delta"]).startswith("-")
    for t in list(cmp.network.values()) + [cmp.accuracy]:
        assert t["delta"] == (None if t["a"] is None else 0)
    assert cmp.settings_differ == []
    assert cmp.warnings == ([] if net[2] is not None else ["--rank-by network.G_total is null in r0, r1; ranked last"])


# --------------------------------------------------------------------------- compare: CLI, two runs


def test_cli_pair_table(snr, ab):
    fa, fb, _, _ = ab
    r = snr("compare", fa, fb)
    out = r.stdout
    assert "\x1b[" not in out                      # NO_COLOR / not a TTY: no escape codes
    assert f"A = {fa}, B = {fb}" in out
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in out.splitlines() if line.startswith("│")}
    # index, layer, op, S A, S B, S B-A, G A, G B, G B-A, act A, act B, act B-A
    assert rows["1"] == ["1", "fc1", "Gemm", "0.5000", "0.6250", "+0.1250", "1.2500", "1.0000", "-0.2500",
                         "0.7500", "0.7500", "0.0000"]
    assert rows["2"][3:] == ["0.6250", "0.5000", "-0.1250", "1.7500", "2.0000", "+0.2500", "0.5000", "0.2500",
                             "-0.2500"]
    assert ["G_total", "4.5000", "4.7500", "+0.2500"] in rows.values()
    assert ["G_hidden", "3.0000", "3.0000", "0.0000"] in rows.values()
    assert ["accuracy", "0.8750", "0.9375", "+0.0625"] in rows.values()
    assert r.stderr == ""


def test_cli_pair_json(snr, ab):
    fa, fb, a, b = ab
    d = json.loads(snr("compare", fa, fb, "--json", "--figures", "S,G_c").stdout)
    assert d["schema"] == "snr-compare/1" and d["mode"] == "pair"
    assert d["figures"] == ["S_mean", "G_mean_centred"]
    assert [r["path"] for r in d["runs"]] == [fa, fb]
    assert [r["sha256"] for r in d["runs"]] == [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in (fa, fb)]
    assert d["runs"][1]["model"] == b["model"] and d["runs"][0]["kind"] == "file"
    L1, L3 = d["layers"][0], d["layers"][2]
    assert L1["index"] == 1 and L1["name_a"] == L1["name_b"] == "fc1"
    assert L1["figures"]["S_mean"] == {"a": 0.5, "b": 0.625, "delta": 0.125}
    assert L1["figures"]["G_mean_centred"] == {"a": None, "b": None, "delta": None}
    assert L3["figures"]["G_mean_centred"] == {"a": 1.5, "b": 1.75, "delta": 0.25}
    assert d["network"]["G_total"] == {"a": 4.5, "b": 4.75, "delta": 0.25}
    assert d["network"]["G_final"] == {"a": 1.5, "b": 1.75, "delta": 0.25}
    assert d["accuracy"] == {"a": 0.875, "b": 0.9375, "delta": 0.0625}
    assert d["baselines"]["sum_squared_weights"] == {"a": 10.0, "b": 10.0, "delta": 0.0}
    assert d["rank_by"] == "network.G_total" and d["order"] == "descending"
    assert [(r["rank"], r["label"], r["value"]) for r in d["ranking"]] == [(1, fb, 4.75), (2, fa, 4.5)]
    assert d["warnings"] == [] and d["settings_differ"] == []


def test_cli_pair_csv(snr, ab, tmp_path):
    fa, fb, _, b = ab
    b["layers"][1]["G_mean"] = None
    write(tmp_path / "b.json", b)
    r = snr("compare", fa, fb, "--csv", "t.csv", "--figures", "S,G")
    assert "wrote t.csv" in r.stderr and "Layers:" in r.stdout
    rows = list(csv.reader((tmp_path / "t.csv").open()))
    assert rows[0] == ["index", "name_a", "name_b", "op", "S_mean_a", "S_mean_b", "S_mean_delta",
                       "G_mean_a", "G_mean_b", "G_mean_delta"]
    assert rows[1] == ["1", "fc1", "fc1", "Gemm", "0.5", "0.625", "0.125", "1.25", "1.0", "-0.25"]
    assert rows[2] == ["2", "fc2", "fc2", "Gemm", "0.625", "0.5", "-0.125", "1.75", "", ""]
    assert len(rows) == 4


def test_cli_mismatched_architectures_warn_and_still_compare(snr, tmp_path):
    a = make_report()
    b = make_report(layers=[layer(1, "conv1", op="Conv", units=4, S=0.25),
                            layer(2, "fc2", S=0.5),
                            layer(3, "fc3", units=12, S=0.75),
                            layer(4, "fc4", units=10, S=1.0, classifier=True)])
    fa, fb = write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)
    r = snr("compare", fa, fb, "--figures", "S")
    warnings = r.stderr.splitlines()
    assert warnings == [          # one warning for every layer that differs
        f"warning: 2 layers differ between A ({fa}) and B ({fb}), matched by layer index anyway (each row names "
        'both): layer 1: name "fc1" vs "conv1", op "Gemm" vs "Conv", units 8 vs 4; layer 3: units 10 vs 12',
        f"warning: layer 4 only in B ({fb}): shown with blanks for the other run (3 layers in A, 4 in B)",
    ]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[1:-1]]
            for line in r.stdout.splitlines() if line.startswith("│")}
    assert rows["1"] == ["1", "fc1 | conv1", "Gemm | Conv", "0.5000", "0.2500", "-0.2500"]
    assert rows["2"] == ["2", "fc2", "Gemm", "0.6250", "0.5000", "-0.1250"]
    assert rows["4"] == ["4", "fc4 (B only)", "Gemm", "-", "1.0000", "-"]
    d = json.loads(snr("compare", fa, fb, "--json", "-q").stdout)
    assert d["layers"][3]["figures"]["S_mean"] == {"a": None, "b": 1.0, "delta": None}
    assert len(d["warnings"]) == 2


def test_cli_stdin_run(snr, ab):
    fa, fb, a, _ = ab
    text = json.dumps(a)
    d = json.loads(snr("compare", "-", fb, "--json", input=text).stdout)
    assert d["runs"][0]["label"] == "<stdin>" and d["runs"][0]["kind"] == "stdin"
    assert d["runs"][0]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert d["network"]["G_total"]["delta"] == 0.25
    r = snr("compare", "-", "-", input=text, code=2)
    assert one_line(r.stderr) == "error: '-' (stdin) may be given only once"
    r = snr("compare", "-", fb, input="{not json", code=2)
    assert one_line(r.stderr) == ("error: <stdin>: malformed JSON at line 1, column 2: "
                                  "Expecting property name enclosed in double quotes")


def test_cli_run_folder_and_bad_reports(snr, tmp_path, ab):
    fa, fb, a, _ = ab
    write(tmp_path / "runs" / "a" / "report.json", a)
    d = json.loads(snr("compare", "runs/a", fb, "--json").stdout)
    assert d["runs"][0]["kind"] == "run-folder" and d["runs"][0]["label"] == "runs/a"
    assert d["runs"][0]["path"] == os.path.join("runs", "a", "report.json")
    (tmp_path / "old.json").write_text(json.dumps({**a, "schema": "snr-report/0"}))
    r = snr("compare", fa, "old.json", code=2)
    assert one_line(r.stderr) == 'error: old.json has schema "snr-report/0"; this snr supports snr-report/1'
    (tmp_path / "trunc.json").write_text(json.dumps(a)[:50])
    r = snr("compare", fa, "trunc.json", code=2)
    assert one_line(r.stderr).startswith("error: trunc.json: malformed JSON at line 1, column ")
    (tmp_path / "empty").mkdir()
    r = snr("compare", fa, "empty", code=2)
    assert "empty is a folder without report.json" in one_line(r.stderr)
    r = snr("compare", fa, "missing.json", code=2)
    assert one_line(r.stderr) == "error: missing.json: no such file or folder"
    r = snr("compare", fa, code=2)
    assert "compare needs at least two runs (got 1)" in one_line(r.stderr)
    r = snr("compare", fa, fb, "--figures", "S,X", code=2)
    assert "unknown figure 'X'" in one_line(r.stderr)


# --------------------------------------------------------------------------- compare: settings


@pytest.mark.parametrize("change, key, va, vb", [
    ({"min_level": 0.05}, "settings.min_level", "0.01", "0.05"),
    ({"min_activity": 0.1}, "settings.min_activity", "0.01", "0.1"),
    ({"centre": False}, "settings.centre_classifier", "true", "false"),
    ({"data_sha": "e" * 64}, "data.sha256", json.dumps("d" * 64), json.dumps("e" * 64)),
    ({"samples": 50}, "data.samples", "100", "50"),
])
def test_cli_settings_mismatch_refused_then_allowed(snr, tmp_path, change, key, va, vb):
    fa = write(tmp_path / "a.json", make_report())
    fb = write(tmp_path / "b.json", make_report(**change))
    r = snr("compare", fa, fb, code=2)
    assert one_line(r.stderr) == (
        f"error: the runs differ in a setting: {key} is {va} in {fa} but {vb} in {fb}; figures computed under "
        "different settings or data are not comparable (pass --allow-different-settings to compare anyway)")
    assert r.stdout == ""
    r = snr("compare", fa, fb, "--allow-different-settings", "--json")
    assert one_line(r.stderr) == (f"warning: {key} is {va} in {fa} but {vb} in {fb}; "
                                  "comparing anyway (--allow-different-settings)")
    d = json.loads(r.stdout)
    assert d["settings_differ"][0]["key"] == key and len(d["settings_differ"]) == 1


def test_cli_settings_mismatch_in_third_run(snr, tmp_path):
    files = [write(tmp_path / f"r{i}.json", make_report(min_level=0.01 if i < 2 else 0.02)) for i in range(4)]
    r = snr("compare", *files, code=2)
    assert (f"settings.min_level is 0.01 in {files[0]} but 0.02 in {files[2]} (and differs in 1 more run)"
            in one_line(r.stderr))


# --------------------------------------------------------------------------- compare: three or more runs


def test_cli_ranking_with_nulls(snr, tmp_path):
    specs = [("low", 2.0, 0.5), ("null", None, 0.75), ("high", 6.0, None), ("mid", 4.0, 0.625)]
    files = [write(tmp_path / f"{n}.json", make_report(G_total=g, accuracy=acc)) for n, g, acc in specs]
    r = snr("compare", *files)
    assert r.stderr == f"warning: --rank-by network.G_total is null in {files[1]}; ranked last\n"
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if line.startswith("│")]
    assert [row[:2] for row in rows] == [["1", files[2]], ["2", files[3]], ["3", files[0]], ["-", files[1]]]
    assert rows[0][2:] == ["3.0000", "1.5000", "6.0000", "-"]
    assert rows[3][2:] == ["3.0000", "1.5000", "-", "0.7500"]
    d = json.loads(snr("compare", *files, "--rank-by", "accuracy", "--json", "-q").stdout)
    assert d["mode"] == "ranking" and d["layers"] is None and d["network"] is None
    assert [(x["rank"], x["run"], x["value"]) for x in d["ranking"]] == [(1, 1, 0.75), (2, 3, 0.625),
                                                                        (3, 0, 0.5), (None, 2, None)]
    d = json.loads(snr("compare", *files, "--rank-by", "G_total", "--ascending", "--json", "-q").stdout)
    assert [x["run"] for x in d["ranking"]] == [0, 3, 2, 1] and d["order"] == "ascending"


def test_cli_ranking_by_layer_path_and_csv(snr, tmp_path):
    files = [write(tmp_path / f"r{i}.json",
                   make_report(layers=[layer(1, "a", G=g1), layer(2, "b", G=g2)]))
             for i, (g1, g2) in enumerate([(1.0, 3.0), (2.0, 1.0), (3.0, 2.0)])]
    r = snr("compare", *files, "--rank-by", "layers[2].G_mean", "--csv", "rank.csv")   # layer 2 ("b")
    header = next(line for line in r.stdout.splitlines() if line.startswith("┃"))
    assert "layers[2].G_mean" in header
    rows = list(csv.reader((tmp_path / "rank.csv").open()))
    assert rows[0] == ["rank", "label", "source", "layers[2].G_mean", "G_hidden", "G_final", "G_total", "accuracy"]
    assert [(x[0], x[2], x[3]) for x in rows[1:]] == [("1", files[0], "3.0"), ("2", files[2], "2.0"),
                                                      ("3", files[1], "1.0")]
    d = json.loads(snr("compare", *files, "--rank-by", "layers[1].G_mean", "--json", "-q").stdout)  # layer 1 ("a")
    assert [(x["run"], x["value"]) for x in d["ranking"]] == [(2, 3.0), (1, 2.0), (0, 1.0)]
    d = json.loads(snr("compare", *files, "--rank-by", "layers[-1].G_mean", "--json", "-q").stdout)  # the last: "b"
    assert [(x["run"], x["value"]) for x in d["ranking"]] == [(0, 3.0), (2, 2.0), (1, 1.0)]
    r = snr("compare", *files, "--rank-by", "layers[5].G_mean", code=2)
    assert "position 5 is out of range, layers has 2 items (valid: 1..2 or -2..-1)" in one_line(r.stderr)
    r = snr("compare", *files, "--rank-by", "layers[0].G_mean", code=2)
    assert one_line(r.stderr) == ("error: --rank-by: layers[0]: positions count from 1: layers[1] is the first "
                                  "layer (index 1), layers[-1] the last")
    r = snr("compare", *files, "--rank-by", "layers[x]", code=2)
    assert "expected an integer list position" in one_line(r.stderr)


def test_cli_same_file_twice_is_all_zero(snr, ab):
    fa = ab[0]
    d = json.loads(snr("compare", fa, fa, "--json", "--figures", "S,G,S_u,G_u,activity,S_c,G_c").stdout)
    assert d["runs"][1]["label"] == f"{fa} #2"
    for row in d["layers"]:
        for t in row["figures"].values():
            assert t["delta"] == (None if t["a"] is None else 0)
    assert all(t["delta"] == 0 for t in d["network"].values())


# --------------------------------------------------------------------------- compare: models on the fly


def test_cli_model_needs_data_and_options_need_models(snr, ab, tmp_path):
    fa, fb, _, _ = ab
    r = snr("compare", "x.onnx", fb, code=2)
    assert one_line(r.stderr).startswith("error: x.onnx is a model: pass --data FILE")
    r = snr("compare", fa, fb, "--data", "d.npz", code=2)
    assert "--data is only used to analyse .onnx runs" in one_line(r.stderr)
    r = snr("compare", fa, fb, "--min-level", "0.1", code=2)
    assert one_line(r.stderr).startswith("error: --min-level only applies to .onnx runs analysed with --data")
    r = snr("compare", fa, fb, "--no-centring", code=2)
    assert "--no-centring only applies" in r.stderr


SAMPLE_MLP = ROOT / "sample_models" / "digits_mlp.onnx"
SAMPLE_DATA = ROOT / "sample_models" / "digits_test.npz"


@pytest.mark.skipif(not (SAMPLE_MLP.is_file() and SAMPLE_DATA.is_file()), reason="sample models not built yet")
def test_cli_models_analysed_on_the_fly(snr, tmp_path):
    pytest.importorskip("snrcli.analysis.api")
    from snrcli.analysis.api import analyze

    ref = analyze(str(SAMPLE_MLP), str(SAMPLE_DATA), min_level=0.02, centre_classifier=False).to_dict()
    report = write(tmp_path / "ref.json", ref)
    d = json.loads(snr("compare", report, SAMPLE_MLP, "--data", SAMPLE_DATA, "--min-level", "0.02",
                       "--no-centring", "--json", "-q").stdout)
    assert d["runs"][1]["kind"] == "model" and d["runs"][1]["sha256"] is None
    assert d["runs"][1]["model"]["sha256"] == hashlib.sha256(SAMPLE_MLP.read_bytes()).hexdigest()
    assert all(t["delta"] == 0 for t in d["network"].values() if t["a"] is not None)
    assert d["network"]["G_total"]["a"] == ref["network"]["G_total"]
    for row in d["layers"]:
        assert row["figures"]["S_mean"]["delta"] == 0 and row["figures"]["G_mean"]["delta"] == 0
    # different settings from the report: refused
    r = snr("compare", report, SAMPLE_MLP, "--data", SAMPLE_DATA, "-q", code=2)
    assert "settings.min_level is 0.02 in" in one_line(r.stderr)
    # a model that cannot be read is bad input (exit 3), as with snr analyze
    r = snr("compare", report, "missing.onnx", "--data", SAMPLE_DATA, "-q", code=3)
    assert "missing.onnx" in one_line(r.stderr)
