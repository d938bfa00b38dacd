"""Activation sites as exporters write them (spec section 11's two walks), built with onnx.helper.

Each form is put between two layers; the test checks which ops the forward walk (from the first
layer's output) and the backward walk (from the second layer's input) find, and, run on data
under the activation noise model, that each unit's r_i is the mean squared slope over the
largest, the slope written here in closed form (independently of snrcli's evaluator).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy import special

import snrcli
from helpers import make_model, vi, write
from snrcli.model.graph import discover, module_path

SQ2PI = math.sqrt(2 / math.pi)


class Build:
    """Nodes and initializers of one graph: ``op(type, *inputs, **attrs)`` returns the output's name."""

    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def c(self, value) -> str:
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def shape(self, dims) -> str:
        self.k += 1
        self.inits.append(numpy_helper.from_array(np.asarray(dims, dtype=np.int64), f"s{self.k}"))
        return f"s{self.k}"

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attrs) -> str:
        self.k += 1
        out = f"{op_type.lower()}{self.k}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name or out, **attrs))
        return out


def sig(z):
    return 1 / (1 + np.exp(-z))


def softplus(z):
    return np.logaddexp(0, z)


def gelu_erf(g, z):
    return g.op("Mul", g.op("Mul", z, g.c(0.5)), g.op("Add", g.op("Erf", g.op("Div", z, g.c(1.4142135))), g.c(1.0)))


def gelu_erf_half_last(g, z):
    inner = g.op("Add", g.op("Erf", g.op("Div", z, g.c(1.4142135))), g.c(1.0))
    return g.op("Mul", g.op("Mul", z, inner), g.c(0.5))


def gelu_tanh(g, z, cube="Pow"):
    c3 = g.op("Pow", z, g.c(3.0)) if cube == "Pow" else g.op("Mul", g.op("Mul", z, z), z)
    inner = g.op("Mul", g.op("Add", z, g.op("Mul", c3, g.c(0.044715))), g.c(SQ2PI))
    return g.op("Mul", g.op("Mul", z, g.c(0.5)), g.op("Add", g.op("Tanh", inner), g.c(1.0)))


