"""The ``snr`` command line through click's CliRunner (stdout and stderr kept apart)."""

from __future__ import annotations

import csv
import io
import json

import click
import numpy as np
import pytest
from onnx import TensorProto, helper

import snrcli
from helpers import init, make_model, mlp, node, vi, write
from snrcli.cli import main

X = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], dtype=np.float32)
W = np.array([[1.0, 1.0], [1.0, -1.0]])


@pytest.fixture
def net(tmp_path):
    """A 2-layer MLP with labels: (model path, data path) relative to tmp_path (the CLI's cwd)."""
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(6, 4)), rng.normal(size=(3, 6))]
    x = rng.normal(size=(40, 4)).astype(np.float32)
    write(tmp_path, mlp(ws, [rng.normal(size=6) * 0.2, np.zeros(3)], names=["dense_in", "dense_out"],
                        head="Softmax"),
          {"x": x, "labels": rng.integers(0, 3, 40)}, name="net")
    return "net.onnx", "net.npz"


def one_error_line(res, *, contains: str | None = None):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    assert len(errors) == 1, res
    assert not [ln for ln in lines if not ln.startswith("warning:") and ln not in errors], res
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    if contains:
        assert contains in errors[0], res
    return errors[0]


# --------------------------------------------------------------------------- version and help

def test_version(run_cli):
    res = run_cli("--version")
    assert res.stdout.strip() == f"snr, version {snrcli.__version__}"
    assert run_cli("-V").stdout == res.stdout


def _commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


def test_help_for_every_command(run_cli):
    res = run_cli("--help")
    assert "Usage: snr" in res.stdout
    cmds = list(_commands(main))
    assert ("analyze",) in cmds and ("inspect",) in cmds
    for path in cmds:
        assert path[-1] in res.stdout or len(path) > 1
        out = run_cli(*path, "--help")
        assert out.stdout.startswith("Usage: snr " + " ".join(path)), out
        assert out.stderr == ""
        assert run_cli(*path, "-h").stdout == out.stdout


def test_usage_errors_exit_2(run_cli, net):
    res = run_cli("analyze", net[0], code=2)                       # --data missing
    assert "--data" in res.stderr
    run_cli("analyze", net[0], "--data", net[1], "--bogus", code=2)
    run_cli("analyze", net[0], "--data", net[1], "--batch-size", "0", code=2)
    run_cli("nosuchcommand", code=2)


# --------------------------------------------------------------------------- analyze

def test_analyze_table(run_cli, net):
    res = run_cli("analyze", *net[:1], "--data", net[1])
    rep = snrcli.analyze(*net).to_dict()
    out = res.stdout
    for L in rep["layers"]:
        assert L["name"] in out
        assert f"{L['S_mean']:.4f}" in out and f"{L['G_mean']:.4f}" in out
    cls = [L for L in rep["layers"] if L["classifier"]][0]
    assert f"{cls['G_mean_centred']:.4f}" in out and f"{cls['S_mean_centred']:.4f}" in out
    for k in ("G_hidden", "G_final", "G_total"):
        assert k in out and f"{rep['network'][k]:.4f}" in out
    assert f"{rep['accuracy']:.4f}" in out
    assert "\x1b[" not in out                # NO_COLOR
    assert "Traceback" not in res.stderr


def test_analyze_json_is_pure_json(run_cli, tmp_path):
    # integer data and a hidden layer with zero weights: warnings on stderr, nulls in the JSON
    nodes = [node("Gemm", ["x", "W0", "B0"], ["aux"], name="dead", transB=1),
             node("Gemm", ["x", "W1", "B1"], ["y"], name="cls", transB=1)]
    model = make_model(nodes, [vi("x", ["N", 2])], [vi("y", ["N", 2]), vi("aux", ["N", 3])],
                       [init("W0", np.zeros((3, 2))), init("B0", np.ones(3)), init("W1", W), init("B1", np.zeros(2))])
    write(tmp_path, model, {"x": X.astype(np.int32)})
    res = run_cli("analyze", "m.onnx", "--data", "m.npz", "--json")
    assert "NaN" not in res.stdout and "Infinity" not in res.stdout
    d = json.loads(res.stdout)
    assert d["schema"] == "snr-report/1"
    assert d["layers"][0]["S_mean"] is None and d["network"]["G_total"] is None
    assert d["layers"][1]["G_mean_centred"] == pytest.approx(1.0, rel=1e-6)
    assert "warning:" in res.stderr
    assert json.loads(res.stdout) == json.loads(res.stdout.strip())   # nothing before or after
    quiet = run_cli("analyze", "m.onnx", "--data", "m.npz", "--json", "--quiet")
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["network"] == d["network"]


