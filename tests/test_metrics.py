"""Known answers derived by hand, and properties of S and G through the whole pipeline.

THE HAND DATA SET (used throughout this file)
---------------------------------------------
Two input features, four samples:

    x1 = [0, 2, 0, 2]      mean 1    m1 = max|x1| = 2   a1 = 2/4 = 1/2
    x2 = [0, 0, 1, 3]      mean 1    m2 = 3             a2 = 1/2

Centred: x1c = [-1, 1, -1, 1], x2c = [-1, -1, 0, 2], so (population covariances, divide by 4)

    var(x1) = 4/4 = 1,  var(x2) = (1+1+0+4)/4 = 3/2,  cov(x1, x2) = (1-1+0+2)/4 = 1/2.

A 2-unit dense layer W = [[1, 1], [1, -1]]:  y1 = x1 + x2 = [0, 2, 1, 5],  y2 = x1 - x2 = [0, 2, -1, -1].

    cov(x1, y1) = 1 + 1/2 = 3/2      cov(x2, y1) = 1/2 + 3/2 = 2
    cov(x1, y2) = 1 - 1/2 = 1/2      cov(x2, y2) = 1/2 - 3/2 = -1

m_j a_j = [1, 3/2], so c_ij = cov(x_j, y_i) / (m_j a_j)  (eq. 9):

    c_1 = [3/2, 4/3]         c_2 = [1/2, -2/3]
    w~_1 = w_1 * m = [2, 3]  w~_2 = [2, -3]          ||w~_1|| = ||w~_2|| = sqrt(13)

Unit 1: w~.c = 3 + 4 = 7, ||c_1|| = sqrt(9/4 + 16/9) = sqrt(145)/6, max|c_1| = 3/2
    S_1 = 7 / (sqrt13 * sqrt145/6) = 42 / sqrt(1885)        ~ 0.967372
    G_1 = 7 / (sqrt13 * 3/2)       = 14 / (3 sqrt13)        ~ 1.294300
Unit 2: w~.c = 1 + 2 = 3, ||c_2|| = sqrt(1/4 + 4/9) = 5/6, max|c_2| = 2/3
    S_2 = 3 / (sqrt13 * 5/6) = 18 / (5 sqrt13)              ~ 0.998460
    G_2 = 3 / (sqrt13 * 2/3) = 9 / (2 sqrt13)               ~ 1.248075

Centring (eq. 17-18): column means of W are [1, 0], so W' = [[0, 1], [0, -1]], y'1 = x2, y'2 = -x2.
    cov(x1, y'1) = 1/2, cov(x2, y'1) = 3/2  ->  c'_1 = [1/2, 1],   w~'_1 = [0, 3]
    S'_1 = 3 / (3 * sqrt(5)/2) = 2/sqrt5 ~ 0.894427,  G'_1 = 3 / (3 * 1) = 1
Unit 2 is unit 1 negated: the same S' and G'.

A SECOND LAYER on the hand data: h = Relu(y) = [[0,0],[2,2],[1,0],[5,0]], i.e.
    h1 = [0, 2, 1, 5]  (on in 3 of 4: r_1 = 3/4),   h2 = [0, 2, 0, 0]  (r_2 = 1/4)
so layer 1's activity-weighted means are S_mean = 3/4 S_1 + 1/4 S_2 and
G_mean = 3/4 * 14/(3 sqrt13) + 1/4 * 9/(2 sqrt13) = (7/2 + 9/8)/sqrt13 = 37/(8 sqrt13).

Layer 2 = identity W2 = I (the classifier). m = [5, 2], a = [3/4, 1/4], m a = [15/4, 1/2];
means [2, 1/2]; h1c = [-2, 0, -1, 3], h2c = [-1/2, 3/2, -1/2, -1/2]:
    var(h1) = 14/4 = 7/2, var(h2) = 3/4, cov(h1, h2) = (1 + 0 + 1/2 - 3/2)/4 = 0.
Plain: unit 1 sees only h1 (c = [14/15, 0], w~ = [5, 0]) -> S = G = 1; unit 2 likewise -> S = G = 1.
Centred: W2' = [[1/2, -1/2], [-1/2, 1/2]], y'1 = (h1 - h2)/2:
    cov(h1, y'1) = 7/4, cov(h2, y'1) = -3/8  ->  c'_1 = [7/15, -3/4],  w~'_1 = [5/2, -1]
    w~'.c' = 7/6 + 3/4 = 23/12, ||w~'|| = sqrt(29)/2, ||c'|| = sqrt(49/225 + 9/16) = 53/60, max|c'| = 3/4
    S' = (23/12) / (sqrt29/2 * 53/60) = 230 / (53 sqrt29) ~ 0.805848
    G' = (23/12) / (sqrt29/2 * 3/4)   = 46 / (9 sqrt29)   ~ 0.949110
Network (eq. 14): G_hidden = 37/(8 sqrt13), G_final = 46/(9 sqrt29), G_total = their sum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import snrcli
from helpers import close, init, layer, make_model, mlp, node, ref_dense, vi, write
from snrcli.analysis import metrics
from snrcli.stats.layer import FinishedStats

R13, R29 = math.sqrt(13), math.sqrt(29)
X = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], dtype=np.float32)
W = np.array([[1, 1], [1, -1]], dtype=np.float64)
S1, G1 = 42 / math.sqrt(1885), 14 / (3 * R13)
S2, G2 = 18 / (5 * R13), 9 / (2 * R13)
S_CENTRED, G_CENTRED = 2 / math.sqrt(5), 1.0
COV = np.array([[1.5, 0.5], [2.0, -1.0]])  # cov(x_j, y_i), (inputs, units)
M, A = np.array([2.0, 3.0]), np.array([0.5, 0.5])

EXACT = dict(rel=1e-9, abs=1e-12)
F32 = dict(rel=1e-6, abs=1e-7)  # the model runs in float32


def analyze(tmp_path, model, data, name="m", **kw):
    mp, dp = write(tmp_path, model, data, name=name)
    return snrcli.analyze(mp, dp, **kw)


# --------------------------------------------------------------------------- metrics.py on hand statistics

def test_unit_figures_hand_example():
    s, g = metrics.unit_figures(W, COV, M, A, np.array([True, True]))
    assert s == pytest.approx([S1, S2], **EXACT)
    assert g == pytest.approx([G1, G2], **EXACT)


def test_unit_figures_is_unchanged_by_the_sign_and_scale_of_a_unit():
    s, g = metrics.unit_figures(W * np.array([[-3.0], [0.25]]), COV * np.array([[-3.0, 0.25]]), M, A,
                                np.array([True, True]))
    assert s == pytest.approx([S1, S2], **EXACT)
    assert g == pytest.approx([G1, G2], **EXACT)


def test_g_is_s_times_norm_over_max():
    rng = np.random.default_rng(0)
    w, cov = rng.normal(size=(5, 7)), rng.normal(size=(7, 5))
    m, a = rng.uniform(0.5, 2, 7), rng.uniform(0.1, 1, 7)
    kept = np.ones(7, bool)
    s, g = metrics.unit_figures(w, cov, m, a, kept)
    c = cov.T / (m * a)
    assert np.all(np.abs(s) <= 1)
    assert g == pytest.approx(s * np.linalg.norm(c, axis=1) / np.abs(c).max(axis=1), rel=1e-12)


def test_unit_figures_undefined_units_are_nan():
    kept = np.array([True, True])
    w = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    cov = np.array([[1.5, 0.0, 0.5], [2.0, 0.0, -1.0]])   # unit 2 has zero covariance: max|c| = 0
    s, g = metrics.unit_figures(w, cov, M, A, kept)
    assert np.isnan(s[0]) and np.isnan(g[0])        # ||w~|| = 0
    assert np.isnan(s[1]) and np.isnan(g[1])        # max |c| = 0
    assert s[2] == pytest.approx(S2, **EXACT)
    s, g = metrics.unit_figures(W, COV, M, A, np.array([False, False]))
    assert np.isnan(s).all() and np.isnan(g).all()  # no kept input


def test_unit_figures_only_kept_inputs_count():
    # keep only input 1: c_1 = [3/2], w~_1 = [2] -> S = 1, G = 1; unit 2: c = [1/2], w~ = [2] -> S = G = 1
    s, g = metrics.unit_figures(W, COV, M, A, np.array([True, False]))
    assert s == pytest.approx([1, 1], **EXACT) and g == pytest.approx([1, 1], **EXACT)
    # keep only input 2: unit 1 c = [4/3], w~ = [3] -> 1; unit 2 c = [-2/3], w~ = [-3] -> S = G = +1
    s, g = metrics.unit_figures(W, COV, M, A, np.array([False, True]))
    assert s == pytest.approx([1, 1], **EXACT) and g == pytest.approx([1, 1], **EXACT)


def test_kept_channels_rules_and_boundaries():
    m = np.array([1.0, 0.0, 0.01, 0.0101, 1.0, 0.5, 0.5])
    a = np.array([0.5, 0.0, 0.5, 0.5, 0.005, 0.01, 0.0])
    kept = metrics.kept_channels(m, a, 0.01, 0.01)
    # dead (a=0, m=0); m == min_level * max is NOT kept (strict >); a == min_activity IS kept (>=);
    # a_j = 0 is dropped even when m_j is large
    assert kept.tolist() == [True, False, False, True, False, True, False]
    # min_activity = 0 keeps rare inputs but never an input with a_j = 0
    assert metrics.kept_channels(m, a, 0.01, 0.0).tolist() == [True, False, False, True, True, True, False]
    # min_level = 0: any m_j > 0 is kept
    assert metrics.kept_channels(m, a, 0.0, 0.0).tolist() == [True, False, True, True, True, True, False]


def test_centred_hand_example():
    wc, cc = metrics.centred(W, COV)
    assert wc.tolist() == [[0.0, 1.0], [0.0, -1.0]]
    assert cc.tolist() == [[0.5, -0.5], [1.5, -1.5]]   # cov(x_j, y'_i) by hand
    s, g = metrics.unit_figures(wc, cc, M, A, np.array([True, True]))
    assert s == pytest.approx([S_CENTRED] * 2, **EXACT)
    assert g == pytest.approx([G_CENTRED] * 2, **EXACT)


def test_layer_figures_activity_weighted_means():
    st = FinishedStats(cov=[COV], m=M, a=A, r=np.array([0.75, 0.25]), samples=4)
    figs = metrics.layer_figures(W, 1, 1, st, min_level=0.01, min_activity=0.01, classifier=True)
    means = figs.means()
    assert means["S_mean"] == pytest.approx(0.75 * S1 + 0.25 * S2, **EXACT)
    assert means["G_mean"] == pytest.approx(37 / (8 * R13), **EXACT)
    assert means["S_mean_unweighted"] == pytest.approx((S1 + S2) / 2, **EXACT)
    assert means["G_mean_unweighted"] == pytest.approx((G1 + G2) / 2, **EXACT)
    assert means["activity_mean"] == pytest.approx(0.5, **EXACT)
    assert means["S_mean_centred"] == pytest.approx(S_CENTRED, **EXACT)
    assert means["G_mean_centred"] == pytest.approx(G_CENTRED, **EXACT)
    assert figs.inputs_kept == 2 and figs.undefined_units == 0


def test_layer_figures_means_skip_undefined_and_zero_activity():
    st = FinishedStats(cov=[np.c_[COV, np.zeros(2)]], m=M, a=A, r=np.array([0.0, 0.5, 1.0]), samples=4)
    w3 = np.r_[W, [[1.0, 1.0]]]
    figs = metrics.layer_figures(w3, 1, 1, st, min_level=0.01, min_activity=0.01, classifier=False)
    means = figs.means()
    assert figs.undefined_units == 1                       # unit 3: zero covariance
    assert means["S_mean"] == pytest.approx(S2, **EXACT)   # unit 1 has r = 0, unit 3 undefined
    assert means["S_mean_unweighted"] == pytest.approx((S1 + S2) / 2, **EXACT)
    assert means["activity_mean"] == pytest.approx(0.5, **EXACT)
    assert means["S_mean_centred"] is None and means["G_mean_centred"] is None
    st0 = FinishedStats(cov=[COV], m=M, a=A, r=np.zeros(2), samples=4)
    m0 = metrics.layer_figures(W, 1, 1, st0, min_level=0.01, min_activity=0.01, classifier=False).means()
    assert m0["S_mean"] is None and m0["G_mean"] is None   # sum r_i = 0
    assert m0["S_mean_unweighted"] == pytest.approx((S1 + S2) / 2, **EXACT)


def _L(g, classifier=False, gc=None):
    return {"G_mean": g, "classifier": classifier, "G_mean_centred": gc}


def test_network_figures_sums():
    n = metrics.network_figures([_L(0.5), _L(0.25), _L(7.0, True, 2.0)])
    assert n == {"G_hidden": 0.75, "G_final": 2.0, "G_total": 2.75}


def test_network_figures_no_classifier_uses_last_plain_g():
    n = metrics.network_figures([_L(0.5), _L(1.5)])
    assert n == {"G_hidden": 0.5, "G_final": 1.5, "G_total": 2.0}


def test_network_figures_classifier_not_last():
    n = metrics.network_figures([_L(1.0), _L(9.0, True, 3.0), _L(0.5)])
    assert n == {"G_hidden": 1.5, "G_final": 3.0, "G_total": 4.5}


def test_network_figures_null_propagation():
    n = metrics.network_figures([_L(None), _L(0.25), _L(7.0, True, 2.0)])
    assert n == {"G_hidden": None, "G_final": 2.0, "G_total": None}
    n = metrics.network_figures([_L(0.5), _L(7.0, True, None)])
    assert n == {"G_hidden": 0.5, "G_final": None, "G_total": None}
    n = metrics.network_figures([_L(0.5), _L(None)])
    assert n == {"G_hidden": 0.5, "G_final": None, "G_total": None}


def test_network_figures_one_layer_has_zero_hidden():
    n = metrics.network_figures([_L(1.25)])
    assert n["G_hidden"] == 0 and n["G_hidden"] is not None
    assert n["G_final"] == 1.25 and n["G_total"] == 1.25
    n = metrics.network_figures([_L(1.25, True, 0.5)])
    assert n == {"G_hidden": 0.0, "G_final": 0.5, "G_total": 0.5}


# --------------------------------------------------------------------------- the pipeline on hand models

@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_pipeline_one_layer_hand_example(tmp_path, op):
    rep = analyze(tmp_path, mlp([W], op=op), {"x": X})
    L = layer(rep, 1)
    assert (L["units"], L["inputs"], L["inputs_kept"], L["samples"], L["undefined_units"]) == (2, 2, 2, 4, 0)
    assert L["classifier"] is True
    assert rep.layers[0].unit_S == pytest.approx([S1, S2], **F32)
    assert rep.layers[0].unit_G == pytest.approx([G1, G2], **F32)
    assert L["S_mean"] == pytest.approx((S1 + S2) / 2, **F32)
    assert L["G_mean"] == pytest.approx((G1 + G2) / 2, **F32)
    assert L["activity_mean"] == 1.0
    assert L["S_mean_centred"] == pytest.approx(S_CENTRED, **F32)
    assert L["G_mean_centred"] == pytest.approx(G_CENTRED, **F32)
    assert rep.layers[0].unit_S_centred == pytest.approx([S_CENTRED] * 2, **F32)
    net = rep.to_dict()["network"]
    assert net["G_hidden"] == 0.0 and net["G_hidden"] is not None
    assert net["G_final"] == pytest.approx(1.0, **F32)
    assert net["G_total"] == pytest.approx(1.0, **F32)
    assert rep.to_dict()["data"]["samples"] == 4


def test_pipeline_one_layer_without_centring(tmp_path):
    rep = analyze(tmp_path, mlp([W]), {"x": X}, centre_classifier=False)
    L = layer(rep, 1)
    assert L["classifier"] is False
    assert L["S_mean_centred"] is None and L["G_mean_centred"] is None
    net = rep.to_dict()["network"]
    # G_final = plain G_mean = (14/(3 sqrt13) + 9/(2 sqrt13)) / 2 = 55 / (12 sqrt13)
    assert net == pytest.approx({"G_hidden": 0.0, "G_final": 55 / (12 * R13), "G_total": 55 / (12 * R13)}, **F32)
    assert rep.to_dict()["settings"]["centre_classifier"] is False


def test_pipeline_two_layer_hand_network(tmp_path):
    """Layer 1 = W with Relu (activities 3/4, 1/4), layer 2 = identity classifier; see the module docstring."""
    rep = analyze(tmp_path, mlp([W, np.eye(2)]), {"x": X})
    L1, L2 = layer(rep, 1), layer(rep, 2)
    assert rep.layers[0].unit_r == pytest.approx([0.75, 0.25], **EXACT)
    assert L1["activity_mean"] == pytest.approx(0.5, **EXACT)
    assert L1["S_mean"] == pytest.approx(0.75 * S1 + 0.25 * S2, **F32)
    assert L1["G_mean"] == pytest.approx(37 / (8 * R13), **F32)
    assert L1["S_mean_unweighted"] == pytest.approx((S1 + S2) / 2, **F32)
    assert L1["G_mean_unweighted"] == pytest.approx((G1 + G2) / 2, **F32)
    assert L1["classifier"] is False and L1["S_mean_centred"] is None
    assert L2["classifier"] is True
    assert (L2["S_mean"], L2["G_mean"]) == pytest.approx((1.0, 1.0), **F32)
    assert L2["S_mean_centred"] == pytest.approx(230 / (53 * R29), **F32)
    assert L2["G_mean_centred"] == pytest.approx(46 / (9 * R29), **F32)
    net = rep.to_dict()["network"]
    assert net["G_hidden"] == pytest.approx(37 / (8 * R13), **F32)
    assert net["G_final"] == pytest.approx(46 / (9 * R29), **F32)
    assert net["G_total"] == pytest.approx(37 / (8 * R13) + 46 / (9 * R29), **F32)


def test_pipeline_two_layer_hand_network_no_centring(tmp_path):
    rep = analyze(tmp_path, mlp([W, np.eye(2)]), {"x": X}, centre_classifier=False)
    net = rep.to_dict()["network"]
    assert net == pytest.approx({"G_hidden": 37 / (8 * R13), "G_final": 1.0, "G_total": 37 / (8 * R13) + 1}, **F32)


# Kept inputs on a hand example: the 4 samples above twice (8 samples; m, a and covariances
# unchanged), with three more inputs of weight 0 or dead:
#   x3 = x1 / 64   (m3 = 1/32; weight 0)       low level: m3 / max m = (1/32) / 4 = 1/128
#   x4 = 0 always  (a4 = 0; weight 5)          dead: never kept, and adds nothing to y
#   x5 = [4, 0, 0, 0, 0, 0, 0, 0] (m5 = 4, a5 = 1/8; weight 0)   rare
# y is unchanged (x4 = 0, other weights 0); max m = 4 (x5).
# If x3 is kept: c_i3 = cov(x1/64, y_i) / ((1/32)(1/2)) = c_i1, so ||c_1|| = sqrt(145/36 + 81/36) = sqrt226/6,
#   ||c_2|| = sqrt(25/36 + 9/36) = sqrt34/6:  S_1 = 42/(sqrt13 sqrt226), S_2 = 18/(sqrt13 sqrt34); G unchanged.
# If x5 is kept: mean y1 = 2, x5 * y1 = 0 always, so cov(x5, y1) = 0 - (1/2)(2) = -1, m5 a5 = 1/2, c_15 = -2;
#   mean y2 = 0 so c_25 = 0. Unit 1: ||c|| = sqrt(145/36 + 4) = 17/6, max|c| = 2:
#   S_1 = 7/(sqrt13 * 17/6) = 42/(17 sqrt13), G_1 = 7/(2 sqrt13); unit 2 unchanged.
XK = np.c_[np.tile(X, (2, 1)), np.tile(X[:, :1], (2, 1)) / 64, np.zeros((8, 1)), [[4]] + [[0]] * 7].astype(np.float32)
WK = np.array([[1, 1, 0, 5, 0], [1, -1, 0, 5, 0]], dtype=np.float64)


@pytest.mark.parametrize("min_level, min_activity, kept, S, G", [
    (0.01, 0.2, 2, [S1, S2], [G1, G2]),
    (0.001, 0.2, 3, [42 / (R13 * math.sqrt(226)), 18 / (R13 * math.sqrt(34))], [G1, G2]),
    (1 / 128, 0.2, 2, [S1, S2], [G1, G2]),                       # m3 == min_level * max m: not kept
    (0.01, 0.1, 3, [42 / (17 * R13), S2], [7 / (2 * R13), G2]),
    (0.01, 0.125, 3, [42 / (17 * R13), S2], [7 / (2 * R13), G2]),  # a5 == min_activity: kept
    (0.0, 0.0, 4, None, None),                                   # all but the dead input
])
def test_pipeline_kept_inputs_hand_example(tmp_path, min_level, min_activity, kept, S, G):
    rep = analyze(tmp_path, mlp([WK]), {"x": XK}, min_level=min_level, min_activity=min_activity,
                  centre_classifier=False)
    L = layer(rep, 1)
    assert (L["inputs"], L["inputs_kept"], L["samples"]) == (5, kept, 8)
    assert rep.to_dict()["settings"]["min_level"] == min_level
    assert rep.to_dict()["settings"]["min_activity"] == min_activity
    if S is None:  # x3 and x5 both kept: compare with the reference reading
        ref = ref_dense(XK.astype(np.float64), WK, min_level=0, min_activity=0)
        assert ref["kept"].tolist() == [True, True, True, False, True]
        S, G = ref["S"], ref["G"]
    assert rep.layers[0].unit_S == pytest.approx(S, **F32)
    assert rep.layers[0].unit_G == pytest.approx(G, **F32)


def test_pipeline_hidden_layer_all_undefined_makes_network_null(tmp_path):
    """Layer 1 (zero weights, a side output) is all undefined: G_hidden and G_total are null."""
    nodes = [node("Gemm", ["x", "W0", "B0"], ["aux"], name="dead", transB=1),
             node("Gemm", ["x", "W1", "B1"], ["y"], name="cls", transB=1)]
    inits = [init("W0", np.zeros((3, 2))), init("B0", np.ones(3)), init("W1", W), init("B1", np.zeros(2))]
    model = make_model(nodes, [vi("x", ["N", 2])], [vi("y", ["N", 2]), vi("aux", ["N", 3])], inits)
    rep = analyze(tmp_path, model, {"x": X})
    d = rep.to_dict()
    L1, L2 = layer(d, 1), layer(d, 2)
    assert L1["undefined_units"] == 3 and L1["S_mean"] is None and L1["G_mean"] is None
    assert L1["S_mean_unweighted"] is None and L1["classifier"] is False
    assert L2["classifier"] is True
    assert L2["G_mean_centred"] == pytest.approx(G_CENTRED, **F32)
    assert d["network"]["G_hidden"] is None and d["network"]["G_total"] is None
    assert d["network"]["G_final"] == pytest.approx(1.0, **F32)
    assert any("every unit is undefined" in w for w in d["warnings"])
    assert np.isnan(rep.layers[0].unit_S).all()


def test_pipeline_matches_reference_on_random_mlp(tmp_path, rng):
    """A 3-layer ReLU MLP on random data with dead, faint and rare features, against ``ref_dense``."""
    n, p = 300, 12
    x = rng.normal(size=(n, p)).astype(np.float32)
    x[:, 0] = 0                                  # dead
    x[:, 1] *= 1e-4                              # below min_level
    x[:, 2] = np.where(rng.random(n) < 0.003, 3.0, 0.0)  # rare (about 1 in 300)
    x[:, 3] = np.maximum(x[:, 3], 0)             # half on
    ws = [rng.normal(size=(9, p)), rng.normal(size=(7, 9)), rng.normal(size=(4, 7))]
    bs = [rng.normal(size=9) * 0.3, rng.normal(size=7) * 0.3, rng.normal(size=4)]
    rep = analyze(tmp_path, mlp(ws, bs, head="Softmax"), {"x": x, "labels": rng.integers(0, 4, n)})
    acts = forward_mlp_f64(x, ws, bs)
    for k in range(3):
        r = None if k == 2 else (acts[k + 1] > 0).mean(axis=0)
        ref = ref_dense(acts[k], ws[k], r=r)
        got = rep.layers[k]
        assert np.isnan(got.unit_S).tolist() == np.isnan(ref["S"]).tolist()
        assert got.unit_S == pytest.approx(ref["S"], rel=1e-4, abs=1e-5, nan_ok=True)
        assert got.unit_G == pytest.approx(ref["G"], rel=1e-4, abs=1e-5, nan_ok=True)
        assert got.unit_r == pytest.approx(ref["r"], abs=1e-12)
        assert got.fields["inputs_kept"] == int(ref["kept"].sum())
        assert got.fields["G_mean"] == pytest.approx(ref["G_mean"], rel=1e-4)
    assert layer(rep, 1)["inputs_kept"] == p - 3
    ref_c = ref_dense(acts[2], ws[2], centre=True)
    assert layer(rep, 3)["G_mean_centred"] == pytest.approx(ref_c["G_mean_unweighted"], rel=1e-4)
    assert layer(rep, 3)["S_mean_centred"] == pytest.approx(ref_c["S_mean_unweighted"], rel=1e-4)


def forward_mlp_f64(x, ws, bs):
    acts, t = [np.asarray(x, np.float64)], np.asarray(x, np.float64)
    for k, (w, b) in enumerate(zip(ws, bs)):
        w32, b32 = np.asarray(w, np.float32).astype(np.float64), np.asarray(b, np.float32).astype(np.float64)
        z = t @ w32.T + b32
        t = np.maximum(z, 0) if k < len(ws) - 1 else z
        acts.append(t)
    return acts


# --------------------------------------------------------------------------- invariances through the pipeline

def _random_net(rng, p=10, h=8, k=5):
    ws = [rng.normal(size=(h, p)), rng.normal(size=(k, h))]
    bs = [rng.normal(size=h) * 0.2, rng.normal(size=k) * 0.2]
    x = rng.normal(size=(200, p)).astype(np.float32)
    x[:, 1] = np.maximum(x[:, 1], 0)
    return ws, bs, x


def _unit_figs(rep):
    return [(L.unit_S.copy(), L.unit_G.copy()) for L in rep.layers]


def test_scaling_a_hidden_unit_changes_nothing(tmp_path, rng):
    ws, bs, x = _random_net(rng)
    base = analyze(tmp_path / "a", mlp(ws, bs), {"x": x})
    c, unit = 3.7, 2
    ws2 = [w.copy() for w in ws]
    bs2 = [b.copy() for b in bs]
    ws2[0][unit] *= c
    bs2[0][unit] *= c
    ws2[1][:, unit] /= c   # relu(c z) = c relu(z): the network is equivalent
    scaled = analyze(tmp_path / "b", mlp(ws2, bs2), {"x": x})
    for (s0, g0), (s1, g1) in zip(_unit_figs(base), _unit_figs(scaled)):
        assert s1 == pytest.approx(s0, rel=1e-5, abs=1e-6)
        assert g1 == pytest.approx(g0, rel=1e-5, abs=1e-6)
    for key in ("S_mean", "G_mean", "S_mean_centred", "G_mean_centred"):
        assert layer(scaled, 2)[key] == pytest.approx(layer(base, 2)[key], rel=1e-5)
    assert scaled.to_dict()["network"]["G_total"] == pytest.approx(base.to_dict()["network"]["G_total"], rel=1e-5)


def test_scaling_one_classifier_unit_keeps_its_plain_figures(tmp_path, rng):
    ws, bs, x = _random_net(rng)
    base = analyze(tmp_path / "a", mlp(ws, bs), {"x": x}, centre_classifier=False)
    ws2 = [w.copy() for w in ws]
    ws2[1][3] *= 0.05
    scaled = analyze(tmp_path / "b", mlp(ws2, bs), {"x": x}, centre_classifier=False)
    assert scaled.layers[1].unit_S == pytest.approx(base.layers[1].unit_S, rel=1e-5)
    assert scaled.layers[1].unit_G == pytest.approx(base.layers[1].unit_G, rel=1e-5)


def test_permuting_inputs_with_weight_columns_changes_nothing(tmp_path, rng):
    ws, bs, x = _random_net(rng)
    base = analyze(tmp_path / "a", mlp(ws, bs), {"x": x})
    perm = rng.permutation(x.shape[1])
    ws2 = [ws[0][:, perm], ws[1]]
    permuted = analyze(tmp_path / "b", mlp(ws2, bs), {"x": np.ascontiguousarray(x[:, perm])})
    for (s0, g0), (s1, g1) in zip(_unit_figs(base), _unit_figs(permuted)):
        assert s1 == pytest.approx(s0, rel=1e-5, abs=1e-6)
        assert g1 == pytest.approx(g0, rel=1e-5, abs=1e-6)
    assert permuted.to_dict()["network"] == pytest.approx(base.to_dict()["network"], rel=1e-5)


def test_batch_size_does_not_change_figures(tmp_path, rng):
    ws, bs, x = _random_net(rng)
    mp, dp = write(tmp_path, mlp(ws, bs), {"x": x})
    reps = [snrcli.analyze(mp, dp, batch_size=b) for b in (1, 7, len(x))]
    for rep in reps[1:]:
        for L0, L1 in zip(reps[0].to_dict()["layers"], rep.to_dict()["layers"]):
            for key in ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean",
                        "S_mean_centred", "G_mean_centred"):
                assert close(L1[key], L0[key], rtol=1e-6), key
            assert L1["samples"] == L0["samples"] == len(x)
        assert rep.to_dict()["network"] == pytest.approx(reps[0].to_dict()["network"], rel=1e-6)
    assert [r.to_dict()["settings"]["batch_size"] for r in reps] == [1, 7, len(x)]


def test_centred_figures_ignore_a_vector_added_to_every_classifier_unit(tmp_path, rng):
    ws, bs, x = _random_net(rng)
    base = analyze(tmp_path / "a", mlp(ws, bs, head="Softmax"), {"x": x})
    v = rng.normal(size=ws[1].shape[1]) * 2
    shifted = analyze(tmp_path / "b", mlp([ws[0], ws[1] + v], bs, head="Softmax"), {"x": x})
    b2, s2 = layer(base, 2), layer(shifted, 2)
    assert b2["classifier"] and s2["classifier"]
    assert s2["S_mean_centred"] == pytest.approx(b2["S_mean_centred"], rel=1e-5)
    assert s2["G_mean_centred"] == pytest.approx(b2["G_mean_centred"], rel=1e-5)
    assert shifted.layers[1].unit_S_centred == pytest.approx(base.layers[1].unit_S_centred, rel=1e-5)
    assert abs(s2["G_mean"] - b2["G_mean"]) > 1e-3          # plain figures do change
    assert abs(s2["S_mean"] - b2["S_mean"]) > 1e-3
    assert shifted.to_dict()["network"]["G_final"] == pytest.approx(base.to_dict()["network"]["G_final"], rel=1e-5)


def test_scaled_conv_channel_keeps_its_figures(tmp_path, rng):
    """Conv: scaling output channel 1 (and its bias) of conv1 and the next conv's input channel by 1/c."""
    from helpers import cnn
    w1, b1 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4) * 0.1
    w2 = rng.normal(size=(3, 4, 3, 3))
    x = rng.normal(size=(20, 2, 8, 8)).astype(np.float32)
    base = analyze(tmp_path / "a", cnn([dict(W=w1, B=b1, pads=[1, 1, 1, 1]), dict(W=w2)], (2, 8, 8)), {"x": x})
    c = 2.5
    w1s, b1s, w2s = w1.copy(), b1.copy(), w2.copy()
    w1s[1] *= c
    b1s[1] *= c
    w2s[:, 1] /= c
    scaled = analyze(tmp_path / "b", cnn([dict(W=w1s, B=b1s, pads=[1, 1, 1, 1]), dict(W=w2s)], (2, 8, 8)),
                     {"x": x})
    for (s0, g0), (s1, g1) in zip(_unit_figs(base), _unit_figs(scaled)):
        assert s1 == pytest.approx(s0, rel=1e-5, abs=1e-6)
        assert g1 == pytest.approx(g0, rel=1e-5, abs=1e-6)


