"""Receptive-field patches of a convolution (spec section 1: conv samples and inputs).

A conv sample is one (batch item, output position) pair; its inputs are the
elements ``(c, k1, k2, ...)`` of the receptive field, padding included as 0.
``patches`` returns them as a (samples, C_in * prod(kernel)) matrix whose row
order matches the conv output moved to (batch, positions..., units).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import ConvGeometry


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


def patches(x: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """Patch matrix of ``x`` (B, C, *spatial): shape (B * prod(out), C * prod(kernel)), same dtype.

    Columns are ordered (c, k1, k2, ...) like ``W.reshape(M, -1)``; rows (b, o1, o2, ...).
    """
    nd = x.ndim - 2
    pads = resolve_pads(geom, x.shape[2:])
    if any(b or e for b, e in pads):
        x = np.pad(x, [(0, 0), (0, 0)] + pads)
    eff = [(k - 1) * d + 1 for k, d in zip(geom.kernel, geom.dilations)]
    win = sliding_window_view(x, eff, axis=tuple(range(2, 2 + nd)))
    # win: (B, C, o1', ..., ond', e1, ..., end); take strides on positions, dilations in windows
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in geom.strides) \
        + tuple(slice(None, None, d) for d in geom.dilations)
    win = win[index]
    b, c = x.shape[:2]
    out = win.shape[2:2 + nd]
    # -> (B, o..., C, k...)
    order = (0,) + tuple(range(2, 2 + nd)) + (1,) + tuple(range(2 + nd, 2 + 2 * nd))
    return win.transpose(order).reshape(b * int(np.prod(out)), c * int(np.prod(geom.kernel)))
