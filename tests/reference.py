"""A slow, obviously-correct reading of the SNR spec (shared/spec/metrics.md), unit by unit.

Section 11 (the activation noise model) on chains of elementwise ops after each layer lives in
``reference_act``; ``reference(..., noise_model="activation")`` uses it.

Written from the spec alone, without ``snrcli``: it takes a ``corpus.Stack`` (a chain
of dense and conv layers with their weights), runs it forward in float64 numpy, and
for every weighted layer computes section 2-7 quantities with plain loops:

- conv receptive fields by explicit index arithmetic (``receptive_field``),
- ``y_i = sum_j w_ij x_j`` per unit and sample,
- population covariances from exact sums (``fractions.Fraction``), so a covariance
  that is zero in exact arithmetic is exactly zero here,
- ``m_j``, ``a_j`` per input channel, the kept set, ``c_ij``, ``S_i``, ``G_i``,
  activities ``r_i`` from the ReLU that follows, layer means, softmax centring
  of the classifier and the network sums.

With the small dyadic weights and integer data that the property tests draw,
every forward value is exactly representable in float32, so onnxruntime's float32
forward pass and this float64 one agree bit for bit (``Forward.exact_in_float32``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import reference_act as A
from corpus import Conv, Dense, Flatten, Stack


# --------------------------------------------------------------------------- conv geometry (ONNX Conv semantics)

def conv_pads(L: Conv, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis."""
    nd = len(spatial)
    strides = L.strides or (1,) * nd
    dil = L.dilations or (1,) * nd
    kernel = L.W.shape[2:]
    if L.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for n, s, d, k in zip(spatial, strides, dil, kernel):
            o = -(-n // s)                                    # ceil(n / s)
            total = max(0, (o - 1) * s + (k - 1) * d + 1 - n)
            half = total // 2
            # SAME_UPPER puts the extra padding at the end, SAME_LOWER at the beginning
            out.append((half, total - half) if L.auto_pad == "SAME_UPPER" else (total - half, half))
        return out
    if L.auto_pad == "VALID" or not L.pads:
        return [(0, 0)] * nd
    return [(L.pads[a], L.pads[a + nd]) for a in range(nd)]


def conv_out_shape(L: Conv, spatial: tuple[int, ...]) -> tuple[int, ...]:
    nd = len(spatial)
    strides = L.strides or (1,) * nd
    dil = L.dilations or (1,) * nd
    kernel = L.W.shape[2:]
    pads = conv_pads(L, spatial)
    return tuple((n + b + e - (d * (k - 1) + 1)) // s + 1
                 for n, (b, e), s, d, k in zip(spatial, pads, strides, dil, kernel))


def receptive_field(X: np.ndarray, item: int, out_pos: tuple[int, ...], L: Conv, group_index: int) -> list[float]:
    """Inputs of one conv sample, ordered (c, k1, k2, ...) inside the group; 0 where the field hits padding."""
    C = X.shape[1]
    spatial = X.shape[2:]
    nd = len(spatial)
    cg = C // L.group
    strides = L.strides or (1,) * nd
    dil = L.dilations or (1,) * nd
    pads = conv_pads(L, spatial)
    kernel = L.W.shape[2:]
    values = []
    for c in range(cg):
        channel = group_index * cg + c
        for k in itertools.product(*[range(n) for n in kernel]):
            pos = []
            inside = True
            for a in range(nd):
                p = out_pos[a] * strides[a] - pads[a][0] + k[a] * dil[a]
                if p < 0 or p >= spatial[a]:
                    inside = False
                pos.append(p)
            values.append(float(X[(item, channel) + tuple(pos)]) if inside else 0.0)
    return values


# --------------------------------------------------------------------------- forward pass

@dataclass
class LayerIO:
    layer: object            # Dense or Conv
    x: np.ndarray            # the layer's input tensor (all items)
    pre: np.ndarray          # W x + b (before the ReLU), same layout as the ONNX output
    elems: list = None       # the chain of elementwise ops after the layer (reference_act.Elem)
    values: list = None      # values[k]: the input of elems[k]; values[-1]: the chain's output
    inexact_from: int = 0    # values[k] for k >= this may differ between float32 and float64 forwards
    prev: "LayerIO | None" = None   # the layer whose chain output (through Flatten) is this layer's input


@dataclass
class Forward:
    layers: list[LayerIO]
    output: np.ndarray
    exact_in_float32: bool


def _dense(L: Dense, X: np.ndarray, bias: bool = True) -> np.ndarray:
    """Dense layer over the last axis; leading axes (batch, sequence, ...) are independent samples."""
    assert X.shape[-1] == L.W.shape[1], f"dense layer of {L.W.shape} fed {X.shape}"
    rows = X.reshape(-1, X.shape[-1])
    out = np.zeros((rows.shape[0], L.units))
    for s in range(rows.shape[0]):
        for i in range(L.units):
            out[s, i] = math.fsum(float(L.W[i, j]) * float(rows[s, j]) for j in range(rows.shape[1])) + \
                (float(L.b[i]) if L.b is not None and bias else 0.0)
    return out.reshape(X.shape[:-1] + (L.units,))


def _conv(L: Conv, X: np.ndarray) -> np.ndarray:
    M = L.units
    mg = M // L.group
    out_shape = conv_out_shape(L, X.shape[2:])
    out = np.zeros((X.shape[0], M) + out_shape)
    for item in range(X.shape[0]):
        for o in itertools.product(*[range(n) for n in out_shape]):
            fields = [receptive_field(X, item, o, L, g) for g in range(L.group)]
            for i in range(M):
                w = L.W[i].reshape(-1)
                v = fields[i // mg]
                out[(item, i) + o] = math.fsum(float(a) * b for a, b in zip(w, v)) + \
                    (float(L.b[i]) if L.b is not None else 0.0)
    return out


def forward(stack: Stack, x: np.ndarray) -> Forward:
    """Run the stack in float64; record each weighted layer's input, pre-activation and chain values."""
    t = np.asarray(x, dtype=np.float64)
    ios = []
    exact = bool(np.all(t == t.astype(np.float32)))
    prev = None
    for L in stack.layers:
        if isinstance(L, Flatten):
            t = t.reshape(t.shape[0], -1)
            continue
        pre = _dense(L, t) if isinstance(L, Dense) else _conv(L, t)
        exact = exact and bool(np.all(pre == pre.astype(np.float32))) and bool(np.all(np.abs(pre) < 2.0 ** 20))
        elems = A.elements(L)
        node_out = _dense(L, t, bias=False) if elems and elems[0].bias is not None else pre
        values = [node_out]
        with np.errstate(all="ignore"):
            for e in elems:
                values.append(e.value(values[-1]))
        inexact_from = 0 if not exact else next((k + 1 for k, e in enumerate(elems) if not A.exact(e)), len(elems))
        io = LayerIO(L, t, pre, elems, values, inexact_from, prev)
        ios.append(io)
        prev = io
        t = values[-1]
        exact = exact and inexact_from == len(elems)
    return Forward(ios, t, exact)


# --------------------------------------------------------------------------- per-unit statistics

def covariance(xs: list, ys: list) -> float:
    """Population covariance (divide by n) from exact rational sums (floats or Fractions)."""
    n = len(xs)
    sx = sum(Fraction(v) for v in xs)
    sy = sum(Fraction(v) for v in ys)
    sxy = sum(Fraction(a) * Fraction(b) for a, b in zip(xs, ys))
    return float((n * sxy - sx * sy) / (n * n))


@dataclass
class UnitFigures:
    S: float | None
    G: float | None


def unit_figures(w: list[float], cov: list[float], m: list[float], a: list[float],
                 kept: list[bool]) -> UnitFigures:
    """Eq. 9, 10, 13 for one unit, over its kept inputs; None when undefined (section 4)."""
    wt, c = [], []
    for j in range(len(w)):
        if kept[j]:
            wt.append(w[j] * m[j])                 # w~_ij = w_ij m_j
            c.append(cov[j] / (m[j] * a[j]))       # c_ij = cov(x_j, y_i) / (m_j a_j)
    if not wt:
        return UnitFigures(None, None)
    w_norm = math.sqrt(sum(v * v for v in wt))
    c_norm = math.sqrt(sum(v * v for v in c))
    c_max = max(abs(v) for v in c)
    if w_norm == 0 or c_max == 0:
        return UnitFigures(None, None)
    dot = sum(p * q for p, q in zip(wt, c))
    return UnitFigures(dot / (w_norm * c_norm), dot / (w_norm * c_max))


@dataclass
class LayerRef:
    units: int
    inputs: int
    inputs_kept: int
    samples: int
    S: list[float | None]
    G: list[float | None]
    r: list[float]
    S_centred: list[float | None] | None
    G_centred: list[float | None] | None
    classifier: bool
    input_activation: list[str] | None = None   # spec section 11: the sites' op lists (under both models)
    unit_activation: list[str] | None = None

    @property
    def undefined_units(self) -> int:
        return sum(v is None for v in self.S)

    def means(self) -> dict[str, float | None]:
        def weighted(v):
            num = sum(ri * vi for ri, vi in zip(self.r, v) if vi is not None)
            den = sum(ri for ri, vi in zip(self.r, v) if vi is not None)
            return None if den <= 0 else num / den

        def plain(v):
            d = [vi for vi in v if vi is not None]
            return sum(d) / len(d) if d else None

        return {
            "S_mean": weighted(self.S), "G_mean": weighted(self.G),
            "S_mean_unweighted": plain(self.S), "G_mean_unweighted": plain(self.G),
            "activity_mean": sum(self.r) / len(self.r),
            "S_mean_centred": plain(self.S_centred) if self.classifier else None,
            "G_mean_centred": plain(self.G_centred) if self.classifier else None,
            "undefined_units": self.undefined_units,
            "inputs_kept": self.inputs_kept, "inputs": self.inputs, "units": self.units,
            "samples": self.samples, "classifier": self.classifier,
        }


def unit_samples(io: LayerIO, i: int) -> tuple[list[list[float]], list[int], list[float]]:
    """For unit i: every sample's input vector, the input channel of each input, and the unit's pre-activation."""
    L, X = io.layer, io.x
    if isinstance(L, Dense):      # a sample is one row of the input with every leading axis flattened
        flat = X.reshape(-1, X.shape[-1])
        pre = io.pre.reshape(-1, L.units)
        rows = [[float(v) for v in flat[s]] for s in range(flat.shape[0])]
        return rows, list(range(flat.shape[1])), [float(pre[s, i]) for s in range(flat.shape[0])]
    mg = L.units // L.group
    g = i // mg
    cg = X.shape[1] // L.group
    k = int(np.prod(L.W.shape[2:]))
    out_shape = io.pre.shape[2:]
    rows, pre = [], []
    for item in range(X.shape[0]):
        for o in itertools.product(*[range(n) for n in out_shape]):
            rows.append(receptive_field(X, item, o, L, g))
            pre.append(float(io.pre[(item, i) + o]))
    return rows, [g * cg + j // k for j in range(cg * k)], pre


def channel_stats(X: np.ndarray, axis: int) -> tuple[list[float], list[float]]:
    """m_c = max |x| and a_c = fraction of values != 0, per channel (``axis``) of the layer's input."""
    m, a = [], []
    for c in range(X.shape[axis]):
        values = [float(v) for v in np.take(X, c, axis=axis).reshape(-1)]
        m.append(max(abs(v) for v in values))
        a.append(sum(v != 0 for v in values) / len(values))
    return m, a


def activation_sites(io: LayerIO, noise_model: str) -> tuple[list | None, list | None, list | None, list | None]:
    """Spec section 11: (input site ops, unit site ops, a_j per input channel, r_i per unit); a_j and r_i
    are None where sections 2 and 5 apply (no site, a non-finite slope, or the relu model)."""
    L = io.layer
    a = r = in_ops = unit_ops = None
    prev = io.prev
    site = A.input_site(prev.elems) if prev is not None else None
    s2 = A.site_s2(site, prev.values) if site is not None else None
    if s2 is not None:
        in_ops = site.ops
        if noise_model == "activation":
            s2 = s2.reshape(io.x.shape)            # element for element (Flatten keeps the order)
            top = s2.max()
            axis = 1 if isinstance(L, Conv) else s2.ndim - 1
            a = [0.0 if top == 0 else float(np.take(s2, c, axis=axis).mean() / top) for c in range(s2.shape[axis])]
    site = A.unit_site(io.elems)
    s2 = A.site_s2(site, io.values)
    if s2 is not None:
        unit_ops = site.ops
        if noise_model == "activation":
            top = s2.max()
            per_unit = [np.take(s2, i, axis=1 if isinstance(L, Conv) else s2.ndim - 1) for i in range(L.units)]
            r = [0.0 if top == 0 else float(u.mean() / top) for u in per_unit]
    return in_ops, unit_ops, a, r


def section5_activity(io: LayerIO) -> list[float]:
    """r_i: the fraction of a unit's samples where section 5's gate (a Relu, or Clip min 0) is > 0; else 1."""
    L = io.layer
    gate = A.section5_gate(io.elems, io.values)
    if gate is None:
        return [1.0] * L.units
    axis = 1 if isinstance(L, Conv) else gate.ndim - 1
    return [float((np.take(gate, i, axis=axis) > 0).mean()) for i in range(L.units)]


def layer_reference(io: LayerIO, *, classifier: bool, min_level: float = 0.01,
                    min_activity: float = 0.01, noise_model: str = "relu") -> LayerRef:
    L = io.layer
    m_ch, a_ch = channel_stats(io.x, axis=1 if isinstance(L, Conv) else -1)   # conv: channels; dense: features
    in_ops, unit_ops, a_act, r_act = activation_sites(io, noise_model)
    a_ch = a_ch if a_act is None else a_act
    r_all = section5_activity(io) if r_act is None else r_act
    top = max(m_ch)
    kept_ch = [(a >= min_activity) and (a > 0) and (m > min_level * top) for m, a in zip(m_ch, a_ch)]
    k = int(np.prod(L.W.shape[2:])) if isinstance(L, Conv) else 1
    units = L.units
    W = L.W.reshape(units, -1)
    S, G, r = [], [], []
    per_unit = []
    for i in range(units):
        rows, chan, pre = unit_samples(io, i)
        w = [float(v) for v in W[i]]
        ys = [math.fsum(wj * xj for wj, xj in zip(w, row)) for row in rows]      # y_i, bias left out
        cov = [covariance([row[j] for row in rows], ys) for j in range(len(w))]
        f = unit_figures(w, cov, [m_ch[c] for c in chan], [a_ch[c] for c in chan], [kept_ch[c] for c in chan])
        S.append(f.S)
        G.append(f.G)
        r.append(r_all[i])
        per_unit.append((rows, chan))
    S_c = G_c = None
    if classifier:
        # W'_ij = W_ij - (1/n) sum_k W_kj, in exact rationals: 1/n is rarely a float, and a y'_i that is
        # constant in exact arithmetic must give covariances that are exactly 0 (an undefined unit)
        cols = W.shape[1]
        mean = [sum(Fraction(float(W[k, j])) for k in range(units)) / units for j in range(cols)]
        S_c, G_c = [], []
        for i in range(units):
            rows, chan = per_unit[i]
            wc = [Fraction(float(W[i, j])) - mean[j] for j in range(cols)]
            ys = [sum(wj * Fraction(xj) for wj, xj in zip(wc, row)) for row in rows]   # y'_i, exact
            cov = [covariance([row[j] for row in rows], ys) for j in range(cols)]
            w = [float(v) for v in wc]
            f = unit_figures(w, cov, [m_ch[c] for c in chan], [a_ch[c] for c in chan],
                             [kept_ch[c] for c in chan])
            S_c.append(f.S)
            G_c.append(f.G)
    samples = len(per_unit[0][0])
    return LayerRef(units=units, inputs=len(m_ch) * k, inputs_kept=sum(kept_ch) * k, samples=samples,
                    S=S, G=G, r=r, S_centred=S_c, G_centred=G_c, classifier=classifier,
                    input_activation=in_ops, unit_activation=unit_ops)


def is_classifier(stack: Stack, centre: bool = True) -> bool:
    """Spec section 6 for a Stack: the last layer is the classifier when its output is the graph output
    (no ReLU or other elementwise op after it) and it is not a grouped conv."""
    last = stack.layers[-1]
    if not centre or not isinstance(last, (Dense, Conv)) or last.relu or last.act:
        return False
    return not (isinstance(last, Conv) and last.group > 1)


@dataclass
class NetworkRef:
    layers: list[LayerRef]
    G_hidden: float | None
    G_final: float | None
    G_total: float | None


def reference(stack: Stack, x: np.ndarray, *, min_level: float = 0.01, min_activity: float = 0.01,
              centre: bool = True, fwd: Forward | None = None, noise_model: str = "relu") -> NetworkRef:
    """Every layer's figures and the network sums (spec sections 2-7, and 11 for ``noise_model``)."""
    fwd = fwd or forward(stack, x)
    cls = is_classifier(stack, centre)
    n = len(fwd.layers)
    layers = [layer_reference(io, classifier=cls and k == n - 1, min_level=min_level, min_activity=min_activity,
                              noise_model=noise_model)
              for k, io in enumerate(fwd.layers)]
    final = layers[-1]
    hidden = [L.means()["G_mean"] for L in layers[:-1]]
    g_hidden = None if any(v is None for v in hidden) else sum(hidden)
    g_final = final.means()["G_mean_centred" if final.classifier else "G_mean"]
    g_total = None if g_hidden is None or g_final is None else g_hidden + g_final
    return NetworkRef(layers, g_hidden, g_final, g_total)
