"""Spec section 11 (paper appendix B.3) for chains of elementwise ops after each layer: a plain reading.

Written from the spec and the ONNX operator definitions alone, without ``snrcli``. A layer of a
``corpus.Stack`` is followed by a chain of *elements*: the bias ``Add`` of a MatMul layer, then its
``corpus.Act`` ops (or one ``Relu``). Each element has one input tensor t; a gated element
(``op(t, gate(t))``) is two ONNX nodes whose input t has two consumers, every other element one.
On such a chain the spec's walks reduce to index arithmetic:

- forward (``unit_site``): section 5's walk over the elements to z, the input of the first gated or
  nonlinear element; x is its output, moved on over the following one-consumer, one-operand elements
  up to the last nonlinear one;
- backward (``input_site``): x is the chain's end before any trailing Identity; z is the input of the
  last gated or nonlinear element, moved back over the preceding one-operand elements to the earliest
  nonlinear one.

Slopes are products of each element's derivative (chain rule along a chain), written per op
below; kinks as the spec fixes them. ``values`` and ``slope`` work elementwise on float64 arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from corpus import Act, Dense

SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875
ERF = np.vectorize(math.erf, otypes=[float])


@dataclass
class Elem:
    """One element of a chain: an ``Act``, or the bias Add of a MatMul layer (``bias``: the vector)."""

    act: Act
    bias: np.ndarray | None = None

    @property
    def nodes(self) -> list[str]:
        return [self.act.gate, self.act.op] if self.act.gate else [self.act.op]

    @property
    def gated(self) -> bool:
        return self.act.gate is not None

    @property
    def linear(self) -> bool:
        a = self.act
        if a.gate:
            return False
        if self.bias is not None or a.op in ("Identity", "Dropout", "Neg"):
            return True
        if a.const is not None and a.op in ("Add", "Sub", "Mul"):
            return True
        return a.const is not None and a.op == "Div" and not a.left

    @property
    def passes_section5(self) -> bool:
        a = self.act
        if self.bias is not None or a.op in ("Identity", "Dropout"):
            return True
        if a.gate or a.const is None:
            return False
        return a.op in ("Add", "Mul") or (a.op in ("Sub", "Div") and not a.left)

    def gate_of(self, t: np.ndarray) -> np.ndarray | None:
        """Section 5's activity gate: the output of a Relu, or of a Clip with min 0."""
        a = self.act
        if a.gate or a.const is not None:
            return None
        if a.op == "Relu" or (a.op == "Clip" and a.attrs.get("min") == 0.0):
            return self.value(t)
        return None

    # ------------------------------------------------------------------ values and slopes

    def value(self, t: np.ndarray) -> np.ndarray:
        a = self.act
        if self.bias is not None:
            return t + self.bias
        if a.gate:
            return _binary(a.op, t, unary_value(a.gate, {}, t))
        if a.const is not None:
            c = np.float64(a.const)
            return _binary(a.op, c, t) if a.left else _binary(a.op, t, c)
        return unary_value(a.op, a.attrs, t)

    def slope(self, t: np.ndarray) -> np.ndarray:
        """d value / d t, elementwise."""
        a = self.act
        if self.bias is not None:
            return np.ones_like(t)
        if a.gate:
            f, df = unary_value(a.gate, {}, t), unary_slope(a.gate, {}, t)
            first = {"Mul": f, "Add": 1.0, "Sub": 1.0, "Max": t >= f, "Min": t <= f}[a.op]
            second = {"Mul": t, "Add": 1.0, "Sub": -1.0, "Max": t < f, "Min": t > f}[a.op]
            return first + second * df
        if a.const is not None:
            c = np.float64(a.const)
            if a.left:
                return {"Add": 1.0 + 0 * t, "Sub": -1.0 + 0 * t, "Mul": c + 0 * t, "Div": -c / (t * t),
                        "Pow": c ** t * math.log(c) if c > 0 else np.nan + t,
                        "Max": (t > c) * 1.0, "Min": (t < c) * 1.0}[a.op]
            return {"Add": 1.0 + 0 * t, "Sub": 1.0 + 0 * t, "Mul": c + 0 * t, "Div": 1.0 / c + 0 * t,
                    "Pow": c * t ** (c - 1.0), "Max": (t > c) * 1.0, "Min": (t < c) * 1.0}[a.op]
        return unary_slope(a.op, a.attrs, t)

    def kinks(self, t: np.ndarray) -> np.ndarray:
        """How far each value is from a kink of this element (inf where it has none)."""
        a = self.act
        if self.bias is not None:
            return np.full(t.shape, np.inf)
        if a.gate:
            d = np.abs(t - unary_value(a.gate, {}, t)) if a.op in ("Max", "Min") else np.full(t.shape, np.inf)
            return np.minimum(d, unary_kinks(a.gate, {}, t))
        if a.const is not None:
            return np.abs(t - a.const) if a.op in ("Max", "Min") else np.full(t.shape, np.inf)
        return unary_kinks(a.op, a.attrs, t)


