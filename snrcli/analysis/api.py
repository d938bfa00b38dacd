"""``analyze(model, data, ...)``: the whole pipeline as one call, without click or rich.

model (file or in memory) -> graph.discover -> data (file or arrays) -> runner.Runner -> stats.LayerStats
-> metrics.layer_figures -> report.Report
"""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from dataclasses import asdict
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from .. import __version__
from ..errors import ModelError, UsageError
from ..model.graph import GraphInfo
from ..reports.report import Report
from ..stats.threads import capped_threads
from .accumulate import Analysis, layer_result
from .baselines import weight_baselines
from .metrics import network_figures
from .sitestats import site_warnings
from .settings import (DEFAULT_BATCH_SIZE, DEFAULT_MIN_ACTIVITY, DEFAULT_MIN_LEVEL, DEFAULT_NOISE_MODEL,
                       DEFAULT_PRECISION, NOISE_MODELS, PRECISIONS, Settings)
from .sources import DataInput, DataSource, ModelInput, ModelSource, data_input, model_input
from .stream import prepare, run_range

Progress = Callable[[int, int], None]
Warn = Callable[[str], None]


def analyze(model: ModelSource, data: DataSource, *, batch_size: int = DEFAULT_BATCH_SIZE,
            limit: int | None = None, min_level: float = DEFAULT_MIN_LEVEL,
            min_activity: float = DEFAULT_MIN_ACTIVITY, centre_classifier: bool = True,
            input_key: str | None = None, label_key: str | None = None, output: str | None = None,
            drop_nonfinite: bool = False, scale: Sequence[float] | None = None,
            mean: Sequence[float] | None = None, std: Sequence[float] | None = None, layout: str | None = None,
            providers: list[str] | None = None, threads: int | None = None,
            custom_op_library: str | None = None, precision: str = DEFAULT_PRECISION,
            noise_model: str = DEFAULT_NOISE_MODEL, jobs: int = 1,
            scheduler: str | None = None, progress: Progress | None = None, warn: Warn | None = None,
            command: str | None = None) -> Report:
    """Analyse ``model`` on ``data`` and return the ``snr-report/1`` report (eq. 10, 13, 14, 18; docs/metrics.md).

    ``model``: a path to an .onnx file, an ``onnx.ModelProto`` or its serialised bytes.
    ``data``: a path to an .npz/.npy file, a numpy array (one-input models), a dict of arrays
    keyed by model input name (optional ``labels``), or an iterable of such batches, where a
    batch may also be a pair ``(inputs, labels)``; an iterable is read into memory first.
    In-memory sources are recorded with a null path and the sha256 of their contents
    (``sources.py``). The keyword arguments are the command's options.

    ``jobs`` > 1 shards the items over worker processes; ``scheduler`` (an address, or
    ``local:N``) runs the shards on a Dask cluster; both need the model and the data as files.
    ``precision="float64"`` multiplies float32 activations in float64 too (default ``"mixed"``:
    float32 blocks of at most 4096 samples, summed in float64). ``noise_model="activation"`` reads
    a_j and r_i as normalised mean squared slopes of the activations (paper appendix B.3) instead of
    ReLU on/off rates (default ``"relu"``). ``progress(done, total)`` is called after each batch;
    ``warn(message)`` for each warning (also kept in the report).
    Raises ``SnrError`` subclasses for problems the user can fix.
    """
    threads, cut = capped_threads(threads)
    settings = Settings(batch_size=batch_size, limit=limit, min_level=min_level, min_activity=min_activity,
                        centre_classifier=centre_classifier, input_key=input_key, label_key=label_key,
                        output=output, drop_nonfinite=drop_nonfinite,
                        scale=tuple(scale) if scale else None, mean=tuple(mean) if mean else None,
                        std=tuple(std) if std else None, layout=layout,
                        providers=tuple(providers) if providers else None, threads=threads,
                        custom_op_library=custom_op_library, precision=precision, noise_model=noise_model)
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    settings.validate()
    if noise_model not in NOISE_MODELS:
        raise UsageError(f"noise model {noise_model!r}: expected one of {', '.join(NOISE_MODELS)}")
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    if cut:
        note(cut)
    source_model, source_data = model_input(model), data_input(data, limit)
    if (jobs > 1 or scheduler) and (source_model.path is None or source_data.path is None):
        raise UsageError("jobs > 1 and scheduler need the model and the data as files (each worker reads them "
                         "itself); save the data with numpy.savez and pass its path, or run with jobs=1")
    return _analyze(source_model, source_data, settings, jobs=jobs, scheduler=scheduler, progress=progress,
                    note=note, warnings=warnings, command=command)


