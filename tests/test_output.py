"""Output that fits: no number is ever cut at 80 or 120 columns (or narrower), one number format,
progress lines for CI logs, what --quiet hides, --wide, and --layout that does not fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.text import Text

from helpers import cnn, write
from snrcli.cli import main
from snrcli.cli.render import Col, Grid, LineProgress, duration, fit, print_grids
from snrcli.reports.numbers import fmt_number

REPO = Path(__file__).resolve().parents[1]
MLP = str(REPO / "sample_models" / "digits_mlp.onnx")
CNN = str(REPO / "sample_models" / "digits_cnn.onnx")
DATA = str(REPO / "sample_models" / "digits_test.npz")


def snr(*args: str, columns: int = 80, code: int = 0, env: dict | None = None):
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": str(columns), **(env or {})})
    r = runner.invoke(main, [str(a) for a in args], catch_exceptions=True, prog_name="snr")
    assert r.exit_code == code, (args, r.exit_code, r.stdout, r.stderr, r.exception)
    return r


def assert_fits(out: str, columns: int) -> None:
    assert "…" not in out, out
    too_long = [ln for ln in out.splitlines() if len(ln.rstrip()) > columns]
    assert not too_long, too_long


def shown(v) -> str:
    return fmt_number(v)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of the two sample models (and the MLP a second time), made once."""
    d = tmp_path_factory.mktemp("runs")
    for name, model, batch in (("mlp", MLP, "256"), ("cnn", CNN, "256"), ("mlp2", MLP, "100")):
        snr("analyze", model, "--data", DATA, "--out", str(d / name), "-q", "--batch-size", batch)
    return {k: str(d / k) for k in ("mlp", "cnn", "mlp2")}


def report(run: str) -> dict:
    return json.loads((Path(run) / "report.json").read_text())


# --------------------------------------------------------------------------- every number, uncut


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("model", [MLP, CNN])
def test_analyze_shows_every_number_uncut(model, columns):
    r = snr("analyze", model, "--data", DATA, columns=columns)
    assert_fits(r.stdout, columns)
    d = json.loads(snr("analyze", model, "--data", DATA, "--json").stdout)
    for L in d["layers"]:
        want = [shown(L[k]) for k in ("activity_mean", "S_mean", "G_mean")] + [f"{L['inputs_kept']}/{L['inputs']}"]
        if L["classifier"]:
            want += [shown(L["S_mean_centred"]), shown(L["G_mean_centred"])]
        lines = [ln for ln in r.stdout.splitlines() if re.search(rf"│ {L['index']} +│", ln)]
        assert all(any(w in ln for ln in lines) for w in want), (L["name"], want, lines)
    for k, v in d["network"].items():
        assert shown(v) in r.stdout, k
    assert f"{shown(d['accuracy'])} ({d['labelled']})" in r.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_inspect_fits(columns):
    r = snr("inspect", CNN, columns=columns)
    assert_fits(r.stdout, columns)
    for shape in ("8x9", "16x72", "32x64", "10x32"):
        assert shape in r.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_pair_shows_every_number_uncut(runs, columns):
    r = snr("compare", runs["mlp"], runs["cnn"], "--figures", "S,G,activity,S_c,G_c", columns=columns)
    assert_fits(r.stdout, columns)
    d = json.loads(snr("compare", runs["mlp"], runs["cnn"], "--figures", "S,G,activity,S_c,G_c", "--json").stdout)
    for row in d["layers"]:
        lines = [ln for ln in r.stdout.splitlines() if re.search(rf"│ {row['index']} +│", ln)]
        for fig, tr in row["figures"].items():
            for v in (tr["a"], tr["b"]):
                if v is not None:
                    assert any(shown(v) in ln for ln in lines), (row["index"], fig, v)
            if tr["delta"] is not None:
                assert any(fmt_number(tr["delta"], sign=True) in ln for ln in lines), (row["index"], fig)
    for k, tr in {**d["network"], **d["baselines"]}.items():
        line = next(ln for ln in r.stdout.splitlines() if f"│ {k} " in ln)
        assert shown(tr["a"]) in line and shown(tr["b"]) in line and fmt_number(tr["delta"], sign=True) in line


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_ranking_fits(runs, columns):
    r = snr("compare", runs["mlp"], runs["cnn"], runs["mlp2"], "--rank-by", "layers[1].S_mean", columns=columns)
    assert_fits(r.stdout, columns)
    for run in runs.values():
        d = report(run)
        for v in [*d["network"].values(), d["accuracy"], d["layers"][0]["S_mean"]]:
            assert shown(v) in r.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_correlate_with_a_control_shows_every_number_uncut(runs, tmp_path, columns):
    cov = tmp_path / "cov.csv"
    cov.write_text("run,epochs\nmlp,1\ncnn,2\nmlp2,3\n")
    r = snr("correlate", runs["mlp"], runs["cnn"], runs["mlp2"], "--covariates", str(cov), "--control", "epochs",
            "--allow-different-settings", columns=columns)
    assert_fits(r.stdout, columns)
    d = json.loads(snr("correlate", runs["mlp"], runs["cnn"], runs["mlp2"], "--covariates", str(cov),
                       "--control", "epochs", "--json").stdout)
    for row in d["rows"]:
        for k in ("spearman_rho", "kendall_tau", "pearson_r", "r2"):
            if row[k] is not None:
                assert shown(row[k]) in r.stdout, (row["figure"], k)


