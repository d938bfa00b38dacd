"""The fast co-moment routes against the definition (spec section 2), in float64 and float32.

Conv layers are summed one kernel offset at a time (``snrcli.stats.conv``), dense layers by the
Gram route or the cross route (``snrcli.stats.layer``); the reference is ``np.cov`` of the explicit
patch matrix in float64. float32 activations are multiplied in float32 blocks summed in float64:
those are held to float32 accuracy, float64 ones to float64 accuracy.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from helpers import patches
from snrcli.stats import conv as convstats
from snrcli.stats import products
from snrcli.stats import comoments
from snrcli.stats import layer as stats
from snrcli.model.convgeom import output_shape
from snrcli.model.graph import ConvGeometry, Layer
from snrcli.stats.layer import LayerStats


def geom(kernel, strides=None, dilations=None, pads=None, auto_pad="NOTSET", group=1):
    nd = len(kernel)
    return ConvGeometry(kernel=tuple(kernel), strides=tuple(strides or [1] * nd),
                        dilations=tuple(dilations or [1] * nd), pads=tuple(pads or [0] * (2 * nd)),
                        auto_pad=auto_pad, group=group)


# (input shape, geometry, units)
CASES = [
    ((3, 4, 7, 6), geom([3, 3], pads=[1, 1, 1, 1]), 5),
    ((2, 3, 9, 8), geom([3, 2], [2, 3], [1, 2], [1, 0, 2, 1]), 4),
    ((2, 2, 11), geom([3], [2], [2], [1, 2]), 3),
    ((1, 2, 5, 6, 4), geom([2, 3, 2], [1, 2, 2], [2, 1, 1], [0, 1, 1, 1, 0, 1]), 2),
    ((3, 4, 6, 6), geom([3, 3], pads=[1, 1, 1, 1], group=2), 6),
    ((2, 6, 5, 7), geom([3, 3], [2, 1], None, None, "SAME_UPPER", group=6), 6),     # depthwise
    ((2, 4, 6, 5), geom([2, 3], [1, 2], None, None, "SAME_LOWER", group=2), 2),
    ((4, 3, 5, 5), geom([1, 1]), 4),                                               # 1x1: no copy
    ((2, 2, 8, 8), geom([7, 7], [2, 2], None, [3, 3, 3, 3]), 3),                  # a ResNet stem
    ((2, 3, 12, 12), geom([3, 3], pads=[1, 1, 1, 1]), 4),
    ((2, 2, 12, 14), geom([3, 3], None, [2, 1], [2, 1, 2, 1]), 3),
    ((2, 3, 20), geom([3], pads=[1, 2]), 2),
    ((1, 2, 3, 20, 20), geom([3, 3, 3], pads=[1] * 6), 2),
    ((2, 4, 12, 12), geom([3, 3], pads=[1, 1, 1, 1], group=2), 4),
]
IDS = [f"{len(s) - 2}d-g{g.group}-{i}" for i, (s, g, _) in enumerate(CASES)]


def conv_case(shape, g, units, dtype, offset, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(units, shape[1] // g.group) + g.kernel)
    layer = Layer(index=1, name="conv", op="Conv", input="x", output="y", weight=w.reshape(units, -1), conv=g)
    x = (rng.random(shape) * 2 + offset).astype(dtype)
    x[rng.random(shape) < 0.3] = 0                       # zeros, as after a ReLU
    out = output_shape(g, shape[2:])
    p = patches(x.astype(np.float64), g)                 # y = W x + b, the conv itself
    mg, per = units // g.group, layer.weight.shape[1]
    yy = np.concatenate([p[:, k * per:(k + 1) * per] @ layer.weight[k * mg:(k + 1) * mg].T
                         for k in range(g.group)], axis=1) + 3 * offset
    y = np.moveaxis(yy.reshape((shape[0],) + out + (units,)), -1, 1).astype(dtype)
    return layer, x, y


def reference_cov(layer, x, y) -> list[np.ndarray]:
    p = patches(x.astype(np.float64), layer.conv)
    yy = np.moveaxis(y.astype(np.float64), 1, -1).reshape(-1, layer.units)
    per, mg = layer.weight.shape[1], layer.units // layer.group
    return [np.cov(np.c_[p[:, k * per:(k + 1) * per], yy[:, k * mg:(k + 1) * mg]], rowvar=False, bias=True)
            [:per, per:] for k in range(layer.group)]


def feed(layer, x, y, cuts=None) -> LayerStats:
    st = LayerStats(layer)
    cuts = cuts or [0, len(x)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        st.update(x[a:b], y[a:b] if y is not None else None, None)
    return st


@pytest.mark.parametrize("shape, g, units", CASES, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1000.0])
@pytest.mark.parametrize("gram", [False, True], ids=["conv", "conv-gram"])
def test_conv_float64_sums_equal_the_patch_covariance(monkeypatch, shape, g, units, offset, gram):
    monkeypatch.setattr(stats, "GRAM_RATIO", 1e9 if gram else 0.0)
    monkeypatch.setattr(convstats, "CHUNK_BYTES", 1)      # one item per chunk
    monkeypatch.setattr(products, "BLOCK_ROWS", 7)       # (float64 ignores blocks, but must stay exact)
    layer, x, y = conv_case(shape, g, units, np.float64, offset)
    st = feed(layer, x, y, [0, 1, len(x)])
    assert st.route == ("conv-gram" if gram else "conv") and stats.needs_output(layer) != gram
    fin = st.finish()
    for got, want in zip(fin.cov, reference_cov(layer, x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9)
    assert fin.samples == len(x) * int(np.prod(y.shape[2:]))


@pytest.mark.parametrize("shape, g, units", CASES, ids=IDS)
@pytest.mark.parametrize("offset", [0.0, 1000.0])
@pytest.mark.parametrize("gram", [False, True], ids=["conv", "conv-gram"])
def test_conv_float32_products_have_float32_accuracy(monkeypatch, shape, g, units, offset, gram):
    monkeypatch.setattr(stats, "GRAM_RATIO", 1e9 if gram else 0.0)
    monkeypatch.setattr(products, "FLOAT32_MIN_SIZE", 0)
    monkeypatch.setattr(products, "BLOCK_ROWS", 16)      # several blocks per chunk
    layer, x, y = conv_case(shape, g, units, np.float32, offset)
    fin = feed(layer, x, y, [0, 2, len(x)]).finish()
    p = patches(x.astype(np.float64), layer.conv)
    scale = np.outer(p.std(axis=0), np.ones(layer.units // layer.group))
    for k, (got, want) in enumerate(zip(fin.cov, reference_cov(layer, x, y))):
        sd_y = np.moveaxis(y.astype(np.float64), 1, -1).reshape(-1, layer.units).std(axis=0)
        tol = 1e-5 * scale[k * want.shape[0]:(k + 1) * want.shape[0]] * sd_y[k * want.shape[1]:(k + 1) * want.shape[1]]
        assert np.all(np.abs(got - want) <= tol + 1e-12), np.abs(got - want).max()


def test_conv_float32_route_is_taken_for_large_layers():
    assert products.work_dtype(products.FLOAT32_MIN_SIZE, np.zeros(1, np.float32)) == np.float32
    assert products.work_dtype(products.FLOAT32_MIN_SIZE - 1, np.zeros(1, np.float32)) == np.float64
    assert products.work_dtype(1 << 30, np.zeros(1, np.float64)) == np.float64
    assert products.work_dtype(1 << 30, np.zeros(1, np.float32), np.zeros(1, np.float64)) == np.float64


# --------------------------------------------------------------------------- dense routes

def dense_case(n=300, p=12, m=5, offset=0.0, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(m, p))
    x = np.maximum(rng.normal(size=(n, p)), 0) * rng.uniform(0.5, 4, p) + offset
    x = x.astype(dtype)
    y = (x.astype(np.float64) @ w.T).astype(dtype)
    layer = Layer(index=1, name="fc", op="Gemm", input="x", output="y", weight=w)
    want = np.cov(np.c_[x.astype(np.float64), x.astype(np.float64) @ w.T], rowvar=False, bias=True)[:p, p:]
    return layer, x, y, want


@pytest.mark.parametrize("route", ["gram", "cross"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_dense_routes_equal_the_definition(monkeypatch, route, dtype, offset):
    monkeypatch.setattr(stats, "GRAM_RATIO", 1e9 if route == "gram" else 0.0)
    monkeypatch.setattr(products, "FLOAT32_MIN_SIZE", 0)
    monkeypatch.setattr(comoments, "BLOCK_ROWS", 64)          # float32 rows are buffered and flushed 64 at a time
    layer, x, y, want = dense_case(offset=offset, dtype=dtype)
    st = feed(layer, x, y if route == "cross" else None, [0, 1, 50, 51, 200, 300])
    assert st.route == route and stats.needs_output(layer) == (route == "cross")
    got = st.finish().cov[0]
    if route == "cross":      # against the outputs as given (rounded to float32 when the data are float32)
        want = np.cov(np.c_[x.astype(np.float64), y.astype(np.float64)], rowvar=False, bias=True)[:x.shape[1], x.shape[1]:]
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    else:
        sd = np.sqrt(np.outer(np.diag(np.cov(x.astype(np.float64), rowvar=False)), np.diag(np.atleast_2d(
            np.cov(x.astype(np.float64) @ layer.weight.T, rowvar=False)))))
        assert np.all(np.abs(got - want) <= 2e-5 * sd), np.abs(got - want).max()


def test_dense_float32_buffer_survives_pickling_and_merging(monkeypatch):
    """A shard is pickled with rows still buffered; the pickle carries them, and the merge equals one pass."""
    monkeypatch.setattr(products, "FLOAT32_MIN_SIZE", 0)
    layer, x, _, want = dense_case(n=500, p=40, m=30, offset=3.0, dtype=np.float32)
    assert stats.route(layer) == "gram"
    whole = feed(layer, x, None, [0, 100, 250, 500]).finish().cov[0]
    first = pickle.loads(pickle.dumps(feed(layer, x[:170], None)))
    second = feed(layer, x[170:], None)
    second.update(x[:0], None, None)
    merged = LayerStats(layer)
    merged.merge(first)
    merged.merge(second)
    merged.layer = first.layer = layer
    first.update(x[170:], None, None)      # a shard that goes on after pickling
    for got in (merged.finish().cov[0], first.finish().cov[0]):
        np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    np.testing.assert_allclose(whole, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


def test_gram_route_needs_no_output_and_matches_the_cross_route_on_a_wide_classifier(monkeypatch):
    layer, x, y, want = dense_case(p=30, m=3)
    assert stats.route(layer) == "cross"                 # P > 1.5 M
    got = feed(layer, x, y).finish().cov[0]
    monkeypatch.setattr(stats, "GRAM_RATIO", 100.0)
    assert stats.route(layer) == "gram"
    np.testing.assert_allclose(feed(layer, x, None).finish().cov[0], got, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- --precision, end to end

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
CNN = REPO / "sample_models" / "digits_cnn.onnx"
DIGITS = REPO / "sample_models" / "digits_test.npz"
FIGURES = ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "S_mean_centred", "G_mean_centred")


def test_precision_float64_and_mixed_agree_on_the_sample_cnn(run_cli):
    import json

    runs = {}
    for precision in ("mixed", "float64"):
        r = run_cli("analyze", CNN, "--data", DIGITS, "--json", "--precision", precision)
        runs[precision] = json.loads(r.stdout)
        assert runs[precision]["settings"]["precision"] == precision
    mixed, exact = runs["mixed"], runs["float64"]
    # some layer has co-moment matrices large enough for the float32 route (inputs per unit x units per group)
    assert any(L["weight_shape"][1] * L["units"] // L["group"] >= products.FLOAT32_MIN_SIZE for L in mixed["layers"])
    for a, b in zip(mixed["layers"], exact["layers"]):
        assert a["inputs_kept"] == b["inputs_kept"] and a["undefined_units"] == b["undefined_units"]
        for key in FIGURES:
            assert (a[key] is None) == (b[key] is None), key
            if a[key] is not None:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["name"], key)
    assert mixed["network"]["G_total"] == pytest.approx(exact["network"]["G_total"], rel=1e-5)


def test_unknown_precision_is_a_usage_error(run_cli):
    r = run_cli("analyze", CNN, "--data", DIGITS, "--precision", "float16", code=2)
    assert "float16" in r.stderr and "Traceback" not in r.stderr
    from snrcli.errors import UsageError
    import snrcli

    with pytest.raises(UsageError, match="precision 'float16'"):
        snrcli.analyze(CNN, DIGITS, precision="float16")


@pytest.mark.parametrize("gram", [False, True], ids=["conv", "conv-gram"])
def test_conv_sums_settle_when_the_padding_changes_between_batches(monkeypatch, gram):
    """The padding and shift corrections are added when the statistics are read (``ConvSums.settle``),
    from position-wise sums gathered over the batches; a batch of another spatial shape (here SAME_UPPER
    on 4x4 items, which reads no padding, then 5x5 items, which do) settles the sums so far first."""
    monkeypatch.setattr(stats, "GRAM_RATIO", 1e9 if gram else 0.0)
    g = geom([2, 2], [2, 2], None, None, "SAME_UPPER")
    layer, x4, _ = conv_case((3, 2, 4, 4), g, 3, np.float64, 50.0, seed=1)
    _, x5, _ = conv_case((2, 2, 5, 5), g, 3, np.float64, 50.0, seed=2)
    y4 = np.moveaxis(patches(x4, g).reshape(3, 2, 2, -1) @ layer.weight.T, -1, 1)
    y5 = np.moveaxis(patches(x5, g).reshape(2, 3, 3, -1) @ layer.weight.T, -1, 1)
    st = LayerStats(layer)
    kept = []
    for x, y in ((x4, y4), (x5, y5), (x4[:1], y4[:1])):
        st.update(x, None if gram else y, None)
        kept.append(st._conv._pending[0][0])       # the spatial shape of the sums waiting
    assert kept == [(4, 4), (5, 5), (4, 4)]
    fin = st.finish()
    assert st._conv._pending is None
    p = np.concatenate([patches(x4, g), patches(x5, g), patches(x4[:1], g)])
    yy = p @ layer.weight.T
    want = np.cov(np.c_[p, yy], rowvar=False, bias=True)[:p.shape[1], p.shape[1]:]
    np.testing.assert_allclose(fin.cov[0], want, rtol=1e-9, atol=1e-9)
    assert fin.samples == len(p)
