"""A conv layer's co-moment sums, computed like its weight gradient (docs/metrics.md: Words, Statistics gathered per layer).

A conv sample is one (item, output position) pair; its inputs are the patch
elements ``j = (k, c)`` (kernel offset, channel), padding read as 0. For a chunk
of items at a time, the patches are copied one kernel offset at a time (each a
strided view of the padded input) into a reused buffer laid out (rows j,
samples), and ``sum_samples x_j y_i`` is one matrix product of that buffer with
the output laid out (samples, M): the product that backpropagation computes for
the weight gradient, in the same number of operations as the forward conv.

Sums are shifted (``x - s_c`` per input channel, ``y - t_i`` per unit) so large
means do not cancel. The padded buffer holds 0 where the input is padding, not
``0 - s_c``, so that the large ``s_c`` never enters a float32 product; the
buffer is extended by one padding-indicator row per kernel offset and a row of
ones (and the output by a row of ones), so the same product also gives the sums
of ``y - t`` over the samples where offset ``k`` reads padding, the item sums
and the padding counts, from which the missing ``-s_c`` terms are added back
exactly. A Gram accumulator (``y=None``: layers with few inputs per unit)
multiplies the extended buffer with itself instead.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..model.convgeom import output_shape, resolve_pads
from ..model.graph import ConvGeometry
from .products import blocked_product, scratch, work_dtype

CHUNK_BYTES = 32 << 20   # input, output and patch buffers of the items processed at once, per conv layer


def channel_means(x: np.ndarray) -> np.ndarray:
    """Per-channel mean of (items, C, *spatial) in float64."""
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes, dtype=np.float64)


def _borders(pads, spatial):
    """Index tuples of the padding slabs of a padded array, one pair per spatial axis."""
    for axis, ((b, e), size) in enumerate(zip(pads, spatial)):
        before = (slice(None),) * axis
        if b:
            yield before + (slice(0, b),)
        if e:
            yield before + (slice(b + size, None),)


class ConvSums:
    """Adds one conv layer's batches to its co-moment sums: ``sx`` (G, K*Cg), ``sy`` (G, Mg) and ``sxy``
    (G, K*Cg, Mg), input rows ordered (k, c) (``stats`` reorders them to (c, k) when finishing)."""

    def __init__(self, geom: ConvGeometry, in_channels: int, units: int):
        self.geom = geom
        self.c, self.m, self.g = in_channels, units, geom.group
        self.k = int(np.prod(geom.kernel))
        self._plans: dict = {}
        self._pending: tuple | None = None   # (kp, edge sums) not yet turned into ``acc``'s sums (``settle``)

    def accumulate(self, x: np.ndarray, y: np.ndarray | None, acc) -> None:
        """Add every sample of ``x`` (items, C, *spatial) and ``y`` (items, M, *out) to ``acc`` (a
        ``stats.CoMoments`` of G groups whose input rows are ordered (k, c), with its shifts set).
        ``y=None``: a Gram accumulator (the patches against themselves)."""
        c, m, g, k = self.c, self.m, self.g, self.k
        gram = y is None
        spatial = tuple(x.shape[2:])
        out = output_shape(self.geom, spatial)
        if not gram and tuple(y.shape[2:]) != out:
            raise ValueError(f"conv output {tuple(y.shape[2:])} does not match input {spatial} and the layer's geometry")
        pads, padded, views, pad_masks = self._plan(spatial, out)
        cg, mg = c // g, m // g
        dt = work_dtype(acc.sxy[0].size, *([x] if gram else [x, y]), exact=acc.exact)
        shift_x = acc.shift_x.reshape(g, k, cg)[:, 0, :].ravel()     # one shift per input channel
        p = k * cg
        kp = 0 if pad_masks is None else k
        rows = p + kp + 1                  # patches, a padding indicator per offset (if any), ones
        if self._pending is not None and self._pending[0] != kp:
            self.settle(acc)
        if self._pending is None:   # the products' rows and columns beyond the patches' and outputs'
            self._pending = (kp, np.zeros((g, p, kp + 1)), np.zeros((g, kp + 1, (kp + 1) if gram else mg + 1)))
        _, right, bottom = self._pending
        big = acc.sxy
        cut = p if gram else mg

        def add(tmp: np.ndarray) -> None:   # the patch block straight into acc.sxy, the edges aside
            np.add(big, tmp[:, :p, :cut], out=big)
            np.add(right, tmp[:, :p, cut:], out=right)
            np.add(bottom, tmp[:, p:, p:] if gram else tmp[:, p:], out=bottom)
        positions = math.prod(out)
        item_bytes = (c * math.prod(padded) + ((0 if gram else m + g) + g * rows) * positions) * np.dtype(dt).itemsize
        step = max(1, CHUNK_BYTES // max(1, item_bytes))
        everything = (slice(None), slice(None))
        inside = everything + tuple(slice(b, b + s) for (b, _), s in zip(pads, spatial))
        sx_shift = shift_x.astype(dt).reshape((c,) + (1,) * (1 + len(spatial)))
        sy_shift = None if gram else acc.shift_y.astype(dt).reshape((g, mg) + (1,) * (1 + len(out)))
        for lo in range(0, x.shape[0], step):
            xc = x[lo:lo + step]
            b = xc.shape[0]
            xt = scratch("xt", (c, b) + padded, dt)                          # x - s, padding 0
            for border in _borders(pads, spatial):
                xt[everything + border] = 0
            np.subtract(np.moveaxis(xc, 1, 0), sx_shift, out=xt[inside], casting="unsafe")
            cols = scratch("cols", (g, rows, b * positions), dt)             # patches, one row per (k, c)
            patches = cols[:, :p].reshape((g, k, cg, b) + out)
            for j, view in enumerate(views):
                np.copyto(patches[:, j], xt[everything + view].reshape((g, cg, b) + out))
            if kp:
                cols[:, p:p + kp].reshape(g, kp, b, positions)[...] = pad_masks[:, None, :]
            cols[:, p + kp] = 1
            if gram:
                blocked_product(cols, None, None, add)
                continue
            yt = scratch("yt", (g, mg + 1, b * positions), dt)              # y - t, then ones
            np.subtract(np.moveaxis(y[lo:lo + step], 1, 0).reshape((g, mg, b) + out), sy_shift,
                        out=yt[:, :mg].reshape((g, mg, b) + out), casting="unsafe")
            yt[:, mg] = 1
            blocked_product(cols, yt, None, add)
        acc.n += x.shape[0] * positions

    def settle(self, acc) -> None:
        """Turn the edge sums gathered so far into ``acc``'s shifted sums (its ``sxy`` already holds the
        patch block V of every product; the rest is linear in the edges, so it is added once, not per
        batch). With u_j = v_j - s_j p_j (v: the buffer, 0 on padding; p_j: 1 where input j = (k, c)
        reads padding): sum u_j w = V[j, w] - s_j A[k(j), w] for any w, and for the Gram
        sum u_j u_j' = V - s_j' A[j, k(j')] - s_j A[j', k(j)] + s_j s_j' Q[k(j), k(j')]."""
        if self._pending is None:
            return
        kp, right, bottom = self._pending
        self._pending = None
        g, k = self.g, self.k
        cg = self.c // g
        shift_x = acc.shift_x.reshape(g, k, cg)[:, 0, :]
        k_of = np.repeat(np.arange(k), cg)                  # rows are ordered (k, c)
        s = np.tile(shift_x, (1, k))                        # s_j, (G, P)
        if acc.gram:                  # right: [A | sums] (G, P, kp + 1); bottom: [Q | counts; counts | n]
            su = right[:, :, kp]
            if kp:
                a_j = right[:, :, :kp][:, :, k_of]          # A[j, k(j')]
                q = bottom[:, :kp, :kp][:, k_of][:, :, k_of]
                acc.sxy += (s[:, :, None] * s[:, None, :] * q - s[:, None, :] * a_j
                            - s[:, :, None] * a_j.transpose(0, 2, 1))
                su = su - s * bottom[:, :kp, kp][:, k_of]
            acc.sx += su
            acc.sy += su
            return
        mg = bottom.shape[2] - 1      # right: item sums (G, P, 1); bottom: [A | counts; sums of y | n]
        acc.sx += right[:, :, 0]
        if kp:   # in place, one kernel offset at a time: no (G, P, M) temporaries
            sxy, s_k = acc.sxy.reshape(g, k, cg, mg), s.reshape(g, k, cg)
            for kk in range(k):
                sxy[:, kk] -= s_k[:, kk, :, None] * bottom[:, kk, None, :mg]
            acc.sx -= s * bottom[:, :kp, mg][:, k_of]
        acc.sy += bottom[:, kp, :mg]

    def _plan(self, spatial: tuple[int, ...], out: tuple[int, ...]):
        """Padding, padded shape, one strided view per kernel offset, and a (K, positions) 0/1 matrix
        of the output positions at which each offset reads padding (None when none does)."""
        key = (spatial, out)
        if key not in self._plans:
            geom = self.geom
            pads = resolve_pads(geom, spatial)
            padded = tuple(s + b + e for s, (b, e) in zip(spatial, pads))
            offsets = list(itertools.product(*[range(kk) for kk in geom.kernel]))
            views = [tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                           for o, d, s, n in zip(off, geom.dilations, geom.strides, out)) for off in offsets]
            masks = []
            for view in views:
                mask = np.zeros(out, dtype=bool)
                for axis, ((b, _), size, sl) in enumerate(zip(pads, spatial, view)):
                    pos = np.arange(sl.start, sl.stop, sl.step) - b
                    outside = (pos < 0) | (pos >= size)
                    mask |= outside.reshape((-1,) + (1,) * (len(out) - axis - 1))
                masks.append(mask.ravel())
            pad_masks = np.array(masks, dtype=np.float64) if any(mk.any() for mk in masks) else None
            self._plans[key] = (pads, padded, views, pad_masks)
        return self._plans[key]