def test_analyze_json_matches_the_api(run_cli, net):
    d = json.loads(run_cli("analyze", net[0], "--data", net[1], "--json", "--batch-size", "7").stdout)
    api = snrcli.analyze(*net).to_dict()
    for La, Lb in zip(d["layers"], api["layers"]):
        for k in ("S_mean", "G_mean", "S_mean_centred", "G_mean_centred", "activity_mean"):
            assert (La[k] is None and Lb[k] is None) or La[k] == pytest.approx(Lb[k], rel=1e-6)
    assert d["network"] == pytest.approx(api["network"], rel=1e-6)
    assert d["accuracy"] == api["accuracy"]
    assert d["settings"]["batch_size"] == 7 and d["data"]["samples"] == 40
    assert d["meta"]["command"].startswith("snr")


def test_analyze_settings_flags(run_cli, net):
    d = json.loads(run_cli("analyze", net[0], "--data", net[1], "--json", "--min-level", "0.1",
                           "--min-activity", "0.2", "--no-centring").stdout)
    assert d["settings"]["min_level"] == 0.1 and d["settings"]["min_activity"] == 0.2
    assert d["settings"]["centre_classifier"] is False
    assert not any(L["classifier"] for L in d["layers"])
    assert d["network"]["G_final"] == d["layers"][-1]["G_mean"]


def test_analyze_out_dir(run_cli, net, tmp_path):
    res = run_cli("analyze", net[0], "--data", net[1], "--out", "run1")
    assert "report.json" in res.stderr
    folder = tmp_path / "run1"
    assert sorted(p.name for p in folder.iterdir()) == ["layers.csv", "report.json", "units.csv"]
    rep = json.loads((folder / "report.json").read_text())
    layers = list(csv.DictReader(io.StringIO((folder / "layers.csv").read_text())))
    units = list(csv.DictReader(io.StringIO((folder / "units.csv").read_text())))
    assert [r["name"] for r in layers] == [L["name"] for L in rep["layers"]]
    for row, L in zip(layers, rep["layers"]):
        assert int(row["units"]) == L["units"] and int(row["index"]) == L["index"]
        assert float(row["S_mean"]) == pytest.approx(L["S_mean"], rel=1e-12)
        assert float(row["G_mean"]) == pytest.approx(L["G_mean"], rel=1e-12)
        assert row["classifier"] in ("True", "False", "true", "false", "1", "0")
        mine = [u for u in units if int(u["layer_index"]) == L["index"]]
        assert len(mine) == L["units"]
        s = np.array([float(u["S"]) for u in mine])
        g = np.array([float(u["G"]) for u in mine])
        r = np.array([float(u["activity"]) for u in mine])
        assert (r * s).sum() / r.sum() == pytest.approx(L["S_mean"], rel=1e-9)
        assert (r * g).sum() / r.sum() == pytest.approx(L["G_mean"], rel=1e-9)
        assert r.mean() == pytest.approx(L["activity_mean"], rel=1e-9)
        if L["classifier"]:
            assert np.mean([float(u["G_centred"]) for u in mine]) == pytest.approx(L["G_mean_centred"], rel=1e-9)
    assert sum(L["units"] for L in rep["layers"]) == len(units)

    # an existing folder is refused without --force (usage error), and left alone
    (folder / "keep.txt").write_text("mine")
    res = run_cli("analyze", net[0], "--data", net[1], "--out", "run1", code=2)
    assert "--force" in res.stderr and "Traceback" not in res.stderr
    assert (folder / "keep.txt").read_text() == "mine"
    # --force replaces only a folder of snr's own files: refused while keep.txt is there
    res = run_cli("analyze", net[0], "--data", net[1], "--out", "run1", "--force", code=2)
    assert "keep.txt" in res.stderr and (folder / "keep.txt").read_text() == "mine"
    (folder / "keep.txt").unlink()
    run_cli("analyze", net[0], "--data", net[1], "--out", "run1", "--force")
    assert sorted(p.name for p in folder.iterdir()) == ["layers.csv", "report.json", "units.csv"]


