"""Constant tensors of an ONNX graph (docs/metrics.md, Words).

A weight is constant when it is an initializer or a ``Constant`` output, possibly
through ``Identity``, ``Transpose``, ``Reshape``, ``Cast``, ``Squeeze``,
``Unsqueeze`` or ``DequantizeLinear`` of constants. ``ConstantFolder`` resolves
such tensors to numpy arrays on demand and caches them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

FOLDABLE_OPS = ("Identity", "Transpose", "Reshape", "Cast", "Squeeze", "Unsqueeze", "DequantizeLinear")


def attribute(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value of a ``Constant`` node in any of its attribute forms, or None."""
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None


class ConstantFolder:
    """Resolves tensor names to constant numpy arrays, or None when not constant.

    An initializer that is also listed as a graph input (old IR versions) counts as
    constant; the caller refuses data that would supply it (docs/metrics.md, Words).
    """

    def __init__(self, graph: onnx.GraphProto):
        self._init = {t.name: t for t in graph.initializer}
        self._producer: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for out in node.output:
                if out:
                    self._producer[out] = node
        self._cache: dict[str, np.ndarray | None] = {}
        self._why: dict[str, str] = {}

    def why_not(self, name: str) -> str | None:
        """Why ``name`` is not constant although it is computed from constants (a fold that failed),
        or None when it simply depends on data."""
        return self._why.get(name)

    def is_constant(self, name: str) -> bool:
        return self.value(name) is not None

    def value(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in self._cache:
            return self._cache[name]
        self._cache[name] = None  # guards against cycles in malformed graphs
        result = self._resolve(name)
        self._cache[name] = result
        return result

    def _resolve(self, name: str) -> np.ndarray | None:
        if name in self._init:
            return numpy_helper.to_array(self._init[name])
        node = self._producer.get(name)
        if node is None or node.domain not in ("", "ai.onnx"):
            return None
        if node.op_type == "Constant":
            return constant_node_value(node)
        if node.op_type not in FOLDABLE_OPS:
            return None
        fold: Callable = getattr(self, "_fold_" + node.op_type)
        data = self.value(node.input[0])
        if data is None:
            if node.input[0] in self._why:
                self._why[name] = self._why[node.input[0]]
            return None
        try:
            return np.asarray(fold(node, data))
        except (ValueError, TypeError, IndexError, KeyError) as e:
            who = f"{node.op_type} {node.name!r}" if node.name else node.op_type
            self._why[name] = f"{who} of constants could not be evaluated ({e})"
            return None

    def _optional(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        return self.value(node.input[i]) if len(node.input) > i and node.input[i] else None

    def _fold_Identity(self, node, data):
        return data

    def _fold_Transpose(self, node, data):
        perm = attribute(node, "perm")
        return np.transpose(data, perm if perm else None)

    def _fold_Cast(self, node, data):
        return data.astype(helper.tensor_dtype_to_np_dtype(attribute(node, "to")))

    def _fold_Reshape(self, node, data):
        shape = self._optional(node, 1)
        if shape is None:
            raise ValueError("shape not constant")
        shape = [int(s) for s in shape.reshape(-1)]
        if not attribute(node, "allowzero", 0):
            shape = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return data.reshape(shape)

    def _axes(self, node) -> list[int] | None:
        axes = attribute(node, "axes")
        if axes is None:
            given = self._optional(node, 1)
            if given is None and len(node.input) > 1 and node.input[1]:
                raise ValueError("axes not constant")
            axes = None if given is None else [int(a) for a in given.reshape(-1)]
        return None if axes is None else list(axes)

    def _fold_Squeeze(self, node, data):
        axes = self._axes(node)
        return np.squeeze(data, axis=None if axes is None else tuple(axes))

    def _fold_Unsqueeze(self, node, data):
        axes = self._axes(node)
        if axes is None:
            raise ValueError("Unsqueeze without axes")
        rank = data.ndim + len(axes)
        out = data
        for a in sorted(a % rank for a in axes):
            out = np.expand_dims(out, a)
        return out

    def _fold_DequantizeLinear(self, node, data):
        scale = self._optional(node, 1)
        if scale is None:
            raise ValueError("scale not constant")
        zero = self._optional(node, 2)
        x = data.astype(np.float64)
        if zero is not None:
            zero = zero.astype(np.float64)
        block = int(attribute(node, "block_size", 0) or 0)
        if block > 0:   # blocked quantisation (opset 21): one scale per `block` elements along `axis`
            axis = int(attribute(node, "axis", 1)) % max(x.ndim, 1)
            if scale.ndim != x.ndim or -(-x.shape[axis] // block) != scale.shape[axis]:
                raise ValueError(f"scale of shape {scale.shape} does not fit blocks of {block} along axis {axis} "
                                 f"of a weight of shape {x.shape}")
            cut = [slice(None)] * x.ndim
            cut[axis] = slice(0, x.shape[axis])
            scale = np.repeat(scale, block, axis=axis)[tuple(cut)]
            if zero is not None:
                zero = np.repeat(zero, block, axis=axis)[tuple(cut)]
        elif scale.ndim == 1 and scale.size > 1:
            axis = int(attribute(node, "axis", 1)) % max(x.ndim, 1)
            shape = [1] * x.ndim
            shape[axis] = scale.size
            scale = scale.reshape(shape)
            if zero is not None:
                zero = zero.reshape(shape)
        if zero is not None:
            x = x - zero
        return (x * scale.astype(np.float64)).astype(np.float32 if scale.dtype == np.float32 else scale.dtype)
