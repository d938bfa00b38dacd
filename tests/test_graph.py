"""Layer discovery (spec sections 1, 5, 6): weights, skipped ops, activity gates, the classifier, numbering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import snrcli
from helpers import init, layer, make_model, mlp, node, vi, write
from snrcli.errors import SnrError, UsageError
from snrcli.model.graph import SKELETON_MIN_ELEMENTS, discover, infer_shapes, shape_skeleton

X = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], dtype=np.float32)     # the hand data set of test_metrics
W = np.array([[1.0, 1.0], [1.0, -1.0]])
S_HAND = [42 / np.sqrt(1885), 18 / (5 * np.sqrt(13))]
G_HAND = [14 / (3 * np.sqrt(13)), 9 / (2 * np.sqrt(13))]
F32 = dict(rel=1e-6, abs=1e-7)


def dense_io(n_in=2, n_out=2, batch="N"):
    return [vi("x", [batch, n_in])], [vi("y", [batch, n_out])]


# --------------------------------------------------------------------------- Gemm / MatMul weights

@pytest.mark.parametrize("trans_b, alpha", [(0, 1.0), (1, 1.0), (0, 0.5), (1, -1.5), (0, 2.0)])
def test_gemm_weight_orientation_and_alpha(trans_b, alpha):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))                  # (units, inputs)
    b = w if trans_b else w.T
    model = make_model([node("Gemm", ["x", "B", "C"], ["y"], name="g", transB=trans_b, alpha=alpha, beta=2.0)],
                       [vi("x", ["N", 4])], [vi("y", ["N", 3])], [init("B", b), init("C", np.ones(3))])
    (L,) = discover(model).layers
    np.testing.assert_allclose(L.weight, alpha * w.astype(np.float32), rtol=1e-7)
    assert L.units == 3 and L.inputs == 4 and L.input_transposed is False and L.output_is_weighted_sum


def test_gemm_trans_a_through_the_pipeline(tmp_path):
    """x -> Transpose -> Gemm(transA=1, transB=0, alpha=-1.5): same per-unit figures as the hand example."""
    model = make_model([node("Transpose", ["x"], ["xt"], name="t", perm=[1, 0]),
                        node("Gemm", ["xt", "B"], ["y"], name="g", transA=1, transB=0, alpha=-1.5)],
                       [vi("x", ["N", 2])], [vi("y", ["N", 2])], [init("B", W.T)])
    (L,) = discover(model).layers
    assert L.input_transposed and L.input == "xt"
    np.testing.assert_allclose(L.weight, -1.5 * W)
    rep = snrcli.analyze(*write(tmp_path, model, {"x": X}))
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)
    assert rep.layers[0].unit_G == pytest.approx(G_HAND, **F32)
    assert layer(rep, 1)["samples"] == 4


def test_gemm_with_activation_c_computes_y_from_the_weight(tmp_path):
    """Gemm's C that is not constant (here a data-dependent tensor) is left out of y_i."""
    model = make_model([node("Relu", ["x"], ["c"], name="r0"),
                        node("ReduceSum", ["c"], ["cs"], name="rs", keepdims=1),
                        node("Gemm", ["x", "B", "cs"], ["y"], name="g", transB=1)],
                       [vi("x", ["N", 2])], [vi("y", ["N", 2])], [init("B", W)])
    (L,) = discover(model).layers
    assert L.output_is_weighted_sum is False
    rep = snrcli.analyze(*write(tmp_path, model, {"x": X}))
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)


def test_matmul_constant_2d_weight_on_3d_input(tmp_path):
    """(items, T, F) input: every row is a sample (N = items * T); the hand data tiled gives the hand figures."""
    model = make_model([node("MatMul", ["x", "W"], ["y"], name="mm")],
                       [vi("x", ["N", 3, 2])], [vi("y", ["N", 3, 2])], [init("W", W.T)])
    (L,) = discover(model).layers
    np.testing.assert_allclose(L.weight, W)
    x3 = np.tile(X, (3, 1)).reshape(4, 3, 2)
    rep = snrcli.analyze(*write(tmp_path, model, {"x": x3}))
    assert layer(rep, 1)["samples"] == 12 and rep.to_dict()["data"]["samples"] == 4
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)
    assert rep.layers[0].unit_G == pytest.approx(G_HAND, **F32)
    assert layer(rep, 1)["classifier"] is True   # logits straight to the output, unit axis last