def d_gelu(z):
    return 0.5 * (1 + special.erf(z / math.sqrt(2))) + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def d_gelu_tanh(z):
    t = np.tanh(SQ2PI * (z + 0.044715 * z ** 3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * SQ2PI * (1 + 3 * 0.044715 * z * z)


SELU_A, SELU_G = 1.67326319217681884765625, 1.05070102214813232421875
# name: (site builder, forward ops, backward ops, slope, opset)
FORMS = {
    "gelu_op": (lambda g, z: g.op("Gelu", z), ["Gelu"], ["Gelu"], d_gelu, 20),
    "gelu_op_tanh": (lambda g, z: g.op("Gelu", z, approximate="tanh"), ["Gelu"], ["Gelu"], d_gelu_tanh, 20),
    "gelu_erf": (gelu_erf, ["Mul", "Div", "Erf", "Add", "Mul"], ["Mul", "Div", "Erf", "Add", "Mul"], d_gelu, 17),
    # the last Mul (by 0.5) is linear: the backward site keeps it, the forward one stops before it
    "gelu_erf_half_last": (gelu_erf_half_last, ["Div", "Erf", "Add", "Mul"],
                           ["Div", "Erf", "Add", "Mul", "Mul"], d_gelu, 17),
    "gelu_tanh_pow": (gelu_tanh, ["Pow", "Mul", "Add", "Mul", "Mul", "Tanh", "Add", "Mul"],
                      ["Pow", "Mul", "Add", "Mul", "Mul", "Tanh", "Add", "Mul"], d_gelu_tanh, 17),
    "gelu_tanh_mul": (lambda g, z: gelu_tanh(g, z, "Mul"),
                      ["Mul", "Mul", "Mul", "Add", "Mul", "Mul", "Tanh", "Add", "Mul"],
                      ["Mul", "Mul", "Mul", "Add", "Mul", "Mul", "Tanh", "Add", "Mul"], d_gelu_tanh, 17),
    "silu": (lambda g, z: g.op("Mul", z, g.op("Sigmoid", z)), ["Sigmoid", "Mul"], ["Sigmoid", "Mul"],
             lambda z: sig(z) * (1 + z * (1 - sig(z))), 17),
    "hardswish": (lambda g, z: g.op("HardSwish", z), ["HardSwish"], ["HardSwish"],
                  lambda z: np.where(z <= -3, 0.0, np.where(z >= 3, 1.0, z / 3 + 0.5)), 17),
    "mish": (lambda g, z: g.op("Mul", z, g.op("Tanh", g.op("Softplus", z))), ["Softplus", "Tanh", "Mul"],
             ["Softplus", "Tanh", "Mul"],
             lambda z: np.tanh(softplus(z)) + z * sig(z) * (1 - np.tanh(softplus(z)) ** 2), 18),
    "leaky_relu": (lambda g, z: g.op("LeakyRelu", z, alpha=0.1), ["LeakyRelu"], ["LeakyRelu"],
                   lambda z: np.where(z > 0, 1.0, np.float64(np.float32(0.1))), 17),
    "elu": (lambda g, z: g.op("Elu", z, alpha=0.5), ["Elu"], ["Elu"], lambda z: np.where(z > 0, 1.0, 0.5 * np.exp(z)),
            17),
    "selu": (lambda g, z: g.op("Selu", z), ["Selu"], ["Selu"],
             lambda z: np.where(z > 0, SELU_G, SELU_G * SELU_A * np.exp(z)), 17),
    "clip06": (lambda g, z: g.op("Clip", z, g.c(0.0), g.c(6.0)), ["Clip"], ["Clip"],
               lambda z: ((z > 0) & (z < 6)).astype(float), 17),
    "relu6_min": (lambda g, z: g.op("Min", g.op("Relu", z), g.c(6.0)), ["Relu", "Min"], ["Relu", "Min"],
                  lambda z: ((z > 0) & (z < 6)).astype(float), 17),
    "tanh": (lambda g, z: g.op("Tanh", z), ["Tanh"], ["Tanh"], lambda z: 1 - np.tanh(z) ** 2, 17),
    "sigmoid": (lambda g, z: g.op("Sigmoid", z), ["Sigmoid"], ["Sigmoid"], lambda z: sig(z) * (1 - sig(z)), 17),
    "lecun_tanh": (lambda g, z: g.op("Mul", g.op("Tanh", g.op("Mul", z, g.c(0.6667))), g.c(1.7159)),
                   ["Tanh"], ["Tanh", "Mul"], lambda z: 1 - np.tanh(np.float32(0.6667) * z) ** 2, 17),
}


def dense_model(form: str, *, pre: str = "none", between: str = "none", output_inside: bool = False,
                rng=None):
    """x[N, 6] -> Gemm (or MatMul + bias Add, or Gemm + BatchNormalization) -> site -> [Dropout, Flatten or
    Reshape] -> Gemm -> y[N, 3]. Returns the model and a numpy function giving z from x."""
    build, *_ , opset = FORMS[form]
    rng = rng or np.random.default_rng(0)
    g = Build()
    w1 = (rng.standard_normal((8, 6)) * 1.5).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.5).astype(np.float32)
    w2 = rng.standard_normal((3, 8)).astype(np.float32)
    scale = (1 + 0.5 * rng.standard_normal(8)).astype(np.float32)
    shift = (0.3 * rng.standard_normal(8)).astype(np.float32)
    if pre == "bias":
        z = g.op("Add", g.op("MatMul", "x", g.c(w1.T), name="fc1"), g.c(b1))
    elif pre == "bn":
        z = g.op("BatchNormalization", g.op("Gemm", "x", g.c(w1), g.c(b1), transB=1, name="fc1"),
                 g.c(scale), g.c(shift), g.c(np.zeros(8)), g.c(np.ones(8)), epsilon=0.0)
    else:
        z = g.op("Gemm", "x", g.c(w1), g.c(b1), transB=1, name="fc1")
    first = len(g.nodes)
    x = build(g, z)
    inside = g.nodes[first].output[0] if output_inside and len(g.nodes) > first + 1 else None
    if between == "dropout":
        x = g.op("Dropout", x)
    elif between == "flatten":
        x = g.op("Flatten", x, axis=1)
    elif between == "reshape":
        x = g.op("Reshape", x, g.shape([-1, 8]))
    y = g.op("Gemm", x, g.c(w2), transB=1, name="fc2")
    outs = [vi(y, ["N", 3])] + ([vi(inside, ["N", 8])] if inside else [])
    model = make_model(g.nodes, [vi("x", ["N", 6])], outs, g.inits, opset=opset, ir_version=9 if opset >= 20 else 8)

    def z_of(data):
        h = data.astype(np.float32) @ w1.T + b1
        if pre == "bn":
            h = h * scale + shift
        return h.astype(np.float64)

    return model, z_of


def check_form(tmp_path, form, model, z_of, fwd, bwd, slope, data):
    info = discover(model)
    fc1, fc2 = info.layers
    assert fc1.unit_site is not None and fc1.unit_site.ops == fwd
    assert fc2.input_site is not None and fc2.input_site.ops == bwd
    m, d = write(tmp_path, model, {"x": data})
    report = snrcli.analyze(m, d, noise_model="activation")
    L1, L2 = report.to_dict()["layers"]
    assert (L1["unit_activation"], L2["input_activation"]) == (fwd, bwd)
    assert L1["input_activation"] is None and L2["unit_activation"] is None
    s2 = slope(z_of(data)) ** 2
    want = s2.mean(axis=0) / s2.max()
    np.testing.assert_allclose(report.layers[0].unit_r, want, rtol=2e-5, atol=1e-7)
    relu = snrcli.analyze(m, d).to_dict()["layers"]
    assert (relu[0]["unit_activation"], relu[1]["input_activation"]) == (fwd, bwd)   # reported under both
    gate = "Relu" in fwd or "Clip" in fwd                      # section 5: r_i from a ReLU gate, else 1
    assert (relu[0]["activity_mean"] == 1.0) != gate
    return report


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_form_is_found_both_ways_with_its_slopes(tmp_path, form):
    model, z_of = dense_model(form)
    _, fwd, bwd, slope, _ = FORMS[form]
    data = np.random.default_rng(1).standard_normal((300, 6)).astype(np.float32)
    check_form(tmp_path, form, model, z_of, fwd, bwd, slope, data)


@pytest.mark.parametrize("form,pre,between", [("gelu_erf", "bias", "dropout"), ("silu", "bn", "flatten"),
                                               ("tanh", "bias", "reshape"), ("gelu_tanh_pow", "bn", "dropout"),
                                               ("relu6_min", "bias", "flatten"), ("mish", "bn", "reshape")])
def test_linear_ops_before_and_element_preserving_ops_after_stay_outside(tmp_path, form, pre, between):
    """A bias Add or BatchNormalization before the site is on section 5's walk (z is the activation's
    own input); Dropout, Flatten and Reshape between the site and the next layer are walked through."""
    model, z_of = dense_model(form, pre=pre, between=between)
    _, fwd, bwd, slope, _ = FORMS[form]
    data = np.random.default_rng(2).standard_normal((200, 6)).astype(np.float32)
    check_form(tmp_path, form, model, z_of, fwd, bwd, slope, data)


@pytest.mark.parametrize("form", ["silu", "gelu_erf", "mish"])
def test_a_graph_output_inside_a_site_does_not_matter(tmp_path, form):
    model, z_of = dense_model(form, output_inside=True)
    assert len(model.graph.output) == 2
    _, fwd, bwd, slope, _ = FORMS[form]
    data = np.random.default_rng(3).standard_normal((150, 6)).astype(np.float32)
    check_form(tmp_path, form, model, z_of, fwd, bwd, slope, data)


def conv_prelu_model(bn: bool):
    """x[N, 2, 5, 5] -> Conv (3 channels) [-> BatchNormalization] -> PRelu (slope per channel) -> Flatten -> Gemm."""
    rng = np.random.default_rng(4)
    g = Build()
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32) * 0.3
    slope = np.array([0.1, -0.5, 1.4], np.float32).reshape(3, 1, 1)
    z = g.op("Conv", "x", g.c(w), g.c(b), pads=[1, 1, 1, 1], name="conv")
    scale, shift = np.array([1.5, -0.7, 1.0], np.float32), np.array([0.1, 0.0, -0.2], np.float32)
    if bn:
        z = g.op("BatchNormalization", z, g.c(scale), g.c(shift), g.c(np.zeros(3)), g.c(np.ones(3)), epsilon=0.0)
    x = g.op("Flatten", g.op("PRelu", z, g.c(slope)), axis=1)
    y = g.op("Gemm", x, g.c(rng.standard_normal((4, 75))), transB=1, name="fc")
    model = make_model(g.nodes, [vi("x", ["N", 2, 5, 5])], [vi(y, ["N", 4])], g.inits)

    def unit_r(data, zs):
        s2 = np.where(zs > 0, 1.0, slope.astype(np.float64)[None]) ** 2
        return s2.mean(axis=(0, 2, 3)) / s2.max()

    return model, unit_r


