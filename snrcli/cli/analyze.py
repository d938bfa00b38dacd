"""``snr analyze`` and ``snr inspect``: analyse a model on data, or list the layers it has."""

from __future__ import annotations

import json
from typing import Any

import click

from .base import CONTEXT, common_flags, get_state, one_line
from .options import analysis_kwargs, analysis_options, run_analysis
from ..errors import UsageError


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data", required=True, type=click.Path(dir_okay=False),
              help="Data file: .npz (arrays named after the model inputs, optional 'labels') or .npy.")
@click.option("--json", "as_json", is_flag=True, help="Print the snr-report/1 JSON on stdout and nothing else.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write DIR/report.json, DIR/layers.csv and DIR/units.csv (atomically).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder that holds an earlier run's files only.")
@click.option("--units", "units", is_flag=True,
              help="Add every unit's S, G and activity to the JSON report (layers[].per_unit; --json, --out).")
@analysis_options
@common_flags
def analyze(model: str, data: str, as_json: bool, out_dir: str | None, force: bool, units: bool,
            **kw: Any) -> None:
    """Analyse MODEL (.onnx) on the data: S and G per layer, network sums (eq. 10, 13, 14).

    \b
    Example:
      snr analyze sample_models/digits_mlp.onnx --data sample_models/digits_test.npz
    """
    from ..reports.report import check_out_dir, write_run_folder

    state = get_state()
    if units and not (as_json or out_dir):
        raise UsageError("--units adds per-unit figures to the JSON report: give --json or --out DIR")
    if out_dir:
        check_out_dir(out_dir, force=force, inputs=(model, data))
    report = run_analysis(model, data, analysis_kwargs(kw))
    if out_dir:
        write_run_folder(report, out_dir, force=force, inputs=(model, data), units=units)
        state.wrote = out_dir
        if not state.quiet:
            click.echo(one_line(f"wrote {out_dir}/report.json, layers.csv, units.csv"), err=True)
    if as_json:
        click.echo(report.to_json(units))
    else:
        from .render import analysis_grids
        state.print_grids(analysis_grids(report.to_dict()))


@click.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON (schema snr-inspect/1).")
@click.option("--output", "output_name", default=None, help="Model output that decides the classifier.")
@click.option("--no-centring", "no_centring", is_flag=True, help="Treat no layer as the classifier.")
@common_flags
def inspect(model: str, as_json: bool, output_name: str | None, no_centring: bool) -> None:
    """List the layers snr finds in MODEL, without data, and the ops it skips.

    The activation columns list the elementwise ops between a layer and the layer before (input) or
    after (unit) it that the activation noise model reads; data can still rule one out (an infinite
    slope). Refuses a broken model as analyze does (same message, exit 3), except what only onnxruntime
    finds: inspect does not load the model into it.
    """
    from ..analysis.stream import check_layers, checker_problems, read_graph
    from ..model.modelfile import load_model_bytes

    proto, source = load_model_bytes(model)
    problems = checker_problems(model, source)
    info = read_graph(proto, model, source, output=output_name, centre_classifier=not no_centring,
                      problems=problems)
    for p in problems:
        get_state().warn(p)
    rows = [{"index": L.index, "name": L.name, "op": L.op, "weight_shape": list(L.weight.shape), "units": L.units,
             "inputs_per_unit": int(L.weight.shape[1]), "inputs": L.inputs, "group": L.group,
             "activity_gate": L.gate, "classifier": L.classifier, "node": L.node or L.name,
             "input_activation": L.input_site.ops if L.input_site else None,
             "unit_activation": L.unit_site.ops if L.unit_site else None} for L in info.layers]
    skipped = [{"name": s.name, "op": s.op, "reason": s.reason} for s in info.skipped]
    if as_json:
        click.echo(json.dumps({"schema": "snr-inspect/1", "model": model,
                               "inputs": [{"name": i.name, "dims": i.dims, "layout": i.layout} for i in info.inputs],
                               "accuracy_output": info.accuracy_output, "layers": rows, "skipped": skipped},
                              indent=2))
    else:
        from .render import inspect_grids
        get_state().print_grids(inspect_grids(rows, skipped))
    check_layers(info, model)   # the same refusals as analyze (exit 3), after the listing