def test_constant_on_the_left_and_two_activations_are_skipped():
    model = make_model([node("MatMul", ["Wl", "x"], ["a"], name="left"),
                        node("MatMul", ["x", "xt"], ["b"], name="act_act"),
                        node("Transpose", ["x"], ["xt"], name="t"),
                        node("MatMul", ["x", "W"], ["y"], name="ok")],
                       [vi("x", [2, 2])], [vi("y", [2, 2]), vi("a", [2, 2]), vi("b", [2, 2])],
                       [init("Wl", W), init("W", W)], check=False)
    info = discover(model)
    assert [L.name for L in info.layers] == ["ok"] and info.layers[0].index == 1
    reasons = {s.name: (s.op, s.reason) for s in info.skipped}
    assert set(reasons) == {"left", "act_act"}
    assert "constant on the left" in reasons["left"][1]
    assert "two activations" in reasons["act_act"][1]


# --------------------------------------------------------------------------- constant weights through folding ops

def _weight_graph(kind):
    """(nodes, initializers) producing tensor 'Wk' == W.T (2x2, the MatMul weight) by route ``kind``."""
    wt = W.T.astype(np.float32)
    if kind == "Identity":
        return [node("Identity", ["W0"], ["Wk"])], [init("W0", wt)]
    if kind == "Transpose":
        return [node("Transpose", ["W0"], ["Wk"], perm=[1, 0])], [init("W0", W)]
    if kind == "Reshape":
        return [node("Reshape", ["W0", "shp"], ["Wk"])], [init("W0", wt.ravel()), init("shp", np.array([2, -1]))]
    if kind == "Cast":
        return [node("Cast", ["W0"], ["Wk"], to=TensorProto.FLOAT)], [init("W0", wt.astype(np.float64), None)]
    if kind == "Cast-int":
        return [node("Cast", ["W0"], ["Wk"], to=TensorProto.FLOAT)], [init("W0", wt.astype(np.int32), None)]
    if kind == "Squeeze":
        return [node("Squeeze", ["W0", "ax"], ["Wk"])], [init("W0", wt[None]), init("ax", np.array([0]))]
    if kind == "Unsqueeze":   # (2, 2, 1) -> Unsqueeze(axis 0) -> (1, 2, 2, 1) -> Reshape -> (2, 2)
        return [node("Unsqueeze", ["W0", "ax"], ["w1"]), node("Reshape", ["w1", "shp"], ["Wk"])], \
               [init("W0", wt[:, :, None]), init("ax", np.array([0])), init("shp", np.array([2, 2]))]
    if kind == "DequantizeLinear":
        q = (wt * 4).astype(np.int8) + 3      # (q - 3) * 0.25 == wt
        return [node("DequantizeLinear", ["Q", "s", "z"], ["Wk"])], \
               [init("Q", q, None), init("s", np.float32(0.25)), init("z", np.int8(3), None)]
    if kind == "DequantizeLinear-axis":
        scale = np.array([0.5, 0.25], np.float32)   # per output column (axis 1)
        q = np.round(wt / scale).astype(np.int8)
        return [node("DequantizeLinear", ["Q", "s"], ["Wk"], axis=1)], [init("Q", q, None), init("s", scale)]
    if kind == "Constant-value":
        return [node("Constant", [], ["Wk"], value=helper.make_tensor("v", TensorProto.FLOAT, [2, 2],
                                                                       wt.ravel().tolist()))], []
    if kind == "Constant-value_floats":
        return [node("Constant", [], ["flat"], value_floats=wt.ravel().tolist()),
                node("Constant", [], ["shp"], value_ints=[2, 2]),
                node("Reshape", ["flat", "shp"], ["Wk"])], []
    if kind == "chain":   # Constant -> Cast -> Reshape -> Transpose -> Identity
        return [node("Constant", [], ["flat"], value_floats=W.ravel().tolist()),
                node("Cast", ["flat"], ["f64"], to=TensorProto.DOUBLE),
                node("Reshape", ["f64", "shp"], ["w2"]),
                node("Transpose", ["w2"], ["w3"], perm=[1, 0]),
                node("Cast", ["w3"], ["w4"], to=TensorProto.FLOAT),
                node("Identity", ["w4"], ["Wk"])], [init("shp", np.array([2, 2]))]
    raise AssertionError(kind)


