"""snr check: the condition parser, absolute and relative --max-drop, exit codes 0/1/2, stdin and --json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from snrcli.reports.check import (OPS, CheckResult, fmt_num, parse_max_drop, parse_requirement, run_checks)
from snrcli.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, UsageError



def make_report(G_total=4.124903, G_hidden=2.5, G_final=1.624903, accuracy=0.875, S0=0.5, min_level=0.01,
                data_sha="d" * 64):
    return {"schema": "snr-report/1", "tool": {"version": "0.1.0"},
            "model": {"path": "m.onnx", "sha256": "m" * 64},
            "data": {"path": "d.npz", "sha256": data_sha, "samples": 100},
            "settings": {"min_level": min_level, "min_activity": 0.01, "centre_classifier": True},
            "layers": [
                {"index": 1, "name": "fc1", "op": "Gemm", "units": 8, "S_mean": S0, "G_mean": 1.25,
                 "classifier": False, "S_mean_centred": None, "G_mean_centred": None},
                {"index": 2, "name": "fc2", "op": "Gemm", "units": 4, "S_mean": 0.75, "G_mean": 1.5,
                 "classifier": True, "S_mean_centred": 0.625, "G_mean_centred": 1.375}],
            "skipped": [], "network": {"G_hidden": G_hidden, "G_final": G_final, "G_total": G_total},
            "accuracy": accuracy, "labelled": 100, "meta": {}}


def write(path: Path, report) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return os.path.relpath(path)


@pytest.fixture
def snr(run_cli):
    """``snr(*args, code=0, input=None)``: the real ``snr`` group in tmp_path (conftest's ``run_cli``)."""
    return run_cli


@pytest.fixture
def rep(snr, tmp_path):
    """A report file 'r.json' (the snr fixture has moved into tmp_path)."""
    return write(tmp_path / "r.json", make_report())


def usage_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0][len("error: "):]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("expr, path, op, bound", [
    ("network.G_total >= 2.5", "network.G_total", ">=", 2.5),
    ("network.G_total>=2.5", "network.G_total", ">=", 2.5),
    ("  accuracy>0.9  ", "accuracy", ">", 0.9),
    ("layers[-1].G_mean_centred <= -1e-3", "layers[-1].G_mean_centred", "<=", -0.001),
    ("layers[1].S_mean<.5", "layers[1].S_mean", "<", 0.5),
    ("network.G_final == 3", "network.G_final", "==", 3.0),
    ("network.G_final!=+3.", "network.G_final", "!=", 3.0),
    ("baselines.x\t>=\t1E2", "baselines.x", ">=", 100.0),
])
def test_parse_requirement(expr, path, op, bound):
    r = parse_requirement(expr)
    assert (r.path.text, r.op, r.bound, r.expr) == (path, op, bound, expr)


@pytest.mark.parametrize("expr, pattern", [
    ("", r"empty condition"),
    ("network.G_total", r"expected an operator \(>=, >, <=, <, ==, !=\) at column 16, found the end"),
    ("network.G_total 2.5", r"expected an operator .* at column 17, found '2.5'"),
    ("network.G_total = 2.5", r"at column 17, found '= 2.5' \(did you mean ==\?\)"),
    ("network.G_total => 2.5", r"\(did you mean >=\?\)"),
    ("network.G_total >= ", r"expected a number at column 20, found the end"),
    ("network.G_total >= abc", r"expected a number at column 20, found 'abc'"),
    ("network.G_total >= nan", r"expected a number"),
    ("network.G_total >= 2.5 and x", r"unexpected 'and x' at column 24"),
    ("network.G_total >= 2.5.1", r"unexpected '.1' at column 23"),
    ("layers[a].S >= 1", r"--require 'layers\[a\].S >= 1': bad path .* expected an integer list position at column 8"),
    (">= 1", r"expected a name \(letter or _\) at column 1"),
    ("__import__('os') >= 1", r"expected an operator"),
])
def test_parse_requirement_errors(expr, pattern):
    with pytest.raises(UsageError, match=pattern) as e:
        parse_requirement(expr)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("expr, path, amount, relative", [
    ("network.G_total=5%", "network.G_total", 5.0, True),
    ("network.G_total = 5 %", "network.G_total", 5.0, True),
    ("layers[1].S_mean=0.1", "layers[1].S_mean", 0.1, False),
    ("accuracy=0", "accuracy", 0.0, False),
    ("accuracy=1e-2", "accuracy", 0.01, False),
])
def test_parse_max_drop(expr, path, amount, relative):
    m = parse_max_drop(expr)
    assert (m.path.text, m.amount, m.relative) == (path, amount, relative)