def test_check_prints_zero_up_to_rounding_as_zero(tmp_path):
    base = {"schema": "snr-report/1", "layers": [], "network": {"G_total": 4.718827031225417}}
    cur = {"schema": "snr-report/1", "layers": [], "network": {"G_total": 4.718827031225417 + 1.74409e-07}}
    cur2 = {"schema": "snr-report/1", "layers": [], "network": {"G_total": 4.718827031225417 - 1.74409e-07}}
    for name, d in (("base", base), ("cur", cur), ("cur2", cur2)):
        (tmp_path / f"{name}.json").write_text(json.dumps(d))
    r = snr("check", str(tmp_path / "cur.json"), "--baseline", str(tmp_path / "base.json"),
            "--max-drop", "network.G_total=5%")
    assert r.stdout == ("PASS network.G_total = 4.7188, baseline 4.7188: drop 0.0000 <= 0.2359 "
                        "(5% of |baseline|)\n")
    # a drop that the rounded text would hide from a zero allowance still shows its exact value
    r = snr("check", str(tmp_path / "cur2.json"), "--baseline", str(tmp_path / "base.json"),
            "--max-drop", "network.G_total=0", code=1)
    assert "drop 1.74409" in r.stdout and "> 0.0000" in r.stdout


@pytest.mark.parametrize("v,text", [(None, "-"), (0.0, "0.0000"), (-0.0, "0.0000"), (-1.74409e-07, "0.0000"),
                                    (4.999e-05, "0.0000"), (5.1e-05, "0.0001"), (-0.1928, "-0.1928"),
                                    (237.821, "237.8210"), (1234567.0, "1.23457e+06"), (7, "7"), (True, "yes")])
def test_one_number_format(v, text):
    assert fmt_number(v) == text


def test_deltas_are_signed_and_zero_is_plain():
    assert [fmt_number(v, sign=True) for v in (0.1775, -0.1928, -2e-7, 0, 3)] == \
        ["+0.1775", "-0.1928", "0.0000", "0", "+3"]


# --------------------------------------------------------------------------- fitting, in general


