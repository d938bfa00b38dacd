"""``analyze(model, data, ...)``: the whole pipeline as one call, without click or rich.

model file -> graph.discover -> data.load_data -> runner.Runner -> stats.LayerStats
-> metrics.layer_figures -> report.Report
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

from . import __version__
from .data import batches, load_data
from .errors import NoLayerError, RuntimeFailure
from .graph import GraphInfo, Layer, discover
from .metrics import layer_figures, network_figures
from .modelfile import file_sha256, load_model
from .report import LayerResult, Report
from .runner import Runner
from .stats import LayerStats

DEFAULT_BATCH_SIZE = 256
DEFAULT_MIN_LEVEL = 0.01
DEFAULT_MIN_ACTIVITY = 0.01

Progress = Callable[[int, int], None]
Warn = Callable[[str], None]


def _needed(info: GraphInfo) -> list[str]:
    names: list[str] = []
    for L in info.layers:
        names.append(L.input)
        if L.output_is_weighted_sum:
            names.append(L.output)
        if L.gate:
            names.append(L.gate)
    if info.accuracy_output:
        names.append(info.accuracy_output)
    return list(dict.fromkeys(names))


def no_layer_message(info: GraphInfo, model_path: str) -> str:
    found = "; ".join(f"{s.name} ({s.op}): {s.reason}" for s in info.skipped) or "no Gemm, MatMul or Conv node"
    return f"no supported layer in {model_path} (Gemm, MatMul with a constant weight, Conv); found: {found}"


class Analysis:
    """Streams batches into per-layer accumulators and tracks accuracy; ``merge`` combines shards."""

    def __init__(self, info: GraphInfo):
        self.info = info
        self.stats = [LayerStats(L) for L in info.layers]
        self.correct = 0
        self.labelled = 0
        self.accuracy_problem: str | None = None

    def update(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray], valid: int,
               labels: np.ndarray | None, fixed_batch: int | None) -> None:
        values = {**outputs, **feeds}
        if fixed_batch and valid < fixed_batch:
            values = {k: (v[:valid] if v.ndim and v.shape[0] == fixed_batch else v) for k, v in values.items()}
        for L, st in zip(self.info.layers, self.stats):
            try:
                st.update(values[L.input], values[L.output] if L.output_is_weighted_sum else None,
                          values[L.gate] if L.gate else None)
            except RuntimeFailure:
                raise
            except (ValueError, IndexError) as e:
                raise RuntimeFailure(f"layer {L.index} ({L.name}): statistics failed on this batch: {e}") from e
        if labels is not None and self.accuracy_problem is None and self.info.accuracy_output:
            out = values[self.info.accuracy_output]
            if out.ndim == 0 or (out.ndim == 1 and valid > 1):
                self.accuracy_problem = f"output {self.info.accuracy_output!r} has no class axis"
                return
            pred = np.asarray(out).argmax(axis=-1).reshape(-1)
            if pred.size != valid:
                self.accuracy_problem = (f"output {self.info.accuracy_output!r} of shape {out.shape} does not give "
                                         "one class score vector per item")
                return
            self.correct += int(np.count_nonzero(pred == labels))
            self.labelled += valid

    def merge(self, other: "Analysis") -> None:
        for a, b in zip(self.stats, other.stats):
            a.merge(b)
        self.correct += other.correct
        self.labelled += other.labelled
        self.accuracy_problem = self.accuracy_problem or other.accuracy_problem


def layer_result(L: Layer, st: LayerStats, *, min_level: float, min_activity: float) -> LayerResult:
    fin = st.finish()
    figs = layer_figures(L.weight, L.group, L.kernel_size, fin, min_level=min_level,
                         min_activity=min_activity, classifier=L.classifier)
    fields = {"index": L.index, "name": L.name, "op": L.op, "units": L.units, "inputs": L.inputs,
              "inputs_kept": figs.inputs_kept, "samples": fin.samples, "undefined_units": figs.undefined_units,
              "classifier": L.classifier, **figs.means()}
    extra = {"activity_gate": L.gate, "weight_shape": list(L.weight.shape),
             "kernel": list(L.conv.kernel) if L.conv else None, "group": L.group}
    return LayerResult(fields=fields, unit_S=figs.S, unit_G=figs.G, unit_r=figs.r,
                       unit_S_centred=figs.S_centred, unit_G_centred=figs.G_centred, extra=extra)


def analyze(model: str | os.PathLike, data: str | os.PathLike, *, batch_size: int = DEFAULT_BATCH_SIZE,
            limit: int | None = None, min_level: float = DEFAULT_MIN_LEVEL,
            min_activity: float = DEFAULT_MIN_ACTIVITY, centre_classifier: bool = True,
            input_key: str | None = None, label_key: str | None = None, output: str | None = None,
            drop_nonfinite: bool = False, providers: list[str] | None = None, threads: int | None = None,
            progress: Progress | None = None, warn: Warn | None = None,
            command: str | None = None) -> Report:
    """Analyse ``model`` on ``data`` and return the ``snr-report/1`` report (spec sections 1-9).

    Raises ``SnrError`` subclasses for problems the user can fix.
    """
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    model_path = str(model)
    proto = load_model(model_path)
    info = discover(proto, output=output, centre_classifier=centre_classifier)
    if not info.layers:
        raise NoLayerError(no_layer_message(info, model_path))
    ds = load_data(data, info.inputs, input_key=input_key, label_key=label_key, limit=limit,
                   drop_nonfinite=drop_nonfinite)
    for n in ds.notes:
        note(n)
    if ds.fixed_batch and ds.fixed_batch != batch_size:
        note(f"the model was exported with a fixed batch size of {ds.fixed_batch}: running batches of "
             f"{ds.fixed_batch}" + (" (the last one padded; padded rows count in nothing)"
                                    if ds.items % ds.fixed_batch else ""))
    if ds.per_item:
        note("the model input has no batch axis: feeding one item at a time")
    runner = Runner(proto, _needed(info), providers=providers, threads=threads)
    analysis = Analysis(info)
    labels = ds.labels
    if labels is not None and info.accuracy_output is None:
        note("labels given but the model has no float output to score; accuracy is null")
        labels = None
    done = 0
    for feeds, valid, start in batches(ds, info.inputs, batch_size):
        outputs = runner.run(feeds)
        analysis.update(feeds, outputs, valid, None if labels is None else labels[start:start + valid],
                        ds.fixed_batch)
        done += valid
        if progress:
            progress(done, ds.items)
    return build_report(info, analysis, model_path=model_path, data_path=str(data), ds=ds,
                        settings=dict(min_level=min_level, min_activity=min_activity,
                                      centre_classifier=centre_classifier,
                                      batch_size=ds.fixed_batch or (1 if ds.per_item else batch_size),
                                      limit=limit, output=output, input_key=input_key, label_key=label_key,
                                      drop_nonfinite=drop_nonfinite),
                        providers=runner.providers, warnings=warnings, note=note, command=command,
                        labels_given=labels is not None)


def build_report(info: GraphInfo, analysis: Analysis, *, model_path: str, data_path: str, ds, settings: dict,
                 providers: list[str], warnings: list[str], note: Warn, command: str | None,
                 labels_given: bool) -> Report:
    """Finish the statistics into figures and wrap them in a ``Report``."""
    layers = [layer_result(L, st, min_level=settings["min_level"], min_activity=settings["min_activity"])
              for L, st in zip(info.layers, analysis.stats)]
    for r in layers:
        f = r.fields
        if f["undefined_units"] == f["units"]:
            note(f"layer {f['index']} ({f['name']}): every unit is undefined (no kept input, or zero weights "
                 "on the kept inputs); its figures and the network sums are null")
    network = network_figures([r.fields for r in layers])
    accuracy = None
    if labels_given:
        if analysis.accuracy_problem:
            note(f"accuracy is null: {analysis.accuracy_problem}")
        elif analysis.labelled:
            accuracy = analysis.correct / analysis.labelled
    return Report(
        tool={"name": "snr", "version": __version__},
        model={"path": model_path, "sha256": file_sha256(model_path)},
        data={"path": data_path, "sha256": ds.sha256, "samples": ds.items, "arrays": ds.keys,
              "dropped_nonfinite": ds.dropped_nonfinite},
        settings=settings,
        layers=layers,
        skipped=[{"name": s.name, "op": s.op, "reason": s.reason} for s in info.skipped],
        network=network,
        accuracy=accuracy,
        labelled=analysis.labelled if accuracy is not None else None,
        accuracy_output=info.accuracy_output,
        warnings=warnings,
        meta={"timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command, "python": platform.python_version(), "numpy": np.__version__,
              "onnx": onnx.__version__, "onnxruntime": ort.__version__, "providers": providers,
              "platform": sys.platform},
    )
