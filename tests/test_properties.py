"""Property tests: the fast statistics path (``snrcli.analyze`` on an ONNX model) against the
slow per-unit reference of ``tests/reference.py``, on random small dense and conv stacks.

Weights are multiples of 1/4 in [-1, 1] and data are small integers, so every forward value
is exact in float32: onnxruntime and the float64 reference see bit-identical layer inputs,
and any difference comes from the statistics alone. Examples include zero-weight units,
dead units (a bias of -64 keeps the ReLU off), all-zero input features/channels, groups,
strides, pads, auto_pad, dilations, and both settings thresholds. Every example is analysed
with batch sizes 1, 3 and "all": the figures must not depend on how the data is split.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import snrcli
import snrcli.stats.products
import snrcli.stats.comoments
import snrcli.stats.layer
from corpus import Act, Conv, Dense, Flatten, Stack, npz, save, stack_model
import reference as R
import reference_act as RA


@pytest.fixture(autouse=True, scope="module")
def float64_products():
    """These tests hold snr to the exact definitions, so every product is float64 here (the data are
    small integers: float64 is exact). The float32 products that large layers use are held to float32
    accuracy against float64 in test_convstats.py."""
    saved = snrcli.stats.products.FLOAT32_MIN_SIZE
    snrcli.stats.products.FLOAT32_MIN_SIZE = 1 << 62
    yield
    snrcli.stats.products.FLOAT32_MIN_SIZE = saved

RTOL = 1e-6
ATOL = 1e-9
LAYER_KEYS = ["units", "inputs", "inputs_kept", "samples", "undefined_units", "classifier",
              "S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean",
              "S_mean_centred", "G_mean_centred"]
EXACT_KEYS = {"units", "inputs", "inputs_kept", "samples", "undefined_units", "classifier"}

# SNR_PROPERTY_EXAMPLES=2000 runs a longer, randomised search (default: a fixed, derandomised set).
_EXAMPLES = int(os.environ.get("SNR_PROPERTY_EXAMPLES", "0"))
PROPERTY_SETTINGS = settings(
    max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- strategies

def _quarters(draw, shape, lo=-4, hi=4) -> np.ndarray:
    n = int(np.prod(shape))
    vals = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    return np.array(vals, dtype=np.float64).reshape(shape) / 4.0


def _data(draw, shape, zero_axis: int = 1) -> np.ndarray:
    """Small integers; sometimes all >= 0 (image-like), sometimes with one all-zero feature/channel."""
    n = int(np.prod(shape))
    lo = draw(st.sampled_from([-3, 0]))
    x = np.array(draw(st.lists(st.integers(lo, 3), min_size=n, max_size=n)), dtype=np.float64).reshape(shape)
    x += draw(st.sampled_from([0, 0, 0, 1000]))     # a large mean: the covariances must survive it
    if draw(st.booleans()):
        idx = [slice(None)] * x.ndim
        idx[zero_axis] = draw(st.integers(0, shape[zero_axis] - 1))
        x[tuple(idx)] = 0.0
    return x


def _degenerate_units(draw, W: np.ndarray, b: np.ndarray | None) -> None:
    units = W.shape[0]
    if draw(st.integers(0, 3)) == 0:
        W[draw(st.integers(0, units - 1))] = 0.0            # a zero-weight unit
    if b is not None and draw(st.integers(0, 3)) == 0:
        b[draw(st.integers(0, units - 1))] = -64.0          # a dead unit: its ReLU never turns on


def _thresholds(draw) -> dict:
    return {"min_level": draw(st.sampled_from([0.01, 0.01, 0.5])),
            "min_activity": draw(st.sampled_from([0.01, 0.01, 0.3, 0.5])),
            "centre_classifier": draw(st.sampled_from([True, True, False]))}


@st.composite
def dense_cases(draw):
    depth = draw(st.integers(1, 3))
    width = draw(st.integers(1, 5))
    # sometimes (N, T, F) sequences into MatMul: every (item, t) row is a sample
    seq = draw(st.sampled_from([None, None, None, 1, 3]))
    layers = []
    f_in = width
    for k in range(depth):
        units = draw(st.integers(1, 4))
        W = _quarters(draw, (units, width))
        b = _quarters(draw, (units,)) if draw(st.booleans()) else None
        _degenerate_units(draw, W, b)
        last = k == depth - 1
        relu = draw(st.booleans()) if last else draw(st.sampled_from([True, True, False]))
        op = "MatMul" if seq else draw(st.sampled_from(["Gemm", "MatMul"]))
        layers.append(Dense(W, b, relu=relu, op=op, trans_b=draw(st.booleans())))
        width = units
    n = draw(st.integers(2, 7))
    item = (seq, f_in) if seq else (f_in,)
    x = _data(draw, (n,) + item, zero_axis=-1)
    return Stack(item, layers), x, _thresholds(draw)


@st.composite
def conv_cases(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    channels = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 5 if nd < 3 else 3)) for _ in range(nd))
    item = (channels,) + spatial
    layers = []
    ch, sp = channels, spatial
    for k in range(draw(st.integers(1, 2))):
        group = draw(st.sampled_from([g for g in range(1, ch + 1) if ch % g == 0]))
        units = group * draw(st.integers(1, 2))
        kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
        auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
        pads = tuple(draw(st.integers(0, 2)) for _ in range(2 * nd)) if auto_pad == "NOTSET" else ()
        W = _quarters(draw, (units, ch // group) + kernel)
        b = _quarters(draw, (units,)) if draw(st.booleans()) else None
        _degenerate_units(draw, W, b)
        # onnxruntime refuses dilations with auto_pad SAME_* ("Dilation not supported")
        max_dil = 1 if auto_pad.startswith("SAME") else 2
        conv = Conv(W, b, strides=tuple(draw(st.integers(1, 2)) for _ in range(nd)),
                    dilations=tuple(draw(st.integers(1, max_dil)) for _ in range(nd)),
                    pads=pads, auto_pad=auto_pad, group=group, relu=True)
        out = R.conv_out_shape(conv, sp)
        assume(all(o >= 1 for o in out))
        layers.append(conv)
        ch, sp = units, out
    if draw(st.booleans()):
        classes = draw(st.integers(1, 3))
        layers += [Flatten(), Dense(_quarters(draw, (classes, ch * int(np.prod(sp)))),
                                    _quarters(draw, (classes,)), relu=False)]
    else:
        layers[-1].relu = draw(st.booleans())
    n = draw(st.integers(2, 4))
    x = _data(draw, (n,) + item)
    return Stack(item, layers), x, _thresholds(draw)


# --------------------------------------------------------------------------- comparison

def _close(a, b, rtol=RTOL, atol=ATOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= atol + rtol * abs(b)


def _units(values) -> list:
    return [None if v is None or not np.isfinite(v) else float(v) for v in values]


def compare(report, ref: R.NetworkRef, label: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    d = report.to_dict()
    assert len(d["layers"]) == len(ref.layers), label
    problems = []
    for L, Lobj, lr in zip(d["layers"], report.layers, ref.layers):
        want = lr.means()
        for key in LAYER_KEYS:
            got, exp = L[key], want[key]
            ok = got == exp if key in EXACT_KEYS else _close(got, exp, rtol, atol)
            if not ok:
                problems.append(f"layer {L['index']} {key}: snr {got!r}, reference {exp!r}")
        for name, got, exp in (("S", Lobj.unit_S, lr.S), ("G", Lobj.unit_G, lr.G), ("r", Lobj.unit_r, lr.r)):
            got = _units(got)
            if len(got) != len(exp) or not all(_close(g, e, rtol, atol) for g, e in zip(got, exp)):
                problems.append(f"layer {L['index']} unit {name}: snr {got}, reference {exp}")
        if lr.classifier:
            for name, got, exp in (("S_centred", Lobj.unit_S_centred, lr.S_centred),
                                   ("G_centred", Lobj.unit_G_centred, lr.G_centred)):
                got = _units(got if got is not None else [])
                if len(got) != len(exp) or not all(_close(g, e, rtol, atol) for g, e in zip(got, exp)):
                    problems.append(f"layer {L['index']} unit {name}: snr {got}, reference {exp}")
    for key in ("G_hidden", "G_final", "G_total"):
        if not _close(d["network"][key], getattr(ref, key), rtol, atol):
            problems.append(f"network {key}: snr {d['network'][key]!r}, reference {getattr(ref, key)!r}")
    assert not problems, f"{label}:\n" + "\n".join(problems)


def check_against_reference(stack: Stack, x: np.ndarray, thresholds: dict, dtype=np.float32) -> None:
    fwd = R.forward(stack, x)
    assume(fwd.exact_in_float32)
    ref = R.reference(stack, x, fwd=fwd, min_level=thresholds["min_level"],
                      min_activity=thresholds["min_activity"], centre=thresholds["centre_classifier"])
    for what, seen in (("classifier", ref.layers[-1].classifier),
                       ("undefined unit", any(L.undefined_units for L in ref.layers)),
                       ("layer all undefined", any(L.undefined_units == L.units for L in ref.layers)),
                       ("dropped input", any(L.inputs_kept < L.inputs for L in ref.layers)),
                       ("unit never active", any(0 in L.r for L in ref.layers)),
                       ("large mean", bool(np.abs(x).max() >= 1000))):
        if seen:
            event(what)
    with tempfile.TemporaryDirectory(prefix="snr-prop-") as tmp:
        model = save(Path(tmp) / "model.onnx", stack_model(stack, dtype=dtype))
        data = npz(Path(tmp) / "data.npz", x=x.astype(dtype))
        n = len(x)
        for bs in sorted({1, 3, n}):
            report = snrcli.analyze(model, data, batch_size=bs, **thresholds)
            compare(report, ref, f"batch size {bs} of {n} items, {thresholds}")
        with split_every_batch():
            report = snrcli.analyze(model, data, batch_size=n, threads=3, **thresholds)
        compare(report, ref, f"one batch of {n} items split over 3 statistics threads, {thresholds}")


@contextlib.contextmanager
def split_every_batch():
    """Split even the smallest batches (conv), and dense rows' passes and products, across the statistics threads."""
    names = [(snrcli.stats.layer, "SPLIT_MIN_WORK"), (snrcli.stats.comoments, "BLOCK_SPLIT_MIN"),
             (snrcli.stats.comoments, "PRODUCT_SPLIT_MIN")]
    saved = [getattr(m, k) for m, k in names]
    for m, k in names:
        setattr(m, k, 0)
    try:
        yield
    finally:
        for (m, k), v in zip(names, saved):
            setattr(m, k, v)


