"""Convolution geometry: padding (``auto_pad`` resolved) and output shape, as ONNX Conv defines them."""

from __future__ import annotations

import math

from .layers import ConvGeometry


def resolve_pads(geom: ConvGeometry, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial axis, resolving ``auto_pad`` (ONNX Conv semantics)."""
    nd = len(spatial)
    if geom.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(spatial, geom.kernel, geom.strides, geom.dilations):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if geom.auto_pad == "SAME_UPPER" else (big, small))
        return pads
    if geom.auto_pad == "VALID":
        return [(0, 0)] * nd
    return [(int(geom.pads[i]), int(geom.pads[i + nd])) for i in range(nd)]


def output_shape(geom: ConvGeometry, spatial: tuple[int, ...]) -> tuple[int, ...]:
    pads = resolve_pads(geom, spatial)
    return tuple((size + b + e - ((k - 1) * d + 1)) // s + 1
                 for size, (b, e), k, s, d in zip(spatial, pads, geom.kernel, geom.strides, geom.dilations))
