"""Which layout a model input takes, where the graph says so (for ``--layout``).

ONNX's Conv, pooling and BatchNormalization read channels-first (NCHW) tensors. An input read by
one of them, possibly through elementwise preprocessing (Cast, Mul, Div, Add, Sub, Identity), takes
NCHW items; an input first transposed channels-last to channels-first (perm ``[0, r-1, 1, ..., r-2]``,
what Keras/TensorFlow exporters insert) takes NHWC items. Anything else: unknown (None).
"""

from __future__ import annotations

import onnx

CHANNELS_FIRST_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "BatchNormalization",
                      "InstanceNormalization", "GlobalAveragePool", "GlobalMaxPool"}
PASS_THROUGH_OPS = {"Cast", "Identity", "Mul", "Div", "Add", "Sub"}
MAX_STEPS = 4


def _perm(node: onnx.NodeProto) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def input_layout(graph: onnx.GraphProto, name: str, rank: int) -> str | None:
    """"nchw", "nhwc" or None for the graph input ``name`` of rank ``rank`` (batch axis included)."""
    if rank < 3:
        return None
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for x in node.input:
            readers.setdefault(x, []).append(node)
    to_first = [0, rank - 1] + list(range(1, rank - 1))
    found: set[str] = set()
    frontier, seen = [name], {name}
    for _ in range(MAX_STEPS):
        following = []
        for tensor in frontier:
            for node in readers.get(tensor, []):
                if node.op_type in CHANNELS_FIRST_OPS and node.input and node.input[0] == tensor:
                    found.add("nchw")
                elif node.op_type == "Transpose" and _perm(node) == to_first:
                    found.add("nhwc")
                elif node.op_type in PASS_THROUGH_OPS:
                    following += [o for o in node.output if o not in seen]
                    seen.update(node.output)
        frontier = following
    return found.pop() if len(found) == 1 else None