@pytest.mark.parametrize("expr, pattern", [
    ("network.G_total", r"expected '=' at column 16"),
    ("network.G_total==5", r"expected '=' at column 16"),
    ("network.G_total>=5", r"expected '=' at column 16"),
    ("network.G_total=", r"expected an amount"),
    ("network.G_total=-1", r"the allowed drop must be 0 or more, got -1"),
    ("network.G_total=5%%", r"unexpected '%' at column 19"),
    ("network.G_total=five", r"expected an amount"),
    ("", r"empty"),
])
def test_parse_max_drop_errors(expr, pattern):
    with pytest.raises(UsageError, match=pattern):
        parse_max_drop(expr)


def test_fmt_num_keeps_the_verdict():
    assert fmt_num(4.124903) == "4.1249"
    assert fmt_num(3) == "3"
    assert fmt_num(0.0) == "0.0000"
    # zero up to rounding prints as zero, whatever its sign; the verdict still decides
    assert fmt_num(1.5e-5) == fmt_num(-1.74409e-07) == "0.0000"
    assert fmt_num(-1.74409e-07, keep=lambda x: not (x > 0)) == "0.0000"
    assert fmt_num(1.74409e-07, keep=lambda x: not (x > 0)) == "1.74409e-07"
    assert fmt_num(2.5e7) == "2.5e+07"
    # 2.49999 would print as 2.5000 and look like it passes >= 2.5: the exact value is shown instead
    assert fmt_num(2.4999999, keep=lambda x: x >= 2.5) == "2.4999999"
    assert fmt_num(2.51234, keep=lambda x: x >= 2.5) == "2.5123"


# --------------------------------------------------------------------------- logic


def test_run_checks_requires_and_results():
    report = make_report()
    result = run_checks(report, "r.json", [parse_requirement(f"network.G_total {op} 4.124903") for op in OPS])
    assert [o.passed for o in result.outcomes] == [True, False, True, False, True, False]
    assert isinstance(result, CheckResult) and not result.passed and result.exit_code == EXIT_CHECK_FAILED == 1
    ok = run_checks(report, "r.json", [parse_requirement("accuracy > 0.5")])
    assert ok.passed and ok.exit_code == EXIT_OK == 0
    with pytest.raises(UsageError, match="nothing to check"):
        run_checks(report, "r.json", [])
    with pytest.raises(UsageError, match="--max-drop needs --baseline"):
        run_checks(report, "r.json", [], max_drops=[parse_max_drop("accuracy=0.1")])


@pytest.mark.parametrize("base, current, amount, passed, allowed", [
    (4.0, 3.75, "0.25", True, 0.25),       # drop == amount: passes
    (4.0, 3.5, "0.25", False, 0.25),
    (4.0, 5.0, "0", True, 0.0),            # a rise is never a drop
    (4.0, 4.0, "0", True, 0.0),
    (8.0, 6.0, "25%", True, 2.0),          # 25% of 8 = 2: drop 2 passes
    (8.0, 5.5, "25%", False, 2.0),
    (-4.0, -6.0, "50%", True, 2.0),        # relative to |baseline|
    (-4.0, -6.5, "50%", False, 2.0),
    (0.0, -0.5, "10%", False, 0.0),        # 10% of 0: any drop fails
])
def test_max_drop_absolute_and_relative(base, current, amount, passed, allowed):
    result = run_checks(make_report(G_total=current), "r.json", [],
                        baseline=make_report(G_total=base), baseline_label="base.json",
                        max_drops=[parse_max_drop(f"network.G_total={amount}")])
    (o,) = result.outcomes
    assert (o.passed, o.bound, o.value, o.extra["baseline"], o.extra["drop"]) == (
        passed, allowed, current, base, base - current)
    assert o.extra["relative"] == amount.endswith("%")
    assert o.line.startswith("PASS " if passed else "FAIL ")