# --------------------------------------------------------------------------- conv layers against the loop reference

def _conv_fwd(x, w, b, attrs):
    """float64 conv through the nested-loop patches: (B, M, *out)."""
    from helpers import conv_ref_out, conv_ref_pads, conv_reference_patches
    k = w.shape[2:]
    nd = len(k)
    st = attrs.get("strides", [1] * nd)
    dl = attrs.get("dilations", [1] * nd)
    ap = attrs.get("auto_pad", "NOTSET")
    pads = attrs.get("pads")
    out = conv_ref_out(k, st, dl, pads, ap, x.shape[2:])
    pb = conv_ref_pads(k, st, dl, pads, ap, x.shape[2:])[0]
    P = conv_reference_patches(np.asarray(x, np.float64), k, st, dl, pb, out)
    g = attrs.get("group", 1)
    M, cg = w.shape[:2]
    ks = int(np.prod(k))
    mg = M // g
    ys = [P[:, j * cg * ks:(j + 1) * cg * ks] @ w[j * mg:(j + 1) * mg].reshape(mg, -1).T for j in range(g)]
    y = np.concatenate(ys, axis=1) + (0 if b is None else b)
    return np.moveaxis(y.reshape((x.shape[0],) + out + (M,)), -1, 1), dict(strides=st, dilations=dl,
                                                                          pads_begin=pb, out_shape=out, group=g)


