"""Passes over a layer's input values (docs/metrics.md): max |x| and counts per feature, in as few
numpy calls as the values allow."""

from __future__ import annotations

import math

import numpy as np

from .products import scratch

SIGN_BIT = np.uint32(0x80000000)
INF_BITS = np.uint32(0x7F800000)


def abs_max(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """max |a| over ``axes``. float32 data with no sign bit set (ReLU outputs, pixels) takes one pass
    instead of two: such floats order as their bit patterns do, so the largest pattern read as uint32
    is the largest value, and any sign bit (a negative value, -0.0) shows as a pattern >= 2^31."""
    return abs_max_sign_free(a, axes)[0]


def abs_max_sign_free(a: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """``abs_max``, and whether ``a`` is float32 with no sign bit and no NaN set: then ``a > 0`` wherever
    ``a != 0``, so one count serves both (a ReLU output read as the next layer's input)."""
    if a.dtype == np.float32 and a.size:
        top = a.view(np.uint32).max(axis=axes)
        high = top.max()
        if high < SIGN_BIT:
            return top.view(np.float32), bool(high <= INF_BITS)
    return np.maximum(a.max(axis=axes), -a.min(axis=axes)), False


def count_along(a: np.ndarray, test, axis: int) -> np.ndarray:
    """For each index of ``axis``: how many values of ``a`` pass ``test(a, 0)`` (``np.not_equal``,
    ``np.greater``), as int64. The 0/1 mask goes to a reused buffer whose rows are summed as uint64
    words, eight byte-wide counters each, 255 rows at a time (a byte cannot overflow), then the bytes
    are added up: three times faster than summing the mask as int8 into int32, and six times faster
    than ``np.count_nonzero`` with an axis, which sums in int64."""
    axis %= a.ndim
    lead, n, trail = math.prod(a.shape[:axis]), a.shape[axis], math.prod(a.shape[axis + 1:])
    width = n * trail
    padded = -(-width // 8) * 8
    mask = scratch("mask", (lead, padded), np.bool_)
    if padded > width:
        mask[:, width:] = False
    test(a, 0, out=mask[:, :width].reshape(a.shape))
    words = mask.view(np.uint64)
    if lead <= 255:   # one run of rows (the usual piece): no running total
        total = np.add.reduce(words, axis=0).view(np.uint8).astype(np.int64)
    else:
        total = np.zeros(padded, dtype=np.int64)
        for lo in range(0, lead, 255):
            total += np.add.reduce(words[lo:lo + 255], axis=0).view(np.uint8)
    return total[:width] if trail == 1 else total[:width].reshape(n, trail).sum(axis=1)
