"""Streamed, mergeable float64 statistics (spec section 2)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snrcli.model.graph import ConvGeometry, Layer
from helpers import patches
from snrcli.stats import comoments
from snrcli.stats.layer import CoMoments, LayerStats, gate_matrix


def cross_cov(x, y):
    """Population covariance block cov(x_j, y_i) via np.cov(..., bias=True)."""
    p = x.shape[1]
    return np.cov(np.c_[x, y], rowvar=False, bias=True)[:p, p:]


def feed(acc, x, y, cuts):
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.update(x[a:b], y[a:b])
    return acc


def test_cov_equals_numpy_cross_block():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    y[:, 0] += 2 * x[:, 1]
    acc = CoMoments(4, 3)
    acc.update(x, y)
    assert acc.n == 50
    np.testing.assert_allclose(acc.cov()[0], cross_cov(x, y), rtol=1e-12, atol=1e-14)
    assert acc.cov()[0][1, 0] == pytest.approx(2 * x[:, 1].var(), rel=0.3)  # real signal, not noise


def test_cov_hand_values():
    # x1 = [0, 2, 0, 2], x2 = [0, 0, 1, 3]; y = x1 + x2: cov(x1, y) = 3/2, cov(x2, y) = 2 (see test_metrics)
    x = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], float)
    acc = CoMoments(2, 1)
    acc.update(x, x.sum(axis=1, keepdims=True))
    assert acc.cov()[0].ravel().tolist() == [1.5, 2.0]


def test_empty_accumulator_cov_is_nan_and_empty_update_is_ignored():
    acc = CoMoments(2, 2)
    acc.update(np.zeros((0, 2)), np.zeros((0, 2)))
    assert acc.n == 0 and np.isnan(acc.cov()[0]).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 120), seed=st.integers(0, 10_000), pieces=st.integers(1, 12))
def test_batch_split_invariance(n, seed, pieces):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * rng.uniform(0.1, 10, 3) + rng.normal(size=3) * 5
    y = x @ rng.normal(size=(3, 2)) + rng.normal(size=(n, 2))
    one = feed(CoMoments(3, 2), x, y, [0, n])
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, n + 1, pieces)), n])
    many = feed(CoMoments(3, 2), x, y, cuts)
    assert many.n == n
    np.testing.assert_allclose(many.cov()[0], one.cov()[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.cov()[0], cross_cov(x, y), rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 120), seed=st.integers(0, 10_000), shards=st.integers(2, 6))
def test_merge_equals_single_pass(n, seed, shards):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) + [3.0, -40.0]
    y = x @ [[1.0, 0.5], [-2.0, 0.25]] + rng.normal(size=(n, 2))
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, n + 1, shards - 1)), n])
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc = CoMoments(2, 2)
        half = (a + b) // 2
        acc.update(x[a:half], y[a:half])
        acc.update(x[half:b], y[half:b])
        parts.append(acc)
    merged = CoMoments(2, 2)          # starts empty: the first merge adopts the shard
    for p in parts:
        merged.merge(p)
    merged.merge(CoMoments(2, 2))     # merging an empty shard changes nothing
    single = feed(CoMoments(2, 2), x, y, [0, n])
    assert merged.n == n
    np.testing.assert_allclose(merged.cov()[0], single.cov()[0], rtol=1e-9, atol=1e-12)


def test_merge_does_not_alias_the_other_accumulator():
    rng = np.random.default_rng(3)
    a, b = CoMoments(2, 1), CoMoments(2, 1)
    b.update(rng.normal(size=(5, 2)), rng.normal(size=(5, 1)))
    before = b.cov()[0].copy()
    a.merge(b)
    a.update(rng.normal(size=(5, 2)), rng.normal(size=(5, 1)))
    np.testing.assert_array_equal(b.cov()[0], before)


def test_large_mean_is_still_accurate():
    rng = np.random.default_rng(4)
    n = 20_000
    x = rng.normal(size=(n, 2)) + 1e6
    y = (x - 1e6) @ [[2.0], [-1.0]] + 1e6 + rng.normal(size=(n, 1)) * 0.1
    xc, yc = x - x.mean(0), y - y.mean(0)
    exact = xc.T @ yc / n               # two-pass, centred first
    for cuts in ([0, n], list(range(0, n, 999)) + [n]):
        acc = feed(CoMoments(2, 1), x, y, cuts)
        np.testing.assert_allclose(acc.cov()[0], exact, rtol=1e-8, atol=1e-8)
    # shards whose means differ by 1e6: the merge must re-centre exactly
    a, b = CoMoments(2, 1), CoMoments(2, 1)
    a.update(x[: n // 2] - 1e6, y[: n // 2] - 1e6)
    b.update(x[n // 2:], y[n // 2:])
    xx = np.r_[x[: n // 2] - 1e6, x[n // 2:]]
    yy = np.r_[y[: n // 2] - 1e6, y[n // 2:]]
    a.merge(b)
    np.testing.assert_allclose(a.cov()[0], cross_cov(xx, yy), rtol=1e-9)


def test_float32_input_is_accumulated_in_float64():
    x = np.array([[1e6 + 1], [1e6 - 1], [1e6 + 1], [1e6 - 1]], dtype=np.float32)
    acc = CoMoments(1, 1)
    acc.update(x, x)
    assert acc.cov()[0][0, 0] == 1.0



@pytest.mark.parametrize("rows, p", [(4096, 1024), (64, 784), (7, 3), (100, 1000)])
def test_row_buffer_and_its_shift_share_a_page_offset(rows, p):
    from snrcli.stats.comoments import _buffer_and_shift

    buf, vec = _buffer_and_shift(rows, p)
    assert buf.shape == (rows, p) and vec.shape == (p,) and buf.dtype == vec.dtype == np.float32
    assert buf.flags.c_contiguous and vec.flags.c_contiguous
    assert (vec.ctypes.data - buf.ctypes.data) % 4096 == 0
    assert vec.ctypes.data >= buf.ctypes.data + buf.nbytes          # no overlap
    if p % 8 == 0:   # no row starts 4-28 bytes before the vector, modulo 4 kB (see the docstring)
        offsets = (vec.ctypes.data - buf.ctypes.data - 4 * p * np.arange(rows)) % 4096
        assert not np.any((offsets >= 4) & (offsets <= 28))


@pytest.mark.parametrize("gram", [False, True])
def test_float32_shifts_follow_a_shift_set_after_the_buffers_exist(gram):
    rng = np.random.default_rng(3)
    x = (rng.random((300, 40)) + 5).astype(np.float32)
    y = (rng.random((300, 30)) - 7).astype(np.float32)
    acc = CoMoments(40, 30, gram=gram)
    acc.buffer_rows()                      # the float32 shifts exist before the first batch sets the shift
    acc.update(x, None if gram else y)
    np.testing.assert_array_equal(acc._xshift, acc.shift_x[0])
    assert acc.shift_x[0, 0] > 5
    exact = CoMoments(40, 30, gram=gram, exact=True)
    exact.update(x, None if gram else y)
    np.testing.assert_allclose(acc.cov()[0], exact.cov()[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n, block", [(1, 128), (5, 128), (300, 128), (256, 64), (7, 2)])
def test_mirror_upper_copies_the_upper_triangle_down(n, block):
    from snrcli.stats.products import mirror_upper

    m = np.random.default_rng(n).random((n, n))
    want = np.triu(m) + np.triu(m, 1).T
    mirror_upper(m, block)
    np.testing.assert_array_equal(m, want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_float32_gram_is_whole_after_folds_and_merges(threads, monkeypatch):
    """A Gram matrix's products cut into bands of columns between threads fill its upper triangle, which
    is mirrored whenever the sums are read (cov, merge, pickling); adding more afterwards still gives
    the whole Gram matrix."""
    from snrcli.stats.threads import StatThreads

    monkeypatch.setattr(comoments, "PRODUCT_SPLIT_MIN", 1)
    pool = StatThreads(threads)
    flush = CoMoments.flush
    monkeypatch.setattr(CoMoments, "flush", lambda self, p=None: flush(self, pool))
    rng = np.random.default_rng(7)
    x = (rng.random((3000, 40)) * 3 + 2).astype(np.float32)
    exact = CoMoments(40, 40, gram=True, exact=True)
    exact.update(x)
    acc = CoMoments(40, 40, gram=True)
    acc.update(x[:1000])
    acc.flush()
    first = acc.cov()[0]                               # folded: mirrored
    np.testing.assert_allclose(first, first.T, rtol=0, atol=0)
    acc.update(x[1000:2000])
    acc.flush()                                        # upper triangle only again, on top of whole sums
    other = CoMoments(40, 40, gram=True)
    other.update(x[2000:])
    acc = pickle.loads(pickle.dumps(acc))
    acc.merge(other)
    got = acc.cov()[0]
    np.testing.assert_allclose(got, got.T, rtol=0, atol=0)
    np.testing.assert_allclose(got, exact.cov()[0], rtol=1e-5, atol=1e-6)
    pool.close()


@pytest.mark.parametrize("threads", [2, 3])
def test_cross_products_cut_into_columns_between_threads(threads, monkeypatch):
    from snrcli.stats.threads import StatThreads

    monkeypatch.setattr(comoments, "PRODUCT_SPLIT_MIN", 1)
    rng = np.random.default_rng(8)
    x = (rng.random((500, 30)) + 1).astype(np.float32)
    y = (rng.random((500, 70)) - 2).astype(np.float32)
    exact = CoMoments(30, 70, exact=True)
    exact.update(x, y)
    acc = CoMoments(30, 70)
    with StatThreads(threads) as pool:
        acc.update(x, y)
        acc.flush(pool)
    np.testing.assert_allclose(acc.cov()[0], exact.cov()[0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- LayerStats

def dense_layer(w, gate=None):
    return Layer(index=1, name="fc", op="Gemm", input="x", output="y", weight=np.asarray(w, float), gate=gate)


def conv_layer(w, group=1, pads=(1, 1, 1, 1)):
    w = np.asarray(w, float)
    g = ConvGeometry(kernel=w.shape[2:], strides=(1, 1), dilations=(1, 1), pads=pads, auto_pad="NOTSET",
                     group=group)
    return Layer(index=1, name="conv", op="Conv", input="x", output="y", weight=w.reshape(w.shape[0], -1), conv=g)


def test_layer_stats_dense_hand_values():
    x = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], np.float32)
    w = np.array([[1, 1], [1, -1]])
    L = dense_layer(w, gate="h")
    st_ = LayerStats(L)
    y = x @ w.T
    st_.update(x, y, np.maximum(y, 0))
    fin = st_.finish()
    assert fin.samples == 4
    np.testing.assert_allclose(fin.cov[0], [[1.5, 0.5], [2.0, -1.0]])
    assert fin.m.tolist() == [2, 3] and fin.a.tolist() == [0.5, 0.5]
    assert fin.r.tolist() == [0.75, 0.25]


def test_layer_stats_no_gate_means_activity_one():
    L = dense_layer(np.eye(2))
    st_ = LayerStats(L)
    st_.update(np.array([[1.0, 0.0], [0.0, 0.0]]), None, None)   # y computed from the weight
    fin = st_.finish()
    assert fin.r.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(fin.cov[0], [[0.25, 0], [0, 0]])


def test_layer_stats_merge_equals_single_pass():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 4))
    x = np.maximum(rng.normal(size=(40, 4)), 0)
    x[:, 2] *= 7
    y = x @ w.T
    L = dense_layer(w, gate="g")
    whole = LayerStats(L)
    whole.update(x, y, y)
    parts = []
    for a, b in [(0, 13), (13, 14), (14, 40)]:
        s = LayerStats(L)
        s.update(x[a:b], y[a:b], y[a:b])
        parts.append(pickle.loads(pickle.dumps(s)))   # shards travel pickled, without the layer
    assert parts[0].layer is None
    merged = LayerStats(L)
    for p in parts:
        merged.merge(p)
    f1, f2 = whole.finish(), merged.finish()
    np.testing.assert_allclose(f2.cov[0], f1.cov[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(f2.m, f1.m)
    np.testing.assert_array_equal(f2.a, f1.a)
    np.testing.assert_array_equal(f2.r, f1.r)
    assert f2.samples == f1.samples == 40
    np.testing.assert_allclose(f1.m, np.abs(x).max(0))
    np.testing.assert_allclose(f1.a, (x != 0).mean(0))
    np.testing.assert_allclose(f1.r, (y > 0).mean(0))


def test_layer_stats_conv_channels_ignore_padding_and_samples_count_positions():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 2, 4, 5))
    x[:, 1] = np.where(rng.random((3, 4, 5)) < 0.25, 2.0, 0.0)
    w = rng.normal(size=(4, 2, 3, 3))
    L = conv_layer(w)
    p = patches(x, L.conv)
    y = np.moveaxis((p @ L.weight.T).reshape(3, 4, 5, 4), -1, 1)
    st_ = LayerStats(L)
    st_.update(x[:2], y[:2], None)
    st_.update(x[2:], y[2:], None)
    fin = st_.finish()
    assert fin.samples == 3 * 4 * 5
    np.testing.assert_allclose(fin.m, np.abs(x).max(axis=(0, 2, 3)))
    np.testing.assert_allclose(fin.a, (x != 0).mean(axis=(0, 2, 3)))   # padding zeros not counted
    np.testing.assert_allclose(fin.cov[0], np.cov(np.c_[p, p @ L.weight.T], rowvar=False, bias=True)[:18, 18:],
                               rtol=1e-9, atol=1e-12)


def test_layer_stats_grouped_conv_covariances_per_group():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 4, 5, 5))
    w = rng.normal(size=(6, 2, 3, 3))
    L = conv_layer(w, group=2)
    p = patches(x, L.conv)
    yk = [p[:, :18] @ L.weight[:3].T, p[:, 18:] @ L.weight[3:].T]
    y = np.moveaxis(np.c_[yk[0], yk[1]].reshape(2, 5, 5, 6), -1, 1)
    st_ = LayerStats(L)
    st_.update(x, y, None)
    fin = st_.finish()
    assert len(fin.cov) == 2 and fin.cov[0].shape == (18, 3)
    np.testing.assert_allclose(fin.cov[1], np.cov(np.c_[p[:, 18:], yk[1]], rowvar=False, bias=True)[:18, 18:],
                               rtol=1e-9, atol=1e-12)
    assert fin.m.shape == (4,)


def test_gate_matrix_tracks_the_unit_axis_through_size_one_axes():
    y_shape = (2, 3, 1, 1)                  # conv output, unit axis 1
    gate = np.arange(6.0).reshape(2, 3)     # squeezed before the Relu
    np.testing.assert_array_equal(gate_matrix(gate, y_shape, 1, 3), gate)
    gate4 = np.arange(6.0).reshape(2, 1, 3)
    np.testing.assert_array_equal(gate_matrix(gate4, (2, 3), -1, 3), gate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("kind", ["relu", "signed", "negative zero", "nan", "-nan", "inf", "all zero"])
def test_abs_max_equals_the_two_pass_definition(dtype, kind):
    from snrcli.stats.passes import abs_max
    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 5, 4)).astype(dtype)
    if kind != "signed":
        a = np.abs(a)
    special = {"negative zero": -0.0, "nan": np.nan, "-nan": -np.nan, "inf": np.inf}
    if kind in special:
        a[2, 3, 1] = special[kind]
        if kind == "-nan":                      # a NaN with its sign bit set
            a[2, 3, 1] = -np.abs(a[2, 3, 1])
            assert np.signbit(a[2, 3, 1])
    if kind == "all zero":
        a[:] = 0
    for axes in [(0,), (0, 2), (1,)]:
        want = np.maximum(a.max(axis=axes), -a.min(axis=axes))
        got = abs_max(a, axes)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    np.testing.assert_array_equal(abs_max(a.reshape(28, 5)[::2], (0,)), np.abs(a.reshape(28, 5)[::2]).max(axis=0))


@pytest.mark.parametrize("shape, axis", [((600, 13), 1), ((300, 8), 1), ((5, 3, 7, 9), 1), ((2, 3, 4), 2),
                                         ((4, 6), 0), ((1, 1), 1), ((0, 5), 1), ((257, 2, 3), 1)])
@pytest.mark.parametrize("test", [np.not_equal, np.greater])
def test_count_along_equals_count_nonzero(shape, axis, test):
    """Byte-wide counters summed 255 rows at a time: more rows than that, widths not a multiple of 8."""
    from snrcli.stats.passes import count_along
    rng = np.random.default_rng(1)
    a = (rng.normal(size=shape) * (rng.random(shape) < 0.6)).astype(np.float32)
    axes = tuple(i for i in range(a.ndim) if i != axis)
    got = count_along(a, test, axis)
    np.testing.assert_array_equal(got, np.count_nonzero(test(a, 0), axis=axes))
    assert got.dtype == np.int64
    full = np.ones((1000, 3), np.float32)           # every counter at its most: 1000 > 255 rows
    np.testing.assert_array_equal(count_along(full, test, 1), [1000] * 3)
    np.testing.assert_array_equal(count_along(a.T if a.ndim == 2 else a, test, 0 if a.ndim == 2 else axis),
                                  np.count_nonzero(test(a.T if a.ndim == 2 else a, 0),
                                                   axis=(1,) if a.ndim == 2 else axes))