# --------------------------------------------------------------------------- CLI


def test_cli_all_pass_exit_0(snr, rep):
    r = snr("check", rep, "--require", "network.G_total >= 2.5", "--require", "accuracy>0.5",
            "--require", "layers[-1].G_mean_centred == 1.375")
    assert r.stdout.splitlines() == ["PASS network.G_total = 4.1249 >= 2.5", "PASS accuracy = 0.8750 > 0.5",
                                     "PASS layers[-1].G_mean_centred = 1.3750 == 1.375"]
    assert r.stderr == ""


def test_cli_any_fail_exit_1(snr, rep):
    r = snr("check", rep, "--require", "network.G_total >= 2.5", "--require", "network.G_total < 4",
            "--require", "layers[1].S_mean != 0.5", "--require", "layers[2].S_mean == 0.75", code=1)
    assert r.stdout.splitlines() == ["PASS network.G_total = 4.1249 >= 2.5", "FAIL network.G_total = 4.1249 < 4",
                                     "FAIL layers[1].S_mean = 0.5000 != 0.5", "PASS layers[2].S_mean = 0.7500 == 0.75"]
    assert r.stderr == ""


def test_cli_value_near_bound_is_shown_exactly(snr, tmp_path):
    f = write(tmp_path / "n.json", make_report(G_total=2.49999999))
    r = snr("check", f, "--require", "network.G_total >= 2.5", code=1)
    assert r.stdout == "FAIL network.G_total = 2.49999999 >= 2.5\n"


@pytest.mark.parametrize("args, message", [
    (["--require", "network.G_totl >= 1"],
     "--require: network.G_totl: no key 'G_totl' in network (did you mean 'G_total'? keys there: G_hidden, "
     "G_final, G_total) (in r.json)"),
    (["--require", "layers[3].S_mean > 0"],
     "--require: layers[3].S_mean: position 3 is out of range, layers has 2 items (valid: 1..2 or -2..-1); "
     "layers[i] is the layer with index i, counted from 1 (in r.json)"),
    (["--require", "layers[-3].S_mean > 0"],
     "--require: layers[-3].S_mean: position -3 is out of range, layers has 2 items (valid: 1..2 or -2..-1); "
     "layers[i] is the layer with index i, counted from 1 (in r.json)"),
    (["--require", "layers[0].S_mean > 0"],
     "--require 'layers[0].S_mean > 0': layers[0]: positions count from 1: layers[1] is the first layer "
     "(index 1), layers[-1] the last"),
    (["--require", "layers[1].S_mean_centred > 0"],
     "--require: layers[1].S_mean_centred is null in r.json (undefined for this model or data), "
     "so it cannot be checked"),
    (["--require", "layers[1].name > 0"], "--require: layers[1].name is a string ('fc1') in r.json, not a number"),
    (["--require", "layers[1].classifier == 0"],
     "--require: layers[1].classifier is a boolean (False) in r.json, not a number"),
    (["--require", "network > 0"], "--require: network is an object in r.json, not a number"),
    (["--require", "network.G_total >> 1"],
     "--require 'network.G_total >> 1': expected a number at column 18, found '> 1'"),
    ([], "nothing to check: give at least one --require 'PATH OP NUMBER' or --baseline BASE with "
         "--max-drop PATH=AMOUNT"),
    (["--max-drop", "network.G_total=5%"], "--max-drop needs --baseline BASE (the report the drop is measured from)"),
    (["--baseline", "r.json", "--require", "accuracy > 0"],
     "--baseline is only used by --max-drop PATH=AMOUNT; give at least one"),
    (["--baseline", "nope.json", "--max-drop", "accuracy=1"], "nope.json: no such file or folder"),
])
def test_cli_usage_errors_exit_2(snr, rep, args, message):
    r = snr("check", rep, *args, code=EXIT_USAGE)
    assert usage_line(r) == message


