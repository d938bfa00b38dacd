"""Silent wrong answers and hostile files, second round (issue #15): the corpus of answers.

Built programmatically, like ``test_bad_inputs.py``:

- ``FAILS``: analyses that must stop (labels out of range, negative, wrapping, one-hot rows
  wider than the output, label arrays whose length ``--limit`` would hide; non-finite settings)
  with their exit code, one stderr line (click's usage format for option values), nothing on
  stdout and nothing written;
- ``REPORTS``: hostile report files (1e999, integers of thousands of digits, a ``schema`` of
  the wrong type, lone surrogates) fed to ``check``, ``compare`` and ``correlate``: exit 2, one line;
- ``BOUNDS``, ``CORRELATE``: bounds that overflow, covariates that are not UTF-8 or not CSV,
  output files in missing folders or of unknown formats: one line, the right code, no file left;
- ``RUNS``: odd but valid inputs whose answer used to be silently wrong: binary heads, weighted
  ops inside If/Loop/Scan bodies, blocked DequantizeLinear weights, a layer nothing uses,
  float data fed to an int64 input, one-unit classifiers, names holding terminal escapes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import corpus as C

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT = 0, 2, 3
CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)] + ["\u202e"]   # \n is a line end


# --------------------------------------------------------------------------- running snr

def invoke(*args, input: bytes | None = None):
    from snrcli.cli import main

    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "160"})
    return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)


def describe(r) -> str:
    exc = "" if r.exception is None or isinstance(r.exception, SystemExit) else f"\n--- exception ---\n{r.exception!r}"
    return f"exit {r.exit_code}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}{exc}"


def assert_one_line_error(r, code: int, says=(), *, click_usage: bool = False) -> str:
    """The failure contract: exit code, one 'error:' line (click's own three-line usage error for a bad
    option value), no traceback, nothing on stdout, no control character."""
    text = describe(r)
    assert r.exit_code == code, text
    assert r.exception is None or isinstance(r.exception, SystemExit), text
    assert "Traceback" not in r.stderr and r.stdout == "", text
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    if click_usage:
        assert lines[0].startswith("Usage: ") and lines[-1].startswith("Error: Invalid value"), text
        line = lines[-1]
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), f"wanted one error line\n{text}"
        line = lines[0]
    for needle in says:
        assert needle.lower() in line.lower(), f"{needle!r} not in the message\n{text}"
    assert not any(c in r.stderr for c in CONTROL), text
    return line


def report_of(r) -> dict:
    assert r.exit_code == 0, describe(r)
    return json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def warnings_of(r) -> list[str]:
    return [l for l in r.stderr.splitlines() if l.startswith("warning: ")]


# --------------------------------------------------------------------------- models

def _init(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def hidden_layer(rng, features=4, hidden=5):
    """x (N, features) -> fc1 -> Relu -> h; its nodes and initializers."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["z1"], name="fc1", transB=1),
             helper.make_node("Relu", ["z1"], ["h"], name="relu1")]
    return nodes, [_init("W1", rng.normal(size=(hidden, features))), _init("B1", rng.normal(size=hidden) * 0.1)]


def binary_head(kind: str, seed: int = 0) -> onnx.ModelProto:
    """fc1 -> Relu -> fc2 (one unit) -> 'y' of shape (N, 1): the logit itself, Sigmoid(logit), or Tanh(logit)."""
    rng = np.random.default_rng(seed)
    nodes, inits = hidden_layer(rng)
    inits += [_init("W2", rng.normal(size=(1, 5))), _init("B2", [0.1])]
    last = "y" if kind == "logit" else "z2"
    nodes.append(helper.make_node("Gemm", ["h", "W2", "B2"], [last], name="fc2", transB=1))
    if kind != "logit":
        nodes.append(helper.make_node({"sigmoid": "Sigmoid", "tanh": "Tanh"}[kind], [last], ["y"], name=kind))
    return C.make(nodes, [C.vi("x", C.FLOAT, ["N", 4])], [C.vi("y", C.FLOAT, ["N", 1])], inits)


