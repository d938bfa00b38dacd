"""Load and check a model and its data, then stream a range of items through onnxruntime into an ``Analysis``."""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from ..errors import DataError, ModelError, NoLayerError, RuntimeFailure
from ..model.graph import GraphInfo, discover
from ..stats.blas import one_thread
from ..stats.products import release_scratch
from ..stats.threads import StatThreads, stats_threads
from .accumulate import Analysis, needed_outputs
from .batches import batches
from .runner import Runner
from .scoring import check_labels
from .settings import MAX_DEFAULT_THREADS, Settings
from .sources import DataInput, ModelInput


def no_layer_message(info: GraphInfo, model_path: str) -> str:
    found = "; ".join(f"{s.name} ({s.op}): {s.reason}" for s in info.skipped) or "no Gemm, MatMul or Conv node"
    return f"no supported layer in {model_path} (Gemm, MatMul with a constant weight, Conv); found: {found}"


KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


def model_problems(proto, settings: Settings, model_path: str | None, source: bytes | None = None) -> list[str]:
    """Refuse custom-domain ops without --custom-op-library; return onnx.checker and shape-inference
    complaints as warnings (onnxruntime decides whether the model runs). ``source``: the file's bytes,
    already read (the checker then does not read the file again: ResNet-18 14 ms instead of 72)."""
    custom = sorted({f"{n.domain}:{n.op_type}" for n in proto.graph.node if n.domain not in KNOWN_DOMAINS})
    if custom and not settings.custom_op_library:
        raise ModelError(f"the model uses custom-domain ops ({', '.join(custom[:5])}); snr loads no custom op "
                         "library unless you pass --custom-op-library PATH")
    return checker_problems(model_path, source)


def checker_problems(model_path: str, source: bytes | None = None) -> list[str]:
    """onnx.checker's complaint (with shape inference), as a warning line; [] when it has none."""
    try:
        # the bytes when they hold the whole model; else the path (external data, past 2 GB)
        onnx.checker.check_model(model_path if source is None else source, full_check=True)
    except Exception as e:  # noqa: BLE001 - any checker complaint is reported, onnxruntime decides
        text = " ".join(str(e).split())[:200]
        return [f"onnx.checker (with shape inference): {text} (continuing: onnxruntime decides whether "
                "the model runs)"]
    return []


def read_graph(proto, model_path: str | None, source: bytes | None, *, output: str | None, centre_classifier: bool,
               problems: list[str] | None = None) -> GraphInfo:
    """``graph.discover`` as ``analyze`` and ``inspect`` both call it (same error, same exit code): a
    graph it cannot interpret is a bad model (exit 3) when onnx.checker finds it malformed, a bug in
    snr (exit 4) when it does not. ``problems``: the checker's complaints when already known."""
    try:
        info = discover(proto, output=output, centre_classifier=centre_classifier)
    except (IndexError, KeyError, ValueError, TypeError, UnicodeError, AttributeError) as e:
        problems = checker_problems(model_path, source) if problems is None else problems
        if not problems:
            raise  # a valid model that snr cannot read is snr's bug: exit 4
        raise ModelError(f"cannot interpret the model graph ({type(e).__name__}: {e}); {problems[0]}") from e
    return info


def check_layers(info: GraphInfo, model_label: str) -> None:
    """No supported layer, or NaN/Inf in a weight: a ModelError (exit 3)."""
    if not info.layers:
        raise NoLayerError(no_layer_message(info, model_label))
    for L in info.layers:
        bad = int(np.count_nonzero(~np.isfinite(L.weight)))
        if bad:
            raise ModelError(f"layer {L.index} ({L.name}): its weight {L.weight_name!r} holds {bad} NaN or Inf "
                             "values; the model is broken")


def prepare(model: ModelInput, data: DataInput, settings: Settings):
    """Load and check the model and the data (files or in memory): (model proto, graph info, dataset,
    the model's bytes when they hold the whole model)."""
    proto, source = model.load()
    problems = model_problems(proto, settings, model.path, source)
    info = read_graph(proto, model.path, source, output=settings.output,
                      centre_classifier=settings.centre_classifier, problems=problems)
    check_layers(info, model.label)
    clash = sorted(set(data.keys()) & set(info.weight_inputs))
    if clash:
        raise DataError(f"the data supplies {', '.join(clash)}, which the model stores as a weight "
                        "(an initializer also listed as a graph input); rename or drop that array")
    ds = data.load(info.inputs, **settings.data_kwargs())
    ds.notes[:0] = problems
    return proto, info, ds, source


def run_range(proto, info: GraphInfo, ds, settings: Settings, start: int, stop: int,
              progress: Callable[[int], None] | None = None, source: bytes | None = None) -> Analysis:
    """Stream items [start, stop) through onnxruntime into a fresh ``Analysis`` (``source``: the bytes
    ``proto`` was parsed from, see ``Runner``)."""
    runner = Runner(proto, needed_outputs(info, settings.noise_model),
                    providers=list(settings.providers) if settings.providers else None, threads=settings.threads,
                    custom_op_library=settings.custom_op_library, source=source)
    labels = ds.labels
    # the statistics threads are the parallelism: a multi-threaded BLAS call would leave OpenBLAS's
    # threads spinning into onnxruntime's time (see snrcli.stats.blas)
    with one_thread(), StatThreads(stats_threads(settings.threads, MAX_DEFAULT_THREADS)) as pool, np.errstate(all="ignore"):
        analysis = Analysis(info, exact=settings.precision == "float64", noise_model=settings.noise_model)
        analysis.providers = runner.providers
        _stream(runner, analysis, ds, info, settings, start, stop, labels, progress, pool)
    analysis.fold()
    return analysis


def _stream(runner, analysis, ds, info, settings, start, stop, labels, progress, pool) -> None:
    scored = info.accuracy_output if labels is not None else None
    try:
        for feeds, valid, lo in batches(ds, info.inputs, settings.batch_size, start, stop):
            try:
                outputs = runner.run(feeds)
                if scored in outputs:    # the first batch shows how many classes the output scores
                    check_labels(labels[start:stop], np.asarray(outputs[scored]), scored, ds.label_key,
                                 ds.label_width, offset=start)
                    scored = None
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
    proto, info, ds, source = prepare(ModelInput(model_path, None), DataInput(data_path, None), settings)
    return run_range(proto, info, ds, settings, start, stop, source=source)


def shard_ranges(items: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """Split [0, items) into at most ``shards`` contiguous ranges whose starts are multiples of ``align``."""
    shards = max(1, min(shards, items))
    blocks = -(-items // align)
    edges = [min(items, (blocks * k // shards) * align) for k in range(shards + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]
