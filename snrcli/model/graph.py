"""Finding the layers of an ONNX graph (docs/metrics.md: Words; Activity and layer means; The classifier).

Knows ONNX, not data or onnxruntime. ``discover(model)`` returns a ``GraphInfo``:
the layers numbered 1..L (weights as a units x inputs-per-unit view, conv
geometry, activity gate, classifier flag), the skipped weighted ops with their
reasons, the graph inputs and the output used for accuracy. Which nodes are layers is
decided in layers.py, shapes come from shapes.py, the gate and classifier walks from walker.py.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from .constants import ConstantFolder
from .layers import ML_WEIGHTED, SKIP_REASONS, ConvGeometry, Layer, Skipped, as_layer, module_path
from .layout import input_layout
from .reach import DEFAULT_DOMAINS, WEIGHTED, live_tensors, score_kind, subgraph_ops
from .shapes import SKELETON_MIN_ELEMENTS, Dim, value_dims, infer_shapes, shape_skeleton
from .sites import SiteFinder
from .walker import Walker
from ..errors import ModelError, UsageError

# importable from here, as before the split into layers.py, shapes.py and walker.py
__all__ = ["ConvGeometry", "GraphInfo", "GraphInput", "Layer", "SKELETON_MIN_ELEMENTS", "discover", "infer_shapes",
           "module_path", "shape_skeleton"]

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
               onnx.TensorProto.BFLOAT16}


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
        dims = value_dims(o) or shapes.get(o.name)
        if dims is not None and len(dims) == 0:
            continue
        return o.name
    return None


def _opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in DEFAULT_DOMAINS:
            return int(o.version)
    return 1


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
        dims = value_dims(vi) or []
        inputs.append(GraphInput(vi.name, vi.type.tensor_type.elem_type, dims, input_layout(graph, vi.name, len(dims))))
    shapes, types = infer_shapes(model)
    nodes = topological_order(graph)
    folder = ConstantFolder(graph)
    opset = _opset(model)
    layers: list[Layer] = []
    skipped: list[Skipped] = []
    paths: list[str | None] = []
    for node in nodes:
        found = as_layer(node, folder)
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
    walker = Walker(nodes, folder, shapes, opset)
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
