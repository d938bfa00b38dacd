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
``0 - s_c``, so that the large ``s_c`` never enters a float32 product. The
missing ``-s_c`` terms, and the sums of the patches and outputs, are linear in
two small position-wise sums kept beside the products: the shifted input summed
over items at each padded position, and the shifted output at each output
position. They are turned into the exact corrections once, when the statistics
are read (``settle``). A Gram accumulator (``y=None``: layers with few inputs
per unit) multiplies the patch buffer with itself instead.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..model.convgeom import output_shape, resolve_pads
from ..model.layers import ConvGeometry
from .products import BLOCK_ROWS, blocked_product, scratch, work_dtype

CHUNK_BYTES = 32 << 20   # at most this much input, output and patch buffer for the items processed at once


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
        # (plan key, items, input sums per padded position, output sums per output position) not yet
        # turned into ``acc``'s sums (``settle``)
        self._pending: tuple | None = None

    def accumulate(self, x: np.ndarray, y: np.ndarray | None, acc, pool=None) -> None:
        """Add every sample of ``x`` (items, C, *spatial) and ``y`` (items, M, *out) to ``acc`` (a
        ``stats.CoMoments`` of G groups whose input rows are ordered (k, c), with its shifts set).
        ``y=None``: a Gram accumulator (the patches against themselves). ``pool``: share each
        product out to these statistics threads (a layer too large to split by items)."""
        c, m, g, k = self.c, self.m, self.g, self.k
        gram = y is None
        spatial = tuple(x.shape[2:])
        out = output_shape(self.geom, spatial)
        if not gram and tuple(y.shape[2:]) != out:
            raise ValueError(f"conv output {tuple(y.shape[2:])} does not match input {spatial} and the layer's geometry")
        key = (spatial, out)
        pads, padded, views, _ = self._plan(spatial, out)
        if self._pending is not None and self._pending[0] != key:
            self.settle(acc)
        if self._pending is None:
            self._pending = (key, [0], np.zeros((c,) + padded), None if gram else np.zeros((m,) + out))
        _, items, xpos, ypos = self._pending
        cg, mg = c // g, m // g
        dt = work_dtype(acc.sxy[0].size, *([x] if gram else [x, y]), exact=acc.exact)
        shift_x = acc.shift_x.reshape(g, k, cg)[:, 0, :].ravel()     # one shift per input channel
        p = k * cg
        positions = math.prod(out)
        item_bytes = (c * math.prod(padded) + (0 if gram else m) * positions + g * p * positions) * np.dtype(dt).itemsize
        # one product (at most BLOCK_ROWS samples) per chunk, within CHUNK_BYTES
        step = max(1, min(CHUNK_BYTES // max(1, item_bytes), BLOCK_ROWS // max(1, positions)))
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
            xpos += xt.sum(axis=1, dtype=np.float64)
            cols = scratch("cols", (g, p, b * positions), dt)                # patches, one row per (k, c)
            patches = cols.reshape((g, k, cg, b) + out)
            for j, view in enumerate(views):
                np.copyto(patches[:, j], xt[everything + view].reshape((g, cg, b) + out))
            if gram:
                blocked_product(cols, None, acc.sxy, pool=pool)
                continue
            yt = scratch("yt", (g, mg, b * positions), dt)                  # y - t
            np.subtract(np.moveaxis(y[lo:lo + step], 1, 0).reshape((g, mg, b) + out), sy_shift,
                        out=yt.reshape((g, mg, b) + out), casting="unsafe")
            ypos += yt.reshape((m, b) + out).sum(axis=1, dtype=np.float64)
            blocked_product(cols, yt, acc.sxy, pool=pool)
        items[0] += x.shape[0]
        acc.n += x.shape[0] * positions

    def settle(self, acc) -> None:
        """Turn the position-wise sums gathered so far into ``acc``'s shifted sums (its ``sxy`` already
        holds the product V of the patch buffer v, 0 on padding). With p_j = 1 where input j = (k, c)
        reads padding, the shifted input is u_j = v_j - s_c p_j, so for the outputs w (y - t):
        sum u_j w_i = V[j, i] - s_c A[k, i], A[k, i] the sum of w_i where offset k reads padding; and
        for the Gram route sum u_j u_j' = V - s_j' B[j, k(j')] - s_j B[j', k(j)] + s_j s_j' Q[k(j), k(j')],
        B[j, k'] the sum of v_j where k' reads padding, Q[k, k'] the samples where both do."""
        if self._pending is None:
            return
        (spatial, out), items, xpos, ypos = self._pending
        self._pending = None
        _, _, views, masks = self._plan(spatial, out)
        n = items[0]
        g, k, c = self.g, self.k, self.c
        cg = c // g
        win = np.stack([xpos[(slice(None),) + view].reshape(c, -1) for view in views])   # (K, C, positions)
        sums = win.sum(axis=2)                                      # sum of v_j, (K, C)
        pad_count = np.zeros(k) if masks is None else n * masks.sum(axis=1)
        k_of = np.repeat(np.arange(k), cg)                          # rows are ordered (k, c)
        for grp in range(g):
            cs = slice(grp * cg, (grp + 1) * cg)
            s_c = acc.shift_x[grp].reshape(k, cg)[0]                  # s per channel of the group
            su = (sums[:, cs] - pad_count[:, None] * s_c[None, :]).ravel()
            acc.sx[grp] += su
            if acc.gram:
                acc.sy[grp] += su
                if masks is not None:
                    s = np.tile(s_c, k)                                 # s_j, rows (k, c)
                    b_j = (win[:, cs] @ masks.T).reshape(k * cg, k)[:, k_of]   # B[j, k(j')]
                    q = (n * masks @ masks.T)[k_of][:, k_of]
                    acc.sxy[grp] += (s[:, None] * s[None, :] * q - s[None, :] * b_j - s[:, None] * b_j.T)
                continue
            ms = slice(grp * (self.m // g), (grp + 1) * (self.m // g))
            yw = ypos[ms].reshape(self.m // g, -1)                     # (Mg, positions)
            acc.sy[grp] += yw.sum(axis=1)
            if masks is not None:   # in place, one kernel offset at a time: no (P, M) temporaries
                a = masks @ yw.T                                        # A, (K, Mg)
                sxy = acc.sxy[grp].reshape(k, cg, -1)
                for kk in range(k):
                    sxy[kk] -= s_c[:, None] * a[kk][None, :]

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
