"""Activation sites: where a layer's input comes from, and where its output goes, through elementwise ops.

Paper appendix B.3: with ``x = g(z)``, noise added to the pre-activation ``z`` reaches the next
layer as ``g'(z) n``. A *site* ``(z, x, g)`` is a set of elementwise nodes with one entry tensor
``z`` and one exit tensor ``x``; ``g`` is what they compute (``Mul(z, Sigmoid(z))`` is SiLU). Sites
are found backward from each layer's input (``input_site``) and forward from its output
(``unit_site``); ``analysis.slopes`` evaluates ``g'`` on the data. Knows ONNX, not data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from .constants import ConstantFolder, attribute
from .reach import DEFAULT_DOMAINS


MAX_NODES = 64
UNARY = {"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
         "Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg",
         "Reciprocal", "Clip", "Identity", "Dropout", "Cast"}
BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}
PRESERVING = ("Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")
GATE_OPS = ("Relu", "Clip")        # the nonlinear ops the relu noise model reads correctly
UNBOUNDED = {"Log", "Sqrt", "Reciprocal", "Exp", "Pow"}   # slopes that finite values can make infinite
CAST_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
              onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.BFLOAT16: None}
DEFAULTS = {"LeakyRelu": {"alpha": 0.01}, "Elu": {"alpha": 1.0}, "Celu": {"alpha": 1.0},
            "Selu": {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875},
            "HardSigmoid": {"alpha": 0.2, "beta": 0.5}, "ThresholdedRelu": {"alpha": 1.0},
            "Gelu": {"approximate": "none"}}


@dataclass(frozen=True)
class Step:
    """One node of a site: ``operands`` are tensor names (``z`` or earlier steps' outputs) or constant
    float64 arrays; ``attrs`` the op's attributes with their defaults (constant slopes and bounds too)."""

    op: str
    output: str
    operands: tuple
    attrs: dict = field(default_factory=dict)
    linear: bool = False


@dataclass
class Site:
    """An activation site (z, x, g): ``steps`` in node order compute x from z.

    ``chain`` (input sites only): the element-preserving ops from ``x`` to the layer's input, as
    (op, perm, input tensor) with ``perm`` a Transpose's permutation (``()``: reversed axes; None for
    the others, which keep the order of the elements).
    ``bounded``: no op whose slope finite values can make infinite (the relu model skips the check)."""

    z: str
    x: str
    steps: list[Step]
    bounded: bool
    chain: list[tuple[str, tuple[int, ...] | None, str]] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        return [s.op for s in self.steps]

    @property
    def lone_relu(self) -> bool:
        """A site that is one Relu: its slope is 1 where its output x is > 0, else 0 (read from x)."""
        return len(self.steps) == 1 and self.steps[0].op == "Relu"

    @property
    def key(self) -> tuple:
        """Sites with the same key compute the same slopes (a forward and a backward walk may meet)."""
        return (self.z, self.x, tuple(s.output for s in self.steps))

    def transposes(self) -> list[str]:
        """Tensors whose runtime shapes the chain needs (the inputs of its Transposes)."""
        return [t for op, perm, t in self.chain if perm is not None]


def other_than_relu(site: Site | None) -> list[str]:
    """The nonlinear ops of a site other than Relu and Clip (what the relu noise model reads wrongly)."""
    return [] if site is None else [s.op for s in site.steps if not s.linear and s.op not in GATE_OPS]


class SiteFinder:
    """The two walks of one graph. ``walker`` gives ``consumers`` (tensor -> nodes) and ``passes``
    (the walk of docs/metrics.md, Activity and layer means, through one node)."""

    def __init__(self, nodes: list[onnx.NodeProto], folder: ConstantFolder, shapes: dict, opset: int, walker):
        self.nodes = nodes
        self.folder = folder
        self.shapes = shapes
        self.opset = opset
        self.walker = walker
        self.pos: dict[str, int] = {}          # tensor -> position of its producer
        for k, n in enumerate(nodes):
            for o in n.output:
                if o:
                    self.pos[o] = k

    # ------------------------------------------------------------------ what an elementwise op is

    def _const(self, name: str) -> np.ndarray | None:
        v = self.folder.value(name)
        return v if v is not None and v.dtype.kind in "fiub" else None

    def _fits(self, c: np.ndarray, t: str) -> bool:
        """A constant that broadcasts against tensor ``t`` without growing it."""
        if c.ndim == 0:
            return True
        shape = self.shapes.get(t)
        if shape is None:
            return c.size == 1 and c.ndim <= 1
        if c.ndim > len(shape):
            return False
        return all(cd == 1 or (isinstance(td, int) and td == cd) for cd, td in zip(reversed(c.shape), reversed(shape)))

    def operands(self, n: onnx.NodeProto) -> list[str] | None:
        """The non-constant operands of an elementwise op of the list in docs/metrics.md (Noise models), or
        None when ``n`` is not one (constants must be constant, bounds and slopes included)."""
        if n.domain not in DEFAULT_DOMAINS or not n.output or not n.output[0]:
            return None
        op = n.op_type
        if op in UNARY:
            if not n.input or not n.input[0] or self.folder.is_constant(n.input[0]):
                return None
            if any(i and self.folder.value(i) is None for i in n.input[1:]):
                return None
            if op == "Cast" and attribute(n, "to") not in CAST_TYPES:
                return None
            if op == "PRelu" and (len(n.input) < 2 or not self._fits(self.folder.value(n.input[1]), n.input[0])):
                return None
            if op == "Dropout" and len(n.input) > 2 and n.input[2] and np.any(self.folder.value(n.input[2])):
                return None                       # training mode: not inference
            return [n.input[0]]
        if op in BINARY:
            if len(n.input) != 2 or not all(n.input):
                return None
            a, b = n.input
            ca, cb = self._const(a), self._const(b)
            if ca is not None and cb is not None:
                return None
            if (ca is not None and not self._fits(ca, b)) or (cb is not None and not self._fits(cb, a)):
                return None
            return [a] if a == b else [t for t, c in ((a, ca), (b, cb)) if c is None]
        return None

    def linear(self, n: onnx.NodeProto) -> bool:
        """Identity, Dropout, Cast, Neg, Add/Sub/Mul with a constant operand, Div by a constant."""
        op = n.op_type
        if op in ("Identity", "Dropout", "Cast", "Neg"):
            return True
        if op in ("Add", "Sub", "Mul"):
            return any(self._const(i) is not None for i in n.input)
        return op == "Div" and self._const(n.input[1]) is not None

    # ------------------------------------------------------------------ the walks

    def input_site(self, tensor: str) -> Site | None:
        """Backward from a layer's input: through element-preserving ops to ``x``, then the frontier
        is replaced one tensor at a time, the one produced last first, until it is one tensor ``z``
        once a nonlinear op has been passed; ``z`` then moves back to the earliest nonlinear op's input
        along the one-operand elementwise ops before it."""
        chain = []
        t = tensor
        while t in self.pos:
            p = self.nodes[self.pos[t]]
            if p.domain not in DEFAULT_DOMAINS or p.op_type not in PRESERVING or not p.input or not p.input[0]:
                break
            perm = tuple(int(v) for v in attribute(p, "perm") or ()) if p.op_type == "Transpose" else None
            chain.append((p.op_type, perm, p.input[0]))
            t = p.input[0]
        x = t
        site: set[int] = set()
        frontier = {x}
        nonlinear = False
        while not (nonlinear and len(frontier) == 1):
            t = max(frontier, key=lambda name: self.pos.get(name, -1))
            if t not in self.pos:
                return None                     # a graph input that must be replaced
            p = self.nodes[self.pos[t]]
            ops = self.operands(p)
            if ops is None:
                return None
            site.add(self.pos[t])
            if len(site) > MAX_NODES:
                return None
            nonlinear = nonlinear or not self.linear(p)
            frontier.remove(t)
            frontier.update(ops)
        z = frontier.pop()
        back, t = [], z
        while t in self.pos:                    # the one-operand chain before z
            p = self.nodes[self.pos[t]]
            ops = self.operands(p)
            if ops is None or len(ops) != 1:
                break
            back.append(self.pos[t])
            t = ops[0]
        reach = [k for k, q in enumerate(back) if not self.linear(self.nodes[q])]
        if reach:
            site.update(back[:reach[-1] + 1])
            z = self.operands(self.nodes[back[reach[-1]]])[0]
        if len(site) > MAX_NODES:
            return None
        found = self._site(z, x, site)
        if found is not None:
            found.chain = list(reversed(chain))
        return found

    def unit_site(self, output: str) -> Site | None:
        """Forward from a layer's output: the activity walk (docs/metrics.md) to ``z``, then the frontier is replaced one
        tensor at a time, the one produced first first, by its consumers' outputs, until it is one
        tensor ``x`` once a nonlinear op has been passed; ``x`` then moves on to the last nonlinear op's
        output along single-consumer one-operand elementwise ops."""
        consumers = self.walker.consumers
        t = output
        while True:
            users = consumers.get(t, [])
            if not users:
                return None
            if len(users) > 1:
                break
            n = users[0]
            if self.operands(n) is not None and not self.linear(n):
                break
            t = self.walker.passes(n, t)
            if t is None:
                return None
        z = t
        site: set[int] = set()
        frontier = {z}
        nonlinear = False
        while not (nonlinear and len(frontier) == 1):
            t = min(frontier, key=lambda name: self.pos.get(name, -1))
            users = consumers.get(t, [])
            if not users:
                return None
            for n in users:
                if self.operands(n) is None:
                    return None
                site.add(self.pos[n.output[0]])
                nonlinear = nonlinear or not self.linear(n)
            if len(site) > MAX_NODES:
                return None
            frontier.remove(t)
            frontier.update(n.output[0] for n in users)
        x = frontier.pop()
        ahead, t = [], x
        while len(consumers.get(t, [])) == 1:   # the one-operand chain after x, up to a fork
            n = consumers[t][0]
            ops = self.operands(n)
            if ops is None or len(ops) != 1:
                break
            ahead.append(self.pos[n.output[0]])
            t = n.output[0]
        reach = [k for k, q in enumerate(ahead) if not self.linear(self.nodes[q])]
        if reach:
            site.update(ahead[:reach[-1] + 1])
            x = self.nodes[ahead[reach[-1]]].output[0]
        if len(site) > MAX_NODES:
            return None
        return self._site(z, x, site)

    # ------------------------------------------------------------------ the site's program

    def _site(self, z: str, x: str, site: set[int]) -> Site | None:
        """The site's steps in node order; None unless every non-constant operand is z or a site output."""
        nodes = [self.nodes[k] for k in sorted(site)]
        inside = {z} | {n.output[0] for n in nodes}
        steps = []
        bounded = True
        for n in nodes:
            ops = self.operands(n)
            if ops is None or any(o not in inside for o in ops):
                return None
            step = self._step(n)
            steps.append(step)
            bounded = bounded and _bounded(step)
        return Site(z=z, x=x, steps=steps, bounded=bounded)

    def _step(self, n: onnx.NodeProto) -> Step:
        op = n.op_type
        attrs: dict[str, Any] = {}
        for name, default in DEFAULTS.get(op, {}).items():
            v = attribute(n, name, default)
            attrs[name] = v.decode() if isinstance(v, bytes) else v
        if op in BINARY:
            operands = tuple(i if self._const(i) is None else self._const(i).astype(np.float64) for i in n.input)
            return Step(op, n.output[0], operands, attrs, self.linear(n))
        if op == "PRelu":
            attrs["slope"] = self.folder.value(n.input[1]).astype(np.float64)
        elif op == "Clip":
            if self.opset < 11:
                lo, hi = attribute(n, "min"), attribute(n, "max")
            else:
                lo, hi = (self.folder.value(n.input[k]) if len(n.input) > k and n.input[k] else None for k in (1, 2))
            attrs["lo"] = None if lo is None else float(np.asarray(lo, dtype=np.float64).reshape(-1)[0])
            attrs["hi"] = None if hi is None else float(np.asarray(hi, dtype=np.float64).reshape(-1)[0])
        elif op == "Cast":
            attrs["dtype"] = CAST_TYPES[attribute(n, "to")]
        return Step(op, n.output[0], (n.input[0],), attrs, self.linear(n))


def _bounded(step: Step) -> bool:
    """Whether the step's slope stays finite on finite values (no op of UNBOUNDED, no division by a site
    tensor or by a constant holding 0, no non-finite constant)."""
    if step.op in UNBOUNDED:
        return False
    consts = [c for c in step.operands if not isinstance(c, str)]
    consts += [v for v in step.attrs.values() if isinstance(v, np.ndarray)]
    if any(not np.all(np.isfinite(c)) for c in consts):
        return False
    if step.op == "Div":
        divisor = step.operands[1]
        return not isinstance(divisor, str) and bool(np.all(divisor != 0))
    return True
