"""Streamed slope statistics of the activation sites (paper appendix B.3), mergeable across shards.

Per layer and side (``input``: the site the layer reads, per input channel; ``unit``: the site
its output feeds, per unit): the sum of s^2 and the number of values, the largest s^2, and
whether every s^2 was finite. ``finish`` turns them into the noise model's activation rates

    a_j = mean(s^2 over input channel j) / s_max^2,   r_i = mean(s^2 over unit i's samples) / s_max^2

(0 for a site with s_max = 0), or None where the site is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RuntimeFailure
from ..model.convgeom import output_shape
from ..model.layers import Layer
from ..model.sites import Site, other_than_relu
from ..stats.layer import gate_matrix
from ..stats.passes import count_along
from .slopes import reused, squared_slopes

SIDES = ("input", "unit")


class SideSums:
    """Sums of s^2 per channel (or unit) for one side of one layer."""

    def __init__(self, n: int):
        self.sum = np.zeros(n)
        self.count = 0            # values per channel (samples per unit)
        self.s2max = 0.0
        self.finite = True

    def add(self, sums: np.ndarray, count: int, s2max: float) -> None:
        self.sum += sums
        self.count += count
        self.s2max = max(self.s2max, s2max)

    def merge(self, other: "SideSums") -> None:
        self.add(other.sum, other.count, other.s2max)
        self.finite = self.finite and other.finite

    def rates(self) -> np.ndarray:
        """Mean s^2 per channel over s_max^2 (0 where the site never had a non-zero slope)."""
        if not self.count or self.s2max == 0:
            return np.zeros_like(self.sum)
        return self.sum / self.count / self.s2max


def evaluated(layers: list[Layer], noise_model: str) -> dict[tuple, Site]:
    """The sites whose slopes a run needs, by key: every site under ``activation``; under ``relu`` only those
    whose slopes can be infinite (a site with an infinite slope is not reported under either model)."""
    out: dict[tuple, Site] = {}
    for L in layers:
        for site in (L.input_site, L.unit_site):
            if site is not None and (noise_model == "activation" or not site.bounded):
                out.setdefault(site.key, site)
    return out


def needed_tensors(layers: list[Layer], noise_model: str) -> list[str]:
    """Tensors the runner must expose for the slopes: each site's ``z`` (a lone Relu's output ``x``, which
    the statistics usually read anyway), the tensors whose values the slopes reuse, and the inputs of
    Transposes."""
    names: list[str] = []
    sites = evaluated(layers, noise_model)
    for site in sites.values():
        names.extend([site.x] if site.lone_relu else [site.z] + reused(site))
    for L in layers:                 # each layer's own walk to its input (sites of one key may differ here)
        if L.input_site is not None and L.input_site.key in sites:
            names.extend(L.input_site.transposes())
    return names


@dataclass
class SiteResult:
    """One layer's slope figures: ``a``/``r`` replace the ReLU ones where not None; ``*_ok``: False where the
    site's slopes were infinite or undefined somewhere in the data (the site then counts as not found)."""

    a: np.ndarray | None
    r: np.ndarray | None
    input_ok: bool
    unit_ok: bool


class SiteStats:
    """Every layer's slope sums for one range of items. Pickles without the sites (a shard sends sums)."""

    def __init__(self, layers: list[Layer], noise_model: str = "relu"):
        self.noise_model = noise_model
        self.sites = evaluated(layers, noise_model)
        self.layers = layers
        self.sums: dict[tuple[int, str], SideSums] = {}
        for i, L in enumerate(layers):
            for side, site in zip(SIDES, (L.input_site, L.unit_site)):
                if site is not None and site.key in self.sites:
                    self.sums[(i, side)] = SideSums(L.in_channels if side == "input" else L.units)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("sites", "layers")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.sites, self.layers = {}, []

    def update(self, values: dict[str, np.ndarray], pool=None) -> None:
        """Add one batch: the squared slopes of each site once (one site's at a time in memory), then the
        sums of each layer side that reads it. A lone Relu's s^2 is 1 where its output is > 0, else 0: its
        sums are counts of positive outputs (as the relu model's), read from the output without a
        float64 copy. ``pool``: threads for the slopes."""
        for key, site in self.sites.items():
            sides = [(i, side) for (i, side) in self.sums if self._site(i, side).key == key]
            if not any(self.sums[k].finite for k in sides):
                continue                      # not used any more: a slope was infinite
            if site.lone_relu:
                sq, top = values[site.x], 1.0
            else:
                sq, top = squared_slopes(site, values[site.z], pool, {t: values[t] for t in reused(site)})
            for i, side in sides:
                acc = self.sums[(i, side)]
                acc.finite = acc.finite and bool(np.isfinite(top))
                if not acc.finite:
                    continue
                L = self.layers[i]
                x = values[L.input]
                if side == "input":        # (this side's own site: its chain to the layer's input)
                    mapped = _along_chain(sq, self._site(i, side), values, x.shape)
                    sums, count = _channel_sums(L, mapped, site.lone_relu)
                else:
                    sums, count = _unit_sums(L, sq, x, site.lone_relu)
                acc.add(sums, count, top if not site.lone_relu or np.any(sums) else 0.0)
            del sq

    def _site(self, i: int, side: str) -> Site:
        L = self.layers[i]
        return L.input_site if side == "input" else L.unit_site

    def merge(self, other: "SiteStats") -> None:
        for k, acc in other.sums.items():
            self.sums[k].merge(acc)

    def finish(self, i: int) -> SiteResult:
        """Layer ``i``'s (position) figures; the rates only under the activation model."""
        acc = {side: self.sums.get((i, side)) for side in SIDES}
        ok = {side: a is None or a.finite for side, a in acc.items()}
        use = self.noise_model == "activation"
        rates = {side: a.rates() if use and a is not None and a.finite else None for side, a in acc.items()}
        return SiteResult(a=rates["input"], r=rates["unit"], input_ok=ok["input"], unit_ok=ok["unit"])


