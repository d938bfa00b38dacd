"""Statistics threads: conv batches split across accumulators, run side by side, merged at the end
(``snrcli.stats.threads``, ``LayerStats.split``, ``Analysis.fold``); dense rows waiting, their passes and
products shared out (``LayerStats.update``/``drain``, ``CoMoments.flush``)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import snrcli
from snrcli.stats import comoments, passes
from snrcli.stats import layer as stats
from snrcli.analysis.accumulate import Analysis
from snrcli.model.graph import ConvGeometry, Layer, discover
from snrcli.stats.threads import StatThreads, stats_threads
from snrcli.stats.layer import LayerStats

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def blas_threads() -> list[int]:
    """The BLAS libraries' thread counts, as threadpoolctl sees them."""
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


# --------------------------------------------------------------------------- the pool

def test_map_runs_every_index_at_once_and_keeps_the_order():
    seen: dict[int, str] = {}
    barrier = threading.Barrier(3, timeout=10)   # fails unless all three run at the same time

    def fn(i):
        seen[i] = threading.current_thread().name
        barrier.wait()
        return i * i

    with StatThreads(3) as pool:
        assert pool.map(fn) == [0, 1, 4]
    assert seen[0] == threading.current_thread().name      # index 0 runs on the caller
    assert all(seen[i].startswith("snr-stats") for i in (1, 2))


def test_map_raises_the_first_error_after_every_thread_is_done():
    done = []

    def fn(i):
        if i == 1:
            raise ValueError("boom 1")
        if i == 2:
            raise KeyError("boom 2")
        done.append(i)

    with StatThreads(4) as pool:
        with pytest.raises(ValueError, match="boom 1"):
            pool.map(fn)
    assert sorted(done) == [0, 3]


