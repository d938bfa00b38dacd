"""Streamed, mergeable per-layer statistics (spec section 2).

Everything is float64. Co-moments use sums shifted by a fixed reference (the
first batch's means), so large means do not cancel and the result does not
depend on how the data is split into batches beyond rounding. Every
accumulator has ``merge`` so that shards of a data set can be combined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RuntimeFailure
from .graph import Layer
from .im2col import patches

CHUNK_BYTES = 32 << 20  # float64 patch rows processed at once, per conv layer


class CoMoments:
    """Shifted sums giving the population covariance between P inputs and M outputs."""

    def __init__(self, p: int, m: int):
        self.n = 0
        self.shift_x = np.zeros(p)
        self.shift_y = np.zeros(m)
        self.sx = np.zeros(p)
        self.sy = np.zeros(m)
        self.sxy = np.zeros((p, m))

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add samples: ``x`` (n, P) and ``y`` (n, M)."""
        if len(x) == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if self.n == 0:
            self.shift_x = x.mean(axis=0)
            self.shift_y = y.mean(axis=0)
        xs = x - self.shift_x
        ys = y - self.shift_y
        self.n += len(x)
        self.sx += xs.sum(axis=0)
        self.sy += ys.sum(axis=0)
        self.sxy += xs.T @ ys

    def merge(self, other: "CoMoments") -> None:
        """Add another accumulator's samples (re-expressed about this one's shift)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.__dict__.update({k: np.copy(v) if isinstance(v, np.ndarray) else v
                                  for k, v in other.__dict__.items()})
            return
        dx = other.shift_x - self.shift_x
        dy = other.shift_y - self.shift_y
        n = other.n
        self.sxy += other.sxy + np.outer(other.sx, dy) + np.outer(dx, other.sy) + n * np.outer(dx, dy)
        self.sx += other.sx + n * dx
        self.sy += other.sy + n * dy
        self.n += n

    def cov(self) -> np.ndarray:
        """Population covariance (divide by n), shape (P, M)."""
        if self.n == 0:
            return np.full(self.sxy.shape, np.nan)
        mx, my = self.sx / self.n, self.sy / self.n
        return self.sxy / self.n - np.outer(mx, my)


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
    """Everything section 2 needs for one layer, gathered batch by batch."""

    def __init__(self, layer: Layer):
        self.layer = layer
        g = layer.group
        self.groups = [CoMoments(layer.weight.shape[1], layer.units // g) for _ in range(g)]
        c = layer.in_channels
        self.channel_max = np.zeros(c)
        self.channel_nonzero = np.zeros(c, dtype=np.int64)
        self.channel_values = 0
        self.on = np.zeros(layer.units, dtype=np.int64)
        self.gate_samples = 0

    @property
    def samples(self) -> int:
        return self.groups[0].n

    def __getstate__(self):  # a shard sends statistics back, not the layer's weights
        return {k: v for k, v in self.__dict__.items() if k != "layer"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.layer = None

    def update(self, x: np.ndarray, y: np.ndarray | None, gate: np.ndarray | None) -> None:
        """Add one batch: the layer's input ``x``, its output ``y`` and its activity-gate tensor."""
        L = self.layer
        if L.conv is None:
            x2 = x.T if L.input_transposed else x.reshape(-1, x.shape[-1] if x.ndim else 1)
            if x2.shape[1] != L.inputs:
                raise RuntimeFailure(f"layer {L.name!r}: input has {x2.shape[1]} features, weight expects {L.inputs}")
            y2 = x2.astype(np.float64) @ L.weight.T if y is None else y.reshape(-1, L.units)
            if len(y2) != len(x2):
                raise RuntimeFailure(f"layer {L.name!r}: {len(x2)} input rows but {len(y2)} output rows")
            self._channels(np.abs(x2).max(axis=0), np.count_nonzero(x2, axis=0), len(x2))
            self.groups[0].update(x2, y2)
            unit_axis, y_shape = -1, (y.shape if y is not None else y2.shape)
        else:
            if x.ndim != len(L.conv.kernel) + 2 or x.shape[1] != L.in_channels:
                raise RuntimeFailure(f"layer {L.name!r}: input shape {x.shape} does not fit its weight")
            axes = (0,) + tuple(range(2, x.ndim))
            per_item = int(np.prod(x.shape[2:]))
            self._channels(np.abs(x).max(axis=axes) if x.size else np.zeros(x.shape[1]),
                           np.count_nonzero(x, axis=axes), x.shape[0] * per_item)
            self._conv_comoments(x, y)
            unit_axis, y_shape = 1, y.shape
        if gate is not None:
            g = gate_matrix(gate, y_shape, unit_axis, L.units)
            self.on += np.count_nonzero(g > 0, axis=0)
            self.gate_samples += len(g)

    def _channels(self, mx: np.ndarray, nz: np.ndarray, values: int) -> None:
        np.maximum(self.channel_max, mx, out=self.channel_max)
        self.channel_nonzero += nz
        self.channel_values += values

    def _conv_comoments(self, x: np.ndarray, y: np.ndarray) -> None:
        L = self.layer
        g, units = L.group, L.units
        out_positions = int(np.prod(y.shape[2:]))
        row_bytes = max(1, out_positions * L.inputs * 8)
        step = max(1, CHUNK_BYTES // row_bytes)
        mg, pg = units // g, L.weight.shape[1]
        for start in range(0, x.shape[0], step):
            xp = patches(x[start:start + step], L.conv)
            yp = unit_matrix(y[start:start + step], units, 1)
            if len(xp) != len(yp):
                raise RuntimeFailure(f"layer {L.name!r}: {len(xp)} patches but {len(yp)} output positions")
            for k, acc in enumerate(self.groups):
                acc.update(xp[:, k * pg:(k + 1) * pg], yp[:, k * mg:(k + 1) * mg])

    def merge(self, other: "LayerStats") -> None:
        for a, b in zip(self.groups, other.groups):
            a.merge(b)
        np.maximum(self.channel_max, other.channel_max, out=self.channel_max)
        self.channel_nonzero += other.channel_nonzero
        self.channel_values += other.channel_values
        self.on += other.on
        self.gate_samples += other.gate_samples

    def finish(self) -> "FinishedStats":
        """The section-2 figures: covariances per group, m_j and a_j per channel, r_i per unit."""
        L = self.layer
        a = self.channel_nonzero / self.channel_values if self.channel_values else np.zeros_like(self.channel_max)
        if self.layer.gate is None:
            r = np.ones(L.units)
        else:
            r = self.on / self.gate_samples if self.gate_samples else np.zeros(L.units)
        return FinishedStats(cov=[acc.cov() for acc in self.groups], m=self.channel_max.copy(), a=a,
                             r=r, samples=self.samples)


@dataclass
class FinishedStats:
    cov: list[np.ndarray]   # per group, (inputs per unit, units in group)
    m: np.ndarray           # per input channel: max |x|
    a: np.ndarray           # per input channel: fraction of values != 0
    r: np.ndarray           # per unit: activity
    samples: int