KINDS = ["Identity", "Transpose", "Reshape", "Cast", "Cast-int", "Squeeze", "Unsqueeze", "DequantizeLinear",
         "DequantizeLinear-axis", "Constant-value", "Constant-value_floats", "chain"]


@pytest.mark.parametrize("kind", KINDS)
def test_constant_weight_through_folding_ops(tmp_path, kind):
    nodes, inits = _weight_graph(kind)
    model = make_model(nodes + [node("MatMul", ["x", "Wk"], ["y"], name="mm")], *dense_io(), inits, opset=17)
    (L,) = discover(model).layers
    np.testing.assert_allclose(L.weight, W, rtol=1e-7)
    assert L.name == "mm" and not discover(model).skipped
    rep = snrcli.analyze(*write(tmp_path, model, {"x": X}))
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)


def test_unsqueezed_constant_weight_for_a_conv():
    # Conv weight (M, C, k) unsqueezed to (M, C, k, 1): a 2-D conv with a 3x1 kernel
    w = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    model = make_model([node("Unsqueeze", ["W0", "ax"], ["Wk"]),
                        node("Conv", ["x", "Wk"], ["y"], name="conv", pads=[1, 0, 1, 0])],
                       [vi("x", ["N", 2, 5, 4])], [vi("y", ["N", 2, 5, 4])],
                       [init("W0", w), init("ax", np.array([3]))])
    (L,) = discover(model).layers
    assert L.conv.kernel == (3, 1) and L.weight.shape == (2, 6)
    np.testing.assert_array_equal(L.weight, w.reshape(2, 6))


def test_old_ir_initializer_inputs_are_constant_and_data_may_not_supply_them(tmp_path):
    model = mlp([W])
    model.graph.input.append(vi("W1", [2, 2]))   # old IR versions list every weight as an input
    model.graph.input.append(vi("B1", [2]))
    model.ir_version = 3
    info = discover(model)
    assert len(info.layers) == 1 and [i.name for i in info.inputs] == ["x"]
    assert set(info.weight_inputs) == {"W1", "B1"}
    mp, dp = write(tmp_path, model, {"x": X})
    rep = snrcli.analyze(mp, dp)
    assert rep.layers[0].unit_S == pytest.approx(S_HAND, **F32)
    np.savez(tmp_path / "clash.npz", x=X, W1=np.zeros((2, 2), np.float32))
    with pytest.raises(SnrError, match="W1"):
        snrcli.analyze(mp, str(tmp_path / "clash.npz"))


# --------------------------------------------------------------------------- skipped ops

def test_conv_transpose_is_skipped():
    model = make_model([node("ConvTranspose", ["x", "Wt"], ["c"], name="up"),
                        node("Conv", ["c", "Wc"], ["y"], name="conv")],
                       [vi("x", ["N", 2, 4, 4])], [vi("y", None)],
                       [init("Wt", np.ones((2, 3, 3, 3))), init("Wc", np.ones((4, 3, 1, 1)))], check=False)
    info = discover(model)
    assert [(L.name, L.op) for L in info.layers] == [("conv", "Conv")]
    assert [(s.name, s.op) for s in info.skipped] == [("up", "ConvTranspose")]
    assert "transposed" in info.skipped[0].reason


def test_ai_onnx_ml_linear_classifier_is_skipped():
    lc = helper.make_node("LinearClassifier", ["x"], ["label", "probs"], name="lc", domain="ai.onnx.ml",
                          coefficients=np.ones(6).tolist(), intercepts=[0.0, 0.0, 0.0], classlabels_ints=[0, 1, 2])
    model = make_model([lc], [vi("x", ["N", 2])],
                       [vi("label", ["N"], TensorProto.INT64), vi("probs", ["N", 3])],
                       extra_opsets={"ai.onnx.ml": 1})
    info = discover(model)
    assert info.layers == []
    assert [(s.name, s.op) for s in info.skipped] == [("lc", "LinearClassifier")]
    assert "ai.onnx.ml" in info.skipped[0].reason