def control_flow_model(op: str) -> onnx.ModelProto:
    """fc (4 -> 3) -> h, then an If/Loop/Scan whose body holds a MatMul 'inner_mm' with a constant weight."""
    rng = np.random.default_rng(1)
    wt = _init("Wt", rng.normal(size=(3, 3)))
    fc = helper.make_node("Gemm", ["x", "W"], ["h"], name="fc", transB=1)
    inits = [_init("W", rng.normal(size=(3, 4)))]
    if op == "If":
        then = helper.make_graph([helper.make_node("MatMul", ["h", "Wt"], ["yt"], name="inner_mm")], "then", [],
                                 [C.vi("yt", C.FLOAT, ["N", 3])], [wt])
        other = helper.make_graph([helper.make_node("Identity", ["h"], ["ye"], name="same")], "else", [],
                                  [C.vi("ye", C.FLOAT, ["N", 3])])
        inits.append(numpy_helper.from_array(np.array(True), "cond"))
        node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=other)
    elif op == "Loop":
        body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"]),
                                  helper.make_node("MatMul", ["s_in", "Wt"], ["s_out"], name="inner_mm")], "body",
                                 [C.vi("i", TensorProto.INT64, []), C.vi("c_in", TensorProto.BOOL, []),
                                  C.vi("s_in", C.FLOAT, ["N", 3])],
                                 [C.vi("c_out", TensorProto.BOOL, []), C.vi("s_out", C.FLOAT, ["N", 3])], [wt])
        inits.append(numpy_helper.from_array(np.array(2, np.int64), "trips"))
        node = helper.make_node("Loop", ["trips", "", "h"], ["y"], name="repeat", body=body)
    else:
        body = helper.make_graph([helper.make_node("Identity", ["s_in"], ["s_out"]),
                                  helper.make_node("MatMul", ["row", "Wt"], ["o"], name="inner_mm")], "body",
                                 [C.vi("s_in", C.FLOAT, [3]), C.vi("row", C.FLOAT, [3])],
                                 [C.vi("s_out", C.FLOAT, [3]), C.vi("o", C.FLOAT, [3])], [wt])
        inits.append(_init("s0", np.zeros(3)))
        node = helper.make_node("Scan", ["s0", "h"], ["s_final", "y"], name="scan", body=body, num_scan_inputs=1)
    outputs = [C.vi("y", C.FLOAT, None)] if op != "Scan" else [C.vi("y", C.FLOAT, None), C.vi("s_final", C.FLOAT, None)]
    return C.make([fc, node], [C.vi("x", C.FLOAT, ["N", 4])], outputs, inits)


def blocked_dq_model(scale_rows: int = 2) -> onnx.ModelProto:
    """fc1 -> Relu -> MatMul 'mm' whose weight is DequantizeLinear(int8 (5, 3), scale (scale_rows, 3),
    axis 0, block_size 3): blocks of 3 rows share a scale; 2 scale rows fit 5 rows, 3 do not."""
    rng = np.random.default_rng(2)
    nodes, inits = hidden_layer(rng)
    q = rng.integers(-100, 100, size=(5, 3)).astype(np.int8)
    s = rng.uniform(0.01, 0.1, size=(scale_rows, 3)).astype(np.float32)
    nodes += [helper.make_node("DequantizeLinear", ["Wq", "s"], ["W2"], axis=0, block_size=3, name="dq"),
              helper.make_node("MatMul", ["h", "W2"], ["y"], name="mm")]
    inits += [numpy_helper.from_array(q, "Wq"), numpy_helper.from_array(s, "s")]
    return C.make(nodes, [C.vi("x", C.FLOAT, ["N", 4])], [C.vi("y", C.FLOAT, ["N", 3])], inits, opset=21)


def unused_layer_model() -> onnx.ModelProto:
    """The corpus MLP (dense1 -> Relu -> dense2 -> logits) plus 'aux', a Gemm on x whose output nothing reads."""
    m = C.mlp()
    m.graph.initializer.append(_init("Waux", np.random.default_rng(3).normal(size=(2, 6))))
    m.graph.node.append(helper.make_node("Gemm", ["x", "Waux"], ["aux_out"], name="aux", transB=1))
    return m


def int64_input_model() -> onnx.ModelProto:
    """x: int64 (N, 4) -> Cast to float -> Gemm (4 -> 3)."""
    w = _init("W", np.random.default_rng(4).normal(size=(3, 4)))
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Gemm", ["xf", "W"], ["y"], name="fc", transB=1)]
    return C.make(nodes, [C.vi("x", TensorProto.INT64, ["N", 4])], [C.vi("y", C.FLOAT, ["N", 3])], [w])


ESCAPED_NAME = "de\x1b[31mnse1\x07"


