"""``Analysis``: every layer's streamed statistics for one range of items, mergeable across shards."""

from __future__ import annotations

import numpy as np

from ..errors import RuntimeFailure
from ..model.graph import GraphInfo
from ..model.layers import Layer
from ..reports.report import LayerResult
from ..stats.layer import LayerStats, needs_output
from ..stats.threads import StatThreads
from .metrics import layer_figures
from .scoring import score
from .sitestats import SiteResult, SiteStats, needed_tensors


def needed_outputs(info: GraphInfo, noise_model: str = "relu") -> list[str]:
    names: list[str] = needed_tensors(info.layers, noise_model)
    for L in info.layers:
        names.append(L.input)
        if needs_output(L):
            names.append(L.output)
        if L.gate:
            names.append(L.gate)
    if info.accuracy_output:
        names.append(info.accuracy_output)
    return list(dict.fromkeys(names))


def drop_padding(v: np.ndarray, fixed_batch: int, valid: int) -> np.ndarray:
    """Rows of the ``valid`` real items of a padded fixed batch: the leading axis is the batch, or the
    batch flattened with later axes (batch-major), as Reshape/Flatten leave it."""
    if v.ndim == 0 or v.shape[0] % fixed_batch:
        return v
    return v[: valid * (v.shape[0] // fixed_batch)]


class Analysis:
    """Streams batches into per-layer accumulators, accuracy and confidence; ``merge`` combines shards.

    Pickles without the graph (``info``): a shard sends back statistics only. A batch split across
    statistics threads adds to further accumulators per layer, made when first needed and merged by
    ``fold``.
    """

    def __init__(self, info: GraphInfo, exact: bool = False, noise_model: str = "relu"):
        self.info = info
        self.exact = exact
        self.stats = [LayerStats(L, exact=exact) for L in info.layers]
        self.sites = SiteStats(info.layers, noise_model)   # slopes of the activation sites (docs/metrics.md, Noise models)
        self.gate_readers = gates_from_inputs(info.layers)   # layer position -> the layer whose input is its gate
        self.gate_from: dict[int, int | None] = {}   # ... fixed at the layer's first batch: None, counted by itself
        self.parts: dict[tuple[int, int], LayerStats] = {}   # (thread 1.., layer position) -> accumulators
        self.correct = 0
        self.labelled = 0
        self.confidence_sum = 0.0
        self.scored = 0
        self.score_problem: str | None = None

    def __getstate__(self):
        self.fold()
        return {k: v for k, v in self.__dict__.items() if k != "info"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.info = None

    def fold(self) -> None:
        """Merge the further threads' accumulators into ``stats``."""
        for (_, i), st in sorted(self.parts.items(), key=lambda kv: kv[0]):
            self.stats[i].merge(st)
        self.parts = {}

    def _accumulators(self, t: int, i: int) -> LayerStats:
        if t == 0:
            return self.stats[i]
        if (t, i) not in self.parts:
            self.parts[(t, i)] = LayerStats(self.info.layers[i], exact=self.exact)
        return self.parts[(t, i)]

    def update(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray], valid: int,
               labels: np.ndarray | None, fixed_batch: int | None, pool: StatThreads | None = None) -> None:
        """Add one batch. Conv layers whose batch splits (``LayerStats.split``) are cut into runs of
        items, one per thread of ``pool``, together with the small conv layers that do not split (each
        whole, to the least loaded thread); large conv layers that do not split run afterwards, their
        products shared out to the pool. Dense layers come last, on the calling thread: they share their
        rows' passes and products out to the pool themselves (``LayerStats.update``)."""
        values = {**outputs, **feeds}
        if fixed_batch and valid < fixed_batch:
            values = {k: drop_padding(v, fixed_batch, valid) for k, v in values.items()}
        n = pool.threads if pool is not None else 1
        layers, dense = [], []
        for i, L in enumerate(self.info.layers):
            args = (values[L.input], values[L.output] if needs_output(L) else None,
                    values[L.gate] if L.gate else None)
            if L.conv is None:
                dense.append((i, args))
            else:
                layers.append((i, args, self.stats[i].split(*args, n) if n > 1 else None))
        shared = n > 1
        if all(pieces is None for _, _, pieces in layers):
            n = 1                     # nothing worth sharing out by items: the calling thread
        work: list[list] = [[] for _ in range(n)]
        load = [0] * n
        alone: list = []
        for i, args, pieces in layers:
            if pieces is None:
                if shared and self.stats[i].worth_splitting(args[0]):
                    alone.append((i, args))
                    continue
                t = load.index(min(load))
                pieces = [args if k == t else None for k in range(n)]
            for t, piece in enumerate(pieces):
                if piece is not None:
                    work[t].append((self._accumulators(t, i), piece))
                    load[t] += np.size(piece[0])

        def run(t: int) -> None:
            for st, piece in work[t]:
                self._add(st, piece)

        if n > 1:
            pool.map(run, n)
        else:
            run(0)
        for i, args in alone:
            self._add(self.stats[i], args, pool)
        for i, args in dense:
            if i in self.gate_readers and args[2] is not None:
                args = self._gate_counted_elsewhere(i, args)
            self._add(self.stats[i], args, pool)
        if self.sites.sites:
            with np.errstate(all="ignore"):   # an infinite slope is recorded, not warned about here
                self.sites.update(values, pool)
        if self.info.accuracy_output and self.score_problem is None:
            self._score(np.asarray(values[self.info.accuracy_output]), valid, labels)

    def _gate_counted_elsewhere(self, i: int, args: tuple) -> tuple:
        """A dense layer's arguments without its gate when the layer reading the gate as input counts it:
        decided at the layer's first batch, by whether the gate's rows are the output's rows (shapes of
        one graph differ between batches only in the batch axis)."""
        x, y, gate = args
        L = self.info.layers[i]
        rows_match = gate.shape == tuple(x.shape[:-1]) + (L.units,)
        if i not in self.gate_from:
            self.gate_from[i] = self.gate_readers[i] if rows_match else None
            if rows_match:
                self.stats[self.gate_readers[i]].count_positive()
        if self.gate_from[i] is None:
            return args
        if not rows_match:
            raise RuntimeFailure(f"layer {L.index} ({L.name}): activity tensor of shape {gate.shape} does not "
                                 f"match the layer output for input {x.shape}, as it did in the first batch")
        return x, y, None

    def settle_gates(self) -> None:
        """Give each layer whose gate another layer counted (``gates_from_inputs``) its activity counts."""
        for i, j in self.gate_from.items():
            if j is None:
                continue
            reader = self.stats[j]
            reader.drain()
            self.stats[i].on = reader.positive.copy()
            self.stats[i].gate_samples = reader.channel_values

    @staticmethod
    def _add(st: LayerStats, piece: tuple, pool: StatThreads | None = None, drain: bool = False) -> None:
        L = st.layer
        try:
            with np.errstate(all="ignore"):   # per thread: overflow becomes null figures with a reason
                if drain:
                    st.drain(pool, multiply=True)
                else:
                    st.update(*piece, pool=pool)
        except RuntimeFailure:
            raise
        except (ValueError, IndexError) as e:
            raise RuntimeFailure(f"layer {L.index} ({L.name}): statistics failed on this batch: {e}") from e

    def drain(self, pool: StatThreads | None = None) -> None:
        """At the end of the data, while ``pool`` still runs: take in the rows dense layers keep waiting,
        and multiply their buffers."""
        for st in self.stats:
            self._add(st, (), pool, drain=True)

    def _score(self, out: np.ndarray, valid: int, labels: np.ndarray | None) -> None:
        """Top-1 accuracy and max-softmax confidence from the scored output (one class vector per item)."""
        name = self.info.accuracy_output
        if out.ndim == 0 or (out.ndim == 1 and valid > 1) or out.dtype.kind != "f":
            self.score_problem = f"output {name!r} has no class axis"
            return
        scores = out.reshape(-1, out.shape[-1])
        if len(scores) != valid:
            self.score_problem = f"output {name!r} of shape {out.shape} does not give one class score vector per item"
            return
        scored = score(scores, self.info.score_kind, name)
        if isinstance(scored, str):
            self.score_problem = scored
            return
        top, confidence = scored
        self.confidence_sum += confidence
        self.scored += valid
        if labels is not None:
            self.correct += int(np.count_nonzero(top == labels))
            self.labelled += valid

    def merge(self, other: "Analysis") -> None:
        self.fold()
        other.fold()
        for a, b in zip(self.stats, other.stats):
            a.merge(b)
        self.sites.merge(other.sites)
        self.correct += other.correct
        self.labelled += other.labelled
        self.confidence_sum += other.confidence_sum
        self.scored += other.scored
        self.gate_from.update(other.gate_from)
        self.score_problem = self.score_problem or other.score_problem


def gates_from_inputs(layers: list[Layer]) -> dict[int, int]:
    """Dense layers whose activity gate (a ReLU output, say) is, row for row, the input of another dense
    layer: {position: that layer's position}. The other layer counts the gate's values > 0 as it reads
    its input (``LayerStats.count_positive``), instead of a second pass over the same values."""
    readers: dict[str, int] = {}
    for j, L in enumerate(layers):
        if L.conv is None and not L.input_transposed:
            readers.setdefault(L.input, j)
    found = {}
    for i, L in enumerate(layers):
        j = readers.get(L.gate) if L.gate else None
        if L.conv is None and not L.input_transposed and j is not None and j != i and layers[j].inputs == L.units:
            found[i] = j
    return found


def layer_result(L: Layer, st: LayerStats, *, min_level: float, min_activity: float,
                 sites: SiteResult | None = None) -> LayerResult:
    """One layer's figures; ``sites``: the activation noise model's a_j and r_i where it replaces the ReLU ones (docs/metrics.md)."""
    fin = st.finish()
    if sites is not None and sites.a is not None:
        fin.a = sites.a
    if sites is not None and sites.r is not None:
        fin.r = sites.r
    figs = layer_figures(L.weight, L.group, L.kernel_size, fin, min_level=min_level,
                         min_activity=min_activity, classifier=L.classifier)
    fields = {"index": L.index, "name": L.name, "op": L.op, "units": L.units, "inputs": L.inputs,
              "inputs_kept": figs.inputs_kept, "samples": fin.samples, "undefined_units": figs.undefined_units,
              "classifier": L.classifier, **figs.means()}
    input_ok, unit_ok = (True, True) if sites is None else (sites.input_ok, sites.unit_ok)
    extra = {"node": L.node or L.name,
             "input_activation": L.input_site.ops if L.input_site is not None and input_ok else None,
             "unit_activation": L.unit_site.ops if L.unit_site is not None and unit_ok else None,
             "undefined_reasons": figs.undefined_reasons or {}, "activity_gate": L.gate,
             "weight_shape": list(L.weight.shape), "kernel": list(L.conv.kernel) if L.conv else None, "group": L.group}
    return LayerResult(fields=fields, unit_S=figs.S, unit_G=figs.G, unit_r=figs.r,
                       unit_S_centred=figs.S_centred, unit_G_centred=figs.G_centred, extra=extra)