def test_analyze_out_and_json_together(run_cli, net, tmp_path):
    res = run_cli("analyze", net[0], "--data", net[1], "--out", "r", "--json")
    assert json.loads(res.stdout)["network"] == json.loads((tmp_path / "r" / "report.json").read_text())["network"]


def test_markup_in_layer_names_prints_literally(run_cli, tmp_path):
    model = make_model([node("Gemm", ["x", "W", "B"], ["y"], name="[bold]x", transB=1),
                        node("ConvTranspose", ["img", "Wt"], ["up"], name="[red]up[/red]")],
                       [vi("x", ["N", 2]), vi("img", ["N", 1, 2, 2])], [vi("y", ["N", 2]), vi("up", None)],
                       [init("W", W), init("B", np.zeros(2)), init("Wt", np.ones((1, 1, 2, 2)))], check=False)
    write(tmp_path, model, {"x": X, "img": np.ones((4, 1, 2, 2), np.float32)})
    out = run_cli("analyze", "m.onnx", "--data", "m.npz").stdout
    assert "[bold]x" in out and "[red]up[/red]" in out
    out = run_cli("inspect", "m.onnx").stdout
    assert "[bold]x" in out and "[red]up[/red]" in out


# --------------------------------------------------------------------------- inspect

def test_inspect_table_and_json(run_cli, net):
    out = run_cli("inspect", net[0]).stdout
    assert "dense_in" in out and "dense_out" in out and "Gemm" in out
    d = json.loads(run_cli("inspect", net[0], "--json").stdout)
    rows = d["layers"]
    assert [(r["index"], r["name"], r["op"], r["units"]) for r in rows] == [(1, "dense_in", "Gemm", 6),
                                                                          (2, "dense_out", "Gemm", 3)]
    assert rows[0]["weight_shape"] == [6, 4] and rows[0]["activity_gate"] == "h1"
    assert [r["classifier"] for r in rows] == [False, True]
    assert d["skipped"] == []
    d2 = json.loads(run_cli("inspect", net[0], "--json", "--no-centring").stdout)
    assert [r["classifier"] for r in d2["layers"]] == [False, False]


def test_inspect_lists_skipped_ops(run_cli, tmp_path):
    model = make_model([node("ConvTranspose", ["x", "Wt"], ["up"], name="upsample"),
                        node("Conv", ["up", "Wc"], ["y"], name="conv")],
                       [vi("x", ["N", 1, 3, 3])], [vi("y", None)],
                       [init("Wt", np.ones((1, 2, 2, 2))), init("Wc", np.ones((3, 2, 1, 1)))], check=False)
    write(tmp_path, model)
    d = json.loads(run_cli("inspect", "m.onnx", "--json").stdout)
    assert [r["name"] for r in d["layers"]] == ["conv"]
    assert [(s["name"], s["op"]) for s in d["skipped"]] == [("upsample", "ConvTranspose")]
    assert "upsample" in run_cli("inspect", "m.onnx").stdout


# --------------------------------------------------------------------------- exit codes and error lines

def test_missing_model_exits_3(run_cli, net):
    res = run_cli("analyze", "nope.onnx", "--data", net[1], code=3)
    one_error_line(res, contains="nope.onnx")
    one_error_line(run_cli("inspect", "nope.onnx", code=3), contains="nope.onnx")


@pytest.mark.parametrize("content", [b"hello\nworld\n", bytes(range(256)) * 4, b""], ids=["text", "binary", "empty"])
def test_not_onnx_exits_3(run_cli, net, tmp_path, content):
    (tmp_path / "bad.onnx").write_bytes(content)
    one_error_line(run_cli("analyze", "bad.onnx", "--data", net[1], code=3), contains="bad.onnx")
    one_error_line(run_cli("inspect", "bad.onnx", code=3))