# --------------------------------------------------------------------------- activity gates (section 5)

def gate_model(chain, *, extra_outputs=(), opset=17, units=2, inits=()):
    """Gemm 'fc' (2 -> units) whose output 'z' goes through ``chain`` (a list of nodes ending anywhere)."""
    nodes = [node("Gemm", ["x", "Wg", "Bg"], ["z"], name="fc", transB=1)] + list(chain)
    last = chain[-1].output[0] if chain else "z"
    outs = [vi(last, None)] + [vi(n, None) for n in extra_outputs]
    return make_model(nodes, [vi("x", ["N", 2])], outs,
                      [init("Wg", np.ones((units, 2))), init("Bg", np.zeros(units))] + list(inits),
                      opset=opset, check=False)


C = [init("k", np.array([1.0, -2.0], np.float32))]


@pytest.mark.parametrize("chain, gate", [
    ([node("Relu", ["z"], ["r"])], "r"),
    ([node("Add", ["z", "k"], ["a"]), node("Mul", ["k", "a"], ["b"]), node("Relu", ["b"], ["r"])], "r"),
    ([node("Sub", ["z", "k"], ["a"]), node("Div", ["a", "k"], ["b"]), node("Relu", ["b"], ["r"])], "r"),
    ([node("Identity", ["z"], ["a"]), node("Dropout", ["a"], ["b"]), node("Relu", ["b"], ["r"])], "r"),
    ([node("Unsqueeze", ["z", "ax"], ["u"]), node("Squeeze", ["u", "ax"], ["s"]), node("Relu", ["s"], ["r"])], "r"),
    ([node("Clip", ["z", "zero"], ["r"])], "r"),
    ([node("Clip", ["z", "zero", "six"], ["r"])], "r"),
    ([node("Clip", ["z", "m1"], ["r"])], None),           # min -1: not a gate
    ([node("Clip", ["z"], ["r"])], None),                 # no min
    ([node("Sub", ["k", "z"], ["a"]), node("Relu", ["a"], ["r"])], None),   # constant on the left of Sub
    ([node("Div", ["k", "z"], ["a"]), node("Relu", ["a"], ["r"])], None),   # and of Div
    ([node("Add", ["z", "z"], ["a"]), node("Relu", ["a"], ["r"])], None),   # Add of two activations
    ([node("Sigmoid", ["z"], ["r"])], None),
    ([node("Unsqueeze", ["z", "ax"], ["u"]), node("MaxPool", ["u"], ["p"], kernel_shape=[1]),
      node("Relu", ["p"], ["r"])], None),                 # pooling ends the walk
], ids=["relu", "add-mul", "sub-div", "identity-dropout", "unsqueeze-squeeze", "clip0", "clip0-6", "clip-1",
        "clip-nomin", "sub-left", "div-left", "add-act", "sigmoid", "maxpool"])
def test_activity_gate_walk(chain, gate):
    extra = [init("ax", np.array([2])), init("zero", np.float32(0)), init("six", np.float32(6)),
             init("m1", np.float32(-1))]
    (L,) = discover(gate_model(chain, inits=C + extra)).layers
    assert L.gate == gate


def test_activity_gate_through_batchnorm():
    bn = [init(n, v) for n, v in [("s", [1.0, -1.0]), ("b", [0.0, 0.5]), ("mu", [0.0, 0.0]), ("var", [1.0, 1.0])]]
    chain = [node("BatchNormalization", ["z", "s", "b", "mu", "var"], ["n"]), node("Relu", ["n"], ["r"])]
    (L,) = discover(gate_model(chain, inits=bn)).layers
    assert L.gate == "r"


def test_activity_gate_through_a_long_chain():
    bn = [init(n, v) for n, v in [("s", [1.0, -1.0]), ("b", [0.0, 0.5]), ("mu", [0.0, 0.0]), ("var", [1.0, 1.0])]]
    chain = [node("Add", ["k", "z"], ["a"]), node("Mul", ["a", "k"], ["m"]),
             node("BatchNormalization", ["m", "s", "b", "mu", "var"], ["n"]),
             node("Unsqueeze", ["n", "ax"], ["u"]), node("Squeeze", ["u", "ax"], ["q"]),
             node("Dropout", ["q"], ["d"]), node("Relu", ["d"], ["r"])]
    (L,) = discover(gate_model(chain, inits=C + bn + [init("ax", np.array([2]))])).layers
    assert L.gate == "r"
    # the same chain with the BN fed the constant as data input: the walk stops
    chain[2] = node("BatchNormalization", ["s", "m", "b", "mu", "var"], ["n"])
    (L,) = discover(gate_model(chain, inits=C + bn + [init("ax", np.array([2]))])).layers
    assert L.gate is None