CONV_STACKS = {
    "2d-pads-group": ((3, 6, 7), [dict(W=(4, 3, 3, 3), pads=[1, 1, 1, 1]),
                                  dict(W=(6, 2, 2, 2), strides=[2, 1], group=2),
                                  dict(W=(4, 6, 3, 2), dilations=[1, 2], pads=[0, 1, 2, 0])]),
    "1d-same": ((2, 11), [dict(W=(3, 2, 4), auto_pad="SAME_UPPER", strides=[2]),
                          dict(W=(4, 3, 2), auto_pad="SAME_LOWER", strides=[1])]),
    "3d": ((2, 4, 3, 5), [dict(W=(3, 2, 2, 2, 3), pads=[1, 0, 1, 0, 1, 1], strides=[1, 1, 2]),
                          dict(W=(3, 1, 1, 2, 1), group=3, auto_pad="VALID")]),
}


@pytest.mark.parametrize("name", list(CONV_STACKS))
def test_conv_stack_matches_reference(tmp_path, name):
    from helpers import cnn, ref_conv
    rng = np.random.default_rng(sum(map(ord, name)))
    in_shape, specs = CONV_STACKS[name]
    convs, weights, biases = [], [], []
    for sp in specs:
        sp = dict(sp)
        w = rng.normal(size=sp.pop("W"))
        b = rng.normal(size=w.shape[0]) * 0.3
        convs.append(dict(W=w, B=b, **sp))
        weights.append((w.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64), sp))
    x = rng.normal(size=(5,) + in_shape).astype(np.float32)
    x[:, 0] = np.maximum(x[:, 0], 0) * 3          # a non-negative channel at a larger scale
    if in_shape[0] > 2:
        x[:, 2] = 0                               # a dead channel: dropped whole
    rep = analyze(tmp_path, cnn(convs, in_shape), {"x": x})
    t = x.astype(np.float64)
    for k, (w, b, sp) in enumerate(weights):
        y, geo = _conv_fwd(t, w, b, sp)
        S, G, kept = ref_conv(t, w, **geo)
        got = rep.layers[k]
        assert np.isnan(got.unit_S).tolist() == np.isnan(S).tolist()
        assert got.unit_S == pytest.approx(S, rel=1e-4, abs=1e-5, nan_ok=True)
        assert got.unit_G == pytest.approx(G, rel=1e-4, abs=1e-5, nan_ok=True)
        ksize = int(np.prod(w.shape[2:]))
        L = got.fields
        assert L["inputs"] == t.shape[1] * ksize and L["inputs_kept"] == int(kept.sum()) * ksize
        assert L["samples"] == 5 * int(np.prod(geo["out_shape"]))
        last = k == len(weights) - 1
        if not last:
            r = (y > 0).mean(axis=(0,) + tuple(range(2, y.ndim)))
            assert got.unit_r == pytest.approx(r, abs=1e-9)
            t = np.maximum(y, 0)
        else:
            assert L["classifier"] is (geo["group"] == 1)
    assert layer(rep, 1)["inputs_kept"] == (2 if in_shape[0] > 2 else in_shape[0]) * int(np.prod(specs[0]["W"][2:]))


