"""``analyze(model, data, ...)``: the whole pipeline as one call, without click or rich.

model file -> graph.discover -> data.load_data -> runner.Runner -> stats.LayerStats
-> metrics.layer_figures -> report.Report
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort

from . import __version__
from .data import batches, data_keys, load_data
from .errors import DataError, ModelError, NoLayerError, RuntimeFailure, UsageError
from .baselines import max_confidence_sum, weight_baselines
from .graph import GraphInfo, Layer, discover
from .metrics import layer_figures, network_figures
from .aside import Aside
from .modelfile import FileHash, load_model_bytes
from .products import release_scratch
from .report import LayerResult, Report
from .runner import Runner
from .stats import LayerStats, needs_output
from .statthreads import StatThreads, stats_threads

DEFAULT_BATCH_SIZE = 256
DEFAULT_MIN_LEVEL = 0.01
DEFAULT_MIN_ACTIVITY = 0.01
PRECISIONS = ("mixed", "float64")   # products of float32 activations: float32 blocks summed in float64, or float64
DEFAULT_PRECISION = "mixed"
ASIDE_MIN_WEIGHTS = 1 << 20   # weight baselines on a side thread from this many weights (else when asked)

Progress = Callable[[int, int], None]
Warn = Callable[[str], None]


def _needed(info: GraphInfo) -> list[str]:
    names: list[str] = []
    for L in info.layers:
        names.append(L.input)
        if needs_output(L):
            names.append(L.output)
        if L.gate:
            names.append(L.gate)
    if info.accuracy_output:
        names.append(info.accuracy_output)
    return list(dict.fromkeys(names))


def no_layer_message(info: GraphInfo, model_path: str) -> str:
    found = "; ".join(f"{s.name} ({s.op}): {s.reason}" for s in info.skipped) or "no Gemm, MatMul or Conv node"
    return f"no supported layer in {model_path} (Gemm, MatMul with a constant weight, Conv); found: {found}"


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

    def __init__(self, info: GraphInfo, exact: bool = False):
        self.info = info
        self.exact = exact
        self.stats = [LayerStats(L, exact=exact) for L in info.layers]
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
        whole, to the least loaded thread); large conv layers that do not split run afterwards with the
        whole BLAS. Dense layers come last, on the calling thread: they share their rows' passes and
        products out to the pool themselves (``LayerStats.update``)."""
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
        if all(pieces is None for _, _, pieces in layers):
            n = 1                     # nothing worth sharing out: the calling thread, the whole BLAS
        work: list[list] = [[] for _ in range(n)]
        load = [0] * n
        alone: list = []
        for i, args, pieces in layers:
            if pieces is None:
                if n > 1 and self.stats[i].worth_splitting(args[0]):
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
            if pool is not None and work[0]:
                pool.wide()
            run(0)
        if alone:
            pool.wide()
        for i, args in alone:
            self._add(self.stats[i], args)
        for i, args in dense:
            if i in self.gate_readers and args[2] is not None:
                args = self._gate_counted_elsewhere(i, args)
            self._add(self.stats[i], args, pool)
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
        self.confidence_sum += max_confidence_sum(scores)
        self.scored += valid
        if labels is not None:
            self.correct += int(np.count_nonzero(scores.argmax(axis=-1) == labels))
            self.labelled += valid

    def merge(self, other: "Analysis") -> None:
        self.fold()
        other.fold()
        for a, b in zip(self.stats, other.stats):
            a.merge(b)
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


def layer_result(L: Layer, st: LayerStats, *, min_level: float, min_activity: float) -> LayerResult:
    fin = st.finish()
    figs = layer_figures(L.weight, L.group, L.kernel_size, fin, min_level=min_level,
                         min_activity=min_activity, classifier=L.classifier)
    fields = {"index": L.index, "name": L.name, "op": L.op, "units": L.units, "inputs": L.inputs,
              "inputs_kept": figs.inputs_kept, "samples": fin.samples, "undefined_units": figs.undefined_units,
              "classifier": L.classifier, **figs.means()}
    extra = {"undefined_reasons": figs.undefined_reasons or {}, "activity_gate": L.gate, "weight_shape": list(L.weight.shape),
             "kernel": list(L.conv.kernel) if L.conv else None, "group": L.group}
    return LayerResult(fields=fields, unit_S=figs.S, unit_G=figs.G, unit_r=figs.r,
                       unit_S_centred=figs.S_centred, unit_G_centred=figs.G_centred, extra=extra)