def escaped_names_model() -> onnx.ModelProto:
    """The corpus MLP whose first layer is named with a colour escape and a bell, and whose second output
    (an Identity of the logits) is named with a newline and a screen-clearing escape."""
    m = C.mlp()
    m.graph.node[0].name = ESCAPED_NAME
    m.graph.node.append(helper.make_node("Identity", ["logits"], ["two\nlines\x1b[2J"], name="copy"))
    m.graph.output.append(C.vi("two\nlines\x1b[2J", C.FLOAT, ["N", 3]))
    return m


def mlp_with(folder: Path, n: int = 10, **arrays) -> tuple[Path, Path]:
    return C.save(folder / "model.onnx", C.mlp()), C.npz(folder / "data.npz", x=C.features(n), **arrays)


# --------------------------------------------------------------------------- analyses that must stop

@dataclass
class Fail:
    build: Callable[[Path], list]
    code: int
    says: tuple[str, ...]
    click_usage: bool = False


FAILS: list = []


def fail(name: str, code: int, *says: str, click_usage: bool = False):
    def register(build):
        FAILS.append(pytest.param(Fail(build, code, says, click_usage), id=name))
        return build
    return register


@fail("labels-class-beyond-the-output", EXIT_BAD_INPUT, "labels 'labels' hold class 3 (item 3)", "scores 3 classes")
def _(f):
    return list(mlp_with(f, labels=np.arange(10) % 4))


@fail("labels-negative", EXIT_BAD_INPUT, "negative class id", "-1 at item 4", "count from 0")
def _(f):
    return list(mlp_with(f, labels=np.array([0, 1, 2, 0, -1, 1, 2, 0, 1, 2])))


@fail("labels-negative-float", EXIT_BAD_INPUT, "negative class id")
def _(f):
    return list(mlp_with(f, labels=-(np.arange(10) % 3).astype(np.float32)))


@fail("labels-uint64-that-would-wrap", EXIT_BAD_INPUT, "too large")
def _(f):
    labels = (np.arange(10) % 3).astype(np.uint64)
    labels[6] = np.iinfo(np.uint64).max          # cast to int64 this was -1: silently never right
    return list(mlp_with(f, labels=labels))


@fail("labels-uint64-beyond-int64", EXIT_BAD_INPUT, "too large")
def _(f):
    labels = (np.arange(10) % 3).astype(np.uint64)
    labels[2] = 2 ** 63 + 5
    return list(mlp_with(f, labels=labels))


@fail("labels-float-huge", EXIT_BAD_INPUT, "too large")
def _(f):
    return list(mlp_with(f, labels=np.full(10, 1e20)))


@fail("labels-uint8-beyond-the-output", EXIT_BAD_INPUT, "hold class 200", "scores 3 classes")
def _(f):
    return list(mlp_with(f, labels=np.array([0, 1, 2, 200, 0, 1, 2, 0, 1, 2], np.uint8)))


@fail("labels-one-hot-wider-than-the-output", EXIT_BAD_INPUT, "one-hot rows of 5 classes", "scores 3")
def _(f):
    return list(mlp_with(f, labels=np.eye(5)[np.arange(10) % 3]))


@fail("labels-one-hot-row-all-zero", EXIT_BAD_INPUT, "row 4 has no positive entry")
def _(f):
    onehot = np.eye(3)[np.arange(10) % 3]
    onehot[4] = 0
    return list(mlp_with(f, labels=onehot))


@fail("labels-one-hot-nan", EXIT_BAD_INPUT, "one-hot rows holding NaN")
def _(f):
    onehot = np.eye(3)[np.arange(10) % 3]
    onehot[2, 1] = np.nan
    return list(mlp_with(f, labels=onehot))


@fail("labels-longer-than-the-data-under-limit", EXIT_BAD_INPUT, "12 entries", "10 items")
def _(f):
    return [*mlp_with(f, labels=np.arange(12) % 3), "--limit", "5"]


@fail("labels-shorter-than-the-data-under-limit", EXIT_BAD_INPUT, "8 entries", "10 items")
def _(f):
    return [*mlp_with(f, labels=np.arange(8) % 3), "--limit", "5"]


@fail("labels-binary-head-class-2", EXIT_BAD_INPUT, "hold class 2", "binary head, classes 0 and 1")
def _(f):
    return [C.save(f / "m.onnx", binary_head("sigmoid")), "--data",
            C.npz(f / "d.npz", x=C.features(10, 4), labels=np.arange(10) % 3)]


@fail("labels-binary-head-one-hot-3", EXIT_BAD_INPUT, "one-hot rows of 3 classes", "scores 2")
def _(f):
    return [C.save(f / "m.onnx", binary_head("logit")), "--data",
            C.npz(f / "d.npz", x=C.features(10, 4), labels=np.eye(3)[np.arange(10) % 2])]