def test_cli_unreadable_reports_exit_2(snr, tmp_path):
    r = snr("check", "missing.json", "--require", "accuracy > 0", code=2)
    assert usage_line(r) == "missing.json: no such file or folder"
    (tmp_path / "bad.json").write_text('{"schema": "snr-report/1", "layers": [}')
    r = snr("check", "bad.json", "--require", "accuracy > 0", code=2)
    assert usage_line(r) == "bad.json: malformed JSON at line 1, column 39: Expecting value"
    (tmp_path / "v2.json").write_text('{"schema": "snr-report/2", "layers": []}')
    r = snr("check", "v2.json", "--require", "accuracy > 0", code=2)
    assert usage_line(r) == 'v2.json has schema "snr-report/2"; this snr supports snr-report/1'
    (tmp_path / "noschema.json").write_text('{"layers": []}')
    r = snr("check", "noschema.json", "--require", "accuracy > 0", code=2)
    assert usage_line(r).startswith("noschema.json has no 'schema' key")
    # a bad expression is reported before the report is even read
    r = snr("check", "missing.json", "--require", "accuracy >", code=2)
    assert "expected a number" in usage_line(r)


def test_cli_stdin(snr):
    text = json.dumps(make_report())
    r = snr("check", "-", "--require", "network.G_total >= 2.5", input=text)
    assert r.stdout == "PASS network.G_total = 4.1249 >= 2.5\n"
    r = snr("check", "-", "--require", "network.G_total >= 5", input=text, code=1)
    assert r.stdout == "FAIL network.G_total = 4.1249 >= 5\n"
    r = snr("check", "-", "--require", "accuracy > 0", input="not json", code=2)
    assert usage_line(r) == "<stdin>: malformed JSON at line 1, column 1: Expecting value"
    r = snr("check", "-", "--require", "accuracy > 0", input="", code=2)
    assert usage_line(r) == "<stdin> is empty; expected an snr-report/1 JSON report"
    r = snr("check", "-", "--baseline", "-", "--max-drop", "accuracy=1", input=text, code=2)
    assert "cannot both be -" in usage_line(r)


def test_cli_baseline_from_stdin_and_run_folder(snr, tmp_path):
    write(tmp_path / "run" / "report.json", make_report(G_total=3.9))
    base = json.dumps(make_report(G_total=4.0))
    r = snr("check", "run", "--baseline", "-", "--max-drop", "network.G_total=5%", input=base)
    assert r.stdout == "PASS network.G_total = 3.9000, baseline 4.0000: drop 0.1000 <= 0.2000 (5% of |baseline|)\n"


def test_cli_max_drop_lines(snr, tmp_path):
    cur = write(tmp_path / "cur.json", make_report(G_total=3.5, S0=0.25))
    base = write(tmp_path / "base.json", make_report(G_total=4.0, S0=0.5))
    r = snr("check", cur, "--baseline", base, "--max-drop", "network.G_total=5%",
            "--max-drop", "layers[1].S_mean=0.25", "--max-drop", "accuracy = 0", "--require", "accuracy > 0.5",
            code=1)
    assert r.stdout.splitlines() == [
        "PASS accuracy = 0.8750 > 0.5",
        "FAIL network.G_total = 3.5000, baseline 4.0000: drop 0.5000 > 0.2000 (5% of |baseline|)",
        "PASS layers[1].S_mean = 0.2500, baseline 0.5000: drop 0.2500 <= 0.2500 (max drop 0.25)",
        "PASS accuracy = 0.8750, baseline 0.8750: drop 0.0000 <= 0.0000 (max drop 0)",
    ]
    r = snr("check", cur, "--baseline", base, "--max-drop", "network.G_total=12.5%")
    assert r.stdout == "PASS network.G_total = 3.5000, baseline 4.0000: drop 0.5000 <= 0.5000 (12.5% of |baseline|)\n"
    r = snr("check", cur, "--baseline", base, "--max-drop", "network.G_total=0.49", code=1)
    assert r.stdout == "FAIL network.G_total = 3.5000, baseline 4.0000: drop 0.5000 > 0.4900 (max drop 0.49)\n"