def test_clip_min_attribute_before_opset_11():
    (L,) = discover(gate_model([node("Clip", ["z"], ["r"], min=0.0, max=6.0)], opset=10)).layers
    assert L.gate == "r"
    (L,) = discover(gate_model([node("Clip", ["z"], ["r"], min=-1.0)], opset=10)).layers
    assert L.gate is None


def test_fork_stops_the_walk_but_a_graph_output_is_not_a_consumer():
    fork = [node("Relu", ["z"], ["r"]), node("Add", ["z", "r"], ["s"])]
    (L,) = discover(gate_model(fork)).layers
    assert L.gate is None
    (L,) = discover(gate_model([node("Relu", ["z"], ["r"])], extra_outputs=["z"])).layers
    assert L.gate == "r"


def test_activity_through_the_pipeline_equals_relu_on_fraction(tmp_path):
    """fc -> Mul(k) -> Unsqueeze -> Squeeze -> Relu -> fc2; r_i = fraction of Relu outputs > 0."""
    rng = np.random.default_rng(2)
    w1, k = rng.normal(size=(3, 4)), np.array([1.0, -2.0, 0.5], np.float32)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    model = make_model([node("Gemm", ["x", "W1", "B1"], ["z"], name="fc1", transB=1),
                        node("Mul", ["z", "k"], ["a"]),
                        node("Unsqueeze", ["a", "ax"], ["u"]), node("Squeeze", ["u", "ax"], ["s"]),
                        node("Relu", ["s"], ["h"]),
                        node("Gemm", ["h", "W2", "B2"], ["y"], name="fc2", transB=1)],
                       [vi("x", ["N", 4])], [vi("y", ["N", 2])],
                       [init("W1", w1), init("B1", [0.1, -0.2, 0.3]), init("k", k), init("ax", np.array([1])),
                        init("W2", rng.normal(size=(2, 3))), init("B2", np.zeros(2))])
    rep = snrcli.analyze(*write(tmp_path, model, {"x": x}))
    z = x @ w1.astype(np.float32).T + np.array([0.1, -0.2, 0.3], np.float32)
    want = ((z * k) > 0).mean(axis=0)
    assert rep.layers[0].unit_r == pytest.approx(want, abs=1e-12)
    assert rep.to_dict()["layers"][0]["activity_gate"] == "h"
    assert layer(rep, 1)["activity_mean"] == pytest.approx(want.mean())
    assert rep.layers[1].unit_r.tolist() == [1.0, 1.0]


def test_conv_bn_relu_gate_through_the_pipeline(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 2, 3, 3))
    s = np.array([1.0, -1.0, 2.0])
    bn_b = np.array([0.5, 0.0, -0.5])
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                        node("BatchNormalization", ["c", "s", "b", "mu", "var"], ["n"], epsilon=0.0),
                        node("Relu", ["n"], ["y"])],
                       [vi("x", ["N", 2, 5, 5])], [vi("y", ["N", 3, 5, 5])],
                       [init("W", w), init("s", s), init("b", bn_b), init("mu", np.zeros(3)), init("var", np.ones(3))])
    x = rng.normal(size=(6, 2, 5, 5)).astype(np.float32)
    rep = snrcli.analyze(*write(tmp_path, model, {"x": x}))
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0]
    assert rep.layers[0].unit_r == pytest.approx((y > 0).mean(axis=(0, 2, 3)), abs=1e-12)
    assert layer(rep, 1)["samples"] == 6 * 25


# --------------------------------------------------------------------------- classifier (section 6)