def test_one_thread_holds_every_blas_to_one_thread_and_puts_the_counts_back():
    import scipy.linalg  # noqa: F401 - its BLAS loaded, as the weight baselines load it
    from snrcli.stats.blas import one_thread

    if not blas_threads():
        pytest.skip("no BLAS that threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        with one_thread():
            assert set(blas_threads()) == {1}
            with one_thread():                           # holds may overlap (nested, or two analyses)
                assert set(blas_threads()) == {1}
            assert set(blas_threads()) == {1}            # still held by the outer one
        assert set(blas_threads()) == {2}                # the counts found are put back


def test_a_blas_loaded_after_an_earlier_hold_is_held_too():
    """A notebook runs a small analysis (numpy's BLAS only), then imports scipy (its own OpenBLAS): the
    next hold finds scipy's library too. A fresh process, so scipy is surely not loaded before."""
    code = textwrap.dedent("""
        import numpy
        from threadpoolctl import threadpool_info, threadpool_limits
        from snrcli.stats.blas import one_thread
        with one_thread():
            pass
        import scipy.linalg
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        with threadpool_limits(limits=2, user_api="blas"), one_thread():
            held = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        print(len(blas), held)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if int(out[0]) < 2:
        pytest.skip("numpy and scipy share one BLAS library here")
    assert out[1:] == ["[1]"]


def test_an_analysis_runs_its_blas_on_one_thread(monkeypatch):
    """Whatever the caller imported first: idle OpenBLAS threads woken by a multi-threaded call would
    spin into onnxruntime's time."""
    from snrcli.analysis.runner import Runner

    if not blas_threads():
        pytest.skip("no BLAS that threadpoolctl can see")
    seen = []
    run = Runner.run
    monkeypatch.setattr(Runner, "run", lambda self, feeds: (seen.append(set(blas_threads())), run(self, feeds))[1])
    with threadpool_limits(limits=2, user_api="blas"):
        snrcli.analyze(SAMPLES / "digits_mlp.onnx", SAMPLES / "digits_test.npz", batch_size=256)
        assert set(blas_threads()) == {2}
    assert seen and all(s == {1} for s in seen)


def test_default_thread_count(monkeypatch):
    from snrcli.analysis.settings import MAX_DEFAULT_THREADS

    assert MAX_DEFAULT_THREADS == 4                      # the documented default (docs/commands.md and --help, --threads)
    monkeypatch.setattr("snrcli.stats.threads.available_cores", lambda: 64)
    assert stats_threads(None, 4) == 4 and stats_threads(3, 4) == 3 and stats_threads(None, 8) == 8
    monkeypatch.setattr("snrcli.stats.threads.available_cores", lambda: 2)
    assert stats_threads(None, 4) == 2


# --------------------------------------------------------------------------- splitting a batch

def dense_layer(p=8, m=4, transposed=False):
    w = np.arange(m * p, dtype=np.float64).reshape(m, p) / 10
    return Layer(index=1, name="fc", op="MatMul", input="x", output="y", weight=w, gate="g",
                 input_transposed=transposed)


def test_row_range_slices_across_pieces():
    a, b = np.arange(5), np.arange(5, 12)
    got = comoments._row_range([(a, None), (b, b * 2)], 3, 9)
    assert [p[0].tolist() for p in got] == [[3, 4], [5, 6, 7, 8]]
    assert got[0][1] is None and got[1][1].tolist() == [10, 12, 14, 16]
    assert comoments._row_range([(a, None)], 5, 5) == []


@pytest.mark.parametrize("p, m", [(8, 4), (6, 5)])   # the cross route, the Gram route
def test_dense_rows_are_shared_out_and_multiplied_when_the_buffers_fill(monkeypatch, p, m):
    """A batch's rows are taken in at once: the threads share the passes over them and their shifts into
    the row buffers, which are multiplied whenever they fill (each thread multiplying into its columns of
    the sums); ``finish`` multiplies the rest. Batches of 3-D inputs and a gate: the figures equal float64
    ones fed batch by batch."""
    monkeypatch.setattr(comoments, "BLOCK_SPLIT_MIN", 0)
    monkeypatch.setattr(comoments, "PRODUCT_SPLIT_MIN", 0)
    monkeypatch.setattr(comoments, "BUFFER_BYTES", 0)        # 64-row buffers
    monkeypatch.setattr("snrcli.stats.products.FLOAT32_MIN_SIZE", 0)
    layer = dense_layer(p, m)
    st, exact = LayerStats(layer), LayerStats(layer, exact=True)
    assert st.route == ("cross" if m == 4 else "gram")
    rng = np.random.default_rng(5)
    xs = [np.maximum(rng.standard_normal((k, 3, p)), 0).astype(np.float32) for k in (7, 9, 2, 12, 1, 15)]
    # rows pending: 21, 48, 54; 90: 10 fill the buffers (product), 26 pending; 29; 74: 35 fill them, 10 pending
    expect = [(0, 21, 0), (0, 48, 0), (0, 54, 0), (0, 26, 64), (0, 29, 64), (0, 10, 128)]
    with StatThreads(3) as pool:
        for x, (waiting, pending, multiplied) in zip(xs, expect):
            y = (x @ layer.weight.T).astype(np.float32)
            gate = np.maximum(y, 0)
            st.update(x, y if st.route == "cross" else None, gate, pool=pool)
            exact.update(x, y if st.route == "cross" else None, gate)
            assert (st._waiting, st.acc.pending, st.samples - st.acc.pending) == (waiting, pending, multiplied)
    a, b = st.finish(), exact.finish()
    assert st._waiting == 0 and a.samples == b.samples == 138
    np.testing.assert_allclose(a.cov[0], b.cov[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.m, b.m)
    np.testing.assert_array_equal(a.a, b.a)
    np.testing.assert_array_equal(a.r, b.r)


def test_float64_route_rows_wait_and_give_the_figures_of_each_batch_alone(monkeypatch):
    """Small layers (float64 products) queue their rows too, until SMALL_PASS_VALUES values: a small
    model's batches then cost a list append per layer, not a dozen numpy calls."""
    monkeypatch.setattr(stats, "SMALL_PASS_VALUES", 30 * 7)     # 30 rows of 5 + 2 values
    layer = dense_layer(5, 2)
    assert layer.weight.size < 512                            # float64 products (FLOAT32_MIN_SIZE)
    st = LayerStats(layer)
    rng = np.random.default_rng(8)
    xs = [np.maximum(rng.standard_normal((k, 5)), 0).astype(np.float32) for k in (12, 10, 9, 4, 30)]
    rows = []
    for x in xs:
        y = (x @ layer.weight.T).astype(np.float32)
        st.update(x, y, np.maximum(y, 0))
        rows.append((st._waiting, st.samples))
    assert rows == [(12, 0), (22, 0), (0, 31), (4, 31), (0, 65)]
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate([(v @ layer.weight.T).astype(np.float32) for v in xs]).astype(np.float64)
    fin = st.finish()
    np.testing.assert_allclose(fin.cov[0], ((x - x.mean(0)).T @ (y - y.mean(0))) / len(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(fin.a, np.count_nonzero(x, axis=0) / len(x))
    np.testing.assert_array_equal(fin.r, np.count_nonzero(y > 0, axis=0) / len(x))
    np.testing.assert_array_equal(fin.m, np.abs(x).max(axis=0))


@pytest.mark.parametrize("blocked", [True, False])   # float32 passes shared by threads; float64 route
def test_counted_positives_equal_numpys_whatever_the_signs(monkeypatch, blocked):
    """``count_positive``: values > 0 per input feature. Runs without a sign bit or NaN reuse the non-zero
    count; negative values, -0.0 and NaN make a run count them apart."""
    monkeypatch.setattr(comoments, "BLOCK_SPLIT_MIN", 0)
    monkeypatch.setattr("snrcli.stats.products.FLOAT32_MIN_SIZE", 0 if blocked else 1 << 30)
    rng = np.random.default_rng(11)
    relu = np.maximum(rng.standard_normal((30, 8)), 0).astype(np.float32)
    signed = rng.standard_normal((20, 8)).astype(np.float32)
    odd = np.maximum(rng.standard_normal((10, 8)), 0).astype(np.float32)
    odd[0, 1], odd[1, 2], odd[2, 3] = -0.0, np.nan, np.inf
    st = LayerStats(dense_layer(8, 4))
    st.count_positive()
    with StatThreads(2) as pool, np.errstate(all="ignore"):    # (the Inf and NaN)
        for x in (relu, signed, odd, relu[:3]):
            st.update(x, (np.nan_to_num(x) @ st.layer.weight.T).astype(np.float32), None, pool=pool)
        st.drain(pool)
    every = np.concatenate([relu, signed, odd, relu[:3]])
    np.testing.assert_array_equal(st.positive, np.count_nonzero(every > 0, axis=0))
    assert not np.array_equal(st.positive, st.channel_nonzero)     # the signed rows told them apart
    assert passes.abs_max_sign_free(relu, (0,))[1] and not passes.abs_max_sign_free(odd, (0,))[1]


def test_a_gate_read_as_the_next_layers_input_is_counted_there(monkeypatch):
    """The sample MLP's ReLU outputs are the next Gemm's inputs: that layer counts their values > 0 as it
    reads them, and the activities equal those counted from the gate tensors themselves."""
    import onnx
    import snrcli.analysis.accumulate as api

    info = discover(onnx.load(SAMPLES / "digits_mlp.onnx"), output=None, centre_classifier=True)
    assert api.gates_from_inputs(info.layers) == {0: 1, 1: 2}
    data = SAMPLES / "digits_test.npz"
    counting = []
    count_positive = LayerStats.count_positive
    monkeypatch.setattr(LayerStats, "count_positive", lambda st: counting.append(st.layer.index) or count_positive(st))
    shared = snrcli.analyze(SAMPLES / "digits_mlp.onnx", data, batch_size=100)
    assert counting == [2, 3]                        # the second and third Gemm count for the first two
    monkeypatch.setattr(api, "gates_from_inputs", lambda layers: {})
    apart = snrcli.analyze(SAMPLES / "digits_mlp.onnx", data, batch_size=100)
    for a, b in zip(shared.layers, apart.layers):
        np.testing.assert_array_equal(a.unit_r, b.unit_r)
        assert a.fields == b.fields
    assert 0 < shared.layers[0].fields["activity_mean"] < 1


def test_joined_pieces():
    a, b = np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2)
    one = [(a, None, a[:, :1])]
    assert comoments._joined(one) is one
    (x, y, g), = comoments._joined([(a, None, a[:, :1]), (b, None, b[:, :1])])
    np.testing.assert_array_equal(x, np.r_[a, b])
    assert y is None and g.shape == (5, 1)


def test_dense_layers_never_split_by_batch(monkeypatch):
    monkeypatch.setattr(stats, "SPLIT_MIN_WORK", 0)
    x = np.ones((8, 8), np.float32)
    assert LayerStats(dense_layer()).split(x, np.ones((8, 4), np.float32), None, 2) is None


def test_conv_batches_split_by_item(monkeypatch):
    monkeypatch.setattr(stats, "SPLIT_MIN_WORK", 0)
    g = ConvGeometry(kernel=(3, 3), strides=(1, 1), dilations=(1, 1), pads=(1, 1, 1, 1), auto_pad="NOTSET", group=1)
    layer = Layer(index=1, name="c", op="Conv", input="x", output="y", weight=np.ones((4, 18)), conv=g, gate="g")
    st = LayerStats(layer)
    x = np.ones((5, 2, 6, 6), np.float32)
    y = np.ones((5, 4, 6, 6), np.float32)
    pieces = st.split(x, y, y, 2)
    assert [p[0].shape[0] for p in pieces] == [2, 3] and pieces[1][2].shape == (3, 4, 6, 6)
    assert st.split(x, y[:, :, :5], None, 2) is None
    assert st.split(x, y, y[:, :1], 2) is None


def test_a_conv_layer_too_large_to_split_by_items_shares_its_products(monkeypatch):
    """A conv layer with more than SPLIT_MAX_COMOMENTS co-moments keeps one accumulator: each of its
    products is cut by rows between the threads instead (the BLAS runs on one thread during an
    analysis), with the figures of one thread."""
    monkeypatch.setattr(stats, "SPLIT_MIN_WORK", 0)
    monkeypatch.setattr(stats, "SPLIT_MAX_COMOMENTS", 0)
    monkeypatch.setattr(stats, "GRAM_RATIO", 0.0)                 # the conv route (x^T y)
    g = ConvGeometry(kernel=(3, 3), strides=(1, 1), dilations=(1, 1), pads=(1, 1, 1, 1), auto_pad="NOTSET", group=1)
    w = np.random.default_rng(3).standard_normal((4, 18))
    layer = Layer(index=1, name="c", op="Conv", input="x", output="y", weight=w, conv=g, gate=None)
    rng = np.random.default_rng(4)
    x = (rng.random((6, 2, 5, 5)) + 3).astype(np.float32)
    y = rng.standard_normal((6, 4, 5, 5)).astype(np.float32)
    info = type("Info", (), {"layers": [layer], "accuracy_output": None})()
    maps = []

    class Counting(StatThreads):
        def map(self, fn, n=None):
            maps.append(n)
            return super().map(fn, n)

    monkeypatch.setattr("snrcli.stats.products.FLOAT32_MIN_SIZE", 0)
    shared, alone = Analysis(info), Analysis(info)
    with Counting(2) as pool:
        shared.update({"x": x}, {"y": y}, 6, None, None, pool)
    alone.update({"x": x}, {"y": y}, 6, None, None)
    assert maps and shared.parts == {}                           # products shared, one accumulator
    fa, fb = shared.stats[0].finish(), alone.stats[0].finish()
    np.testing.assert_allclose(fa.cov[0], fb.cov[0], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("model", ["digits_cnn.onnx", "digits_mlp.onnx"])
@pytest.mark.parametrize("precision, rtol", [("float64", 1e-10), ("mixed", 1e-6)])
def test_split_batches_give_the_figures_of_one_thread(monkeypatch, model, precision, rtol):
    monkeypatch.setattr(stats, "SPLIT_MIN_WORK", 0)
    data = SAMPLES / "digits_test.npz"
    one = snrcli.analyze(SAMPLES / model, data, threads=1, precision=precision).to_dict()
    three = snrcli.analyze(SAMPLES / model, data, threads=3, batch_size=100, precision=precision).to_dict()
    assert one["data"]["samples"] == three["data"]["samples"]
    for a, b in zip(one["layers"], three["layers"]):
        assert a["samples"] == b["samples"] and a["undefined_units"] == b["undefined_units"]
        for key in ("S_mean", "G_mean", "S_centred_mean", "G_centred_mean"):
            if a.get(key) is not None:
                assert b[key] == pytest.approx(a[key], rel=rtol, abs=rtol), (a["name"], key)
    assert three["network"]["G_total"] == pytest.approx(one["network"]["G_total"], rel=rtol)


def test_pickling_an_analysis_folds_its_threads_and_multiplies_buffered_rows(monkeypatch):
    """A --jobs shard is pickled; the accumulators of its further threads travel merged into the first,
    and the rows its dense layers keep in their buffers are multiplied first."""
    monkeypatch.setattr(stats, "SPLIT_MIN_WORK", 0)
    import onnx
    model = onnx.load(SAMPLES / "digits_cnn.onnx")
    info = discover(model, output=None, centre_classifier=True)
    x = np.load(SAMPLES / "digits_test.npz")["input"][:40].astype(np.float32)
    from snrcli.analysis.accumulate import needed_outputs
    from snrcli.analysis.runner import Runner
    runner = Runner(model, needed_outputs(info))
    feeds = {info.inputs[0].name: x}
    split, whole = Analysis(info), Analysis(info)
    with StatThreads(3) as pool:
        split.update(feeds, runner.run(feeds), len(x), None, None, pool)
    whole.update(feeds, runner.run(feeds), len(x), None, None)
    assert sorted(split.parts) == [(t, i) for t in (1, 2) for i in range(2)]   # the two conv layers
    assert all(st.samples > 0 for st in split.parts.values())
    assert split.stats[2].acc.pending == 40                         # Gemm 64 -> 32: float32 rows not multiplied yet
    back = pickle.loads(pickle.dumps(split))
    assert back.parts == {} and back.stats[2].acc.pending == 0
    for a, b in zip(back.stats, whole.stats):
        a.layer = b.layer
        fa, fb = a.finish(), b.finish()
        assert fa.samples == fb.samples > 0
        np.testing.assert_allclose(fa.cov[0], fb.cov[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(fa.a, fb.a)


def test_a_small_run_starts_no_thread(monkeypatch):
    """The sample digits (540 items of 64 values) are too small to split: no thread."""
    def no_threads(*a, **k):
        raise AssertionError("a statistics thread was started")

    monkeypatch.setattr("snrcli.stats.threads.ThreadPoolExecutor", no_threads)
    report = snrcli.analyze(SAMPLES / "digits_mlp.onnx", SAMPLES / "digits_test.npz", batch_size=540, threads=2)
    assert report.to_dict()["data"]["samples"] == 540


@pytest.mark.parametrize("gram", [False, True])
def test_a_dense_product_is_cut_between_threads_by_columns(monkeypatch, gram):
    """Each thread multiplies every buffered row into its own columns of the sums (bands of a Gram
    matrix's upper triangle): no result buffer per thread, so no size cap; too few columns stay whole."""
    monkeypatch.setattr(comoments, "PRODUCT_SPLIT_MIN", 0)
    monkeypatch.setattr("snrcli.stats.products.FLOAT32_MIN_SIZE", 0)
    rng = np.random.default_rng(2)
    calls = []

    class Counting(StatThreads):
        def map(self, fn, n=None):
            calls.append(n)
            return super().map(fn, n)

    for m, expect in ((30, [3]), (23, [])):
        x = rng.random((200, m if gram else 12), dtype=np.float32)
        y = None if gram else rng.random((200, m), dtype=np.float32)
        calls.clear()
        acc = comoments.CoMoments(x.shape[1], m, gram=gram)
        with Counting(3) as pool:
            acc.add_rows([(x, y)], pool)
            calls.clear()                             # (the rows' shifts: too few values to share out)
            acc.flush(pool)
        assert calls == expect
        xc = x.astype(np.float64) - x.mean(axis=0)
        want = xc.T @ (xc if gram else y - y.mean(axis=0, dtype=np.float64)) / 200
        np.testing.assert_allclose(acc.cov()[0], want, rtol=1e-5, atol=1e-7)


def test_a_transposed_dense_input_gives_the_float64_figures(monkeypatch):
    """Gemm(transA=1) reads its input as x.T: the rows are transposed views, and the passes and
    products over them give the float64 figures."""
    monkeypatch.setattr(comoments, "BLOCK_SPLIT_MIN", 0)
    monkeypatch.setattr(comoments, "PRODUCT_SPLIT_MIN", 0)
    monkeypatch.setattr(comoments, "BUFFER_BYTES", 0)        # 64-row buffers
    layer = dense_layer(40, 20, transposed=True)         # 800 co-moments: float32 products
    st, exact = LayerStats(layer), LayerStats(layer, exact=True)
    rng = np.random.default_rng(9)
    with StatThreads(2) as pool:
        for k in (30, 50, 70):
            xt = np.maximum(rng.standard_normal((40, k)), 0).astype(np.float32)   # (features, samples)
            y = (xt.T @ layer.weight.T).astype(np.float32)
            st.update(xt, y if st.route == "cross" else None, np.maximum(y, 0), pool=pool)
            exact.update(xt, y if st.route == "cross" else None, np.maximum(y, 0))
    assert st.samples > 0 and st._waiting + st.acc.pending > 0
    a, b = st.finish(), exact.finish()
    assert a.samples == b.samples == 150
    np.testing.assert_allclose(a.cov[0], b.cov[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.m, b.m)
    np.testing.assert_array_equal(a.a, b.a)
    np.testing.assert_array_equal(a.r, b.r)