# --------------------------------------------------------------------------- properties

@PROPERTY_SETTINGS
@given(dense_cases())
def test_dense_stacks_match_the_reference_for_every_batch_size(case):
    stack, x, thresholds = case
    check_against_reference(stack, x, thresholds)


@PROPERTY_SETTINGS
@given(conv_cases())
def test_conv_stacks_match_the_reference_for_every_batch_size(case):
    stack, x, thresholds = case
    check_against_reference(stack, x, thresholds)


@settings(PROPERTY_SETTINGS, max_examples=max(10, _EXAMPLES // 4))
@given(dense_cases())
def test_float64_dense_stacks_match_the_reference(case):
    stack, x, thresholds = case
    check_against_reference(stack, x, thresholds, dtype=np.float64)


# --------------------------------------------------------------------------- fixed examples

def _fixed_conv_stack(seed: int = 7) -> tuple[Stack, np.ndarray]:
    r = np.random.default_rng(seed)
    q = lambda *s: r.integers(-4, 5, size=s) / 4.0  # noqa: E731
    c1 = Conv(q(4, 1, 3, 3), q(4), strides=(2, 1), pads=(1, 0, 1, 1), dilations=(1, 2), group=2)
    c2 = Conv(q(3, 4, 2, 2), q(3), auto_pad="SAME_LOWER", strides=(2, 2))
    flat = 3 * int(np.prod(R.conv_out_shape(c2, R.conv_out_shape(c1, (6, 6)))))
    stack = Stack((2, 6, 6), [c1, c2, Flatten(), Dense(q(3, flat), q(3), relu=False)])
    x = r.integers(0, 4, size=(9, 2, 6, 6)).astype(np.float64)
    return stack, x


def test_fixed_conv_stack_matches_the_reference(tmp_path):
    stack, x = _fixed_conv_stack()
    fwd = R.forward(stack, x)
    assert fwd.exact_in_float32
    ref = R.reference(stack, x, fwd=fwd)
    assert ref.layers[-1].classifier and ref.G_total is not None
    model = save(tmp_path / "m.onnx", stack_model(stack))
    data = npz(tmp_path / "d.npz", x=x.astype(np.float32))
    for bs in (1, 2, 4, 9):
        compare(snrcli.analyze(model, data, batch_size=bs), ref, f"batch size {bs}")


def test_jobs_two_gives_the_figures_of_one_pass(tmp_path):
    """--jobs 2 splits the items over two worker processes; the merged figures equal one pass."""
    stack, x = _fixed_conv_stack()
    ref = R.reference(stack, x)
    model = save(tmp_path / "m.onnx", stack_model(stack))
    data = npz(tmp_path / "d.npz", x=x.astype(np.float32))
    one = snrcli.analyze(model, data, batch_size=2)
    two = snrcli.analyze(model, data, batch_size=2, jobs=2)
    compare(two, ref, "--jobs 2")
    a, b = one.to_dict(), two.to_dict()
    for La, Lb in zip(a["layers"], b["layers"]):
        for key in LAYER_KEYS:
            assert _close(La[key], Lb[key]) if key not in EXACT_KEYS else La[key] == Lb[key], key
    assert a["data"]["samples"] == b["data"]["samples"] == len(x)


@pytest.mark.parametrize("min_activity", [0.01, 0.5])
def test_one_kept_input_gives_plus_or_minus_one(tmp_path, min_activity):
    """A unit with one kept input is defined (spec section 4): S = G = sign(w c), not NaN."""
    W1 = np.array([[1.0, 0.5, -0.25], [-0.5, 0.25, 1.0]])
    stack = Stack((3,), [Dense(W1, None, relu=False)])
    x = np.zeros((6, 3))
    x[:, 0] = [1, 2, 0, 3, 1, 2]        # the only non-zero feature
    ref = R.reference(stack, x, min_activity=min_activity)
    assert [abs(v) for v in ref.layers[0].S] == [1.0, 1.0]
    model = save(tmp_path / "m.onnx", stack_model(stack))
    data = npz(tmp_path / "d.npz", x=x.astype(np.float32))
    report = snrcli.analyze(model, data, min_activity=min_activity, centre_classifier=False)
    ref = R.reference(stack, x, min_activity=min_activity, centre=False)
    compare(report, ref, "one kept input")
    assert report.to_dict()["layers"][0]["inputs_kept"] == 1


# --------------------------------------------------------------------------- activation noise model (spec 11)

UNARY_ACTS = [Act("Relu"), Act("LeakyRelu", {"alpha": 0.25}), Act("Elu", {"alpha": 0.5}), Act("Selu"),
              Act("Celu", {"alpha": 2.0}), Act("Sigmoid"), Act("HardSigmoid", {"alpha": 0.25, "beta": 0.5}),
              Act("HardSwish"), Act("Tanh"), Act("Softplus"), Act("Softsign"), Act("Gelu"),
              Act("Gelu", {"approximate": "tanh"}), Act("Mish"), Act("ThresholdedRelu", {"alpha": 1.0}), Act("Erf"),
              Act("Abs"), Act("Neg"), Act("Identity"), Act("Clip", {"min": 0.0, "max": 2.0}),
              Act("Clip", {"min": -1.0}), Act("Clip", {"max": 0.5})]
CONST_ACTS = [Act("Add", const=0.5), Act("Add", const=-1.0), Act("Sub", const=0.5), Act("Sub", const=1.0, left=True),
              Act("Mul", const=0.5), Act("Mul", const=-2.0), Act("Div", const=2.0), Act("Div", const=1.0, left=True),
              Act("Pow", const=2.0), Act("Pow", const=3.0), Act("Max", const=0.25), Act("Min", const=1.0)]
GATED_ACTS = [Act("Mul", gate="Sigmoid"), Act("Mul", gate="Tanh"), Act("Add", gate="Relu"), Act("Max", gate="Neg"),
              Act("Min", gate="Tanh"), Act("Sub", gate="Softsign")]


@st.composite
def chains(draw) -> tuple:
    """A random chain of elementwise ops (sometimes none, sometimes a lone Relu)."""
    kind = draw(st.sampled_from(["none", "relu", "root", "chain", "chain", "chain", "chain"]))
    pool = st.sampled_from(UNARY_ACTS + CONST_ACTS + GATED_ACTS)
    if kind == "root":            # a root of a Relu or Abs: an infinite slope wherever the value is 0
        root = (draw(st.sampled_from([Act("Relu"), Act("Abs")])), draw(st.sampled_from([Act("Sqrt"),
                                                                                       Act("Pow", const=0.5)])))
        return root + tuple(draw(st.lists(pool, max_size=1)))
    if kind != "chain":
        return kind
    return tuple(draw(st.lists(pool, min_size=1, max_size=4)))


def _with_chain(layer, chain) -> None:
    if chain == "none":
        layer.relu = False
    elif chain == "relu":
        layer.relu = True
    else:
        layer.relu, layer.act = False, chain


@st.composite
def act_dense_cases(draw):
    """Dense stacks whose hidden layers end in random chains; small data (no large means: saturating
    ops would round differently in float32 and float64)."""
    depth = draw(st.integers(2, 3))
    width = draw(st.integers(1, 4))
    seq = draw(st.sampled_from([None, None, 2]))
    f_in, layers = width, []
    for k in range(depth):
        units = draw(st.integers(1, 4))
        W = _quarters(draw, (units, width))
        b = _quarters(draw, (units,)) if draw(st.booleans()) else None
        op = "MatMul" if seq else draw(st.sampled_from(["Gemm", "MatMul"]))
        L = Dense(W, b, relu=False, op=op, trans_b=draw(st.booleans()))
        if k < depth - 1:
            _with_chain(L, draw(chains()))
        layers.append(L)
        width = units
    n = draw(st.integers(3, 7))
    item = (seq, f_in) if seq else (f_in,)
    x = np.array(draw(st.lists(st.integers(-3, 3), min_size=n * math.prod(item), max_size=n * math.prod(item))),
                 dtype=np.float64).reshape((n,) + item)
    return Stack(item, layers), x, _thresholds(draw)


@st.composite
def act_conv_cases(draw):
    """A conv layer ending in a random chain, a second conv or Flatten + Dense after it."""
    channels, spatial = draw(st.integers(1, 2)), tuple(draw(st.integers(2, 4)) for _ in range(2))
    units = draw(st.integers(1, 3))
    c1 = Conv(_quarters(draw, (units, channels, 2, 2)), _quarters(draw, (units,)) if draw(st.booleans()) else None,
              pads=(1, 0, 0, 1) if draw(st.booleans()) else (), relu=False)
    _with_chain(c1, draw(chains()))
    out = R.conv_out_shape(c1, spatial)
    if draw(st.booleans()):
        second = [Flatten(), Dense(_quarters(draw, (2, units * math.prod(out))), None, relu=False)]
    else:
        second = [Conv(_quarters(draw, (2, units, 1, 1)), None, relu=False)]
    n = draw(st.integers(2, 4))
    x = np.array(draw(st.lists(st.integers(-3, 3), min_size=n * channels * math.prod(spatial),
                               max_size=n * channels * math.prod(spatial))), dtype=np.float64)
    return Stack((channels,) + spatial, [c1] + second), x.reshape((n, channels) + spatial), _thresholds(draw)


def check_activation_model(stack: Stack, x: np.ndarray, thresholds: dict) -> None:
    """Both noise models against the reference, at several batch sizes; site lists exactly."""
    fwd = R.forward(stack, x)
    assume(all(np.all(np.isfinite(v)) and np.all(np.abs(v) < 1e6) for io in fwd.layers for v in io.values))
    assume(not any(RA.near_kink(io.elems, io.values, io.inexact_from) for io in fwd.layers))
    rtol, atol = (RTOL, ATOL) if fwd.exact_in_float32 else (2e-5, 1e-6)
    with tempfile.TemporaryDirectory(prefix="snr-prop-") as tmp:
        model = save(Path(tmp) / "model.onnx", stack_model(stack))
        data = npz(Path(tmp) / "data.npz", x=x.astype(np.float32))
        for noise_model in ("relu", "activation"):
            ref = R.reference(stack, x, fwd=fwd, noise_model=noise_model, min_level=thresholds["min_level"],
                              min_activity=thresholds["min_activity"], centre=thresholds["centre_classifier"])
            for what, seen in (("site found", any(L.unit_activation for L in ref.layers)),
                               ("slope not finite", any(RA.site_s2(find(io.elems), io.values) is None
                                                        and find(io.elems) is not None
                                                        for io in fwd.layers for find in (RA.unit_site,
                                                                                          RA.input_site))),
                               ("inexact forward", not fwd.exact_in_float32)):
                if seen:
                    event(what)
            for bs in sorted({1, 3, len(x)}):
                with np.errstate(all="ignore"):
                    report = snrcli.analyze(model, data, batch_size=bs, noise_model=noise_model, **thresholds)
                label = f"{noise_model}, batch size {bs} of {len(x)} items, {thresholds}"
                compare(report, ref, label, rtol=rtol, atol=atol)
                got = [(L["input_activation"], L["unit_activation"]) for L in report.to_dict()["layers"]]
                assert got == [(L.input_activation, L.unit_activation) for L in ref.layers], label


@PROPERTY_SETTINGS
@given(act_dense_cases())
def test_dense_stacks_with_activation_chains_match_the_reference(case):
    check_activation_model(*case)


@settings(PROPERTY_SETTINGS, max_examples=max(30, _EXAMPLES // 2))
@given(act_conv_cases())
def test_conv_stacks_with_activation_chains_match_the_reference(case):
    check_activation_model(*case)


def _kink_free(op: str, attrs: dict, v: float) -> bool:
    dist = RA.unary_kinks(op, attrs, np.array([v]))[0]
    return dist > 1e-3 * max(1.0, abs(v))


@settings(PROPERTY_SETTINGS, max_examples=max(200, _EXAMPLES))
@given(st.sampled_from(range(len(UNARY_ACTS))), st.floats(-8, 8, allow_nan=False))
def test_each_unary_slope_is_a_central_difference(k, v):
    """snr's derivative of each op equals (f(v + h) - f(v - h)) / 2h in float64, away from kinks."""
    from snrcli.analysis.slopes import UNARY as TABLE
    a = UNARY_ACTS[k]
    assume(_kink_free(a.op, a.attrs, v))
    attrs = {"alpha": 0.01, "beta": 0.5, "gamma": 1.0, "approximate": "none", "lo": None, "hi": None,
             **{"Selu": {"alpha": R.A.SELU_ALPHA, "gamma": R.A.SELU_GAMMA}}.get(a.op, {}), **a.attrs}
    if a.op == "Clip":
        attrs["lo"], attrs["hi"] = a.attrs.get("min"), a.attrs.get("max")
    f = TABLE[a.op]
    h = 1e-6 * max(1.0, abs(v))
    fd = (float(f(np.float64(v + h), attrs)[0]) - float(f(np.float64(v - h), attrs)[0])) / (2 * h)
    value, slope = f(np.float64(v), attrs)
    assert math.isclose(float(slope), fd, rel_tol=1e-6, abs_tol=1e-8), (a, v, slope, fd)
    want = RA.unary_value(a.op, a.attrs, np.array([v]))[0]     # the reference's own reading of the op
    assert math.isclose(float(value), want, rel_tol=1e-12, abs_tol=1e-14), (a, v, value, want)


@settings(PROPERTY_SETTINGS, max_examples=max(150, _EXAMPLES))
@given(st.sampled_from(["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]), st.floats(0.1, 6, allow_nan=False),
       st.floats(-3, 3, allow_nan=False), st.sampled_from(["left", "right", "both"]))
def test_each_binary_slope_is_a_central_difference(op, a, b, which):
    """The tangent of op(a, b) along the operands that vary (a constant's is not computed), in float64."""
    from snrcli.analysis.slopes import BINARY as TABLE
    assume(op not in ("Max", "Min") or abs(a - b) > 1e-3)
    assume(op != "Div" or abs(b) > 0.1)
    da, db = (1.0, None) if which == "left" else (None, 1.0) if which == "right" else (1.0, 1.0)
    f = TABLE[op]

    def value(t):
        return float(f(np.float64(a + (t if da else 0)), np.float64(b + (t if db else 0)), da is None, db is None)[0])

    _, pa, pb = f(np.float64(a), np.float64(b), da is None, db is None)
    tangent = (float(pa) if da else 0.0) + (float(pb) if db else 0.0)
    h = 1e-6
    fd = (value(h) - value(-h)) / (2 * h)
    assert math.isclose(tangent, fd, rel_tol=1e-6, abs_tol=1e-7), (op, a, b, which, tangent, fd)


@pytest.mark.parametrize("act", UNARY_ACTS + CONST_ACTS + GATED_ACTS, ids=lambda a: f"{a.gate or ''}{a.op}{a.const}")
def test_each_op_value_matches_onnxruntime(act, tmp_path):
    """The reference's op values (checked against snr's by the central-difference test) are onnxruntime's."""
    import onnxruntime as ort
    z = np.linspace(-4, 4, 33)
    layer = Dense(np.eye(33), None, relu=False, act=(act,))
    model = stack_model(Stack((33,), [layer, Dense(np.eye(33), None, relu=False)]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    mid = model.graph.node[-2].output[0]
    from snrcli.analysis.runner import augmented
    sess = ort.InferenceSession(augmented(model, [mid]).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run([mid], {"x": z[None].astype(np.float32)})[0][0]
    with np.errstate(all="ignore"):
        want = RA.Elem(act).value(z)
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=2e-6, atol=2e-6)