def random_grid(rng, rows: int, numbers: int, name_len: int) -> Grid:
    cols = [Col("#", key=True), Col("name", numeric=False, key=True)]
    cols += [Col(f"fig{k}", group=str(k // 2)) for k in range(numbers)]
    g = Grid("random", cols, caption="a caption long enough to wrap at narrow widths " * 2)
    for i in range(rows):
        name = "".join(rng.choice(list("abcdef/._")) for _ in range(name_len))
        g.add(i + 1, name, *[Text(fmt_number(float(v))) for v in rng.normal(scale=100, size=numbers)])
    return g


@pytest.mark.parametrize("width", [30, 50, 80, 100, 120, 200])
@pytest.mark.parametrize("seed", range(4))
def test_fit_never_cuts_a_number(width, seed):
    rng = np.random.default_rng(seed)
    g = random_grid(rng, rows=int(rng.integers(1, 6)), numbers=int(rng.integers(1, 12)),
                    name_len=int(rng.integers(1, 40)))
    console = Console(width=width, record=True, file=open("/dev/null", "w"), no_color=True)
    print_grids(console, [g])
    out = console.export_text()
    assert_fits(out, width)
    for row in g.rows:
        for cell in row[2:]:
            assert cell.plain in out, (cell.plain, width)


def test_fit_keeps_one_table_when_it_fits_and_stacks_groups_otherwise():
    g = Grid("t", [Col("#", key=True), Col("layer", numeric=False, key=True), Col("op", numeric=False, optional=True)]
             + [Col(f"x{k}", group=str(k // 3)) for k in range(9)])
    g.add(1, "fc1", "Gemm", *["0.1234"] * 9)
    assert len(fit(g, 200)) == 1 and len(fit(g, None)) == 1
    narrow = fit(g, 60)
    assert len(narrow) == 3       # three groups of three, op left out
    assert [len(t.columns) for t in narrow] == [5, 5, 5]
    assert [c.header for c in narrow[0].columns] == ["#", "layer", "x0", "x1", "x2"]


def test_wide_prints_the_full_table(runs):
    r = snr("compare", runs["mlp"], runs["cnn"], "--figures", "S,G,activity", columns=60)
    assert_fits(r.stdout, 60)
    assert "continued" in r.stdout
    wide = snr("compare", runs["mlp"], runs["cnn"], "--figures", "S,G,activity", "--wide", columns=60)
    assert "continued" not in wide.stdout and "…" not in wide.stdout
    assert max(len(ln) for ln in wide.stdout.splitlines()) > 60
    assert "Gemm | Conv" in wide.stdout          # the optional op column is there


# --------------------------------------------------------------------------- progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_line_progress_every_tenth_or_ten_seconds_with_rate_and_time_left():
    clock, lines = Clock(), []
    p = LineProgress(lines.append, clock=clock)
    total = 1000
    for done in range(0, total + 1, 10):          # 10 items per second
        clock.t = done / 10
        p(done, total)
    p.close()
    # from 10 s on: one line per tenth (each tenth is 10 s here), then the last line
    assert len(lines) == 10, lines
    assert lines[0] == "analysing: 100 of 1,000 items (10%), 10 items/s, about 1 min 30 s left"
    assert lines[1].startswith("analysing: 200 of 1,000 items (20%)")
    assert lines[-1] == "analysing: 1,000 of 1,000 items (100%), 10 items/s, done in 1 min 40 s"


def test_line_progress_is_silent_for_short_runs_and_says_something_every_ten_seconds():
    clock, lines = Clock(), []
    p = LineProgress(lines.append, clock=clock)
    clock.t = 5.0
    p(999, 1000)
    clock.t = 9.5
    p(1000, 1000)
    p.close()
    assert lines == []
    slow = LineProgress(lines.append, clock=clock)
    for s in range(0, 71):                          # 1 item a second out of 10,000: under a tenth
        clock.t = 9.5 + s
        slow(s, 10_000)
    assert len(lines) == 7 and all("items/s" in ln and "left" in ln for ln in lines)
    assert lines[0].startswith("analysing: 10 of 10,000 items (0%), 1 items/s")


@pytest.mark.parametrize("s,text", [(4.4, "4 s"), (65, "1 min 05 s"), (7325, "2 h 02 min")])
def test_duration(s, text):
    assert duration(s) == text


def test_analyze_writes_progress_lines_to_a_log(monkeypatch):
    import snrcli.cli.render as render

    clock = Clock()
    monkeypatch.setattr(render.time, "monotonic", clock)

    real = render.LineProgress.__call__

    def tick(self, done, total):
        clock.t += 1.0           # one second per batch
        return real(self, done, total)

    monkeypatch.setattr(render.LineProgress, "__call__", tick)
    r = snr("analyze", MLP, "--data", DATA, "--batch-size", "20")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("analysing: ")]
    assert lines and lines[-1].startswith("analysing: 540 of 540 items (100%)"), r.stderr
    assert all("items/s" in ln for ln in lines)
    q = snr("analyze", MLP, "--data", DATA, "--batch-size", "50", "-q")
    assert q.stderr == "" and "SNR figures per layer" in q.stdout


# --------------------------------------------------------------------------- --quiet, --layout


def test_quiet_never_hides_the_table(tmp_path):
    r = snr("analyze", MLP, "--data", DATA, "--out", str(tmp_path / "run"), "-q")
    assert "SNR figures per layer" in r.stdout and r.stderr == ""
    r = snr("analyze", MLP, "--data", DATA, "--out", str(tmp_path / "run2"))
    assert "SNR figures per layer" in r.stdout and "wrote" in r.stderr


def conv_model(dims, through_relu: bool = False):
    """x -> Conv(3 -> 2 channels, 3x3, pad 1) -> y; with ``through_relu`` the graph does not tell the layout."""
    from helpers import init, make_model, node, vi

    w = np.random.default_rng(0).normal(size=(2, 3, 3, 3))
    first = [node("Relu", ["x"], ["r"], name="relu0")] if through_relu else []
    conv = node("Conv", ["r" if through_relu else "x", "W"], ["y"], name="conv", pads=[1, 1, 1, 1])
    return make_model(first + [conv], [vi("x", ["N", *dims])], [vi("y", None)], [init("W", w)], check=False)


@pytest.mark.parametrize("layout,shape,through_relu,message", [
    # NCHW data said to be NHWC, for a model the graph says reads NCHW
    ("nhwc", (6, 3, 4, 5), False, "the model input takes nchw items (N, 3, 4, 5), and items of shape (3, 4, 5) "
                                  "read as nhwc do not fit it once transposed to (5, 3, 4)"),
    ("nchw", (6, 4, 5, 3), False, "the model input takes nchw items (N, 3, 4, 5), and items of shape (4, 5, 3) "
                                  "read as nchw do not fit it"),
    # the graph does not tell: the shapes decide
    ("nchw", (6, 4, 5, 2), True, "items of shape (4, 5, 2) fit the model input (N, 3, 4, 5) neither as they are "
                                 "nor transposed to nhwc (5, 2, 4)"),
])
def test_layout_that_does_not_fit_is_an_error(tmp_path, layout, shape, through_relu, message):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    mp, dp = write(tmp_path, conv_model((3, 4, 5), through_relu), {"x": x})
    r = snr("analyze", mp, "--data", dp, "--layout", layout, code=3)
    lines = r.stderr.strip().splitlines()
    assert lines == [f"error: --layout {layout}: {message}"], r.stderr


def test_layout_that_cannot_be_told_is_an_error(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 4, 5, 3)).astype(np.float32)
    mp, dp = write(tmp_path, conv_model(("C", "H", "W"), through_relu=True), {"x": x})
    r = snr("analyze", mp, "--data", dp, "--layout", "nhwc", code=3)
    assert "cannot be told" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_layout_follows_the_graph_when_shapes_cannot_tell(tmp_path):
    """Symbolic dims, but the graph reads x with a Conv: NHWC data is transposed, as by hand."""
    x = np.random.default_rng(1).normal(size=(6, 4, 5, 3)).astype(np.float32)
    mp, dp = write(tmp_path, conv_model(("C", "H", "W")), {"x": x})
    a = json.loads(snr("analyze", mp, "--data", dp, "--layout", "nhwc", "--json").stdout)
    np.savez(tmp_path / "t.npz", x=np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    b = json.loads(snr("analyze", mp, "--data", str(tmp_path / "t.npz"), "--json").stdout)
    assert [L["S_mean"] for L in a["layers"]] == pytest.approx([L["S_mean"] for L in b["layers"]], rel=1e-6)


def test_layout_matching_the_model_feeds_the_items_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    model = cnn([dict(W=rng.normal(size=(2, 3, 3, 3)), pads=[1, 1, 1, 1])], (3, 4, 5))
    x = rng.normal(size=(6, 3, 4, 5)).astype(np.float32)
    mp, dp = write(tmp_path, model, {"x": x})
    a = json.loads(snr("analyze", mp, "--data", dp, "--layout", "nchw", "--json").stdout)
    b = json.loads(snr("analyze", mp, "--data", dp, "--json").stdout)
    assert a["layers"] == b["layers"] and a["settings"]["layout"] == "nchw"


def test_correlate_writes_progress_lines_per_model(monkeypatch, tmp_path):
    import shutil

    import snrcli.cli.render as render

    clock = Clock()
    monkeypatch.setattr(render.time, "monotonic", clock)
    real = render.LineProgress.__call__

    def tick(self, done, total):
        clock.t += 1.0
        return real(self, done, total)

    monkeypatch.setattr(render.LineProgress, "__call__", tick)
    copy = tmp_path / "mlp_copy.onnx"
    shutil.copy(MLP, copy)
    r = snr("correlate", MLP, CNN, str(copy), "--data", DATA, "--batch-size", "20")
    for k, name in enumerate(("digits_mlp.onnx", "digits_cnn.onnx", "mlp_copy.onnx"), 1):
        mine = [ln for ln in r.stderr.splitlines() if ln.startswith(f"analysing {name} (model {k} of 3): ")]
        assert mine and mine[-1].endswith(tuple("0123456789s")) and "540 of 540 items (100%)" in mine[-1], r.stderr
    assert "same model file" in r.stderr