def test_cli_max_drop_null_in_baseline(snr, tmp_path):
    cur = write(tmp_path / "cur.json", make_report())
    base = write(tmp_path / "base.json", make_report(accuracy=None))
    r = snr("check", cur, "--baseline", base, "--max-drop", "accuracy=0.1", code=2)
    assert usage_line(r) == ("--max-drop: accuracy is null in the baseline base.json (undefined for this model or "
                             "data), so it cannot be checked")


def test_cli_baseline_with_other_settings_warns(snr, tmp_path):
    cur = write(tmp_path / "cur.json", make_report(min_level=0.05))
    base = write(tmp_path / "base.json", make_report())
    r = snr("check", cur, "--baseline", base, "--max-drop", "network.G_total=1%")
    assert r.stderr == (f"warning: settings.min_level is 0.01 in the baseline {base} but 0.05 in {cur}; "
                        "drops may reflect that rather than the model\n")
    assert r.stdout.startswith("PASS network.G_total")
    assert snr("check", cur, "-q", "--baseline", base, "--max-drop", "network.G_total=1%").stderr == ""


def test_cli_json(snr, tmp_path):
    cur = write(tmp_path / "cur.json", make_report(G_total=3.5))
    base = write(tmp_path / "base.json", make_report(G_total=4.0))
    r = snr("check", cur, "--json", "--require", "network.G_total>=3", "--baseline", base,
            "--max-drop", "network.G_total=10%", code=1)
    d = json.loads(r.stdout)
    assert d == {"schema": "snr-check/1", "report": cur, "baseline": base, "passed": False, "conditions": [
        {"expr": "network.G_total>=3", "kind": "require", "path": "network.G_total", "value": 3.5, "op": ">=",
         "bound": 3.0, "passed": True},
        {"expr": "network.G_total=10%", "kind": "max-drop", "path": "network.G_total", "value": 3.5,
         "op": "max-drop", "bound": 0.4, "passed": False, "baseline": 4.0, "drop": 0.5, "amount": 10.0,
         "relative": True}]}
    d = json.loads(snr("check", cur, "--json", "--require", "accuracy >= 0.875").stdout)
    assert d["passed"] is True and d["baseline"] is None and d["conditions"][0]["value"] == 0.875


def test_cli_pipe_from_analyze(snr, tmp_path):
    """`snr analyze ... --json | snr check - ...` with the sample model, when it and the pipeline exist."""
    root = Path(__file__).resolve().parents[1]
    model, data = root / "sample_models" / "digits_mlp.onnx", root / "sample_models" / "digits_test.npz"
    if not (model.is_file() and data.is_file()):
        pytest.skip("sample models not built yet")
    pytest.importorskip("snrcli.analysis.api")
    report = snr("analyze", model, "--data", data, "--json", "-q").stdout
    g_total = json.loads(report)["network"]["G_total"]
    r = snr("check", "-", "--require", "network.G_total > 0", "--require", f"network.G_total <= {g_total!r}",
            input=report)
    assert r.stdout.splitlines() == [f"PASS network.G_total = {g_total:.4f} > 0",
                                     f"PASS network.G_total = {g_total:.4f} <= {g_total!r}"]
