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
from corpus import Conv, Dense, Flatten, Stack, npz, save, stack_model
import reference as R


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


def compare(report, ref: R.NetworkRef, label: str) -> None:
    d = report.to_dict()
    assert len(d["layers"]) == len(ref.layers), label
    problems = []
    for L, Lobj, lr in zip(d["layers"], report.layers, ref.layers):
        want = lr.means()
        for key in LAYER_KEYS:
            got, exp = L[key], want[key]
            ok = got == exp if key in EXACT_KEYS else _close(got, exp)
            if not ok:
                problems.append(f"layer {L['index']} {key}: snr {got!r}, reference {exp!r}")
        for name, got, exp in (("S", Lobj.unit_S, lr.S), ("G", Lobj.unit_G, lr.G), ("r", Lobj.unit_r, lr.r)):
            got = _units(got)
            if len(got) != len(exp) or not all(_close(g, e) for g, e in zip(got, exp)):
                problems.append(f"layer {L['index']} unit {name}: snr {got}, reference {exp}")
        if lr.classifier:
            for name, got, exp in (("S_centred", Lobj.unit_S_centred, lr.S_centred),
                                   ("G_centred", Lobj.unit_G_centred, lr.G_centred)):
                got = _units(got if got is not None else [])
                if len(got) != len(exp) or not all(_close(g, e) for g, e in zip(got, exp)):
                    problems.append(f"layer {L['index']} unit {name}: snr {got}, reference {exp}")
    for key in ("G_hidden", "G_final", "G_total"):
        if not _close(d["network"][key], getattr(ref, key)):
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