@pytest.mark.parametrize("bn", [False, True])
def test_per_channel_prelu_after_a_conv(tmp_path, bn):
    model, unit_r = conv_prelu_model(bn)
    info = discover(model)
    assert info.layers[0].unit_site.ops == ["PRelu"] and info.layers[1].input_site.ops == ["PRelu"]
    data = np.random.default_rng(5).standard_normal((40, 2, 5, 5)).astype(np.float32)
    m, d = write(tmp_path, model, {"x": data})
    import onnxruntime as ort
    from snrcli.analysis.runner import augmented
    z_name = info.layers[0].unit_site.z
    sess = ort.InferenceSession(augmented(model, [z_name]).SerializeToString())
    zs = sess.run([z_name], {"x": data})[0].astype(np.float64)
    report = snrcli.analyze(m, d, noise_model="activation")
    np.testing.assert_allclose(report.layers[0].unit_r, unit_r(data, zs), rtol=1e-12)
    # the classifier's a_j: PRelu's s^2 per flattened feature over the largest (1.4^2)
    L = report.to_dict()["layers"]
    assert L[1]["input_activation"] == ["PRelu"] and L[0]["unit_activation"] == ["PRelu"]


def test_transposed_input_maps_slopes_to_the_right_features(tmp_path):
    """Tanh on [N, 4, 3], then Transpose (0, 2, 1) and Reshape to [N*3, 4] before a MatMul: each of the
    layer's 4 features gets the slopes of its own channel. Checked against a hand-laid-out run."""
    rng = np.random.default_rng(6)
    g = Build()
    scales = np.array([0.2, 1.0, 3.0, 8.0], np.float32).reshape(1, 4, 1)
    t = g.op("Tanh", g.op("Mul", "x", g.c(scales)))
    h = g.op("Reshape", g.op("Transpose", t, perm=[0, 2, 1]), g.shape([-1, 4]))
    y = g.op("MatMul", h, g.c(rng.standard_normal((4, 2))), name="mm")
    model = make_model(g.nodes, [vi("x", ["N", 4, 3])], [vi(y, ["M", 2])], g.inits)
    info = discover(model)
    site = info.layers[0].input_site
    assert site.ops == ["Tanh"] and [c[0] for c in site.chain] == ["Transpose", "Reshape"]
    data = rng.standard_normal((30, 4, 3)).astype(np.float32)
    m, d = write(tmp_path, model, {"x": data})
    rep = snrcli.analyze(m, d, noise_model="activation", min_activity=0.2, centre_classifier=False)
    z = data.astype(np.float64) * scales
    s2 = (1 - np.tanh(z) ** 2) ** 2
    a = s2.mean(axis=(0, 2)) / s2.max()
    assert a[-1] < 0.2 < a[0]                                        # the saturated channel is dropped
    assert rep.to_dict()["layers"][0]["inputs_kept"] == int((a >= 0.2).sum())