def head_model(*tail, out="y", opset=17, extra_inits=(), outputs=None):
    nodes = [node("Gemm", ["x", "W1", "B1"], ["z1"], name="fc1", transB=1), node("Relu", ["z1"], ["h"]),
             node("Gemm", ["h", "W2", "B2"], ["z"], name="fc2", transB=1)] + list(tail)
    last = tail[-1].output[0] if tail else "z"
    outs = outputs or [vi(last, ["N", 3])]
    return make_model(nodes, [vi("x", ["N", 4])], outs,
                      [init("W1", np.ones((5, 4))), init("B1", np.zeros(5)), init("W2", np.ones((3, 5))),
                       init("B2", np.zeros(3)), init("bias", np.ones(3))] + list(extra_inits),
                      opset=opset, check=False)


@pytest.mark.parametrize("tail, is_cls", [
    ([], True),
    ([node("Softmax", ["z"], ["p"], axis=-1)], True),
    ([node("LogSoftmax", ["z"], ["p"], axis=1)], True),
    ([node("Add", ["z", "bias"], ["a"]), node("Dropout", ["a"], ["d"]), node("Softmax", ["d"], ["p"])], True),
    ([node("Identity", ["z"], ["a"]), node("Flatten", ["a"], ["p"])], True),
    ([node("Sigmoid", ["z"], ["p"])], False),
    ([node("Tanh", ["z"], ["p"])], False),
    ([node("Softmax", ["z"], ["p"], axis=0)], False),         # normalises over the batch, not the units
    ([node("Relu", ["z"], ["p"])], False),
], ids=["logits", "softmax", "logsoftmax", "bias-dropout-softmax", "identity-flatten", "sigmoid", "tanh",
        "softmax-axis0", "relu"])
def test_classifier_detection(tail, is_cls):
    info = discover(head_model(*tail))
    assert [L.classifier for L in info.layers] == [False, is_cls]
    info = discover(head_model(*tail), centre_classifier=False)
    assert [L.classifier for L in info.layers] == [False, False]


@pytest.mark.parametrize("tail", [
    [node("Relu", ["z"], ["r"]), node("Add", ["z", "r"], ["y"])],          # residual: z + Relu(z)
    [node("Add", ["z", "z"], ["y"])],                                       # z + z
    [node("Identity", ["z1"], ["skip"]), node("Gemm", ["skip", "W3"], ["s3"], name="fc3", transB=1),
     node("Add", ["s3", "z"], ["y"])],                                      # two layers' outputs added
], ids=["add-relu-residual", "add-itself", "add-two-layers"])
def test_classifier_walk_stops_at_an_add_of_two_activations(tail):
    """An Add passes the classifier walk only as a bias add (one constant operand): a residual sum of
    two activations is not softmax-neutral, so no layer before it is the classifier."""
    info = discover(head_model(*tail, extra_inits=[init("W3", np.ones((3, 5)))]))
    assert info.accuracy_output == "y"
    assert [L.classifier for L in info.layers] == [False] * len(info.layers)
    # the same head with a constant bias instead of the second activation is a classifier
    info = discover(head_model(node("Add", ["z", "bias"], ["y"])))
    assert [L.classifier for L in info.layers] == [False, True]


def test_softmax_opset_11_default_axis_on_2d_is_the_unit_axis():
    info = discover(head_model(node("Softmax", ["z"], ["p"]), opset=11))
    assert info.layers[1].classifier


def test_classifier_must_reach_the_scored_output():
    outs = [vi("aux", ["N", 5]), vi("z", ["N", 3])]     # first output is the hidden features
    model = head_model(node("Identity", ["z1"], ["aux"]), outputs=outs)
    info = discover(model)
    assert info.accuracy_output == "aux"
    assert [L.classifier for L in info.layers] == [True, False]   # fc1 reaches 'aux' through Identity
    info = discover(model, output="z")
    assert info.accuracy_output == "z" and [L.classifier for L in info.layers] == [False, True]
    with pytest.raises(UsageError, match="nope"):
        discover(model, output="nope")


def test_no_centring_flag_through_the_pipeline(tmp_path):
    rng = np.random.default_rng(4)
    model = head_model(node("Softmax", ["z"], ["p"], axis=-1))
    mp, dp = write(tmp_path, model, {"x": rng.normal(size=(30, 4)).astype(np.float32)})
    on = snrcli.analyze(mp, dp)
    off = snrcli.analyze(mp, dp, centre_classifier=False)
    assert layer(on, 2)["classifier"] is True and layer(off, 2)["classifier"] is False
    assert layer(off, 2)["G_mean_centred"] is None
    assert off.to_dict()["network"]["G_final"] == layer(off, 2)["G_mean"]


