"""Streamed, mergeable per-layer statistics (docs/metrics.md, Statistics gathered per layer).

Co-moments use sums shifted by a fixed reference (the first batch's means), so
large means do not cancel and the result does not depend on how the data is
split into batches beyond rounding. Products of activations follow ``products``
(float32 blocks summed in float64 for large layers, float64 otherwise); every
other sum is float64. Every
accumulator has ``merge`` so that shards of a data set can be combined.

Four routes give the same cov(x_j, y_i) (y = W x, docs/metrics.md, Statistics gathered per layer):

- ``gram`` (dense, P <= GRAM_RATIO * M inputs per unit): the shifted Gram matrix
  of x, times W^T at the end; half a P x P product per sample, output not read;
- ``cross`` (dense, wider inputs): x^T y against the layer's output;
- ``conv-gram`` (conv, P <= GRAM_RATIO * M per group, e.g. a first layer on 3
  channels): the Gram matrix of the patches, output not read (``convstats``);
- ``conv``: x^T y per kernel offset (``convstats``), like a weight gradient.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .conv import ConvSums, channel_means
from ..model.convgeom import output_shape
from ..errors import RuntimeFailure
from ..model.graph import Layer
from .products import BLOCK_ROWS, blocked_product, mirror_upper, rows_product, scratch, sum_middle, work_dtype
from .threads import StatThreads

BUFFER_BYTES = 16 << 20   # float32 rows buffered per dense layer before they are multiplied
GRAM_RATIO = 1.5   # layers with P <= 1.5 M inputs per unit (per group) take a Gram route
SPLIT_MIN_WORK = 1 << 24   # a batch is split across statistics threads from input values x units ...
SPLIT_MAX_COMOMENTS = 1 << 22   # ... for layers of at most this many co-moments (each thread keeps a copy)
PASS_VALUES = 1 << 20   # a dense layer's rows wait until they hold this many values (or fill its buffers) ...
BLOCK_SPLIT_MIN = 1 << 20   # ... and their passes are shared out between threads from this many values
JOIN_BELOW = 1 << 15   # waiting pieces averaging fewer values than this are joined into one array first
SMALL_PASS_VALUES = 1 << 16   # float64-route dense rows wait until they hold this many values
PRODUCT_SPLIT_MIN = 1 << 24   # a dense layer's buffered product is cut between threads from this many multiply-adds


def _rounded(v: np.ndarray, dt) -> np.ndarray:
    """A shift exactly representable in the working dtype, so x - shift rounds once."""
    return np.asarray(v, dtype=dt).astype(np.float64)


class CoMoments:
    """Shifted sums giving the population covariance between P inputs and M outputs, for G groups.

    ``gram=True``: the outputs are the inputs themselves (cov(x, x), P x P); ``exact=True``: float64
    products whatever the activations' dtype (``--precision float64``).
    """

    def __init__(self, p: int, m: int, groups: int = 1, gram: bool = False, exact: bool = False):
        m = p if gram else m
        self.gram = gram
        self.exact = exact
        self.n = 0
        self.shift_x = np.zeros((groups, p))
        self.shift_y = np.zeros((groups, m))
        self.sx = np.zeros((groups, p))
        self.sy = np.zeros((groups, m))
        self.sxy = np.zeros((groups, p, m))
        self._clear_pending()

    def _clear_pending(self) -> None:
        self._upper = False                     # gram: products added to the upper triangle of sxy only
        self._xbuf: np.ndarray | None = None    # float32 shifted rows not yet multiplied
        self._ybuf: np.ndarray | None = None
        self._xshift: np.ndarray | None = None  # the shifts as float32, placed beside the buffers
        self._yshift: np.ndarray | None = None
        self._rows = 0

    def set_shift(self, shift_x: np.ndarray, shift_y: np.ndarray) -> None:
        """Fix the reference point (only before the first sample)."""
        assert self.n == 0
        self.shift_x[...] = shift_x
        self.shift_y[...] = shift_y
        if self._xbuf is not None:
            self._xshift[...] = self.shift_x[0]
            if self._yshift is not None:
                self._yshift[...] = self.shift_y[0]

    def update(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Add samples of one group: ``x`` (n, P) and ``y`` (n, M); ``y`` is omitted for a Gram accumulator.

        float32 rows are buffered and multiplied ``BLOCK_ROWS`` at a time (or fewer for wide layers),
        whatever the batch size: one large product costs much less than many small ones.
        """
        if len(x) == 0:
            return
        size = self.sxy[0].size
        dt = work_dtype(size, x, exact=self.exact) if self.gram else work_dtype(size, x, y, exact=self.exact)
        if self.n == 0:
            mx = _rounded(x.mean(axis=0, dtype=np.float64), dt)
            self.set_shift(mx, mx if self.gram else _rounded(y.mean(axis=0, dtype=np.float64), dt))
        if dt == np.float64:
            self.n += len(x)
            xs = np.subtract(x, self.shift_x[0], dtype=np.float64)
            ys = None if self.gram else np.subtract(y, self.shift_y[0], dtype=np.float64)
            blocked_product(xs.T[None], None if ys is None else ys.T[None], self.sxy)
            sx = xs.sum(axis=0)
            self.sx[0] += sx
            self.sy[0] += sx if ys is None else ys.sum(axis=0)
            return
        lo = 0
        while lo < len(x):
            take = min(len(x) - lo, self.buffer_rows() - self._rows)
            sx, sy = self.shift_in(self._rows, x[lo:lo + take], None if self.gram else y[lo:lo + take])
            self.add_rows(take, sx, sy)
            lo += take

    def buffer_rows(self) -> int:
        """Rows of the float32 buffers (allocated on first use): ``BLOCK_ROWS``, or fewer for wide layers."""
        if self._xbuf is None:
            p, m = self.sx.shape[1], self.sy.shape[1]
            width = p + (0 if self.gram else m)
            rows = int(min(BLOCK_ROWS, max(64, BUFFER_BYTES // (4 * width))))
            self._xbuf, self._xshift = _buffer_and_shift(rows, p)
            self._xshift[...] = self.shift_x[0]
            if not self.gram:
                self._ybuf, self._yshift = _buffer_and_shift(rows, m)
                self._yshift[...] = self.shift_y[0]
        return len(self._xbuf)

    def shift_in(self, at: int, x: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Write ``x - shift`` (and ``y - shift``) as float32 into buffer rows ``at`` onwards; return
        their sums in float64 (to hand to ``add_rows``). Threads may fill disjoint rows at once."""
        k = len(x)
        xs = np.subtract(x, self._xshift, out=self._xbuf[at:at + k], casting="unsafe")
        if y is None:
            return sum_middle(xs[None])[0], None
        ys = np.subtract(y, self._yshift, out=self._ybuf[at:at + k], casting="unsafe")
        return sum_middle(xs[None])[0], sum_middle(ys[None])[0]

    def add_rows(self, rows: int, sx: np.ndarray, sy: np.ndarray | None, pool: StatThreads | None = None) -> None:
        """Count ``rows`` shifted float32 rows just written to the buffers after the ``pending`` ones,
        whose sums are ``sx`` (and ``sy``); multiply the buffers once they are full."""
        assert self._rows + rows <= len(self._xbuf)
        self.n += rows
        self.sx[0] += sx
        self.sy[0] += sx if self.gram else sy
        self._rows += rows
        if self._rows == len(self._xbuf):
            self.flush(pool)

    @property
    def pending(self) -> int:
        """Rows in the buffers, not yet multiplied."""
        return self._rows

    def flush(self, pool: StatThreads | None = None) -> None:
        """Multiply the buffered rows (float32) and add the result to the float64 sums (a Gram matrix's
        upper triangle only, completed by ``_fold`` when the sums are read). With ``pool``, a
        large product is cut into runs of rows, one per thread, each on one BLAS thread, and the threads'
        results are added: the paper MLP's statistics took 1.45 s so, against 1.57 s with one call on
        OpenBLAS's own threads (which sleep between calls here, see ``snrcli/__init__``)."""
        rows, self._rows = self._rows, 0
        if not rows:
            return
        xs = self._xbuf[:rows]
        ys = None if self.gram else self._ybuf[:rows]
        self._upper = self.gram
        work = rows * xs.shape[1] * (xs.shape[1] // 2 if ys is None else ys.shape[1])
        n = pool.threads if (pool is not None and work >= PRODUCT_SPLIT_MIN and rows >= 8 * pool.threads
                             and self.sxy[0].size <= SPLIT_MAX_COMOMENTS) else 1   # (a result buffer per thread)
        if n == 1:
            if pool is not None and work >= PRODUCT_SPLIT_MIN:
                pool.wide()
            self.sxy[0] += rows_product(xs, ys)   # (Gram: upper triangle, see _fold)
            return
        edges = [rows * t // n for t in range(n + 1)]
        lock = threading.Lock()

        def run(t: int) -> None:   # (a pool thread may run two indices: its scratch is added at once)
            tmp = rows_product(xs[edges[t]:edges[t + 1]], None if ys is None else ys[edges[t]:edges[t + 1]])
            with lock:
                self.sxy[0] += tmp

        pool.map(run, n)

    def _fold(self) -> None:
        """Multiply buffered rows and complete the Gram matrix's lower triangle (before ``sxy`` is read)."""
        if self._rows:
            self.flush()
        if self._upper:
            mirror_upper(self.sxy[0])
        self._clear_pending()

    def __getstate__(self):
        self._fold()
        return self.__dict__

    def merge(self, other: "CoMoments") -> None:
        """Add another accumulator's samples (re-expressed about this one's shift)."""
        if other.n == 0:
            return
        self._fold()
        other._fold()
        if self.n == 0:
            self.__dict__.update({k: np.copy(v) if isinstance(v, np.ndarray) else v
                                  for k, v in other.__dict__.items()})
            return
        dx = other.shift_x - self.shift_x
        dy = other.shift_y - self.shift_y
        n = other.n
        self.sxy += (other.sxy + other.sx[:, :, None] * dy[:, None, :] + dx[:, :, None] * other.sy[:, None, :]
                     + n * dx[:, :, None] * dy[:, None, :])
        self.sx += other.sx + n * dx
        self.sy += other.sy + n * dy
        self.n += n

    def cov(self) -> np.ndarray:
        """Population covariance (divide by n), shape (G, P, M)."""
        self._fold()
        if self.n == 0:
            return np.full(self.sxy.shape, np.nan)
        mx, my = self.sx / self.n, self.sy / self.n
        return self.sxy / self.n - mx[:, :, None] * my[:, None, :]


def _buffer_and_shift(rows: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """A float32 row buffer (rows, p) and a float32 shift vector (p,) from one allocation, the vector
    at the same offset within its 4 kB page as the buffer. ``np.subtract(x, shift, out=rows)`` ran
    5x slower (2.7 against 0.5 ns a value) when the shift sat 4 to 28 bytes past an output row
    modulo 4 kB (a false store-to-load dependency, "4K aliasing"); a vector allocated on its own
    landed there by chance. Here row r starts 4 p r bytes past the vector's offset modulo 4 kB: never
    in that window when p is a multiple of 8 (and only for a few rows otherwise)."""
    n = rows * p
    at = -(-n // 1024) * 1024          # floats: the first 4 kB multiple at or after the buffer's end
    raw = np.empty(at + p, np.float32)
    return raw[:n].reshape(rows, p), raw[at:at + p]


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


def route(layer: Layer) -> str:
    """How a layer's co-moments are gathered: ``gram``, ``cross``, ``conv-gram`` or ``conv`` (see the
    module text): the Gram route when the inputs per unit are at most GRAM_RATIO x the units (per group)."""
    per_unit, units = layer.weight.shape[1], layer.units // layer.group
    gram = per_unit <= GRAM_RATIO * units
    if layer.conv is not None:
        return "conv-gram" if gram else "conv"
    return "gram" if gram else "cross"


def needs_output(layer: Layer) -> bool:
    """Whether the statistics read the layer's output tensor (not on the Gram route, nor when Gemm adds a
    non-constant C to it: then y = W x is computed)."""
    return route(layer) in ("cross", "conv") and layer.output_is_weighted_sum


def unit_matrix(t: np.ndarray, units: int, unit_axis: int) -> np.ndarray:
    """Move the unit axis last and flatten the rest: (samples, units)."""
    return np.moveaxis(t, unit_axis, -1).reshape(-1, units)


def gate_matrix(gate: np.ndarray, y_shape: tuple[int, ...], unit_axis: int, units: int) -> np.ndarray:
    """The activity-gate tensor as (samples, units), mapping its unit axis through size-1 changes."""
    if gate.shape == tuple(y_shape):
        return unit_matrix(gate, units, unit_axis)
    if units == 1:
        return gate.reshape(-1, 1)
    keep_y = [i for i, d in enumerate(y_shape) if d != 1]
    keep_g = [i for i, d in enumerate(gate.shape) if d != 1]
    if [y_shape[i] for i in keep_y] != [gate.shape[i] for i in keep_g] or unit_axis % len(y_shape) not in keep_y:
        raise RuntimeFailure(f"activity tensor of shape {gate.shape} does not match the layer output {tuple(y_shape)}")
    return unit_matrix(gate, units, keep_g[keep_y.index(unit_axis % len(y_shape))])


class LayerStats:
    """Everything docs/metrics.md's statistics per layer need for one layer, gathered batch by batch."""

    def __init__(self, layer: Layer, exact: bool = False):
        self.layer = layer
        self.route = route(layer)
        g = layer.group
        self.acc = CoMoments(layer.weight.shape[1], layer.units // g, groups=g,
                             gram=self.route in ("gram", "conv-gram"), exact=exact)
        c = layer.in_channels
        self.channel_max = np.zeros(c)
        self.channel_nonzero = np.zeros(c, dtype=np.int64)
        self.channel_values = 0
        self.on = np.zeros(layer.units, dtype=np.int64)
        self.gate_samples = 0
        self._conv = ConvSums(layer.conv, c, layer.units) if layer.conv else None
        self._w32: np.ndarray | None = None
        self._queue: list[tuple] = []   # dense float32 route: (x, y, gate) rows waiting for their passes
        self._waiting = 0
        self.positive: np.ndarray | None = None   # per input feature: values > 0, when ``count_positive``

    def count_positive(self) -> None:
        """Also count each input feature's values > 0 (a dense layer whose input is another layer's
        activity gate: that layer's ``on`` is read from here, see ``Analysis``). Costs nothing extra
        where the input holds no negative value: the non-zero count is the same number."""
        if self.positive is None:
            self.positive = np.zeros(self.layer.inputs, dtype=np.int64)

    @property
    def samples(self) -> int:
        return self.acc.n

    def __getstate__(self):  # a shard sends statistics back, not the layer's weights
        self.drain()
        return {k: v for k, v in self.__dict__.items() if k not in ("layer", "_conv", "_w32")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.layer, self._conv, self._w32 = None, None, None

    def update(self, x: np.ndarray, y: np.ndarray | None, gate: np.ndarray | None,
               pool: StatThreads | None = None) -> None:
        """Add one batch: the layer's input ``x``, its output ``y`` (when ``needs_output``) and its
        activity-gate tensor. A dense layer with float32 products keeps references to its rows (do not
        write to the arrays afterwards) until they hold about PASS_VALUES values or fill its buffers'
        free rows; ``pool``'s threads then share them out (see ``_passes``). ``drain`` takes in the rest."""
        L = self.layer
        if L.conv is None:
            x2 = x.T if L.input_transposed else x.reshape(-1, x.shape[-1] if x.ndim else 1)
            if x2.shape[1] != L.inputs:
                raise RuntimeFailure(f"layer {L.name!r}: input has {x2.shape[1]} features, weight expects {L.inputs}")
            y2 = None
            if self.route == "cross":
                y2 = self._weighted_sum(x2) if y is None else y.reshape(-1, L.units)
                if len(y2) != len(x2):
                    raise RuntimeFailure(f"layer {L.name!r}: {len(x2)} input rows but {len(y2)} output rows")
            unit_axis, y_shape = -1, (len(x2), L.units) if L.input_transposed else x.shape[:-1] + (L.units,)
            if len(x2):
                g2 = self._gate_rows(gate, y_shape, len(x2))
                if gate is not None and g2 is None:
                    self._count_on(gate, tuple(y_shape), unit_axis)   # (or reports the mismatch)
                self._wait(x2, y2, g2, pool)
                return
        else:
            if x.ndim != len(L.conv.kernel) + 2 or x.shape[1] != L.in_channels:
                raise RuntimeFailure(f"layer {L.name!r}: input shape {x.shape} does not fit its weight")
            y_shape = (x.shape[0], L.units) + output_shape(L.conv, x.shape[2:])
            if self.route == "conv-gram":
                y = None                  # cov(x, y) = cov(x, x) W^T: the output is not read
            elif y.shape != y_shape:
                raise RuntimeFailure(f"layer {L.name!r}: output shape {y.shape} does not fit input {x.shape}")
            if x.shape[0]:
                axes = (0,) + tuple(range(2, x.ndim))
                self._channels(abs_max(x, axes), count_along(x, np.not_equal, 1),
                               x.shape[0] * int(np.prod(x.shape[2:])))
                self._conv_comoments(x, y)
            unit_axis = 1
        if gate is not None:
            self._count_on(gate, tuple(y_shape), unit_axis)

    def worth_splitting(self, x: np.ndarray) -> bool:
        """Whether a batch with this input is large enough to share out between threads: input values
        x units, about the multiply-adds of a dense layer's products (a conv's are K times more)."""
        return np.size(x) * self.layer.units >= SPLIT_MIN_WORK

    def split(self, x: np.ndarray, y: np.ndarray | None, gate: np.ndarray | None,
              parts: int) -> list[tuple] | None:
        """``update``'s arguments for one batch cut into ``parts`` runs of samples (for as many accumulators,
        merged later), or None when the batch is too small to be worth it or its tensors do not split along
        the same samples (``update`` then takes it whole, and reports any mismatch)."""
        L = self.layer
        if parts < 2 or not self.worth_splitting(x) or self.acc.sxy.size > SPLIT_MAX_COMOMENTS:
            return None
        if L.conv is None:            # dense layers share out blocks of rows instead (``update``)
            return None
        if x.ndim != len(L.conv.kernel) + 2 or x.shape[1] != L.in_channels:
            return None
        rows = x.shape[0]
        y_shape = (rows, L.units) + output_shape(L.conv, x.shape[2:])
        if (y is not None and y.shape != y_shape) or (gate is not None and gate.shape != y_shape):
            return None
        if rows < parts:
            return None
        edges = [rows * t // parts for t in range(parts + 1)]
        return [tuple(None if v is None else v[a:b] for v in (x, y, gate)) for a, b in zip(edges, edges[1:])]

    # ----------------------------------------------------------------------- dense rows

    def _blocked(self, x2: np.ndarray, y2: np.ndarray | None) -> bool:
        """Whether this dense layer's products are float32 blocks (else float64, batch by batch)."""
        arrays = (x2,) if y2 is None else (x2, y2)
        return work_dtype(self.acc.sxy[0].size, *arrays, exact=self.acc.exact) == np.float32

    def _gate_rows(self, gate: np.ndarray | None, y_shape: tuple[int, ...], rows: int) -> np.ndarray | None:
        """The gate as (rows, units), row for row with the input; None when it does not line up."""
        if gate is None:
            return None
        units = self.layer.units
        try:
            g = gate.reshape(-1, units) if gate.shape == tuple(y_shape) else gate_matrix(gate, y_shape, -1, units)
        except RuntimeFailure:
            return None
        return g if len(g) == rows else None

    def _wait(self, x2: np.ndarray, y2: np.ndarray | None, g2: np.ndarray | None, pool: StatThreads | None) -> None:
        """Queue a batch's rows. float32 products: until PASS_VALUES values or the buffers' free rows;
        float64 ones (small layers, ``--precision float64``): until SMALL_PASS_VALUES values, so that a
        small model's batches do not each pay a dozen numpy calls per layer."""
        acc = self.acc
        blocked = self._blocked(x2, y2)
        if blocked and acc.n == 0 and not self._queue:   # shifts: the first batch's means
            mx = _rounded(x2.mean(axis=0, dtype=np.float64), np.float32)
            acc.set_shift(mx, mx if acc.gram else _rounded(y2.mean(axis=0, dtype=np.float64), np.float32))
        self._queue.append((x2, y2, g2))
        self._waiting += len(x2)
        width = x2.shape[1] + (0 if y2 is None else y2.shape[1])
        if not blocked:
            if self._waiting * width >= SMALL_PASS_VALUES:
                self.drain(pool)
        elif self._waiting * width >= PASS_VALUES or self._waiting >= acc.buffer_rows() - acc.pending:
            self.drain(pool)

    def drain(self, pool: StatThreads | None = None, multiply: bool = False) -> None:
        """Take in every waiting row (the buffers are multiplied whenever they fill, and at once with
        ``multiply``: at the end of the data, while ``pool`` still runs)."""
        if self._conv is not None:
            self._conv.settle(self.acc)
        total = self._waiting
        if not total:
            if multiply:
                self.acc.flush(pool)
            return
        pieces, self._queue, self._waiting = self._queue, [], 0
        if not self._blocked(pieces[0][0], pieces[0][1]):
            self._exact_passes(_joined(pieces))
            return
        at = 0
        while at < total:
            k = min(total - at, self.acc.buffer_rows() - self.acc.pending)
            self._passes(_row_range(pieces, at, at + k), k, pool)
            at += k
        if multiply:
            self.acc.flush(pool)

    def _passes(self, pieces: list[tuple], rows: int, pool: StatThreads | None) -> None:
        """The passes over the values of some rows (at most the buffers' free rows): max |x|, counts,
        shifts into the float32 buffers, sums, activity counts. Each thread of ``pool`` takes a run of the
        rows. The product waits for full buffers (``CoMoments.flush``): one accumulator per layer, not
        per thread (per-thread accumulators of Gram layers, with their own buffers, were 20% slower)."""
        acc = self.acc
        p, m = acc.sx.shape[1], (0 if acc.gram else acc.sy.shape[1])
        n = pool.threads if pool is not None and rows * (p + m) >= BLOCK_SPLIT_MIN and rows >= pool.threads else 1
        edges = [rows * t // n for t in range(n + 1)]
        start = acc.pending

        positive = self.positive is not None

        def run(t: int) -> tuple:
            mx, nz, sx = np.zeros(p), np.zeros(p, dtype=np.int64), np.zeros(p)
            sy, on, gated = np.zeros(m), np.zeros(self.layer.units, dtype=np.int64), 0
            pos = np.zeros(p, dtype=np.int64) if positive else None
            at = start + edges[t]
            mine = _row_range(pieces, edges[t], edges[t + 1])
            if len(mine) > 1 and (edges[t + 1] - edges[t]) * (p + m) < JOIN_BELOW * len(mine):
                mine = _joined(mine)
            for xs, ys, gs in mine:
                k = len(xs)
                top, sign_free = abs_max_sign_free(xs, (0,))
                np.maximum(mx, top, out=mx)
                count = count_along(xs, np.not_equal, 1)
                nz += count
                if positive:
                    pos += count if sign_free else count_along(xs, np.greater, 1)
                psx, psy = acc.shift_in(at, xs, ys)
                sx += psx
                if psy is not None:
                    sy += psy
                if gs is not None:
                    on += count_along(gs, np.greater, 1)
                    gated += k
                at += k
            return mx, nz, sx, sy, on, gated, pos

        parts = pool.map(run, n) if n > 1 else [run(0)]
        mx, nz, sx, sy, on, gated, pos = parts[0]
        for part in parts[1:]:
            np.maximum(mx, part[0], out=mx)
            nz, sx, sy, on, gated = nz + part[1], sx + part[2], sy + part[3], on + part[4], gated + part[5]
            if positive:
                pos = pos + part[6]
        self._channels(mx, nz, rows)
        if positive:
            self.positive += pos
        self.on += on
        self.gate_samples += gated
        acc.add_rows(rows, sx, None if acc.gram else sy, pool)

    def _exact_passes(self, pieces: list[tuple]) -> None:
        """The float64 route: the same passes, and float64 products (``CoMoments.update``)."""
        for xs, ys, gs in pieces:
            top, sign_free = abs_max_sign_free(xs, (0,))
            count = count_along(xs, np.not_equal, 1)
            self._channels(top, count, len(xs))
            if self.positive is not None:
                self.positive += count if sign_free else count_along(xs, np.greater, 1)
            self.acc.update(xs, ys)
            if gs is not None:
                self.on += count_along(gs, np.greater, 1)
                self.gate_samples += len(gs)

    def _weighted_sum(self, x2: np.ndarray) -> np.ndarray:
        """y = x W^T, for a Gemm whose output also holds a non-constant C."""
        if work_dtype(self.acc.sxy[0].size, x2, exact=self.acc.exact) == np.float64:
            return x2.astype(np.float64) @ self.layer.weight.T
        if self._w32 is None:
            self._w32 = np.ascontiguousarray(self.layer.weight.T, dtype=np.float32)
        return x2.astype(np.float32, copy=False) @ self._w32

    def _conv_comoments(self, x: np.ndarray, y: np.ndarray | None) -> None:
        L, acc = self.layer, self.acc
        if acc.n == 0:   # shifts: the first batch's channel and unit means; input rows ordered (k, c)
            dt = work_dtype(acc.sxy[0].size, *([x] if y is None else [x, y]), exact=acc.exact)
            g, k = L.group, L.kernel_size
            shift_c = _rounded(channel_means(x), dt).reshape(g, 1, -1)
            shift_x = np.broadcast_to(shift_c, (g, k, shift_c.shape[2])).reshape(g, -1)
            acc.set_shift(shift_x, shift_x if y is None else _rounded(channel_means(y), dt).reshape(g, -1))
        if self._conv is None:          # dropped by pickling
            self._conv = ConvSums(L.conv, L.in_channels, L.units)
        try:
            self._conv.accumulate(x, y, acc)
        except ValueError as e:
            raise RuntimeFailure(f"layer {L.name!r}: {e}") from e

    def _channels(self, mx: np.ndarray, nz: np.ndarray, values: int) -> None:
        np.maximum(self.channel_max, mx, out=self.channel_max)
        self.channel_nonzero += nz
        self.channel_values += values

    def _count_on(self, gate: np.ndarray, y_shape: tuple[int, ...], unit_axis: int) -> None:
        units = self.layer.units
        if gate.shape == y_shape and gate.ndim:
            axis = unit_axis % gate.ndim
            axes = tuple(i for i in range(gate.ndim) if i != axis)
            self.on += count_along(gate, np.greater, axis) if axes else (gate > 0)
            self.gate_samples += gate.size // max(1, units)
            return
        g = gate_matrix(gate, y_shape, unit_axis, units)
        self.on += count_along(g, np.greater, 1)
        self.gate_samples += len(g)

    def merge(self, other: "LayerStats") -> None:
        self.drain()
        other.drain()
        self.acc.merge(other.acc)
        np.maximum(self.channel_max, other.channel_max, out=self.channel_max)
        self.channel_nonzero += other.channel_nonzero
        self.channel_values += other.channel_values
        self.on += other.on
        self.gate_samples += other.gate_samples
        if other.positive is not None:
            self.positive = other.positive.copy() if self.positive is None else self.positive + other.positive

    def finish(self) -> "FinishedStats":
        """The section-2 figures: covariances per group, m_j and a_j per channel, r_i per unit."""
        self.drain()
        L = self.layer
        a = self.channel_nonzero / self.channel_values if self.channel_values else np.zeros_like(self.channel_max)
        if self.layer.gate is None:
            r = np.ones(L.units)
        else:
            r = self.on / self.gate_samples if self.gate_samples else np.zeros(L.units)
        cov = self.acc.cov()
        if L.conv is not None:            # input rows (k, c) -> (c, k), the order of W.reshape(M, -1)
            g, k = L.group, L.kernel_size
            cov = cov.reshape(g, k, -1, cov.shape[2]).transpose(0, 2, 1, 3).reshape(cov.shape)
            if self.acc.gram:             # ... and the columns too
                p = cov.shape[1]
                cov = cov.reshape(g, p, k, -1).transpose(0, 1, 3, 2).reshape(g, p, p)
        if self.acc.gram:                 # cov(x, y) = cov(x, x) W^T, per group
            w = L.weight.reshape(L.group, -1, L.weight.shape[1])
            cov = cov @ w.transpose(0, 2, 1)
        return FinishedStats(cov=list(cov), m=self.channel_max.copy(), a=a, r=r, samples=self.samples)


def _joined(pieces: list[tuple]) -> list[tuple]:
    """Row-aligned pieces (tuples of arrays or None) as one piece, each array concatenated (a copy,
    unless there is one piece): a few large numpy calls instead of many small ones."""
    if len(pieces) == 1:
        return pieces
    return [tuple(None if v is None else np.concatenate([q[i] for q in pieces]) for i, v in enumerate(pieces[0]))]


def _row_range(pieces: list[tuple], a: int, b: int) -> list[tuple]:
    """Rows [a, b) of the concatenation of ``pieces`` (tuples of row-aligned arrays or None), as slices."""
    out, at = [], 0
    for piece in pieces:
        k = len(piece[0])
        lo, hi = max(a - at, 0), min(b - at, k)
        if lo < hi:
            out.append(tuple(None if v is None else v[lo:hi] for v in piece))
        at += k
        if at >= b:
            break
    return out


@dataclass
class FinishedStats:
    cov: list[np.ndarray]   # per group, (inputs per unit, units in group)
    m: np.ndarray           # per input channel: max |x|
    a: np.ndarray           # per input channel: fraction of values != 0
    r: np.ndarray           # per unit: activity
    samples: int