def _along_chain(sq: np.ndarray, site: Site, values: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """s^2 on x's elements, placed as the layer's input holds them (reshapes and transposes between)."""
    for op, perm, t in site.chain:
        if perm is not None:
            sq = sq.reshape(values[t].shape).transpose(perm or None)
    if sq.shape != tuple(shape):
        if sq.size != int(np.prod(shape)):
            raise RuntimeFailure(f"activation tensor {site.x!r} of shape {sq.shape} does not map onto the layer "
                                 f"input of shape {tuple(shape)}")
        sq = sq.reshape(shape)
    return sq


def _sums(a: np.ndarray, axis: int, positive: bool) -> np.ndarray:
    """Sums of ``a`` over every axis but ``axis``; ``positive``: counts of values > 0 instead."""
    if positive:
        return count_along(a, np.greater, axis).astype(np.float64)
    return a.sum(axis=tuple(k for k in range(a.ndim) if k != axis % a.ndim))


def _channel_sums(L: Layer, sq: np.ndarray, positive: bool = False) -> tuple[np.ndarray, int]:
    """Per input channel: the sum of s^2 over its values, and the number of values (the input channels of docs/metrics.md)."""
    if L.conv is not None:
        return _sums(sq, 1, positive), sq.size // max(1, sq.shape[1])
    if L.input_transposed:
        return _sums(sq, 0, positive), sq.shape[1]
    rows = sq.reshape(-1, sq.shape[-1] if sq.ndim else 1)
    return _sums(rows, 1, positive), len(rows)


def _unit_sums(L: Layer, sq: np.ndarray, x: np.ndarray, positive: bool = False) -> tuple[np.ndarray, int]:
    """Per unit: the sum of s^2 over its samples (z is the layer output up to size-1 axes), and their number."""
    if L.conv is not None:
        y_shape, axis = (x.shape[0], L.units) + output_shape(L.conv, x.shape[2:]), 1
    elif L.input_transposed:
        y_shape, axis = (x.shape[1], L.units), -1
    else:
        y_shape, axis = tuple(x.shape[:-1]) + (L.units,), -1
    if sq.shape == y_shape and sq.ndim:
        return _sums(sq, axis, positive), sq.size // max(1, L.units)
    m = gate_matrix(sq, y_shape, axis, L.units)
    return _sums(m, 1, positive), len(m)


def site_warnings(layers: list[Layer], results: list[SiteResult], noise_model: str) -> list[str]:
    """At most two lines: sites dropped for a non-finite slope, and (relu model) layers whose activations
    are not ReLUs."""
    out = []
    dropped = []
    for L, res in zip(layers, results):
        for side, site, ok in (("input", L.input_site, res.input_ok), ("output", L.unit_site, res.unit_ok)):
            if site is not None and not ok:
                dropped.append(f"layer {L.index} ({L.name}) {side}: {', '.join(site.ops)}")
    if dropped:
        out.append("an activation's slope is infinite or undefined on some values of the data, so it is not "
                   f"treated as an activation ({'; '.join(dropped)}): a_j and r_i follow the ReLU reading there")
    if noise_model == "relu":
        odd, ops = [], []
        for L, res in zip(layers, results):
            found = other_than_relu(L.input_site if res.input_ok else None) + \
                other_than_relu(L.unit_site if res.unit_ok else None)
            if found:
                odd.append(f"{L.index} ({L.name})")
                ops.extend(op for op in found if op not in ops)
        if odd:
            out.append(f"layer{'s' if len(odd) > 1 else ''} {', '.join(odd)} read or feed activations other than "
                       f"ReLU ({', '.join(ops)}); the relu noise model reads them as on/off: consider "
                       "--noise-model activation")
    return out