@fail("labels-beyond-the-output-in-a-worker", EXIT_BAD_INPUT, "hold class 7 (item 9)")
def _(f):
    return [*mlp_with(f, labels=np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 7])), "--jobs", "2"]


for _flag, _value in [("--scale", "nan"), ("--scale", "1e999"), ("--mean", "nan"), ("--mean", "0.5,inf"),
                      ("--std", "inf"), ("--std", "-inf"), ("--min-level", "nan"), ("--min-level", "inf"),
                      ("--min-activity", "nan")]:
    @fail(f"settings{_flag}-{_value}", EXIT_USAGE, _flag, "is not a finite number", click_usage=True)
    def _(f, flag=_flag, value=_value):
        return [*mlp_with(f), flag, value]


@pytest.mark.parametrize("entry", FAILS)
def test_analysis_refuses_cleanly(entry: Fail, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    args = entry.build(folder)
    if len(args) >= 2 and args[1] != "--data":
        args = [args[0], "--data", *args[1:]]
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before = C.listing(tmp_path)
    r = invoke("analyze", *args, "--out", out)
    assert_one_line_error(r, entry.code, entry.says, click_usage=entry.click_usage)
    assert not out.exists() and C.listing(tmp_path) == before, sorted(C.listing(tmp_path) - before)


@pytest.mark.parametrize("kw, says", [
    (dict(min_level=math.nan), "min_level must be a finite number >= 0, got nan"),
    (dict(min_level=math.inf), "min_level must be a finite number >= 0, got inf"),
    (dict(min_activity=math.nan), "min_activity must be a finite number in [0, 1], got nan"),
    (dict(min_activity=1.5), "min_activity must be a finite number in [0, 1], got 1.5"),
    (dict(scale=[math.nan]), "scale values must be finite numbers, got nan"),
    (dict(mean=[0.5, math.inf]), "mean values must be finite numbers, got inf"),
    (dict(std=[-math.inf]), "std values must be finite numbers, got -inf"),
    (dict(batch_size=0), "batch_size must be a whole number >= 1, got 0"),
], ids=["min_level-nan", "min_level-inf", "min_activity-nan", "min_activity-1.5", "scale-nan", "mean-inf",
        "std-minus-inf", "batch_size-0"])
def test_python_api_refuses_non_finite_settings(tmp_path, kw, says):
    import snrcli
    from snrcli.errors import UsageError

    model, data = mlp_with(tmp_path)
    with pytest.raises(UsageError) as e:
        snrcli.analyze(str(model), str(data), **kw)
    assert str(e.value) == says


# --------------------------------------------------------------------------- hostile reports

@pytest.fixture(scope="module")
def good_report(tmp_path_factory) -> str:
    """The text of a real report (the corpus MLP on 12 labelled items)."""
    import snrcli

    f = tmp_path_factory.mktemp("good")
    model, data = C.save(f / "m.onnx", C.mlp()), C.npz(f / "d.npz", x=C.features(12), labels=np.arange(12) % 3)
    return snrcli.analyze(str(model), str(data)).to_json()


def _hostile(kind: str, text: str) -> str:
    d = json.loads(text)
    if kind == "overflow":
        return text.replace(json.dumps(d["network"]["G_total"]), "1e999", 1)
    if kind == "negative-overflow":
        return text.replace(json.dumps(d["layers"][0]["S_mean"]), "-1e999", 1)
    if kind == "integer-5000-digits":
        return text.replace(f'"samples": {d["data"]["samples"]}', '"samples": ' + "7" * 5000, 1)
    if kind == "integer-20-digits":
        return text.replace(f'"units": {d["layers"][0]["units"]}', '"units": ' + "9" * 20, 1)
    if kind.startswith("schema-"):
        d["schema"] = {"list": ["snr-report/1"], "number": 1, "null": None, "object": {"v": 1}}[kind[7:]]
        return json.dumps(d)
    if kind == "surrogate-in-a-name":
        return text.replace('"name": "dense1"', '"name": "dense\\ud800"', 1)
    if kind == "surrogate-in-a-key":
        return text.replace('"accuracy":', '"\\udfff": 1, "accuracy":', 1)
    raise AssertionError(kind)


HOSTILE = {"overflow": ("1e999", "overflows to infinity"), "negative-overflow": ("-1e999", "overflows"),
           "integer-5000-digits": ("5000 digits",), "integer-20-digits": ("20 digits",),
           "schema-list": ("'schema' that is a list",), "schema-number": ("'schema' that is a number",),
           "schema-null": ("'schema' that is null",), "schema-object": ("'schema' that is an object",),
           "surrogate-in-a-name": ("layers[1].name", "lone surrogate"), "surrogate-in-a-key": ("lone surrogate",)}
COMMANDS = {
    "check": lambda bad, good: ["check", bad, "--require", "network.G_total > 0"],
    "check-baseline": lambda bad, good: ["check", good, "--baseline", bad, "--max-drop", "network.G_total=5%"],
    "compare": lambda bad, good: ["compare", good, bad],
    "compare-stdin": lambda bad, good: ["compare", good, "-"],
    "correlate": lambda bad, good: ["correlate", good, good, bad, "--allow-different-settings"],
}
REPORTS = [pytest.param(kind, cmd, id=f"{cmd}-{kind}") for kind in HOSTILE for cmd in COMMANDS]


@pytest.mark.parametrize("kind, command", REPORTS)
def test_hostile_report_is_one_line_exit_2(tmp_path, monkeypatch, good_report, kind, command):
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.json"
    good.write_text(good_report)
    text = _hostile(kind, good_report)
    bad = tmp_path / "bad.json"
    bad.write_text(text, encoding="utf-8")
    args = COMMANDS[command](bad, good)
    before = C.listing(tmp_path)
    r = invoke(*args, input=text.encode() if "-" in args else None)
    line = assert_one_line_error(r, EXIT_USAGE, HOSTILE[kind])
    assert ("<stdin>" if "-" in args else "bad.json") in line
    assert C.listing(tmp_path) == before


@pytest.mark.parametrize("args, says", [
    (["--require", "network.G_total < 1e999"], ("1e999", "overflows to infinity")),
    (["--require", "network.G_total > -1e400"], ("1e400", "overflows")),
    (["--baseline", "r.json", "--max-drop", "network.G_total=1e999"], ("--max-drop", "1e999")),
    (["--baseline", "r.json", "--max-drop", "network.G_total=1e999%"], ("--max-drop", "1e999")),
], ids=["require-1e999", "require-minus-1e400", "max-drop-1e999", "max-drop-1e999-percent"])
def test_bounds_that_overflow_are_usage_errors(tmp_path, monkeypatch, good_report, args, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text(good_report)
    assert_one_line_error(invoke("check", "r.json", *args), EXIT_USAGE, says)


def test_json_output_never_holds_infinity(tmp_path, monkeypatch, good_report):
    """Finite values whose difference overflows: compare's delta and check's drop are null in JSON."""
    monkeypatch.chdir(tmp_path)
    d = json.loads(good_report)
    d["network"]["G_total"] = 1.7e308
    (tmp_path / "hi.json").write_text(json.dumps(d))
    d["network"]["G_total"] = -1.7e308
    (tmp_path / "lo.json").write_text(json.dumps(d))
    cmp = report_of(invoke("compare", "hi.json", "lo.json", "--json"))
    assert cmp["network"]["G_total"] == {"a": 1.7e308, "b": -1.7e308, "delta": None}
    r = invoke("check", "lo.json", "--baseline", "hi.json", "--max-drop", "network.G_total=1", "--json")
    assert r.exit_code == 1, describe(r)
    out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert out["conditions"][0]["drop"] is None and out["passed"] is False


# --------------------------------------------------------------------------- terminal escapes are printed escaped

def _no_control(r) -> None:
    for stream in (r.stdout, r.stderr):
        assert not any(c in stream for c in CONTROL), describe(r)


def test_escapes_in_report_names_are_printed_escaped(tmp_path, monkeypatch, good_report):
    monkeypatch.chdir(tmp_path)
    d = json.loads(good_report)
    d["layers"][0]["name"] = "evil\x1b[31mRED\x1b]0;title\x07\nnext\u202e"
    (tmp_path / "esc.json").write_text(json.dumps(d))
    (tmp_path / "good.json").write_text(good_report)
    d["model"]["sha256"] = "0" * 64
    (tmp_path / "esc2.json").write_text(json.dumps(d))
    shown = "evil\\x1b[31mRED\\x1b]0;title\\x07\\nnext\\u202e"
    r = invoke("compare", "good.json", "esc.json", "--figures", "S")
    assert r.exit_code == 0, describe(r)
    _no_control(r)
    assert "evil\\x1b[31mRED\\x1b]0;title\\x07\\nnext" in r.stdout            # the layer table
    assert 'vs "evil\\u001b[31mRED\\u001b]0;title\\u0007\\nnext\\u202e"' in r.stderr   # quoted as JSON
    r = invoke("correlate", "esc.json", "good.json", "esc2.json", "--allow-different-settings")
    assert r.exit_code == 0, describe(r)
    _no_control(r)
    assert "evil\\x1b[31mRED" in r.stdout and shown in r.stderr
    r = invoke("check", "esc.json", "--require", "layers[1].nope > 0")
    assert_one_line_error(r, EXIT_USAGE, ("no key 'nope'",))
    cmp = report_of(invoke("compare", "good.json", "esc.json", "--json"))   # JSON escapes by itself
    assert cmp["layers"][0]["name_b"] == d["layers"][0]["name"]


def test_escapes_in_onnx_names_are_printed_escaped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = C.save(tmp_path / "m.onnx", escaped_names_model())
    r = invoke("inspect", model)
    assert r.exit_code == 0, describe(r)
    _no_control(r)
    assert "de\\x1b[31mnse1\\x07" in r.stdout
    zero = C.npz(tmp_path / "zero.npz", x=np.zeros((10, 6), np.float32))    # every unit undefined: warnings name layers
    r = invoke("analyze", model, "--data", zero)
    assert r.exit_code == 0, describe(r)
    _no_control(r)
    assert "de\\x1b[31mnse1\\x07" in r.stdout
    assert any("layer 1 (de\\x1b[31mnse1\\x07): every unit is undefined" in w for w in warnings_of(r)), r.stderr
    r = invoke("analyze", model, "--data", zero, "--output", "nope")
    line = assert_one_line_error(r, EXIT_USAGE, ("--output 'nope' is not an output",))
    assert "two\\nlines\\x1b[2J" in line
    d = report_of(invoke("analyze", model, "--data", zero, "--json"))
    assert d["layers"][0]["name"] == ESCAPED_NAME                           # JSON keeps the name as it is


# --------------------------------------------------------------------------- correlate's files

def _family(tmp_path: Path, good_report: str) -> list[str]:
    names = []
    for i, acc in enumerate((0.3, 0.5, 0.7)):
        d = json.loads(good_report)
        d["accuracy"], d["network"]["G_total"], d["model"]["sha256"] = acc, 1.0 + i, f"{i}" * 64
        (tmp_path / f"f{i}.json").write_text(json.dumps(d))
        names.append(f"f{i}.json")
    return names


CORRELATE = [
    pytest.param(lambda f: (f / "cov.csv").write_bytes("run,gap\nf0,1\nf1,2\nf2,3\u00e9\n".encode("latin-1")),
                 ["--covariates", "cov.csv", "--target", "gap"], ("not UTF-8", "byte 22"), id="covariates-latin-1"),
    pytest.param(lambda f: (f / "cov.csv").write_bytes(b"\xff\xfer\x00u\x00n\x00"),
                 ["--covariates", "cov.csv", "--target", "gap"], ("not UTF-8",), id="covariates-utf-16"),
    pytest.param(lambda f: (f / "cov.csv").write_text("run,gap\nf0," + "1" * 200_000 + "\nf1,2\nf2,3\n"),
                 ["--covariates", "cov.csv", "--target", "gap"], ("not readable as CSV", "field limit"),
                 id="covariates-huge-cell"),
    pytest.param(lambda f: (f / "cov.csv").write_text("run,gap\nf0,1" + "0" * 400 + "\nf1,2\nf2,3\n"),
                 ["--covariates", "cov.csv", "--target", "gap"], ("not a finite number", "..."),
                 id="covariates-number-that-overflows"),
    pytest.param(lambda f: None, ["--csv", "missing/t.csv"], ("--csv missing/t.csv", "does not exist"),
                 id="csv-into-a-missing-folder"),
    pytest.param(lambda f: None, ["--plot", "missing/p.png"], ("--plot missing/p.png", "does not exist"),
                 id="plot-into-a-missing-folder"),
    pytest.param(lambda f: (f / "afile").write_text("x"), ["--csv", "afile/t.csv"], ("is not a folder",),
                 id="csv-under-a-file"),
    pytest.param(lambda f: None, ["--plot", "p.xyz"], ("unknown image format 'xyz'", ".png"), id="plot-unknown-suffix"),
    pytest.param(lambda f: None, ["--csv", "t.csv", "--plot", "p.docx"], ("unknown image format 'docx'",),
                 id="csv-then-plot-unknown-suffix-writes-no-csv"),
]


@pytest.mark.parametrize("setup, args, says", CORRELATE)
def test_correlate_files_fail_cleanly(tmp_path, monkeypatch, good_report, setup, args, says):
    if any(a.startswith("--plot") for a in args):
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    runs = _family(tmp_path, good_report)
    setup(tmp_path)
    before = C.listing(tmp_path)
    assert_one_line_error(invoke("correlate", *runs, *args), EXIT_USAGE, says)
    assert C.listing(tmp_path) == before, sorted(C.listing(tmp_path) - before)


def test_compare_csv_into_a_missing_folder_is_refused_before_work(tmp_path, monkeypatch, good_report):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text(good_report)
    before = C.listing(tmp_path)
    assert_one_line_error(invoke("compare", "a.json", "a.json", "--csv", "no/where.csv"), EXIT_USAGE,
                          ("--csv no/where.csv", "does not exist"))
    assert C.listing(tmp_path) == before


def test_correlate_writes_csv_and_plot_whole(tmp_path, monkeypatch, good_report):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    r = invoke("correlate", *_family(tmp_path, good_report), "--csv", "t.csv", "--plot", "p.svg")
    assert r.exit_code == 0, describe(r)
    assert (tmp_path / "t.csv").read_text().startswith("figure,label,group,layer,spearman_rho")
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    assert not [p for p in C.listing(tmp_path) if p.endswith(".tmp")]


# --------------------------------------------------------------------------- odd but valid: the answer is right

def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("kind, threshold", [("sigmoid", 0.5), ("logit", 0.0)])
def test_binary_head_accuracy_and_confidence(tmp_path, kind, threshold):
    """One score per item: class 1 above 0.5 (Sigmoid) or 0 (logit); confidence max(p, 1 - p)."""
    model = binary_head(kind)
    x = C.features(200, 4, seed=7)
    score = _ort(model, x)[:, 0].astype(np.float64)
    labels = (np.random.default_rng(8).random(200) < 0.5).astype(np.int64)
    p = score if kind == "sigmoid" else 1 / (1 + np.exp(-score))
    want_acc = float(np.mean((score > threshold) == labels))
    assert 0.1 < want_acc < 0.9 and np.mean(labels == 0) != pytest.approx(want_acc)   # not the share of class 0
    r = invoke("analyze", C.save(tmp_path / "m.onnx", model), "--data",
               C.npz(tmp_path / "d.npz", x=x, labels=labels), "--json", "--batch-size", "64")
    d = report_of(r)
    assert d["accuracy"] == pytest.approx(want_acc, abs=1e-12)
    assert d["baselines"]["mean_max_softmax"] == pytest.approx(np.mean(np.maximum(p, 1 - p)), rel=1e-6)
    assert d["baselines"]["mean_max_softmax"] < 1.0
    if kind == "sigmoid":        # a Sigmoid head has no classifier: G_final is the last layer's G
        assert [L["classifier"] for L in d["layers"]] == [False, False]
        assert d["network"]["G_final"] == d["layers"][1]["G_mean"] and d["network"]["G_total"] is not None
        # the one warning: fc2 feeds a Sigmoid, which the relu noise model reads as always on
        assert [w for w in warnings_of(r) if "--noise-model activation" not in w] == [], r.stderr
        assert d["layers"][1]["unit_activation"] == ["Sigmoid"]


def test_one_logit_classifier_warns_and_no_centring_gives_g_final(tmp_path):
    model = C.save(tmp_path / "m.onnx", binary_head("logit"))
    data = C.npz(tmp_path / "d.npz", x=C.features(50, 4), labels=np.arange(50) % 2)
    r = invoke("analyze", model, "--data", data, "--json")
    d = report_of(r)
    assert d["layers"][1]["classifier"] and d["network"]["G_final"] is None
    assert [w for w in warnings_of(r) if "layer 2 (fc2) is the classifier but has one unit" in w
            and "--no-centring" in w], r.stderr
    d = report_of(invoke("analyze", model, "--data", data, "--json", "--no-centring"))
    assert d["network"]["G_final"] == d["layers"][1]["G_mean"] is not None


def test_one_score_output_that_is_neither_sigmoid_nor_logit_is_not_scored(tmp_path):
    r = invoke("analyze", C.save(tmp_path / "m.onnx", binary_head("tanh")), "--data",
               C.npz(tmp_path / "d.npz", x=C.features(20, 4), labels=np.arange(20) % 2), "--json")
    d = report_of(r)
    assert d["accuracy"] is None and d["baselines"]["mean_max_softmax"] is None
    assert [w for w in warnings_of(r) if "one score per item" in w and "no binary rule applies" in w], r.stderr


def test_if_body_ops_are_listed_as_skipped_and_the_model_runs(tmp_path):
    r = invoke("analyze", C.save(tmp_path / "m.onnx", control_flow_model("If")), "--data",
               C.npz(tmp_path / "d.npz", x=C.features(12, 4)), "--json")
    d = report_of(r)
    assert [L["name"] for L in d["layers"]] == ["fc"]
    assert d["skipped"] == [{"name": "inner_mm", "op": "MatMul", "reason": "inside the then_branch body of If "
                             "'branch': ops in control-flow (If/Loop/Scan) bodies are not analysed"}]


@pytest.mark.parametrize("op, body", [("Loop", "body of Loop 'repeat'"), ("Scan", "body of Scan 'scan'")])
def test_loop_and_scan_body_ops_are_listed_as_skipped(tmp_path, op, body):
    d = report_of(invoke("inspect", C.save(tmp_path / "m.onnx", control_flow_model(op)), "--json"))
    assert [L["name"] for L in d["layers"]] == ["fc"]
    assert [(s["name"], s["op"]) for s in d["skipped"]] == [("inner_mm", "MatMul")]
    assert body in d["skipped"][0]["reason"]


def test_blocked_dequantize_weight_is_folded_and_analysed(tmp_path):
    model = blocked_dq_model()
    q = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "Wq")).astype(np.float64)
    s = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "s")).astype(np.float64)
    want = (q * np.repeat(s, 3, axis=0)[:5]).T                  # (units, inputs)
    from snrcli.model.graph import discover

    (_, mm) = discover(model).layers
    np.testing.assert_allclose(mm.weight, want, rtol=1e-6)
    d = report_of(invoke("analyze", C.save(tmp_path / "m.onnx", model), "--data",
                         C.npz(tmp_path / "d.npz", x=C.features(30, 4)), "--json"))
    assert [(L["name"], L["op"]) for L in d["layers"]] == [("fc1", "Gemm"), ("mm", "MatMul")]
    assert d["skipped"] == [] and d["network"]["G_total"] is not None