# --------------------------------------------------------------------------- sites that must not be found

def test_a_fork_that_never_merges_has_no_forward_site(tmp_path):
    """fc1 feeds a Relu (read by fc2) and a Tanh (read by fc3): no site after fc1 (the forward walk stops at
    the fork); each reader still finds its own site backward (the backward walk does not stop at forks)."""
    g = Build()
    rng = np.random.default_rng(7)
    h = g.op("Gemm", "x", g.c(rng.standard_normal((5, 4))), transB=1, name="fc1")
    y2 = g.op("Gemm", g.op("Relu", h), g.c(rng.standard_normal((2, 5))), transB=1, name="fc2")
    y3 = g.op("Gemm", g.op("Tanh", h), g.c(rng.standard_normal((2, 5))), transB=1, name="fc3")
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y2, ["N", 2]), vi(y3, ["N", 2])], g.inits)
    fc1, fc2, fc3 = discover(model).layers
    assert fc1.unit_site is None and fc1.gate is None
    assert fc2.input_site.ops == ["Relu"] and fc3.input_site.ops == ["Tanh"]


def test_maxpool_between_ends_both_walks():
    g = Build()
    rng = np.random.default_rng(8)
    h = g.op("Conv", "x", g.c(rng.standard_normal((3, 1, 3, 3))), name="conv1")
    p = g.op("MaxPool", g.op("Tanh", h), kernel_shape=[2, 2])
    y = g.op("Conv", p, g.c(rng.standard_normal((2, 3, 1, 1))), name="conv2")
    model = make_model(g.nodes, [vi("x", ["N", 1, 6, 6])], [vi(y, ["N", 2, 2, 2])], g.inits)
    conv1, conv2 = discover(model).layers
    assert conv1.unit_site.ops == ["Tanh"]          # Tanh's output is one tensor: the site ends there
    assert conv2.input_site is None
    g2 = Build()
    h = g2.op("Conv", "x", g2.c(rng.standard_normal((3, 1, 3, 3))), name="conv1")
    p = g2.op("Tanh", g2.op("MaxPool", h, kernel_shape=[2, 2]))
    y = g2.op("Conv", p, g2.c(rng.standard_normal((2, 3, 1, 1))), name="conv2")
    model = make_model(g2.nodes, [vi("x", ["N", 1, 6, 6])], [vi(y, ["N", 2, 2, 2])], g2.inits)
    conv1, conv2 = discover(model).layers
    assert conv1.unit_site is None                  # MaxPool before the activation: section 5 stops
    assert conv2.input_site.ops == ["Tanh"] and conv2.input_site.z == g2.nodes[1].output[0]


