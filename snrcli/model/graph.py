"""Finding the layers of an ONNX graph (docs/metrics.md: Words; Activity and layer means; The classifier).

Knows ONNX, not data or onnxruntime. ``discover(model)`` returns a ``GraphInfo``:
the layers numbered 1..L (weights as a units x inputs-per-unit view, conv
geometry, activity gate, classifier flag), the skipped weighted ops with their
reasons, the graph inputs and the output used for accuracy.
"""

from __future__ import annotations

import ast
import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from .constants import ConstantFolder, _attr
from .layout import input_layout
from .reach import WEIGHTED, live_tensors, score_kind, subgraph_ops
from .sites import Site, SiteFinder
from ..errors import ModelError, UsageError

DEFAULT_DOMAINS = ("", "ai.onnx")
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
               onnx.TensorProto.BFLOAT16}
SKIP_REASONS = {
    "ConvTranspose": "transposed convolution is not analysed",
    "ConvInteger": "integer (quantised) convolution is not analysed",
    "QLinearConv": "quantised convolution is not analysed",
    "MatMulInteger": "integer (quantised) MatMul is not analysed",
    "QLinearMatMul": "quantised MatMul is not analysed",
    "LSTM": "recurrent layer is not analysed",
    "GRU": "recurrent layer is not analysed",
    "RNN": "recurrent layer is not analysed",
    "Einsum": "Einsum is not analysed",
    "Attention": "fused attention is not analysed",
}
ML_WEIGHTED = {"LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor",
               "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}

Dim = int | str | None


@dataclass(frozen=True)
class ConvGeometry:
    """Convolution hyper-parameters; ``pads`` is (begin..., end...) unless ``auto_pad`` is SAME_*."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    auto_pad: str
    group: int


@dataclass
class Layer:
    """One analysed layer. ``weight`` is (units, inputs per unit), float64; Gemm's alpha included."""

    index: int
    name: str
    op: str
    input: str
    output: str
    weight: np.ndarray
    conv: ConvGeometry | None = None
    input_transposed: bool = False      # Gemm transA=1: samples are the columns of the input
    output_is_weighted_sum: bool = True  # False when Gemm adds a non-constant C
    gate: str | None = None
    classifier: bool = False
    weight_name: str = ""
    feeds_output: bool = True           # False when no graph output depends on the layer's output
    node: str = ""                        # the node's name (``name`` may be the exporter's module path)
    input_site: Site | None = None        # docs/metrics.md, Noise models: the activation the layer reads ...
    unit_site: Site | None = None         # ... and the one its output feeds

    @property
    def units(self) -> int:
        return int(self.weight.shape[0])

    @property
    def group(self) -> int:
        return self.conv.group if self.conv else 1

    @property
    def kernel_size(self) -> int:
        return int(np.prod(self.conv.kernel)) if self.conv else 1

    @property
    def in_channels(self) -> int:
        """Input channels (conv) or input features (dense) of the layer's input tensor."""
        return self.weight.shape[1] // self.kernel_size * self.group

    @property
    def inputs(self) -> int:
        """Layer-wide input count: features (dense), C_in x kernel elements (conv)."""
        return self.in_channels * self.kernel_size


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


@dataclass
class GraphInput:
    name: str
    elem_type: int
    dims: list[Dim]
    layout: str | None = None   # "nchw" or "nhwc" where the graph tells (model/layout.py)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(helper.tensor_dtype_to_np_dtype(self.elem_type)) if self.elem_type else np.dtype(np.float32)


@dataclass
class GraphInfo:
    layers: list[Layer]
    skipped: list[Skipped]
    inputs: list[GraphInput]
    outputs: list[str]
    accuracy_output: str | None
    shapes: dict[str, list[Dim]] = field(default_factory=dict)
    weight_inputs: list[str] = field(default_factory=list)  # initializers also listed as graph inputs
    score_kind: str | None = None   # the scored output: "probability" (Sigmoid), "logit" (a layer's output)


def node_name(node: onnx.NodeProto) -> str:
    """The node's name, or its first output's name when it has none (docs/report-format.md, layers)."""
    return node.name or (node.output[0] if node.output else node.op_type)


SCOPES_KEY = "pkg.torch.onnx.name_scopes"   # torch's dynamo exporter: module paths, then the node's own name


def module_path(node: onnx.NodeProto) -> str | None:
    """The module path torch's ONNX exporter stores in a node's metadata (``['', 'blocks.0', 'blocks.0.fc1',
    'linear_3']`` gives ``blocks.0.fc1``), or None."""
    for p in node.metadata_props:
        if p.key != SCOPES_KEY or len(p.value) > 10_000:
            continue
        try:
            scopes = ast.literal_eval(p.value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if isinstance(scopes, (list, tuple)) and len(scopes) >= 2 and all(isinstance(s, str) for s in scopes):
            return scopes[-2] or None
    return None


def _dims(vi: onnx.ValueInfoProto) -> list[Dim] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


SKELETON_MIN_ELEMENTS = 1024   # initializers this large are weights: shape inference needs only their shapes


def shape_skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model without the values of its large initializers, which become typed graph
    inputs: shape inference needs their shapes only, and copying ResNet-18's 45 MB of weights into it
    and back took longer than the inference. Small initializers (Reshape targets, axes) keep values."""
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)            # bytes as they are (a field read would decode every string)
    g = skeleton.graph
    del g.initializer[:]
    declared: set[str] | None = None
    for t in model.graph.initializer:
        if math.prod(t.dims) < SKELETON_MIN_ELEMENTS:
            g.initializer.append(t)
            continue
        if declared is None:
            declared = {i.name for i in model.graph.input}
        if t.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return skeleton


def infer_shapes(model: onnx.ModelProto) -> tuple[dict[str, list[Dim]], dict[str, int]]:
    """Static shapes and element types of named tensors, as far as ONNX shape inference knows them."""
    skeleton = shape_skeleton(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False)
    except Exception:
        inferred = skeleton
    shapes: dict[str, list[Dim]] = {}
    types: dict[str, int] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    return shapes, types


def topological_order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Stored order when it is topological, else Kahn's algorithm taking ready nodes in stored order."""
    nodes = list(graph.node)
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    produced_by = {}
    for pos, n in enumerate(nodes):
        for o in n.output:
            produced_by[o] = pos
    seen = set(available)
    ordered = True
    for n in nodes:
        if any(i not in seen and i in produced_by for i in n.input):
            ordered = False
            break
        seen.update(n.output)
    if ordered:
        return nodes
    deps = [{produced_by[i] for i in n.input if i in produced_by and produced_by[i] != pos}
            for pos, n in enumerate(nodes)]
    users: dict[int, list[int]] = {}
    for pos, d in enumerate(deps):
        for p in d:
            users.setdefault(p, []).append(pos)
    remaining = [len(d) for d in deps]
    ready = [pos for pos, r in enumerate(remaining) if r == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        pos = heapq.heappop(ready)
        out.append(nodes[pos])
        for u in users.get(pos, ()):
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, u)
    if len(out) != len(nodes):
        raise ModelError("the graph has a cycle: its nodes cannot be put in a running order")
    return out


class _Walker:
    """Shared graph facts for the activity and classifier walks."""

    def __init__(self, nodes, folder: ConstantFolder, shapes, opset: int):
        self.folder = folder
        self.shapes = shapes
        self.opset = opset
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in nodes:
            for i in set(n.input):
                if i:
                    self.consumers.setdefault(i, []).append(n)

    def other_is_constant(self, node, t: str, right_only: bool = False) -> bool:
        if len(node.input) != 2 or node.input[0] == node.input[1]:
            return False
        if node.input[0] == t:
            return self.folder.is_constant(node.input[1])
        return (not right_only) and node.input[1] == t and self.folder.is_constant(node.input[0])

    def only_unit_axes(self, a: str, b: str) -> bool:
        """True when b's shape is a's with size-1 axes removed or inserted.

        Known sizes must match one for one; a symbolic or unknown size (the batch, typically)
        matches another symbolic or unknown size.
        """
        sa, sb = self.shapes.get(a), self.shapes.get(b)
        if sa is None or sb is None:
            return False
        ka, kb = [d for d in sa if d != 1], [d for d in sb if d != 1]
        if len(ka) != len(kb):
            return False
        return all(x == y or (not isinstance(x, int) and not isinstance(y, int)) for x, y in zip(ka, kb))

    def activity_gate(self, t: str) -> str | None:
        """docs/metrics.md, Activity and layer means: the Relu (or Clip min 0) output reached through per-unit constant ops."""
        while True:
            users = self.consumers.get(t, [])
            if len(users) != 1:
                return None
            n = users[0]
            if n.domain not in DEFAULT_DOMAINS or not n.output:
                return None
            op = n.op_type
            if op == "Relu":
                return n.output[0]
            if op == "Clip":
                lo = _attr(n, "min") if self.opset < 11 else (
                    self.folder.value(n.input[1]) if len(n.input) > 1 and n.input[1] else None)
                if lo is not None and np.size(lo) == 1 and float(np.asarray(lo).reshape(-1)[0]) == 0.0:
                    return n.output[0]
                return None
            t = self.passes(n, t)
            if t is None:
                return None

    def passes(self, n: onnx.NodeProto, t: str) -> str | None:
        """Section 5's walk from ``t`` through its consumer ``n``: n's output when the walk goes on
        (a per-unit op with constants, or a size-1 axis change), None when it stops there."""
        if n.domain not in DEFAULT_DOMAINS or not n.output:
            return None
        op = n.op_type
        if op in ("Identity", "Dropout", "Squeeze", "Unsqueeze"):
            pass
        elif op == "BatchNormalization":
            if n.input[0] != t:
                return None
        elif op in ("Add", "Mul"):
            if not self.other_is_constant(n, t):
                return None
        elif op in ("Sub", "Div"):
            if not self.other_is_constant(n, t, right_only=True):
                return None
        elif op in ("Reshape", "Flatten"):
            if n.input[0] != t or not self.only_unit_axes(t, n.output[0]):
                return None
        else:
            return None
        return n.output[0]

    def _rank(self, t: str) -> int | None:
        s = self.shapes.get(t)
        return None if s is None else len(s)

    def reaches_output(self, layer: Layer, target: str) -> bool:
        """docs/metrics.md, The classifier: does the layer's output reach ``target`` through classifier-neutral ops?"""
        units = layer.units
        start_rank = self._rank(layer.output) or (2 if layer.op == "Gemm" else None)
        # unit axis as a negative index (dense: last; conv: axis 1)
        if layer.conv:
            ua = 1 - (start_rank or (len(layer.conv.kernel) + 2))
        else:
            ua = -1
        stack = [(layer.output, ua)]
        seen = set()
        while stack:
            t, ua = stack.pop()
            if t == target:
                return True
            if t in seen:
                continue
            seen.add(t)
            for n in self.consumers.get(t, []):
                if n.domain not in DEFAULT_DOMAINS or not n.output:
                    continue
                op, out = n.op_type, n.output[0]
                if op in ("Identity", "Dropout"):
                    stack.append((out, ua))
                elif op == "Add" and self.other_is_constant(n, t):
                    stack.append((out, ua))
                elif op in ("Flatten", "Reshape") and n.input[0] == t:
                    s = self.shapes.get(out)
                    new_ua = -1 if (s and s[-1] == units) else None
                    stack.append((out, new_ua))
                elif op in ("Softmax", "LogSoftmax") and ua is not None:
                    rank = self._rank(t)
                    default = -1 if self.opset >= 13 else 1
                    axis = int(_attr(n, "axis", default))
                    if axis >= 0:
                        if rank is None:
                            if ua != -1 or axis != 1:
                                continue
                            axis = -1  # assume the usual (batch, units)
                        else:
                            axis -= rank
                    if axis == ua and (self.opset >= 13 or ua == -1):
                        stack.append((out, ua))
        return False


def pick_accuracy_output(graph: onnx.GraphProto, shapes, types, output: str | None) -> str | None:
    """``--output NAME``, else the first float graph output of rank >= 1 (docs/metrics.md, Accuracy and baselines)."""
    names = [o.name for o in graph.output]
    if output is not None:
        if output not in names:
            raise UsageError(f"--output {output!r} is not an output of the model (outputs: {', '.join(names)})")
        return output
    for o in graph.output:
        et = o.type.tensor_type.elem_type or types.get(o.name, 0)
        if et and et not in FLOAT_TYPES:
            continue
        dims = _dims(o) or shapes.get(o.name)
        if dims is not None and len(dims) == 0:
            continue
        return o.name
    return None


def _opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in DEFAULT_DOMAINS:
            return int(o.version)
    return 1


def _conv_geometry(node, w: np.ndarray) -> ConvGeometry:
    nd = w.ndim - 2
    kernel = tuple(int(k) for k in (_attr(node, "kernel_shape") or w.shape[2:]))
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    return ConvGeometry(
        kernel=kernel,
        strides=tuple(_attr(node, "strides") or [1] * nd),
        dilations=tuple(_attr(node, "dilations") or [1] * nd),
        pads=tuple(_attr(node, "pads") or [0] * (2 * nd)),
        auto_pad=auto_pad or "NOTSET",
        group=int(_attr(node, "group", 1)),
    )


def _as_layer(node, folder: ConstantFolder) -> Layer | Skipped | None:
    name, op = node_name(node), node.op_type
    if node.domain not in DEFAULT_DOMAINS:
        if op in ML_WEIGHTED:
            return Skipped(name, op, f"{node.domain} op {op} is not analysed (only default-domain ops are layers)")
        if any(folder.is_constant(i) for i in node.input):
            return Skipped(name, op, f"op of domain {node.domain!r} is not analysed")
        return None
    if op in SKIP_REASONS:
        return Skipped(name, op, SKIP_REASONS[op])
    if op not in ("Gemm", "MatMul", "Conv") or len(node.input) < 2:
        return None
    if not node.output or not node.output[0]:
        return Skipped(name, op, "node has no output (malformed graph)")
    a_const, b = folder.is_constant(node.input[0]), folder.value(node.input[1])
    if b is None:
        why = folder.why_not(node.input[1])
        if why:
            return Skipped(name, op, f"its weight {node.input[1]!r} comes from constants but is not usable: {why}")
        return Skipped(name, op, "constant on the left" if a_const else
                       f"{op} of two activations" if op != "Conv" else "weight is not a constant")
    b = b.astype(np.float64)
    common = dict(index=0, name=name, op=op, input=node.input[0], output=node.output[0],
                  weight_name=node.input[1])
    if op == "MatMul":
        if b.ndim != 2:
            return Skipped(name, op, f"weight is {b.ndim}-D, not 2-D")
        return Layer(weight=np.ascontiguousarray(b.T), **common)
    if op == "Gemm":
        if b.ndim != 2:
            return Skipped(name, op, f"weight is {b.ndim}-D, not 2-D")
        w = b if _attr(node, "transB", 0) else b.T
        alpha = float(_attr(node, "alpha", 1.0))
        c = node.input[2] if len(node.input) > 2 else ""
        w = w if alpha == 1.0 else alpha * w   # (no copy of a large weight for the usual alpha)
        return Layer(weight=np.ascontiguousarray(w), input_transposed=bool(_attr(node, "transA", 0)),
                     output_is_weighted_sum=(not c) or folder.is_constant(c), **common)
    if b.ndim < 3:
        return Skipped(name, op, f"weight is {b.ndim}-D, not a convolution kernel")
    geom = _conv_geometry(node, b)
    return Layer(weight=np.ascontiguousarray(b.reshape(b.shape[0], -1)), conv=geom, **common)


def discover(model: onnx.ModelProto, *, output: str | None = None,
             centre_classifier: bool = True) -> GraphInfo:
    """Find layers, skipped ops, activity gates and the classifier (docs/metrics.md: Words, Activity, The classifier)."""
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    inputs, weight_inputs = [], []
    for vi in graph.input:
        if vi.name in init_names:
            weight_inputs.append(vi.name)
            continue
        dims = _dims(vi) or []
        inputs.append(GraphInput(vi.name, vi.type.tensor_type.elem_type, dims, input_layout(graph, vi.name, len(dims))))
    shapes, types = infer_shapes(model)
    nodes = topological_order(graph)
    folder = ConstantFolder(graph)
    opset = _opset(model)
    layers: list[Layer] = []
    skipped: list[Skipped] = []
    paths: list[str | None] = []
    for node in nodes:
        found = _as_layer(node, folder)
        if isinstance(found, Layer):
            found.index = len(layers) + 1
            found.node = found.name
            layers.append(found)
            paths.append(module_path(node))
        elif isinstance(found, Skipped):
            skipped.append(found)
        skipped += [Skipped(*s) for s in subgraph_ops(node, (*WEIGHTED, *SKIP_REASONS, *ML_WEIGHTED))]
    for layer, path in zip(layers, paths):
        if path and paths.count(path) == 1:
            layer.name = path
    live = live_tensors(nodes, [o.name for o in graph.output])
    for layer in layers:
        layer.feeds_output = layer.output in live
    walker = _Walker(nodes, folder, shapes, opset)
    sites = SiteFinder(nodes, folder, shapes, opset, walker)
    for layer in layers:
        layer.gate = walker.activity_gate(layer.output)
        layer.input_site = sites.input_site(layer.input)
        layer.unit_site = sites.unit_site(layer.output)
    acc_out = pick_accuracy_output(graph, shapes, types, output)
    if centre_classifier and acc_out is not None:
        for layer in reversed(layers):
            if layer.group == 1 and walker.reaches_output(layer, acc_out):
                layer.classifier = True
                break
    kind = score_kind(nodes, acc_out, {L.output for L in layers}, folder.is_constant)
    return GraphInfo(layers=layers, skipped=skipped, inputs=inputs, outputs=[o.name for o in graph.output],
                     accuracy_output=acc_out, shapes=shapes, weight_inputs=weight_inputs, score_kind=kind)
