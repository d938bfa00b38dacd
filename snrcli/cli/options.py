"""The analysis settings shared by every command that can analyse a model (declared once, reused)."""

from __future__ import annotations

import math
import shlex
import sys
from typing import Any, Callable

import click

from .base import get_state


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and infinities (which pass its comparisons)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


def analysis_options(f: Callable) -> Callable:
    """The settings of an analysis, shared by every command that can analyse a model on the fly."""
    from ..analysis.settings import (DEFAULT_BATCH_SIZE, DEFAULT_MIN_ACTIVITY, DEFAULT_MIN_LEVEL, DEFAULT_NOISE_MODEL,
                                     DEFAULT_PRECISION, MAX_DEFAULT_THREADS, NOISE_MODELS, PRECISIONS)

    opts = [
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
                     help="Items per onnxruntime run (a model with a fixed batch size uses its own)."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Analyse only the first N items."),
        click.option("--min-level", type=FiniteFloatRange(min=0), default=DEFAULT_MIN_LEVEL, show_default=True,
                     help="Drop inputs whose max |x| is at most this fraction of the layer's largest "
                          "(see docs/metrics.md, Kept inputs)."),
        click.option("--min-activity", type=FiniteFloatRange(min=0, max=1), default=DEFAULT_MIN_ACTIVITY,
                     show_default=True, help="Drop inputs that are non-zero in fewer than this fraction of values."),
        click.option("--no-centring", "no_centring", is_flag=True,
                     help="No softmax centring: no layer is treated as the classifier (e.g. regression heads)."),
        click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
                     help="How input and unit activity are read: ReLU on/off rates (relu), or the activations' "
                          "mean squared slopes, for GELU, SiLU, tanh... (activation)."),
        click.option("--input-key", default=None, help="npz array to feed a one-input model (default: by name)."),
        click.option("--label-key", default=None, help="npz array of labels (default: 'labels' when present)."),
        click.option("--output", "output_name", default=None,
                     help="Model output scored for accuracy (default: the first float output)."),
        click.option("--drop-nonfinite", is_flag=True, help="Leave out items holding NaN or Inf instead of stopping."),
        click.option("--scale", default=None, metavar="X[,X...]",
                     help="Multiply the data by this (one value, or one per channel; '1/255' allowed) before the model."),
        click.option("--mean", "mean_", default=None, metavar="X[,X...]",
                     help="Then subtract this mean (one value or one per channel)."),
        click.option("--std", default=None, metavar="X[,X...]",
                     help="Then divide by this std (one value or one per channel)."),
        click.option("--layout", type=click.Choice(["nchw", "nhwc"]), default=None,
                     help="The data's layout; items are transposed when the model wants the other one."),
        click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Shard the data over N worker processes and merge their statistics."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Run the shards on a Dask cluster (tcp://host:8786), or local:N for a local one "
                          "(needs snrcli[dask])."),
        click.option("--providers", default=None,
                     help="onnxruntime execution providers, comma-separated (default: CPUExecutionProvider)."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Threads for onnxruntime (intra-op) and for the statistics (default: onnxruntime's "
                          f"choice, and the available cores up to {MAX_DEFAULT_THREADS} for the statistics)."),
        click.option("--custom-op-library", type=click.Path(dir_okay=False, exists=True), default=None,
                     help="Load this onnxruntime custom-op library (never loaded unless named here)."),
        click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION, show_default=True,
                     help="Products of float32 activations: float32 blocks summed in float64 (mixed), or "
                          "float64 throughout (slower statistics, for checking)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _floats(text: str | None, flag: str) -> list[float] | None:
    """'0.5' or '0.485,0.456,0.406' or '1/255' -> floats (no eval)."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "/" in part:
                num, den = part.split("/", 1)
                values.append(float(num) / float(den))
            else:
                values.append(float(part))
        except (ValueError, ZeroDivisionError):
            raise click.BadParameter(f"{part!r} is not a number", param_hint=flag) from None
        if not math.isfinite(values[-1]):
            raise click.BadParameter(f"{part!r} is not a finite number", param_hint=flag)
    return values


def analysis_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Turn the click values of ``analysis_options`` into ``api.analyze`` keyword arguments."""
    providers = kw.pop("providers")
    return dict(batch_size=kw.pop("batch_size"), limit=kw.pop("limit"), min_level=kw.pop("min_level"),
                min_activity=kw.pop("min_activity"), centre_classifier=not kw.pop("no_centring"),
                input_key=kw.pop("input_key"), label_key=kw.pop("label_key"), output=kw.pop("output_name"),
                drop_nonfinite=kw.pop("drop_nonfinite"), scale=_floats(kw.pop("scale"), "--scale"),
                mean=_floats(kw.pop("mean_"), "--mean"), std=_floats(kw.pop("std"), "--std"),
                layout=kw.pop("layout"), jobs=kw.pop("jobs"), scheduler=kw.pop("scheduler"),
                providers=[p.strip() for p in providers.split(",") if p.strip()] if providers else None,
                threads=kw.pop("threads"), custom_op_library=kw.pop("custom_op_library"),
                precision=kw.pop("precision"), noise_model=kw.pop("noise_model"))


def run_analysis(model: str, data: str, settings: dict[str, Any]):
    """Analyse with a progress bar on stderr and warnings as stderr lines."""
    from ..analysis.api import analyze
    from .render import progress_bar

    state = get_state()
    with progress_bar(state.err, enabled=not state.quiet) as progress:
        return analyze(model, data, progress=progress, warn=state.warn,
                       command=shlex.join(["snr"] + sys.argv[1:]), **settings)