def _analyze(model: ModelInput, data: DataInput, settings: Settings, *, jobs: int, scheduler: str | None,
             progress: Progress | None, note: Warn, warnings: list[str], command: str | None) -> Report:
    batch_size = settings.batch_size
    proto, info, ds, source = prepare(model, data, settings)
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
    pending += layer_notes(info)
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
            analysis = run_sharded(info, model.path, data.path, settings, ds.items,
                                   align=ds.fixed_batch or 1, jobs=jobs, scheduler=scheduler, progress=advance)
        else:
            analysis = run_range(proto, info, ds, settings, 0, ds.items, progress=advance, source=source)
    except ModelError as e:
        checker = [n for n in pending if n.startswith("onnx.checker")]
        if checker:
            raise ModelError(f"{e}; {checker[0]}") from e
        raise
    flush()
    return build_report(info, analysis, model_path=model.path, data_path=data.path, ds=ds, settings=settings,
                        warnings=warnings, note=note, command=command,
                        execution={"jobs": jobs, "scheduler": scheduler},
                        hashes={"model": model.hash(), "data": data.hash(ds)})


def layer_notes(info: GraphInfo) -> list[str]:
    """Warnings about layers whose figures count although they may not mean what they seem."""
    notes = []
    for L in info.layers:
        if not L.feeds_output:
            notes.append(f"layer {L.index} ({L.name}): no model output depends on it, yet its G counts in the "
                         "network figures, as every layer's does")
        if L.classifier and L.units == 1:
            notes.append(f"layer {L.index} ({L.name}) is the classifier but has one unit: softmax centring "
                         "leaves it no weights, so G_final and G_total are null; for a one-logit (binary) head "
                         "pass --no-centring to use its plain figures")
    return notes


def build_report(info: GraphInfo, analysis: Analysis, *, model_path: str | None, data_path: str | None, ds,
                 settings: Settings, warnings: list[str], note: Warn, command: str | None,
                 execution: dict[str, Any], hashes: dict[str, str]) -> Report:
    """Finish the statistics into figures, add the weight baselines, and wrap them with the model's and
    the data's sha256 (``hashes``) in a ``Report``."""
    with np.errstate(all="ignore"):   # an overflow gives a null figure or baseline, not a warning
        return _build_report(info, analysis, model_path=model_path, data_path=data_path, ds=ds,
                             settings=settings, warnings=warnings, note=note, command=command, execution=execution,
                             hashes=hashes)


def _build_report(info: GraphInfo, analysis: Analysis, *, model_path: str | None, data_path: str | None, ds,
                  settings: Settings, warnings: list[str], note: Warn, command: str | None,
                  execution: dict[str, Any], hashes: dict[str, str]) -> Report:
    analysis.settle_gates()
    sites = [analysis.sites.finish(i) for i in range(len(info.layers))]
    layers = [layer_result(L, st, min_level=settings.min_level, min_activity=settings.min_activity, sites=s)
              for L, st, s in zip(info.layers, analysis.stats, sites)]
    for msg in site_warnings(info.layers, sites, settings.noise_model):
        note(msg)
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
                 **weight_baselines([L.weight for L in info.layers])}
    recorded = asdict(settings)
    for machine_only in ("providers", "threads", "custom_op_library"):
        recorded.pop(machine_only)
    recorded["batch_size"] = ds.fixed_batch or (1 if ds.per_item else settings.batch_size)
    return Report(
        tool={"name": "snr", "version": __version__},
        model={"path": model_path, "sha256": hashes["model"]},
        data={"path": data_path, "sha256": hashes["data"], "samples": ds.items, "arrays": ds.keys,
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
