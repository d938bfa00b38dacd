"""Reading the data set and feeding the model (spec section 9), through ``snrcli.analyze``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import snrcli
from helpers import init, layer, make_model, mlp, node, vi, write
from snrcli.errors import DataError, SnrError

X = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], dtype=np.float32)     # the hand data set of test_metrics
W = np.array([[1.0, 1.0], [1.0, -1.0]])
S_HAND = [42 / np.sqrt(1885), 18 / (5 * np.sqrt(13))]
G_HAND = [14 / (3 * np.sqrt(13)), 9 / (2 * np.sqrt(13))]
F32 = dict(rel=1e-6, abs=1e-7)
FIG_KEYS = ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "S_mean_centred",
            "G_mean_centred", "samples", "inputs_kept", "undefined_units")


def run(tmp_path, model, name="m"):
    """Save the model as tmp_path/NAME.onnx and return the path."""
    mp = str(tmp_path / f"{name}.onnx")
    onnx.save_model(model, mp)
    return mp


def npz(tmp_path, name="d", **arrays):
    p = tmp_path / f"{name}.npz"
    np.savez(p, **arrays)
    return str(p)


def assert_hand(rep):
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)
    assert rep.layers[0].unit_G == pytest.approx(G_HAND, **F32)


def same_figures(a, b, rtol=1e-6):
    da, db = a.to_dict(), b.to_dict()
    assert len(da["layers"]) == len(db["layers"])
    for La, Lb in zip(da["layers"], db["layers"]):
        for k in FIG_KEYS:
            if La[k] is None or Lb[k] is None:
                assert La[k] is None and Lb[k] is None, k
            else:
                assert Lb[k] == pytest.approx(La[k], rel=rtol, abs=1e-9), k
    for k in ("G_hidden", "G_final", "G_total"):
        if da["network"][k] is None or db["network"][k] is None:
            assert da["network"][k] is None and db["network"][k] is None, k
        else:
            assert db["network"][k] == pytest.approx(da["network"][k], rel=rtol), k


# --------------------------------------------------------------------------- matching arrays to inputs

def test_array_matched_by_input_name(tmp_path):
    mp = run(tmp_path, mlp([W]))
    rep = snrcli.analyze(mp, npz(tmp_path, x=X, other=np.ones((4, 7), np.float32)))
    assert_hand(rep)
    assert rep.to_dict()["data"]["arrays"] == {"x": "x"}


def test_only_array_is_used_whatever_its_name(tmp_path):
    rep = snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, images=X, labels=np.zeros(4, np.int64)))
    assert_hand(rep)
    assert rep.to_dict()["data"]["arrays"] == {"x": "images"}


def test_npy_file(tmp_path):
    np.save(tmp_path / "d.npy", X)
    rep = snrcli.analyze(run(tmp_path, mlp([W])), str(tmp_path / "d.npy"))
    assert_hand(rep)


def test_ambiguous_arrays_need_input_key(tmp_path):
    mp = run(tmp_path, mlp([W]))
    dp = npz(tmp_path, a=np.ones((4, 2), np.float32), b=X)
    with pytest.raises(DataError, match="'x'.*--input-key") as e:
        snrcli.analyze(mp, dp)
    assert "a, b" in str(e.value)
    rep = snrcli.analyze(mp, dp, input_key="b")
    assert_hand(rep)
    assert rep.to_dict()["data"]["arrays"] == {"x": "b"}
    with pytest.raises(DataError, match="'c'"):
        snrcli.analyze(mp, dp, input_key="c")


def test_multi_input_model(tmp_path):
    """Two inputs, each feeding its own layer; arrays matched by name whatever their order in the file."""
    model = make_model([node("Gemm", ["u", "W", "B"], ["y"], name="fu", transB=1),
                        node("MatMul", ["v", "Wv"], ["yv"], name="fv")],
                       [vi("u", ["N", 2]), vi("v", ["N", 3])], [vi("y", ["N", 2]), vi("yv", ["N", 1])],
                       [init("W", W), init("B", np.zeros(2)), init("Wv", np.ones((3, 1)))])
    rng = np.random.default_rng(0)
    rep = snrcli.analyze(run(tmp_path, model), npz(tmp_path, v=rng.normal(size=(4, 3)).astype(np.float32), u=X))
    assert_hand(rep)
    assert rep.to_dict()["data"]["arrays"] == {"u": "u", "v": "v"}
    assert layer(rep, 2)["samples"] == 4
    with pytest.raises(DataError, match="'v'"):
        snrcli.analyze(run(tmp_path, model), npz(tmp_path, name="e", u=X))
    with pytest.raises(DataError, match="4 items|3 items"):
        snrcli.analyze(run(tmp_path, model), npz(tmp_path, name="f", u=X, v=np.ones((3, 3), np.float32)))


# --------------------------------------------------------------------------- labels

# Logits of the hand model: y1 = [0, 2, 1, 5], y2 = [0, 2, -1, -1]; argmax (first on ties) = [0, 0, 0, 0].
@pytest.mark.parametrize("labels, kw", [
    (np.array([0, 0, 0, 1]), {}),
    (np.array([0, 0, 0, 1], np.uint8), {}),
    (np.eye(2, dtype=np.float32)[[0, 0, 0, 1]], {}),              # one-hot
    (np.array([[0], [0], [0], [1]]), {}),                          # (N, 1)
], ids=["int64", "uint8", "one-hot", "column"])
def test_labels_default_key(tmp_path, labels, kw):
    rep = snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=X, labels=labels), **kw)
    assert rep.accuracy == pytest.approx(0.75)
    assert rep.to_dict()["labelled"] == 4


def test_label_key_option_and_no_labels(tmp_path):
    mp = run(tmp_path, mlp([W]))
    # predictions are [0, 0, 0, 0] (see above): 2 of 4 right
    rep = snrcli.analyze(mp, npz(tmp_path, x=X, truth=np.array([1, 1, 0, 0])), input_key="x", label_key="truth")
    assert rep.accuracy == pytest.approx(0.5)
    rep = snrcli.analyze(mp, npz(tmp_path, name="n", x=X))
    assert rep.accuracy is None
    with pytest.raises(DataError, match="'nope'"):
        snrcli.analyze(mp, npz(tmp_path, name="k", x=X), label_key="nope")


def test_labels_of_wrong_length_are_refused(tmp_path):
    with pytest.raises(DataError, match="3 entries.*4 items"):
        snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=X, labels=np.array([0, 1, 0])))


# --------------------------------------------------------------------------- shapes

def _conv_model(c, h, w):
    w_ = np.arange(2 * c, dtype=np.float32).reshape(2, c, 1, 1) - c
    return make_model([node("Conv", ["x", "W"], ["y"], name="conv")], [vi("x", ["N", c, h, w])],
                      [vi("y", ["N", 2, h, w])], [init("W", w_)])


def _shape_error(tmp_path, model, x) -> str:
    with pytest.raises(DataError) as e:
        snrcli.analyze(run(tmp_path, model), npz(tmp_path, x=x))
    assert e.value.exit_code == 3
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_wrong_item_shape_names_both_shapes(tmp_path):
    msg = _shape_error(tmp_path, _conv_model(1, 4, 4), np.ones((5, 4, 4), np.float32))
    assert "(4, 4)" in msg and "(N, 1, 4, 4)" in msg
    msg = _shape_error(tmp_path, _conv_model(3, 4, 5), np.ones((5, 4, 5, 3), np.float32))
    assert "(4, 5, 3)" in msg and "(N, 3, 4, 5)" in msg


def test_missing_channel_axis_gets_a_hint(tmp_path):
    msg = _shape_error(tmp_path, _conv_model(1, 4, 4), np.ones((5, 4, 4), np.float32))
    assert "channel axis" in msg


def test_channels_last_data_gets_a_layout_hint(tmp_path):
    msg = _shape_error(tmp_path, _conv_model(3, 4, 5), np.ones((5, 4, 5, 3), np.float32))
    assert "--layout nhwc" in msg


def test_channels_last_data_runs_with_layout_flag(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, 4, 5, 3)).astype(np.float32)
    model = _conv_model(3, 4, 5)
    mp = run(tmp_path, model)
    rep = snrcli.analyze(mp, npz(tmp_path, x=x), layout="nhwc")
    ref = snrcli.analyze(mp, npz(tmp_path, name="t", x=np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    same_figures(ref, rep)


def test_fixed_batch_model_pads_the_last_batch(tmp_path):
    """Fixed batch 4, 10 items: batches of 4, 4 and 2 + 2 padded rows; equal to a dynamic-batch copy."""
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=(6, 5)), rng.normal(size=(3, 6))]
    bs = [rng.normal(size=6) * 0.3, np.zeros(3)]
    x = rng.normal(size=(10, 5)).astype(np.float32)
    labels = rng.integers(0, 3, 10)
    dp = npz(tmp_path, x=x, labels=labels)
    dyn = snrcli.analyze(run(tmp_path, mlp(ws, bs), "dyn"), dp)
    fixed = snrcli.analyze(run(tmp_path, mlp(ws, bs, fixed_batch=4), "fixed"), dp, batch_size=3)
    same_figures(dyn, fixed)
    assert layer(fixed, 1)["samples"] == 10 and fixed.to_dict()["data"]["samples"] == 10
    assert fixed.accuracy == pytest.approx(dyn.accuracy) and fixed.to_dict()["labelled"] == 10
    assert fixed.to_dict()["settings"]["batch_size"] == 4
    assert any("fixed batch size of 4" in w for w in fixed.warnings)


def test_fixed_batch_padding_with_rows_flattened_from_the_batch(tmp_path):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 4))

    def model(batch):
        return make_model([node("Reshape", ["x", "shp"], ["rows"]),
                           node("Gemm", ["rows", "W", "B"], ["y"], name="fc", transB=1)],
                          [vi("x", [batch, 2, 4])], [vi("y", [None, 3])],
                          [init("shp", np.array([-1, 4])), init("W", w), init("B", np.zeros(3))])
    x = rng.normal(size=(5, 2, 4)).astype(np.float32)
    dp = npz(tmp_path, x=x)
    dyn = snrcli.analyze(run(tmp_path, model("N"), "dyn"), dp)
    fixed = snrcli.analyze(run(tmp_path, model(4), "fixed"), dp)
    assert layer(dyn, 1)["samples"] == 10
    assert layer(fixed, 1)["samples"] == 10      # 5 items x 2 rows; not 8 x 2 with the padding
    same_figures(dyn, fixed)


def test_no_batch_axis_model_is_fed_one_item_at_a_time(tmp_path):
    model = make_model([node("MatMul", ["x", "Wt"], ["y"], name="mm")], [vi("x", [2])], [vi("y", [2])],
                       [init("Wt", W.T)])
    rep = snrcli.analyze(run(tmp_path, model), npz(tmp_path, x=X, labels=np.array([0, 0, 0, 1])))
    assert_hand(rep)
    d = rep.to_dict()
    assert layer(d, 1)["samples"] == 4 and d["data"]["samples"] == 4
    assert d["settings"]["batch_size"] == 1
    assert any("no batch axis" in w for w in d["warnings"])
    assert d["accuracy"] == pytest.approx(0.75)


def test_integer_data_is_converted(tmp_path):
    rep = snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=X.astype(np.int64)))
    assert_hand(rep)
    assert any("int64" in w and "float32" in w for w in rep.warnings)


# --------------------------------------------------------------------------- refusals

def test_nonfinite_items_are_refused_with_a_count(tmp_path):
    rng = np.random.default_rng(3)
    x = np.r_[X, rng.normal(size=(3, 2)).astype(np.float32)]
    x[4, 0] = np.nan
    x[6, 1] = np.inf
    mp = run(tmp_path, mlp([W]))
    dp = npz(tmp_path, x=x, labels=np.array([0, 0, 0, 1, 1, 1, 1]))
    with pytest.raises(DataError, match=r"NaN or Inf in 2 of 7 items \(items 4, 6\).*--drop-nonfinite"):
        snrcli.analyze(mp, dp)
    rep = snrcli.analyze(mp, dp, drop_nonfinite=True)
    d = rep.to_dict()
    assert d["data"]["samples"] == 5 and d["data"]["dropped_nonfinite"] == 2
    clean = snrcli.analyze(mp, npz(tmp_path, name="c", x=x[[0, 1, 2, 3, 5]], labels=np.array([0, 0, 0, 1, 1])))
    same_figures(clean, rep)
    assert rep.accuracy == pytest.approx(clean.accuracy)
    assert any("dropped 2 items" in w for w in rep.warnings)


@pytest.mark.parametrize("jobs", [1, 2])
def test_nonfinite_items_found_by_the_stream_are_all_counted(tmp_path, jobs):
    """float data is tested batch by batch as the stream reads it (one pass over the file, not two); the
    first bad batch stops the run, and the error counts the bad items of the whole data set."""
    from snrcli.analysis.data import load_data
    from snrcli.model.graph import discover
    import onnx

    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    x[[3, 37], 1] = [np.nan, -np.inf]
    mp, dp = run(tmp_path, mlp([W])), npz(tmp_path, x=x)
    ds = load_data(dp, discover(onnx.load(mp)).inputs)          # no error yet: nothing was read
    assert ds.deferred_check == ("x",) and ds.items == 40
    with pytest.raises(DataError, match=r"NaN or Inf in 2 of 40 items \(items 3, 37\).*--drop-nonfinite"):
        snrcli.analyze(mp, dp, batch_size=8, jobs=jobs)
    assert snrcli.analyze(mp, dp, drop_nonfinite=True, jobs=jobs).to_dict()["data"]["dropped_nonfinite"] == 2


def test_a_batch_whose_sum_overflows_is_not_refused(tmp_path):
    from snrcli.analysis.nonfinite import finite_sum

    x = np.full((6, 2), 3e38, np.float32)
    x[:2] = [[1, 0], [0, 1]]
    assert not finite_sum(x)                        # every value finite, their sum is not
    rep = snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=x), batch_size=6)
    assert rep.to_dict()["data"]["samples"] == 6


@pytest.mark.parametrize("items, match", [(0, "empty"), (1, "one item")])
def test_empty_and_single_item_data_are_refused(tmp_path, items, match):
    with pytest.raises(DataError, match=match):
        snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=X[:items]))


def test_all_items_nonfinite_dropped_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match="empty"):
        snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=np.full((3, 2), np.nan, np.float32)),
                       drop_nonfinite=True)


def test_object_arrays_are_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([{"a": 1}, None, 3], dtype=object))
    with pytest.raises(DataError, match="object|pickle"):
        snrcli.analyze(run(tmp_path, mlp([W])), str(p))


@pytest.mark.parametrize("fname, content, match", [
    ("d.csv", b"1,2\n", "unsupported"),
    ("d.npz", b"PK\x03\x04 truncated zip", "cannot read"),
    ("d.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", "cannot read"),
    ("missing.npz", None, "not found"),
])
def test_unreadable_data_files(tmp_path, fname, content, match):
    if content is not None:
        (tmp_path / fname).write_bytes(content)
    with pytest.raises(SnrError, match=match) as e:
        snrcli.analyze(run(tmp_path, mlp([W])), str(tmp_path / fname))
    assert e.value.exit_code == 3


def test_text_file_named_npz_is_not_called_pickled(tmp_path):
    (tmp_path / "d.npz").write_text("label,x\n1,2\n")
    with pytest.raises(DataError) as e:
        snrcli.analyze(run(tmp_path, mlp([W])), str(tmp_path / "d.npz"))
    assert "pickle" not in str(e.value) and "cannot read" in str(e.value)   # not mistaken for object arrays


def test_string_arrays_are_refused(tmp_path):
    with pytest.raises(DataError, match="numeric"):
        snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=np.array([["a", "b"]] * 4)))


def test_limit_takes_the_first_items(tmp_path):
    rng = np.random.default_rng(4)
    x = np.r_[X, rng.normal(size=(6, 2)).astype(np.float32)]
    rep = snrcli.analyze(run(tmp_path, mlp([W])), npz(tmp_path, x=x), limit=4)
    assert_hand(rep)
    assert rep.to_dict()["data"]["samples"] == 4


def test_output_without_class_axis_gives_null_accuracy_with_a_warning(tmp_path):
    model = make_model([node("Gemm", ["x", "W", "B"], ["z"], name="fc", transB=1),
                        node("ReduceSum", ["z", "ax"], ["y"], keepdims=0)],
                       [vi("x", ["N", 2])], [vi("y", ["N"])],
                       [init("W", W), init("B", np.zeros(2)), init("ax", np.array([1]))])
    rep = snrcli.analyze(run(tmp_path, model), npz(tmp_path, x=X, labels=np.array([0, 1, 0, 1])))
    assert rep.accuracy is None
    assert any("class axis" in w for w in rep.warnings)
    assert_hand(rep)
    assert layer(rep, 1)["classifier"] is False


def test_sharded_jobs_equal_a_single_pass(tmp_path):
    rng = np.random.default_rng(5)
    ws = [rng.normal(size=(6, 5)), rng.normal(size=(3, 6))]
    x = rng.normal(size=(50, 5)).astype(np.float32)
    mp, dp = write(tmp_path, mlp(ws, [rng.normal(size=6) * 0.3, np.zeros(3)]), {"x": x,
                                                                             "labels": rng.integers(0, 3, 50)})
    one = snrcli.analyze(mp, dp, batch_size=8)
    two = snrcli.analyze(mp, dp, batch_size=8, jobs=2)
    same_figures(one, two, rtol=1e-9)
    assert two.accuracy == one.accuracy
    for a, b in zip(one.layers, two.layers):
        np.testing.assert_allclose(b.unit_S, a.unit_S, rtol=1e-9)
        np.testing.assert_array_equal(b.unit_r, a.unit_r)


def test_one_hot_labels_are_said_and_recorded(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    with np.load(repo / "sample_models/digits_test.npz") as z:
        x, y = z["input"], z["labels"]
    np.savez(tmp_path / "oh.npz", input=x, labels=np.eye(10)[y])
    said: list[str] = []
    one_hot = snrcli.analyze(repo / "sample_models/digits_mlp.onnx", tmp_path / "oh.npz", warn=said.append).to_dict()
    ids = snrcli.analyze(repo / "sample_models/digits_mlp.onnx", repo / "sample_models/digits_test.npz").to_dict()
    assert one_hot["data"]["labels"] == "one-hot" and ids["data"]["labels"] == "class ids"
    assert one_hot["accuracy"] == ids["accuracy"] and one_hot["labelled"] == len(y)
    assert any("one-hot" in s for s in said)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_nonfinite_items_fast_path_and_exact_fallback(dtype):
    """A chunk with a finite sum is skipped; an overflowing sum of finite values, and +Inf with -Inf
    (a NaN sum), fall through to the exact per-item test."""
    from snrcli.analysis.data import nonfinite_items

    big = np.finfo(dtype).max
    a = np.ones((40, 3), dtype=dtype)
    assert not nonfinite_items(a).any()
    a[:, :] = big                        # every value finite, the sum overflows
    assert not nonfinite_items(a, chunk_bytes=64).any()
    a[5, 1], a[33, 0] = np.inf, -np.inf  # opposite infinities: the sum is NaN
    a[17, 2] = np.nan
    assert np.flatnonzero(nonfinite_items(a, chunk_bytes=64)).tolist() == [5, 17, 33]
    b = np.zeros((40, 3), dtype=dtype)
    b[39, 2] = -np.inf
    assert np.flatnonzero(nonfinite_items(b)).tolist() == [39]


@pytest.mark.parametrize("dtype, direct", [(np.float32, True), (np.float64, False)])
def test_npy_batches_are_views_released_a_lag_behind(tmp_path, monkeypatch, dtype, direct):
    """.npy data in the model's dtype is fed as views of the memory map (no copy of the data set); its
    pages are released LAG_VALUES values behind the batch being read, and all of them by the end.
    Other data is copied batch by batch and each batch released at once."""
    import snrcli.analysis.batches as batching
    import snrcli.analysis.data as data
    from snrcli.model.graph import discover

    monkeypatch.setattr(batching, "LAG_VALUES", 2 * 25)       # 25 items of 2 values
    released = []
    monkeypatch.setattr(batching, "release_rows", lambda a, lo, hi: released.append((lo, hi)))
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(dtype)
    p = tmp_path / "x.npy"
    np.save(p, x)
    inputs = discover(onnx.load(run(tmp_path, mlp([W])))).inputs
    ds = data.load_data(p, inputs)
    released.clear()                     # (the test for values beyond float32's range, before the run)
    seen = []
    for feeds, valid, lo in batching.batches(ds, inputs, 10, 5, 95):
        (f,) = feeds.values()
        assert np.shares_memory(f, ds.arrays["x"]) == direct
        np.testing.assert_array_equal(f, x[lo:lo + valid].astype(np.float32))
        seen.append((lo, list(released)))
    if direct:
        assert seen[-1][1], "pages are released while the batches stream, not only at the end"
        assert all(hi <= lo - 25 for lo, rel in seen for _, hi in rel)   # never within 25 items of the batch
        assert released[0][0] == 5 and released[-1][1] == 95
        assert all(a[1] == b[0] for a, b in zip(released, released[1:]))   # contiguous, each row once
    else:
        assert released == [(lo, min(lo + 10, 95)) for lo in range(5, 95, 10)]


def test_views_outlive_the_rows_the_statistics_keep_waiting():
    """A small dense layer's rows may wait (as views of the data) until SMALL_PASS_VALUES values: the
    data's pages must not be released before."""
    from snrcli.analysis import batches
    from snrcli.stats import layer as stats

    assert batches.LAG_VALUES > stats.SMALL_PASS_VALUES