def test_residual_add_and_more_than_64_nodes_are_not_sites():
    g = Build()
    rng = np.random.default_rng(9)
    h = g.op("Gemm", "x", g.c(rng.standard_normal((4, 4))), transB=1, name="fc1")
    r = g.op("Add", h, "x")                                     # residual: an operand from outside
    y = g.op("Gemm", r, g.c(rng.standard_normal((2, 4))), transB=1, name="fc2")
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 2])], g.inits)
    fc1, fc2 = discover(model).layers
    assert fc1.unit_site is None and fc2.input_site is None
    for n, found in ((64, True), (65, False)):
        g = Build()
        h = g.op("Gemm", "x", g.c(rng.standard_normal((4, 4))), transB=1, name="fc1")
        t = g.op("Tanh", h)
        for _ in range(n - 1):
            t = g.op("Sigmoid", t)
        y = g.op("Gemm", t, g.c(rng.standard_normal((2, 4))), transB=1, name="fc2")
        model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 2])], g.inits)
        fc1, fc2 = discover(model).layers
        assert (fc1.unit_site is not None, fc2.input_site is not None) == (found, found), n
        if found:
            assert len(fc1.unit_site.ops) == 64


def test_infinite_slope_drops_the_site_under_both_models_with_a_warning(tmp_path):
    """Sqrt(Relu(z)): Sqrt' is infinite at 0 and 0 * inf is undefined wherever the Relu is off."""
    g = Build()
    rng = np.random.default_rng(10)
    h = g.op("Gemm", "x", g.c(rng.standard_normal((5, 4))), transB=1, name="fc1")
    y = g.op("Gemm", g.op("Sqrt", g.op("Relu", h)), g.c(rng.standard_normal((2, 5))), transB=1, name="fc2")
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 2])], g.inits)
    info = discover(model)
    assert info.layers[0].unit_site.ops == ["Relu", "Sqrt"] and not info.layers[0].unit_site.bounded
    m, d = write(tmp_path, model, {"x": rng.standard_normal((50, 4)).astype(np.float32)})
    reports = {nm: snrcli.analyze(m, d, noise_model=nm) for nm in ("relu", "activation")}
    for nm, rep in reports.items():
        L = rep.to_dict()["layers"]
        assert L[0]["unit_activation"] is None and L[1]["input_activation"] is None, nm
        warned = [w for w in rep.warnings if "infinite or undefined" in w]
        assert len(warned) == 1 and "layer 1 (fc1) output: Relu, Sqrt" in warned[0], rep.warnings
        assert "layer 2 (fc2) input: Relu, Sqrt" in warned[0]
    a, b = (reports[k].to_dict() for k in ("relu", "activation"))
    assert a["network"] == b["network"]         # sections 2 and 5 apply under both models