def _no_layer_model(tmp_path):
    lc = helper.make_node("LinearClassifier", ["x"], ["label", "probs"], name="logreg", domain="ai.onnx.ml",
                          coefficients=np.ones(4).tolist(), intercepts=[0.0, 0.0], classlabels_ints=[0, 1])
    model = make_model([lc, node("ConvTranspose", ["img", "Wt"], ["up"], name="deconv")],
                       [vi("x", ["N", 2]), vi("img", ["N", 1, 2, 2])],
                       [vi("label", ["N"], TensorProto.INT64), vi("probs", ["N", 2]), vi("up", None)],
                       [init("Wt", np.ones((1, 1, 2, 2)))], extra_opsets={"ai.onnx.ml": 1}, check=False)
    write(tmp_path, model, {"x": X, "img": np.ones((4, 1, 2, 2), np.float32)})


def test_no_supported_layer_exits_3_and_lists_skipped_ops(run_cli, tmp_path):
    _no_layer_model(tmp_path)
    line = one_error_line(run_cli("analyze", "m.onnx", "--data", "m.npz", code=3))
    assert "no supported layer" in line
    assert "logreg" in line and "LinearClassifier" in line and "deconv" in line and "ConvTranspose" in line
    res = run_cli("inspect", "m.onnx", code=3)
    one_error_line(res, contains="no supported layer")
    assert "deconv" in res.stdout
    with pytest.raises(snrcli.errors.NoLayerError, match="LinearClassifier"):
        snrcli.analyze(str(tmp_path / "m.onnx"), str(tmp_path / "m.npz"))


@pytest.mark.parametrize("data, contains", [
    ({"x": np.ones((5, 3), np.float32)}, "(3,)"),                    # wrong item shape
    ({"x": np.full((5, 2), np.nan, np.float32)}, "NaN"),
    ({"x": X[:1]}, "one item"),
    ({"a": X, "b": X}, "--input-key"),
], ids=["shape", "nan", "one-item", "ambiguous"])
def test_bad_data_exits_3(run_cli, tmp_path, data, contains):
    write(tmp_path, mlp([W]), data)
    one_error_line(run_cli("analyze", "m.onnx", "--data", "m.npz", code=3), contains=contains)


def test_missing_data_file_exits_3(run_cli, net):
    one_error_line(run_cli("analyze", net[0], "--data", "absent.npz", code=3), contains="absent.npz")


def test_internal_error_exits_4_with_one_line(run_cli, net, monkeypatch):
    import snrcli.analysis.api

    def boom(*a, **k):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(snrcli.analysis.api, "layer_result", boom)
    res = run_cli("analyze", net[0], "--data", net[1], code=4)
    line = one_error_line(res, contains="RuntimeError")
    assert "--debug" in line
    res = run_cli("--debug", "analyze", net[0], "--data", net[1], code=4)
    assert "Traceback" in res.stderr


def test_null_network_figures_are_explained_in_the_table(run_cli, tmp_path):
    nodes = [node("Gemm", ["x", "W0", "B0"], ["aux"], name="deadlayer", transB=1),
             node("Gemm", ["x", "W1", "B1"], ["y"], name="cls", transB=1)]
    model = make_model(nodes, [vi("x", ["N", 2])], [vi("y", ["N", 2]), vi("aux", ["N", 3])],
                       [init("W0", np.zeros((3, 2))), init("B0", np.ones(3)), init("W1", W), init("B1", np.zeros(2))])
    write(tmp_path, model, {"x": X})
    res = run_cli("analyze", "m.onnx", "--data", "m.npz", "--quiet")
    network_part = res.stdout[res.stdout.index("Network"):]
    assert any(word in network_part for word in ("undefined", "deadlayer", "layer 1", "null")), res


def test_printable_escapes_what_would_drive_a_terminal():
    from snrcli.safetext import printable

    assert printable("fc1 layer/ü ✓") == "fc1 layer/ü ✓"                 # printable text is kept as is
    assert printable("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    assert printable("two\nlines\r\t") == "two\\nlines\\r\\t"
    assert printable("\x7f\x85") == "\\x7f\\x85"                          # DEL and a C1 control
    assert printable("half \ud800 char") == "half \\ud800 char"           # lone surrogate
    assert printable("abc\u202edef\u2028") == "abc\\u202edef\\u2028"     # bidi override, line separator
    assert printable(ValueError("x\ny")) == "x\\ny"
    printable("half \ud800 char").encode("utf-8")                         # now encodable
