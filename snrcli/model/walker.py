"""Walks along the graph from a layer's output: its activity gate (docs/metrics.md, Activity and layer
means) and whether it reaches the scored output (The classifier). ``passes`` also serves model/sites.py.
"""

from __future__ import annotations

import numpy as np
import onnx

from .constants import ConstantFolder, attribute
from .layers import Layer
from .reach import DEFAULT_DOMAINS


class Walker:
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
                lo = attribute(n, "min") if self.opset < 11 else (
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
                    axis = int(attribute(n, "axis", default))
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
