"""Streamed, mergeable per-layer statistics (docs/metrics.md, Statistics gathered per layer): a layer's
co-moments (``comoments``), max |x| and non-zero fraction per input channel, activity per unit.

Four routes give the same cov(x_j, y_i) (y = W x, docs/metrics.md, Statistics gathered per layer):

- ``gram`` (dense, P <= GRAM_RATIO * M inputs per unit): the shifted Gram matrix
  of x, times W^T at the end; half a P x P product per sample, output not read;
- ``cross`` (dense, wider inputs): x^T y against the layer's output;
- ``conv-gram`` (conv, P <= GRAM_RATIO * M per group, e.g. a first layer on 3
  channels): the Gram matrix of the patches, output not read (``conv``);
- ``conv``: x^T y per kernel offset (``conv``), like a weight gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RuntimeFailure
from ..model.convgeom import output_shape
from ..model.layers import Layer
from .comoments import CoMoments, rounded
from .conv import ConvSums, channel_means
from .passes import abs_max, abs_max_sign_free, count_along
from .products import work_dtype
from .threads import StatThreads

GRAM_RATIO = 1.5   # layers with P <= 1.5 M inputs per unit (per group) take a Gram route
SPLIT_MIN_WORK = 1 << 24   # a batch is split across statistics threads from input values x units ...
SPLIT_MAX_COMOMENTS = 1 << 22   # ... for conv layers of at most this many co-moments (each thread keeps a copy)
SMALL_PASS_VALUES = 1 << 16   # float64-route dense rows wait until they hold this many values


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
        self._queue: list[tuple] = []   # dense layers: (x, y, gate) rows not yet taken in (``_wait``)
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
        activity-gate tensor. A small dense layer keeps references to its rows (do not write to the
        arrays afterwards) until they hold SMALL_PASS_VALUES values; ``pool``'s threads share large runs
        of rows out (``CoMoments.add_rows``). ``drain`` takes in the rest."""
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
                self._conv_comoments(x, y, pool)
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
        """Take a batch's rows in (``drain``), or queue them while a small layer's rows (float64 products)
        hold fewer than SMALL_PASS_VALUES values: a small model's batches then cost a list append per
        layer, not a dozen numpy calls (on 54,000 items of the sample digits, 0.081 against 0.097 s).
        Larger layers do not wait: rows kept across batches pin onnxruntime's output memory (the CIFAR
        CNN's peak grew 18% on 3x the data when its rows waited for 1M values) and saved no time."""
        self._queue.append((x2, y2, g2))
        self._waiting += len(x2)
        width = x2.shape[1] + (0 if y2 is None else y2.shape[1])
        if self._blocked(x2, y2) or self._waiting * width >= SMALL_PASS_VALUES:
            self.drain(pool)

    def drain(self, pool: StatThreads | None = None, multiply: bool = False) -> None:
        """Take in every waiting row: into the co-moments, with the passes over their values on the
        same threads (``_value_pass``); with ``multiply``, multiply what the row buffers hold at once
        (at the end of the data, while ``pool`` still runs)."""
        if self._conv is not None:
            self._conv.settle(self.acc)
        pieces, self._queue, self._waiting = self._queue, [], 0
        for top, count, pos, on, gated in self.acc.add_rows(pieces, pool, self._value_pass):
            np.maximum(self.channel_max, top, out=self.channel_max)
            self.channel_nonzero += count
            if pos is not None:
                self.positive += pos
            if gated:
                self.on += on
                self.gate_samples += gated
        self.channel_values += sum(len(q[0]) for q in pieces)
        if multiply:
            self.acc.flush(pool)

    def _value_pass(self, piece: tuple) -> tuple:
        """One piece's max |x| and non-zero counts per input feature, its values > 0 (``count_positive``)
        and its gate's values > 0 per unit."""
        xs, _, gs = piece
        top, sign_free = abs_max_sign_free(xs, (0,))
        count = count_along(xs, np.not_equal, 1)
        pos = None
        if self.positive is not None:
            pos = count if sign_free else count_along(xs, np.greater, 1)
        if gs is None:
            return top, count, pos, None, 0
        return top, count, pos, count_along(gs, np.greater, 1), len(gs)

    def _weighted_sum(self, x2: np.ndarray) -> np.ndarray:
        """y = x W^T, for a Gemm whose output also holds a non-constant C."""
        if work_dtype(self.acc.sxy[0].size, x2, exact=self.acc.exact) == np.float64:
            return x2.astype(np.float64) @ self.layer.weight.T
        if self._w32 is None:
            self._w32 = np.ascontiguousarray(self.layer.weight.T, dtype=np.float32)
        return x2.astype(np.float32, copy=False) @ self._w32

    def _conv_comoments(self, x: np.ndarray, y: np.ndarray | None, pool: StatThreads | None) -> None:
        L, acc = self.layer, self.acc
        if acc.n == 0:   # shifts: the first batch's channel and unit means; input rows ordered (k, c)
            dt = work_dtype(acc.sxy[0].size, *([x] if y is None else [x, y]), exact=acc.exact)
            g, k = L.group, L.kernel_size
            shift_c = rounded(channel_means(x), dt).reshape(g, 1, -1)
            shift_x = np.broadcast_to(shift_c, (g, k, shift_c.shape[2])).reshape(g, -1)
            acc.set_shift(shift_x, shift_x if y is None else rounded(channel_means(y), dt).reshape(g, -1))
        if self._conv is None:          # dropped by pickling
            self._conv = ConvSums(L.conv, L.in_channels, L.units)
        try:
            self._conv.accumulate(x, y, acc, pool)
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


@dataclass
class FinishedStats:
    cov: list[np.ndarray]   # per group, (inputs per unit, units in group)
    m: np.ndarray           # per input channel: max |x|
    a: np.ndarray           # per input channel: fraction of values != 0
    r: np.ndarray           # per unit: activity
    samples: int