def test_module_paths_from_the_torch_exporter_name_the_layers(tmp_path):
    g = Build()
    rng = np.random.default_rng(11)
    h = g.op("Gemm", "x", g.c(rng.standard_normal((5, 4))), transB=1, name="node_Gemm_3")
    k = g.op("Gemm", g.op("Relu", h), g.c(rng.standard_normal((2, 5))), transB=1, name="node_Gemm_7")
    y = g.op("Gemm", k, g.c(rng.standard_normal((2, 2))), transB=1, name="node_Gemm_9")
    scopes = ["['', 'net', 'net.0', 'linear']", "['', 'net', 'net.2', 'linear_1']", "['', 'linear_2']"]
    for n, s in zip([n for n in g.nodes if n.op_type == "Gemm"], scopes):
        n.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=s)
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 2])], g.inits)
    assert module_path(g.nodes[0]) == "net.0"
    m, d = write(tmp_path, model, {"x": rng.standard_normal((20, 4)).astype(np.float32)})
    L = snrcli.analyze(m, d).to_dict()["layers"]
    assert [(x["name"], x["node"]) for x in L] == [("net.0", "node_Gemm_3"), ("net.2", "node_Gemm_7"),
                                                   ("node_Gemm_9", "node_Gemm_9")]


def test_a_module_path_shared_by_two_layers_keeps_the_node_names():
    g = Build()
    rng = np.random.default_rng(12)
    h = g.op("MatMul", "x", g.c(rng.standard_normal((4, 4))), name="node_MatMul_1")
    y = g.op("MatMul", h, g.c(rng.standard_normal((4, 2))), name="node_MatMul_2")
    for n in g.nodes:
        n.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'attn', 'matmul']")
    g.nodes[0].metadata_props.add(key="other", value="[")
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 2])], g.inits)
    assert [L.name for L in discover(model).layers] == ["node_MatMul_1", "node_MatMul_2"]
    bad = helper.make_node("MatMul", ["x", "w"], ["y"], name="n")
    bad.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="__import__('os')")
    assert module_path(bad) is None


def test_a_transpose_after_a_layer_and_its_activation(tmp_path):
    """MatMul on [N, T, F] -> Tanh -> Transpose (0, 2, 1) -> Reshape [-1, T] -> MatMul: the second layer's
    features are the T positions. The first layer's forward walk meets the same site without the
    Transpose; the second layer's a_j still follow its own walk (per position t)."""
    rng = np.random.default_rng(13)
    g = Build()
    w1 = rng.standard_normal((4, 3)).astype(np.float32)
    h = g.op("Tanh", g.op("MatMul", "x", g.c(w1), name="mm1"))
    y = g.op("MatMul", g.op("Reshape", g.op("Transpose", h, perm=[0, 2, 1]), g.shape([-1, 5])),
             g.c(rng.standard_normal((5, 2))), name="mm2")
    model = make_model(g.nodes, [vi("x", ["N", 5, 4])], [vi(y, ["M", 2])], g.inits)
    mm1, mm2 = discover(model).layers
    assert mm1.unit_site.key == mm2.input_site.key and not mm1.unit_site.chain and mm2.input_site.chain
    scale = np.array([0.1, 0.3, 1.0, 3.0, 10.0], np.float32).reshape(1, 5, 1)   # position t: saturation
    x = (rng.standard_normal((40, 5, 4)) * scale).astype(np.float32)
    m, d = write(tmp_path, model, {"x": x})
    s2 = (1 - np.tanh((x @ w1).astype(np.float64)) ** 2) ** 2
    a = s2.mean(axis=(0, 2)) / s2.max()
    thr = float((np.sort(a)[1] + np.sort(a)[2]) / 2)                 # two positions fall below
    rep = snrcli.analyze(m, d, noise_model="activation", min_activity=thr, centre_classifier=False)
    L = rep.to_dict()["layers"]
    assert L[1]["input_activation"] == ["Tanh"] and L[1]["inputs_kept"] == 3
    assert sorted(np.argsort(a)[:2]) == [3, 4]                       # the saturated positions