def _binary(op: str, a, b):
    return {"Add": lambda: a + b, "Sub": lambda: a - b, "Mul": lambda: a * b, "Div": lambda: a / b,
            "Pow": lambda: a ** b, "Max": lambda: np.maximum(a, b), "Min": lambda: np.minimum(a, b)}[op]()


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _softplus(v):
    return np.log1p(np.exp(v))


def unary_value(op: str, at: dict, v: np.ndarray) -> np.ndarray:
    alpha = at.get("alpha")
    if op == "Relu":
        return np.where(v > 0, v, 0.0)
    if op == "LeakyRelu":
        return np.where(v > 0, v, (0.01 if alpha is None else alpha) * v)
    if op == "Elu":
        return np.where(v > 0, v, (1.0 if alpha is None else alpha) * (np.exp(v) - 1))
    if op == "Selu":
        return SELU_GAMMA * np.where(v > 0, v, SELU_ALPHA * (np.exp(v) - 1))
    if op == "Celu":
        al = 1.0 if alpha is None else alpha
        return np.maximum(0.0, v) + np.minimum(0.0, al * (np.exp(v / al) - 1))
    if op == "Sigmoid":
        return _sigmoid(v)
    if op == "HardSigmoid":
        return np.clip(at.get("alpha", 0.2) * v + at.get("beta", 0.5), 0.0, 1.0)
    if op == "HardSwish":
        return v * np.clip(v / 6 + 0.5, 0.0, 1.0)
    if op == "Tanh":
        return np.tanh(v)
    if op == "Softplus":
        return _softplus(v)
    if op == "Softsign":
        return v / (1 + np.abs(v))
    if op == "Gelu":
        if at.get("approximate") == "tanh":
            return 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
        return 0.5 * v * (1 + ERF(v / math.sqrt(2)))
    if op == "Mish":
        return v * np.tanh(_softplus(v))
    if op == "ThresholdedRelu":
        return np.where(v > (1.0 if alpha is None else alpha), v, 0.0)
    if op == "Erf":
        return ERF(v)
    if op == "Exp":
        return np.exp(v)
    if op == "Sqrt":
        return np.sqrt(v)
    if op == "Abs":
        return np.abs(v)
    if op == "Neg":
        return -v
    if op in ("Identity", "Dropout"):
        return v + 0.0
    if op == "Clip":
        lo, hi = at.get("min", -np.inf), at.get("max", np.inf)
        return np.minimum(np.maximum(v, lo), hi)
    raise ValueError(op)


def unary_slope(op: str, at: dict, v: np.ndarray) -> np.ndarray:
    alpha = at.get("alpha")
    on = v > 0
    if op == "Relu":
        return on * 1.0
    if op == "LeakyRelu":
        return np.where(on, 1.0, 0.01 if alpha is None else alpha)
    if op == "Elu":
        return np.where(on, 1.0, (1.0 if alpha is None else alpha) * np.exp(v))
    if op == "Selu":
        return np.where(on, SELU_GAMMA, SELU_GAMMA * SELU_ALPHA * np.exp(v))
    if op == "Celu":
        return np.where(on, 1.0, np.exp(v / (1.0 if alpha is None else alpha)))
    if op == "Sigmoid":
        return _sigmoid(v) * (1 - _sigmoid(v))
    if op == "HardSigmoid":
        h = at.get("alpha", 0.2) * v + at.get("beta", 0.5)
        return np.where((h > 0) & (h < 1), at.get("alpha", 0.2), 0.0)
    if op == "HardSwish":
        return np.where(v <= -3, 0.0, np.where(v >= 3, 1.0, v / 3 + 0.5))
    if op == "Tanh":
        return 1 - np.tanh(v) ** 2
    if op == "Softplus":
        return _sigmoid(v)
    if op == "Softsign":
        return 1 / (1 + np.abs(v)) ** 2
    if op == "Gelu":
        if at.get("approximate") == "tanh":
            k = math.sqrt(2 / math.pi)
            th = np.tanh(k * (v + 0.044715 * v ** 3))
            return 0.5 * (1 + th) + 0.5 * v * (1 - th ** 2) * k * (1 + 3 * 0.044715 * v ** 2)
        return 0.5 * (1 + ERF(v / math.sqrt(2))) + v * np.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    if op == "Mish":
        th = np.tanh(_softplus(v))
        return th + v * _sigmoid(v) * (1 - th ** 2)
    if op == "ThresholdedRelu":
        return (v > (1.0 if alpha is None else alpha)) * 1.0
    if op == "Erf":
        return 2 / math.sqrt(math.pi) * np.exp(-v * v)
    if op == "Exp":
        return np.exp(v)
    if op == "Sqrt":
        return 0.5 / np.sqrt(v)
    if op == "Abs":
        return np.sign(v)
    if op == "Neg":
        return -np.ones_like(v)
    if op in ("Identity", "Dropout"):
        return np.ones_like(v)
    if op == "Clip":
        return ((v > at.get("min", -np.inf)) & (v < at.get("max", np.inf))) * 1.0
    raise ValueError(op)