@dataclass(frozen=True)
class Settings:
    """Everything that decides an analysis besides the model and the data files (recorded in the report)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None
    min_level: float = DEFAULT_MIN_LEVEL
    min_activity: float = DEFAULT_MIN_ACTIVITY
    centre_classifier: bool = True
    input_key: str | None = None
    label_key: str | None = None
    output: str | None = None
    drop_nonfinite: bool = False
    scale: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    custom_op_library: str | None = None
    precision: str = DEFAULT_PRECISION

    def data_kwargs(self) -> dict[str, Any]:
        return dict(input_key=self.input_key, label_key=self.label_key, limit=self.limit,
                    drop_nonfinite=self.drop_nonfinite, scale=self.scale, mean=self.mean, std=self.std,
                    layout=self.layout)


KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


def model_problems(proto, settings: Settings, model_path: str, source: bytes | None = None) -> list[str]:
    """Refuse custom-domain ops without --custom-op-library; return onnx.checker and shape-inference
    complaints as warnings (onnxruntime decides whether the model runs). ``source``: the file's bytes,
    already read (the checker then does not read the file again: ResNet-18 14 ms instead of 72)."""
    custom = sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node if n.domain not in KNOWN_DOMAINS})
    if custom and not settings.custom_op_library:
        raise ModelError(f"the model uses custom-domain ops ({', '.join(custom[:5])}); snr loads no custom op "
                         "library unless you pass --custom-op-library PATH")
    try:
        # the bytes when they hold the whole model; else the path (external data, past 2 GB)
        onnx.checker.check_model(model_path if source is None else source, full_check=True)
    except Exception as e:  # noqa: BLE001 - any checker complaint is reported, onnxruntime decides
        text = " ".join(str(e).split())[:200]
        return [f"onnx.checker (with shape inference): {text} (continuing: onnxruntime decides whether "
                "the model runs)"]
    return []


def prepare(model_path: str, data_path: str, settings: Settings):
    """Load and check the model and the data: (model proto, graph info, dataset, the model file's bytes
    when they hold the whole model)."""
    proto, source = load_model_bytes(model_path)
    problems = model_problems(proto, settings, model_path, source)
    try:
        info = discover(proto, output=settings.output, centre_classifier=settings.centre_classifier)
    except (IndexError, KeyError, ValueError, TypeError, UnicodeError, AttributeError) as e:
        if not problems:
            raise  # a valid model that snr cannot read is snr's bug: exit 4
        raise ModelError(f"cannot interpret the model graph ({type(e).__name__}: {e}); {problems[0]}") from e
    if not info.layers:
        raise NoLayerError(no_layer_message(info, model_path))
    for L in info.layers:
        bad = int(np.count_nonzero(~np.isfinite(L.weight)))
        if bad:
            raise ModelError(f"layer {L.index} ({L.name}): its weight {L.weight_name!r} holds {bad} NaN or Inf "
                             "values; the model is broken")
    clash = sorted(set(data_keys(data_path)) & set(info.weight_inputs))
    if clash:
        raise DataError(f"the data supplies {', '.join(clash)}, which the model stores as a weight "
                        "(an initializer also listed as a graph input); rename or drop that array")
    ds = load_data(data_path, info.inputs, **settings.data_kwargs())
    ds.notes[:0] = problems
    return proto, info, ds, source


def run_range(proto, info: GraphInfo, ds, settings: Settings, start: int, stop: int,
              progress: Callable[[int], None] | None = None, source: bytes | None = None) -> Analysis:
    """Stream items [start, stop) through onnxruntime into a fresh ``Analysis`` (``source``: the bytes
    ``proto`` was parsed from, see ``Runner``)."""
    runner = Runner(proto, _needed(info), providers=list(settings.providers) if settings.providers else None,
                    threads=settings.threads, custom_op_library=settings.custom_op_library, source=source)
    labels = ds.labels
    with StatThreads(stats_threads(settings.threads)) as pool, np.errstate(all="ignore"):
        analysis = Analysis(info, exact=settings.precision == "float64")
        analysis.providers = runner.providers
        _stream(runner, analysis, ds, info, settings, start, stop, labels, progress, pool)
    analysis.fold()
    return analysis


def _stream(runner, analysis, ds, info, settings, start, stop, labels, progress, pool) -> None:
    try:
        for feeds, valid, lo in batches(ds, info.inputs, settings.batch_size, start, stop):
            try:
                outputs = runner.run(feeds)
                analysis.update(feeds, outputs, valid, None if labels is None else labels[lo:lo + valid],
                                ds.fixed_batch, pool)
            except RuntimeFailure as e:
                raise RuntimeFailure(f"items {lo}-{lo + valid - 1}: {e}") from e
            if progress:
                progress(valid)
        analysis.drain(pool)
    finally:
        release_scratch()


def run_shard(model_path: str, data_path: str, settings: Settings, start: int, stop: int) -> Analysis:
    """One shard in a worker process (``--jobs``) or on a Dask worker: reads the files itself."""
    proto, info, ds, source = prepare(model_path, data_path, settings)
    return run_range(proto, info, ds, settings, start, stop, source=source)


def shard_ranges(items: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """Split [0, items) into at most ``shards`` contiguous ranges whose starts are multiples of ``align``."""
    shards = max(1, min(shards, items))
    blocks = -(-items // align)
    edges = [min(items, (blocks * k // shards) * align) for k in range(shards + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def analyze(model: str | os.PathLike, data: str | os.PathLike, *, batch_size: int = DEFAULT_BATCH_SIZE,
            limit: int | None = None, min_level: float = DEFAULT_MIN_LEVEL,
            min_activity: float = DEFAULT_MIN_ACTIVITY, centre_classifier: bool = True,
            input_key: str | None = None, label_key: str | None = None, output: str | None = None,
            drop_nonfinite: bool = False, scale=None, mean=None, std=None, layout: str | None = None,
            providers: list[str] | None = None, threads: int | None = None,
            custom_op_library: str | None = None, precision: str = DEFAULT_PRECISION, jobs: int = 1,
            scheduler: str | None = None, progress: Progress | None = None, warn: Warn | None = None,
            command: str | None = None) -> Report:
    """Analyse ``model`` on ``data`` and return the ``snr-report/1`` report (spec sections 1-9).

    ``jobs`` > 1 shards the items over worker processes; ``scheduler`` (an address, or
    ``local:N``) runs the shards on a Dask cluster. ``precision="float64"`` multiplies float32
    activations in float64 too (default ``"mixed"``: float32 blocks of at most 4096 samples, summed
    in float64). Raises ``SnrError`` subclasses for problems the user can fix.
    """
    settings = Settings(batch_size=batch_size, limit=limit, min_level=min_level, min_activity=min_activity,
                        centre_classifier=centre_classifier, input_key=input_key, label_key=label_key,
                        output=output, drop_nonfinite=drop_nonfinite,
                        scale=tuple(scale) if scale else None, mean=tuple(mean) if mean else None,
                        std=tuple(std) if std else None, layout=layout,
                        providers=tuple(providers) if providers else None, threads=threads,
                        custom_op_library=custom_op_library, precision=precision)
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    model_path, data_path = str(model), str(data)
    hashes = {"model": FileHash(model_path), "data": FileHash(data_path)}   # on an idle core meanwhile
    try:
        return _analyze(model_path, data_path, settings, hashes, jobs=jobs, scheduler=scheduler,
                        progress=progress, note=note, warnings=warnings, command=command)
    finally:
        for h in hashes.values():
            h.cancel()          # (a no-op once finished)


def _analyze(model_path: str, data_path: str, settings: Settings, hashes: dict[str, FileHash], *, jobs: int,
             scheduler: str | None, progress: Progress | None, note: Warn, warnings: list[str],
             command: str | None) -> Report:
    batch_size = settings.batch_size
    proto, info, ds, source = prepare(model_path, data_path, settings)
    weights = [L.weight for L in info.layers]
    big = sum(w.size for w in weights) >= ASIDE_MIN_WEIGHTS
    aside = {**hashes, "baselines": Aside(_weight_baselines, weights, start=big)}
    # Said once the first batch has run: a model that does not load ends in one error line.
    pending = list(ds.notes)
    if ds.fixed_batch and ds.fixed_batch != batch_size:
        pending.append(f"the model was exported with a fixed batch size of {ds.fixed_batch}: running batches of "
                       f"{ds.fixed_batch}" + (" (the last one padded; padded rows count in nothing)"
                                              if ds.items % ds.fixed_batch else ""))
    if ds.per_item:
        pending.append("the model input has no batch axis: feeding one item at a time")
    if ds.labels is not None and info.accuracy_output is None:
        pending.append("labels given but the model has no float output to score; accuracy is null")
    done = [0]

    def flush() -> None:
        while pending:
            note(pending.pop(0))

    def advance(n: int) -> None:
        flush()
        done[0] += n
        if progress:
            progress(done[0], ds.items)

    try:
        if jobs > 1 or scheduler:
            from .parallel import run_sharded
            analysis = run_sharded(info, model_path, data_path, settings, ds.items,
                                   align=ds.fixed_batch or 1, jobs=jobs, scheduler=scheduler, progress=advance)
        else:
            analysis = run_range(proto, info, ds, settings, 0, ds.items, progress=advance, source=source)
    except ModelError as e:
        checker = [n for n in pending if n.startswith("onnx.checker")]
        if checker:
            raise ModelError(f"{e}; {checker[0]}") from e
        raise
    flush()
    return build_report(info, analysis, model_path=model_path, data_path=data_path, ds=ds, settings=settings,
                        warnings=warnings, note=note, command=command,
                        execution={"jobs": jobs, "scheduler": scheduler},
                        aside=aside)


def _weight_baselines(weights: list[np.ndarray]) -> dict[str, float | None]:
    with np.errstate(all="ignore"):   # (per thread) an overflow gives a null baseline, not a warning
        return weight_baselines(weights)


def build_report(info: GraphInfo, analysis: Analysis, *, model_path: str, data_path: str, ds,
                 settings: Settings, warnings: list[str], note: Warn, command: str | None,
                 execution: dict[str, Any], aside: dict[str, Aside]) -> Report:
    """Finish the statistics into figures and wrap them in a ``Report``."""
    with np.errstate(all="ignore"):
        return _build_report(info, analysis, model_path=model_path, data_path=data_path, ds=ds,
                             settings=settings, warnings=warnings, note=note, command=command, execution=execution,
                             aside=aside)


def _build_report(info: GraphInfo, analysis: Analysis, *, model_path: str, data_path: str, ds,
                  settings: Settings, warnings: list[str], note: Warn, command: str | None,
                  execution: dict[str, Any], aside: dict[str, Aside]) -> Report:
    analysis.settle_gates()
    layers = [layer_result(L, st, min_level=settings.min_level, min_activity=settings.min_activity)
              for L, st in zip(info.layers, analysis.stats)]
    for r in layers:
        f = r.fields
        if f["undefined_units"] == f["units"]:
            note(f"layer {f['index']} ({f['name']}): every unit is undefined (no kept input, or zero weights "
                 "on the kept inputs); its figures and the network sums are null")
    network = network_figures([r.fields for r in layers])
    accuracy = None
    labelled = ds.labels is not None and info.accuracy_output is not None
    if analysis.score_problem and (labelled or info.accuracy_output):
        note(f"accuracy and confidence are null: {analysis.score_problem}")
    elif labelled and analysis.labelled:
        accuracy = analysis.correct / analysis.labelled
    baselines = {"mean_max_softmax": analysis.confidence_sum / analysis.scored
                 if analysis.scored and not analysis.score_problem else None,
                 **aside["baselines"].result()}
    recorded = asdict(settings)
    for machine_only in ("providers", "threads", "custom_op_library"):
        recorded.pop(machine_only)
    recorded["batch_size"] = ds.fixed_batch or (1 if ds.per_item else settings.batch_size)
    return Report(
        tool={"name": "snr", "version": __version__},
        model={"path": model_path, "sha256": aside["model"].result()},
        data={"path": data_path, "sha256": aside["data"].result(), "samples": ds.items, "arrays": ds.keys,
              "labels": ds.label_format, "dropped_nonfinite": ds.dropped_nonfinite},
        settings=recorded,
        layers=layers,
        skipped=[{"name": s.name, "op": s.op, "reason": s.reason} for s in info.skipped],
        network=network,
        accuracy=accuracy,
        labelled=analysis.labelled if accuracy is not None else None,
        accuracy_output=info.accuracy_output,
        baselines=baselines,
        warnings=warnings,
        meta={"timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command, "python": platform.python_version(), "numpy": np.__version__,
              "onnx": onnx.__version__, "onnxruntime": ort.__version__,
              "providers": getattr(analysis, "providers", None), "platform": sys.platform, **execution},
    )