# --------------------------------------------------------------------------- numbering and names

def test_non_topological_node_order_is_numbered_by_kahn(tmp_path):
    """Stored: fc2, relu, fc1, side. Kahn with stored-position priority gives fc1, relu, fc2, side."""
    rng = np.random.default_rng(5)
    nodes = [node("Gemm", ["h", "W2", "B2"], ["y"], name="fc2", transB=1),
             node("Relu", ["z"], ["h"], name="relu"),
             node("Gemm", ["x", "W1", "B1"], ["z"], name="fc1", transB=1),
             node("MatMul", ["x", "W3"], ["side"], name="side")]
    inits = [init("W1", rng.normal(size=(3, 4))), init("B1", np.zeros(3)), init("W2", rng.normal(size=(2, 3))),
             init("B2", np.zeros(2)), init("W3", rng.normal(size=(4, 5)))]
    model = make_model(nodes, [vi("x", ["N", 4])], [vi("y", ["N", 2]), vi("side", ["N", 5])], inits, check=False)
    info = discover(model)
    assert [(L.index, L.name) for L in info.layers] == [(1, "fc1"), (2, "fc2"), (3, "side")]
    assert info.layers[0].gate == "h" and info.layers[1].classifier
    rep = snrcli.analyze(*write(tmp_path, model, {"x": rng.normal(size=(20, 4)).astype(np.float32)}))
    assert [L["name"] for L in rep.to_dict()["layers"]] == ["fc1", "fc2", "side"]
    sorted_model = make_model([nodes[2], nodes[1], nodes[0], nodes[3]], [vi("x", ["N", 4])],
                              [vi("y", ["N", 2]), vi("side", ["N", 5])], inits)
    rep2 = snrcli.analyze(*write(tmp_path, sorted_model, {"x": rng.normal(size=(20, 4)).astype(np.float32)},
                                 name="sorted"))
    assert [L["name"] for L in rep2.to_dict()["layers"]] == ["fc1", "fc2", "side"]


def test_stored_topological_order_is_kept_even_when_other_orders_exist():
    nodes = [node("MatMul", ["x", "Wb"], ["b"], name="second_branch"),
             node("MatMul", ["x", "Wa"], ["a"], name="first_branch")]
    model = make_model(nodes, [vi("x", ["N", 2])], [vi("a", ["N", 2]), vi("b", ["N", 2])],
                       [init("Wa", W), init("Wb", W)])
    assert [L.name for L in discover(model).layers] == ["second_branch", "first_branch"]


def test_unnamed_node_takes_its_first_output_name():
    model = make_model([node("Gemm", ["x", "W", "B"], ["logits_out"], transB=1)], [vi("x", ["N", 2])],
                       [vi("logits_out", ["N", 2])], [init("W", W), init("B", np.zeros(2))])
    (L,) = discover(model).layers
    assert L.name == "logits_out"


def test_rich_markup_names_are_kept_verbatim():
    model = make_model([node("Gemm", ["x", "W", "B"], ["y"], name="[bold]x[/bold]", transB=1)],
                       [vi("x", ["N", 2])], [vi("y", ["N", 2])], [init("W", W), init("B", np.zeros(2))])
    assert discover(model).layers[0].name == "[bold]x[/bold]"


def test_grouped_conv_is_never_the_classifier():
    model = make_model([node("Conv", ["x", "W"], ["c"], name="gconv", group=2),
                        node("Flatten", ["c"], ["y"])],
                       [vi("x", ["N", 4, 1, 1])], [vi("y", ["N", 4])], [init("W", np.ones((4, 2, 1, 1)))])
    (L,) = discover(model).layers
    assert L.group == 2 and L.classifier is False and L.inputs == 4


def test_reshape_minus_one_that_only_drops_size_one_axes_passes_the_walk():
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv"),
                        node("Reshape", ["c", "shp"], ["f"]), node("Relu", ["f"], ["r"])],
                       [vi("x", ["N", 2, 3, 3])], [vi("r", None)],
                       [init("W", np.ones((4, 2, 3, 3))), init("shp", np.array([-1, 4]))], check=False)
    (L,) = discover(model).layers
    assert L.gate == "r"


