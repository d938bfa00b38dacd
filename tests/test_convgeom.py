"""``snrcli.model.convgeom`` (padding, output shape) and the tests' patch reference, against onnxruntime's Conv."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import conv_ref_out, conv_ref_pads, init, make_model, node, patches, vi
from snrcli.model.convgeom import output_shape, resolve_pads
from snrcli.model.graph import ConvGeometry


def geom(kernel, strides=None, dilations=None, pads=None, auto_pad="NOTSET", group=1):
    nd = len(kernel)
    return ConvGeometry(kernel=tuple(kernel), strides=tuple(strides or [1] * nd),
                        dilations=tuple(dilations or [1] * nd), pads=tuple(pads or [0] * (2 * nd)),
                        auto_pad=auto_pad, group=group)


def ref_pads(g: ConvGeometry, spatial):
    return conv_ref_pads(g.kernel, g.strides, g.dilations, g.pads, g.auto_pad, spatial)


def ref_out(g, spatial):
    return conv_ref_out(g.kernel, g.strides, g.dilations, g.pads, g.auto_pad, spatial)


CASES = [
    # (input shape, geometry)
    ((2, 3, 11), geom([3], [2], [2], [1, 2])),
    ((2, 3, 10), geom([4], [3], [1], [0, 0])),
    ((1, 2, 9), geom([2], [1], [3], [2, 0])),
    ((2, 2, 7, 9), geom([3, 2], [2, 3], [1, 2], [1, 0, 2, 1])),
    ((1, 3, 6, 6), geom([3, 3], [1, 1], [1, 1], [1, 1, 1, 1])),
    ((2, 1, 8, 5), geom([1, 1], [2, 2])),
    ((1, 2, 5, 6, 4), geom([2, 3, 2], [1, 2, 2], [2, 1, 1], [0, 1, 1, 1, 0, 1])),
    ((1, 1, 4, 4, 4), geom([3, 3, 3], [2, 2, 2], None, [1, 1, 1, 1, 1, 1])),
]
for ap in ("SAME_UPPER", "SAME_LOWER", "VALID"):
    CASES += [
        ((2, 2, 7, 8), geom([3, 2], [2, 2], None, None, ap)),
        ((1, 2, 6, 9), geom([4, 3], [3, 2], None, None, ap)),
        ((2, 2, 10), geom([4], [3], None, None, ap)),
        ((1, 1, 5, 6, 7), geom([2, 3, 2], [2, 1, 3], None, None, ap)),
    ]
IDS = [f"{len(s) - 2}d-{g.auto_pad}-{i}" for i, (s, g) in enumerate(CASES)]


@pytest.mark.parametrize("shape, g", CASES, ids=IDS)
def test_pads_and_output_shape_match_the_written_out_cases(shape, g):
    pb, pe = ref_pads(g, shape[2:])
    assert output_shape(g, shape[2:]) == ref_out(g, shape[2:])
    assert resolve_pads(g, shape[2:]) == list(zip(pb, pe))


def _ort_conv(x, w, g: ConvGeometry):
    attrs = dict(kernel_shape=list(g.kernel), strides=list(g.strides), dilations=list(g.dilations), group=g.group)
    if g.auto_pad == "NOTSET":
        attrs["pads"] = list(g.pads)
    else:
        attrs["auto_pad"] = g.auto_pad
    model = make_model([node("Conv", ["x", "W"], ["y"], **attrs)],
                       [vi("x", list(x.shape))], [vi("y", None)], [init("W", w)], check=False)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


@pytest.mark.parametrize("shape, g", CASES, ids=IDS)
def test_output_shape_and_values_match_onnxruntime(shape, g):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape).astype(np.float32)
    w = rng.normal(size=(3, shape[1]) + g.kernel).astype(np.float32)
    y = _ort_conv(x, w, g)
    assert tuple(y.shape[2:]) == output_shape(g, shape[2:])
    # the patch rows, times the weight as (units, C * prod(kernel)), are the conv output moved to (b, pos..., M)
    got = patches(x.astype(np.float64), g) @ w.reshape(3, -1).T.astype(np.float64)
    want = np.moveaxis(y, 1, -1).reshape(-1, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("group", [2, 4])
def test_grouped_conv_patch_columns_split_by_group(group):
    rng = np.random.default_rng(group)
    c, m = 4, 8
    g = geom([3, 3], [2, 1], [1, 2], [1, 2, 0, 1], group=group)
    x = rng.normal(size=(2, c, 7, 8)).astype(np.float32)
    w = rng.normal(size=(m, c // group, 3, 3)).astype(np.float32)
    y = np.moveaxis(_ort_conv(x, w, g), 1, -1).reshape(-1, m)
    p = patches(x.astype(np.float64), g)
    pg, mg = (c // group) * 9, m // group
    for k in range(group):
        got = p[:, k * pg:(k + 1) * pg] @ w[k * mg:(k + 1) * mg].reshape(mg, -1).T
        np.testing.assert_allclose(got, y[:, k * mg:(k + 1) * mg], rtol=1e-4, atol=1e-4)


@st.composite
def conv_case(draw):
    nd = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    strides = [draw(st.integers(1, 3)) for _ in range(nd)]
    dil = [draw(st.integers(1, 2)) for _ in range(nd)]
    ap = draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
    spatial = [draw(st.integers((k - 1) * d + 1, (k - 1) * d + 6)) for k, d in zip(kernel, dil)]
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial), geom(kernel, strides, dil, pads, ap)


@settings(max_examples=60, deadline=None)
@given(conv_case())
def test_pads_and_output_shape_random(case):
    shape, g = case
    pb, pe = ref_pads(g, shape[2:])
    assert output_shape(g, shape[2:]) == ref_out(g, shape[2:])
    assert resolve_pads(g, shape[2:]) == list(zip(pb, pe))
