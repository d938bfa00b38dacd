"""The ``snr`` command line: thin click commands that wire the modules together.

Exit codes (README documents them as a contract): 0 success, 1 a check failed,
2 usage error, 3 bad input, 4 internal error, 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import traceback
from typing import Any, Callable

import click

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, SnrError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class State:
    """What every command shares: the two consoles and the global flags."""

    def __init__(self) -> None:
        self.debug = False
        self.no_color = False
        self.quiet = False

    @functools.cached_property
    def out(self):
        from .render import make_console
        return make_console(no_color=self.no_color)

    @functools.cached_property
    def err(self):
        from .render import make_console
        return make_console(stderr=True, no_color=self.no_color)

    def warn(self, msg: str) -> None:
        if not self.quiet:
            click.echo(f"warning: {msg}", err=True)


def _state() -> State:
    ctx = click.get_current_context()
    ctx.ensure_object(State)
    return ctx.obj


class SnrGroup(click.Group):
    """Turns every error into one stderr line and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.ensure_object(State)  # created here, so flags given after the command reach it too
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except SnrError as e:
            self._traceback(ctx)
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: stopped before finishing; nothing was written", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as e:  # noqa: BLE001 - the one place unexpected errors are turned into exit 4
            if self._traceback(ctx):
                click.echo(f"internal error: {type(e).__name__}: {e}", err=True)
            else:
                text = " ".join(str(e).split())[:200]
                click.echo(f"internal error: {type(e).__name__}: {text}; run with --debug for the traceback",
                           err=True)
            ctx.exit(EXIT_INTERNAL)

    @staticmethod
    def _traceback(ctx: click.Context) -> bool:
        state = ctx.find_object(State)
        if state is not None and state.debug:
            traceback.print_exc(file=sys.stderr)
            return True
        return False


def common_flags(f: Callable) -> Callable:
    """--debug, --quiet and --no-color, accepted on every command as well as before it."""

    def set_flag(name):
        def cb(ctx, _param, value):
            if value:
                setattr(ctx.ensure_object(State), name, True)
            return value
        return cb

    f = click.option("--debug", is_flag=True, expose_value=False, callback=set_flag("debug"),
                     help="Show the full traceback on errors.")(f)
    f = click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=set_flag("quiet"),
                     help="No progress bar and no warnings on stderr.")(f)
    f = click.option("--no-color", is_flag=True, expose_value=False, callback=set_flag("no_color"),
                     help="No colour (also when NO_COLOR is set or output is not a terminal).")(f)
    return f


def analysis_options(f: Callable) -> Callable:
    """The settings of an analysis, shared by every command that can analyse a model on the fly."""
    from .api import DEFAULT_BATCH_SIZE, DEFAULT_MIN_ACTIVITY, DEFAULT_MIN_LEVEL, DEFAULT_PRECISION, PRECISIONS
    from .statthreads import MAX_DEFAULT_THREADS

    opts = [
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
                     help="Items per onnxruntime run (a model with a fixed batch size uses its own)."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Analyse only the first N items."),
        click.option("--min-level", type=click.FloatRange(min=0), default=DEFAULT_MIN_LEVEL, show_default=True,
                     help="Drop inputs whose max |x| is at most this fraction of the layer's largest (spec 3)."),
        click.option("--min-activity", type=click.FloatRange(min=0, max=1), default=DEFAULT_MIN_ACTIVITY,
                     show_default=True, help="Drop inputs that are non-zero in fewer than this fraction of values."),
        click.option("--no-centring", "no_centring", is_flag=True,
                     help="No softmax centring: no layer is treated as the classifier (e.g. regression heads)."),
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
                precision=kw.pop("precision"))


def run_analysis(model: str, data: str, settings: dict[str, Any]):
    """Analyse with a progress bar on stderr and warnings as stderr lines."""
    from .api import analyze
    from .render import progress_bar

    state = _state()
    with progress_bar(state.err, enabled=not state.quiet) as progress:
        return analyze(model, data, progress=progress, warn=state.warn,
                       command=shlex.join(["snr"] + sys.argv[1:]), **settings)


@click.group(cls=SnrGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="snr")
@common_flags
def main() -> None:
    """Node-level SNR optimality (S) and SNR gain (G) of a trained network, after Norridge (2021).

    The figures need only unlabelled data. They are descriptive: whether they tell
    you more about generalisation than cheap baselines do is an open question.
    """


@main.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Data file: .npz (arrays named after the model inputs, optional 'labels') or .npy.")
@click.option("--json", "as_json", is_flag=True, help="Print the snr-report/1 JSON on stdout and nothing else.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write DIR/report.json, DIR/layers.csv and DIR/units.csv (atomically).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
@analysis_options
@common_flags
def analyze(model: str, data: str, as_json: bool, out_dir: str | None, force: bool, **kw: Any) -> None:
    """Analyse MODEL (.onnx) on the data: S and G per layer, network sums (eq. 10, 13, 14).

    \b
    Example:
      snr analyze sample_models/digits_mlp.onnx --data sample_models/digits_test.npz
    """
    from .report import check_out_dir, write_run_folder

    state = _state()
    if out_dir:
        check_out_dir(out_dir, force=force)
    report = run_analysis(model, data, analysis_kwargs(kw))
    if out_dir:
        write_run_folder(report, out_dir, force=force)
        if not state.quiet:
            click.echo(f"wrote {out_dir}/report.json, layers.csv, units.csv", err=True)
    if as_json:
        click.echo(report.to_json())
    elif not out_dir or not state.quiet:
        from .render import analysis_tables
        for t in analysis_tables(report.to_dict()):
            state.out.print(t)


@main.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON.")
@click.option("--output", "output_name", default=None, help="Model output that decides the classifier.")
@click.option("--no-centring", "no_centring", is_flag=True, help="Treat no layer as the classifier.")
@common_flags
def inspect(model: str, as_json: bool, output_name: str | None, no_centring: bool) -> None:
    """List the layers snr finds in MODEL, without data, and the ops it skips."""
    from .api import no_layer_message
    from .errors import NoLayerError
    from .graph import discover
    from .modelfile import load_model

    info = discover(load_model(model), output=output_name, centre_classifier=not no_centring)
    rows = [{"index": L.index, "name": L.name, "op": L.op, "weight_shape": list(L.weight.shape), "units": L.units,
             "inputs_per_unit": int(L.weight.shape[1]), "inputs": L.inputs, "group": L.group,
             "activity_gate": L.gate, "classifier": L.classifier} for L in info.layers]
    skipped = [{"name": s.name, "op": s.op, "reason": s.reason} for s in info.skipped]
    if as_json:
        click.echo(json.dumps({"model": model, "inputs": [{"name": i.name, "dims": i.dims} for i in info.inputs],
                               "accuracy_output": info.accuracy_output, "layers": rows, "skipped": skipped},
                              indent=2))
    else:
        from .render import inspect_tables
        for t in inspect_tables(rows, skipped):
            _state().out.print(t)
    if not info.layers:
        raise NoLayerError(no_layer_message(info, model))


def _register() -> None:
    """Commands that live in their own modules (they import this one for the shared options)."""
    from .cli_compare import check, compare
    from .cli_correlate import correlate

    main.add_command(compare)
    main.add_command(check)
    main.add_command(correlate)


_register()