def test_conv_classifier_centred_matches_reference(tmp_path, rng):
    """A 1x1-conv head (group 1) that reaches the output is the classifier; its centred figures per reference."""
    from helpers import cnn, ref_conv
    w = rng.normal(size=(3, 2, 3, 3))
    x = rng.normal(size=(6, 2, 4, 4)).astype(np.float32)
    rep = analyze(tmp_path, cnn([dict(W=w, pads=[1, 1, 1, 1])], (2, 4, 4)), {"x": x})
    assert layer(rep, 1)["classifier"] is True
    w32 = w.astype(np.float32).astype(np.float64)
    geo = dict(strides=[1, 1], dilations=[1, 1], pads_begin=[1, 1], out_shape=(4, 4))
    S, G, _ = ref_conv(x, w32, centre=True, **geo)
    assert rep.layers[0].unit_S_centred == pytest.approx(S, rel=1e-4, abs=1e-6)
    assert rep.layers[0].unit_G_centred == pytest.approx(G, rel=1e-4, abs=1e-6)
    assert layer(rep, 1)["G_mean_centred"] == pytest.approx(G.mean(), rel=1e-4)


def test_S_is_clipped_to_one_for_weights_proportional_to_c():
    """A unit whose scaled weights are exactly proportional to c has S = 1, but the float64 quotient
    of eq. 10 can land a few ulp above 1 (above the report schema's maximum): S is clipped to [-1, 1]."""
    rng = np.random.default_rng(0)
    above, n = 0, 60
    for _ in range(n):
        p = int(rng.integers(2, 8))
        w = rng.normal(size=(1, p))
        k = float(rng.uniform(0.1, 10.0)) * (1 if rng.random() < 0.5 else -1)
        ones = np.ones(p)
        cov = (w * k).T.copy()                      # m = a = 1: c_1j = k w_1j exactly
        S, G = metrics.unit_figures(w, cov, ones, ones, np.ones(p, bool))
        assert -1.0 <= S[0] <= 1.0
        assert abs(S[0]) == pytest.approx(1.0, abs=1e-15) and np.sign(S[0]) == np.sign(k)
        c = cov.T                                   # eq. 10 as unit_figures evaluates it, unclipped
        raw = np.einsum("ij,ij->i", w, c) / (np.linalg.norm(w, axis=1) * np.linalg.norm(c, axis=1))
        above += abs(raw[0]) > 1.0
    assert above > 0, "no case computed |S| above 1 before clipping: the test would not notice a missing clip"
