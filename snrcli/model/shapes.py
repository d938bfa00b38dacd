"""Static shapes and element types of a graph's tensors, from ONNX shape inference run on a copy
without the weights' values."""

from __future__ import annotations

import math

import onnx

Dim = int | str | None


def value_dims(vi: onnx.ValueInfoProto) -> list[Dim] | None:
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
        d = value_dims(vi)
        if d is not None:
            shapes[vi.name] = d
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    return shapes, types