def unary_kinks(op: str, at: dict, v: np.ndarray) -> np.ndarray:
    far = np.full(np.shape(v), np.inf)
    if op in ("Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Abs"):
        return np.abs(v)
    if op == "ThresholdedRelu":
        return np.abs(v - at.get("alpha", 1.0))
    if op == "Clip":
        return np.minimum(np.abs(v - at.get("min", np.inf)), np.abs(v - at.get("max", np.inf)))
    if op == "HardSigmoid":
        h = at.get("alpha", 0.2) * v + at.get("beta", 0.5)
        return np.minimum(np.abs(h), np.abs(h - 1)) / at.get("alpha", 0.2)
    if op == "HardSwish":
        return np.minimum(np.abs(v - 3), np.abs(v + 3))
    return far


SMOOTH = {"Elu", "Selu", "Celu", "Sigmoid", "HardSwish", "Tanh", "Softplus", "Softsign", "Gelu", "Mish", "Erf",
          "Exp", "Sqrt"}


def exact(e: Elem) -> bool:
    """Whether the element maps float32-exact small dyadic values to float32-exact values (so onnxruntime's
    float32 forward and this float64 one agree bit for bit; the constants drawn are dyadic)."""
    if e.bias is not None:
        return True
    ops = {e.act.op} | ({e.act.gate} if e.act.gate else set())
    whole_power = e.act.op == "Pow" and not e.act.left and float(e.act.const).is_integer()
    return not (ops & SMOOTH) and (e.act.op not in ("Pow", "Div") or whole_power or (e.act.op == "Div"
                                                                                      and not e.act.left))


# ------------------------------------------------------------------------------- chains and sites

def elements(L) -> list[Elem]:
    """The layer's chain: the bias Add of a MatMul with a bias, then its ops (or one Relu)."""
    out = []
    if isinstance(L, Dense) and L.op == "MatMul" and L.b is not None:
        out.append(Elem(Act("Add"), bias=np.asarray(L.b, np.float64)))
    acts = list(L.act) if L.act else ([Act("Relu")] if L.relu else [])
    return out + [Elem(a) for a in acts]


@dataclass
class SiteRef:
    """Elements [start, stop) of a chain; z is values[start]."""

    start: int
    stop: int
    elems: list[Elem] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        return [op for e in self.elems[self.start:self.stop] for op in e.nodes]

    def slopes(self, values: list[np.ndarray]) -> np.ndarray:
        s = np.ones_like(values[self.start])
        for k in range(self.start, self.stop):
            s = s * self.elems[k].slope(values[k])
        return s


def unit_site(elems: list[Elem]) -> SiteRef | None:
    """Forward from the layer's output (section 11, on a chain)."""
    i = 0
    while True:
        if i == len(elems):
            return None                       # the next layer, or no consumer: no site
        e = elems[i]
        if e.gated or not e.linear:
            break
        if not e.passes_section5:
            return None
        i += 1
    stop = i + 1
    k = stop
    while k < len(elems) and not elems[k].gated:   # one consumer, one non-constant operand
        k += 1
        if not elems[k - 1].linear:
            stop = k
    return SiteRef(i, stop, elems)


def input_site(elems: list[Elem]) -> SiteRef | None:
    """Backward from the next layer's input (section 11, on a chain): the walk first passes the
    element-preserving ops before the layer (Identity, Dropout; and Flatten, which is not in the chain)."""
    end = len(elems)
    while end and elems[end - 1].bias is None and not elems[end - 1].gated and elems[end - 1].act.const is None \
            and elems[end - 1].act.op in ("Identity", "Dropout"):
        end -= 1
    j = end - 1
    while j >= 0 and not elems[j].gated and elems[j].linear:
        j -= 1
    if j < 0:
        return None                           # reached the layer (or the graph input)
    start = j
    k = j - 1
    while k >= 0 and not elems[k].gated:
        if not elems[k].linear:
            start = k
        k -= 1
    return SiteRef(start, end, elems)


def site_s2(site: SiteRef | None, values: list[np.ndarray]) -> np.ndarray | None:
    """s^2 on the site's z values, or None when there is no site or a slope is not finite."""
    if site is None:
        return None
    with np.errstate(all="ignore"):
        s2 = site.slopes(values) ** 2
    return s2 if np.all(np.isfinite(s2)) else None


def section5_gate(elems: list[Elem], values: list[np.ndarray]) -> np.ndarray | None:
    """Section 5: the gate tensor reached through section 5's walk, or None (r_i = 1)."""
    for k, e in enumerate(elems):
        g = e.gate_of(values[k])
        if g is not None:
            return g
        if not e.passes_section5:
            return None
    return None


def near_kink(elems: list[Elem], values: list[np.ndarray], inexact_from: int, tol: float = 1e-5) -> bool:
    """Whether a value that float32 and float64 forwards may round differently (past a smooth op) sits
    within ``tol`` of a kink, or is a tiny non-zero (the relu model counts non-zeros): the example is
    then not a fair comparison."""
    for k in range(inexact_from, len(values)):
        v = values[k]
        if k >= 1 and np.any((v != 0) & (np.abs(v) <= tol)):
            return True
        if k < len(elems) and np.any(elems[k].kinks(v) <= tol * np.maximum(1.0, np.abs(v))):
            return True
    return False