@pytest.mark.parametrize("tail", [
    [node("Flatten", ["c"], ["f"], axis=1), node("Relu", ["f"], ["r"])],
    [node("Reshape", ["c", "shp0"], ["f"]), node("Relu", ["f"], ["r"])],
    [node("Squeeze", ["c", "ax"], ["f"]), node("Relu", ["f"], ["r"])],
], ids=["flatten", "reshape-0", "squeeze"])
def test_size_one_axis_changes_pass_the_walk(tail, tmp_path):
    rng = np.random.default_rng(6)
    w = rng.normal(size=(4, 2, 3, 3))
    model = make_model([node("Conv", ["x", "W"], ["c"], name="conv")] + tail,
                       [vi("x", ["N", 2, 3, 3])], [vi("r", None)],
                       [init("W", w), init("shp0", np.array([0, 4])), init("ax", np.array([2, 3]))], check=False)
    (L,) = discover(model).layers
    assert L.gate == "r"
    x = rng.normal(size=(30, 2, 3, 3)).astype(np.float32)
    rep = snrcli.analyze(*write(tmp_path, model, {"x": x}))
    z = x.reshape(30, -1).astype(np.float64) @ w.astype(np.float32).reshape(4, -1).T.astype(np.float64)
    assert rep.layers[0].unit_r == pytest.approx((z > 0).mean(axis=0), abs=1e-12)


def test_accuracy_output_is_the_first_float_output():
    model = make_model([node("Gemm", ["x", "W", "B"], ["z"], name="fc", transB=1),
                        node("ArgMax", ["z"], ["label"], axis=1, keepdims=0),
                        node("Softmax", ["z"], ["probs"], axis=1)],
                       [vi("x", ["N", 2])], [vi("label", ["N"], TensorProto.INT64), vi("probs", ["N", 2])],
                       [init("W", W), init("B", np.zeros(2))])
    info = discover(model)
    assert info.accuracy_output == "probs" and info.layers[0].classifier


# --------------------------------------------------------------------------- shape inference on a skeleton

def _full_inference(model):
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    return {vi.name: [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                      for d in vi.type.tensor_type.shape.dim]
            for vi in list(g.input) + list(g.value_info) + list(g.output) if vi.type.tensor_type.HasField("shape")}


def _models_to_compare():
    from shared_assets import SHARED
    here = sorted((Path(__file__).resolve().parents[1] / "sample_models").glob("*.onnx"))
    there = sorted((SHARED / "models").glob("*.onnx")) if (SHARED / "models").is_dir() else []
    return here + there


@pytest.mark.parametrize("path", _models_to_compare(), ids=lambda p: p.name)
def test_skeleton_inference_finds_the_shapes_of_full_inference(path):
    """Shape inference runs on the model without its large weights' values (their shapes kept): it must
    know every shape that inference on the whole model knows (sample models, and ../shared's 27 when there)."""
    model = onnx.load(path)
    skeleton = shape_skeleton(model)
    assert all(np.prod(t.dims) < SKELETON_MIN_ELEMENTS for t in skeleton.graph.initializer)
    assert skeleton.ByteSize() < 200_000 or skeleton.ByteSize() < model.ByteSize() / 4
    shapes, _ = infer_shapes(model)
    for name, dims in _full_inference(model).items():
        assert shapes.get(name) == dims, name


def test_skeleton_keeps_small_initializers_that_shapes_depend_on():
    """A Reshape whose target shape is an initializer: its output shape needs that value."""
    w = np.ones((2048, 4), np.float32)      # large: only its shape is kept
    model = make_model(
        [node("MatMul", ["x", "w"], ["h"]), node("Reshape", ["h", "shape"], ["y"])],
        [vi("x", ["N", 2048])], [vi("y", None)],
        [init("w", w), init("shape", np.array([-1, 2, 2], np.int64))], check=False)
    shapes, _ = infer_shapes(model)
    assert shapes["h"] == ["N", 4] and shapes["y"][1:] == [2, 2]
    assert [t.name for t in shape_skeleton(model).graph.initializer] == ["shape"]
    assert "w" in [i.name for i in shape_skeleton(model).graph.input]