def test_blocked_dequantize_that_cannot_be_folded_gets_its_reason(tmp_path):
    d = report_of(invoke("inspect", C.save(tmp_path / "m.onnx", blocked_dq_model(scale_rows=3)), "--json"))
    (skip,) = d["skipped"]
    assert skip["name"] == "mm" and "of two activations" not in skip["reason"]
    assert "DequantizeLinear 'dq'" in skip["reason"] and "blocks of 3" in skip["reason"], skip


def test_a_layer_nothing_uses_still_counts_and_is_named_once(tmp_path):
    model, data = C.save(tmp_path / "m.onnx", unused_layer_model()), C.npz(tmp_path / "d.npz", x=C.features(20))
    r = invoke("analyze", model, "--data", data, "--json", "--batch-size", "7")
    d = report_of(r)
    names = [L["name"] for L in d["layers"]]
    assert names == ["dense1", "dense2", "aux"] and d["layers"][1]["classifier"]
    assert d["network"]["G_hidden"] == pytest.approx(d["layers"][0]["G_mean"] + d["layers"][2]["G_mean"])
    said = [w for w in warnings_of(r) if "no model output depends on it" in w]
    assert len(said) == 1 and "layer 3 (aux)" in said[0], r.stderr


def test_float_data_into_an_int64_input_is_said_to_be_truncated(tmp_path):
    x = np.random.default_rng(5).uniform(-3, 3, size=(20, 4)).astype(np.float32)
    model = C.save(tmp_path / "m.onnx", int64_input_model())
    r = invoke("analyze", model, "--data", C.npz(tmp_path / "d.npz", x=x), "--json", "--batch-size", "6")
    d = report_of(r)
    said = [w for w in warnings_of(r) if "converted to the model's int64" in w]
    assert len(said) == 1 and "truncated toward zero" in said[0] and "float32" in said[0], r.stderr
    ref = report_of(invoke("analyze", model, "--data", C.npz(tmp_path / "i.npz", x=np.trunc(x).astype(np.int64)),
                           "--json"))
    assert d["layers"][0]["S_mean"] == ref["layers"][0]["S_mean"]     # the truncation the warning names
    assert not [w for w in warnings_of(invoke("analyze", model, "--data", tmp_path / "i.npz")) if "converted" in w]
