"""The ``snr compare`` and ``snr check`` click commands (logic in ``compare.py`` and ``check.py``).

``snrcli.cli`` registers both on the main group. Errors are raised as ``SnrError``
subclasses; the main group turns them into one stderr line and the exit code.
"""

from __future__ import annotations

import json
from typing import Any

import click
from click.core import ParameterSource

from .base import CONTEXT, common_flags, get_state
from .options import analysis_kwargs, analysis_options, run_analysis
from ..errors import UsageError
from ..safetext import printable


# --------------------------------------------------------------------------- rendering (grids, see render.py)


def _column_title(fig: str) -> str:
    from ..reports.compare import SHORT_NAMES
    return SHORT_NAMES.get(fig, fig)


def pair_grids(cmp) -> list[Any]:
    """The per-layer table and the network table of a two-run comparison."""
    from .render import Col, Grid, delta, number

    a, b = cmp.runs
    cols = [Col("#", key=True), Col("layer", numeric=False, key=True), Col("op", numeric=False, optional=True)]
    for f in cmp.figures:
        name = _column_title(f)
        cols += [Col(f"{name} A", group=f), Col(f"{name} B", group=f), Col(f"{name} B-A", group=f)]
    t = Grid(f"Layers: A = {a.label}, B = {b.label}", cols,
             caption="matched by layer index; B-A: green up, red down; - : null or absent")
    for row in cmp.layers:
        names = [n for n in (row["name_a"], row["name_b"]) if n is not None]
        if row["name_a"] is None:
            name = f"{row['name_b']} (B only)"
        elif row["name_b"] is None:
            name = f"{row['name_a']} (A only)"
        else:
            name = " | ".join(dict.fromkeys(str(n) for n in names))
        op = " | ".join(dict.fromkeys(str(o) for o in (row["op_a"], row["op_b"]) if o is not None))
        cells: list[Any] = [row["index"], name, op]
        for f in cmp.figures:
            tr = row["figures"][f]
            cells += [number(tr["a"]), number(tr["b"]), delta(tr["delta"])]
        t.add(*cells)

    net = Grid("Network (eq. 14)", [Col("figure", numeric=False, key=True), Col("A"), Col("B"), Col("B-A")])
    for k, tr in cmp.network.items():
        net.add(k, number(tr["a"]), number(tr["b"]), delta(tr["delta"]))
    acc = cmp.accuracy
    if acc["a"] is not None or acc["b"] is not None:
        net.add("accuracy", number(acc["a"]), number(acc["b"]), delta(acc["delta"]))
    for k, tr in (cmp.baselines or {}).items():
        net.add(k, number(tr["a"]), number(tr["b"]), delta(tr["delta"]))
    return [t, net]


def ranking_grid(cmp) -> Any:
    from ..reports.compare import NETWORK_KEYS
    from .render import Col, Grid, number

    order = "lowest first" if cmp.ascending else "highest first"
    extra = cmp.rank_by not in {f"network.{k}" for k in NETWORK_KEYS} and cmp.rank_by != "accuracy"
    cols = [Col("rank", key=True), Col("run", numeric=False, key=True)]
    if extra:
        cols.append(Col(cmp.rank_by))
    cols += [Col(k) for k in NETWORK_KEYS] + [Col("accuracy")]
    t = Grid(f"Runs ranked by {cmp.rank_by} ({order}; null last)", cols)
    for row in cmp.ranking:
        cells = [number(row["rank"]), row["label"]]
        if extra:
            cells.append(number(row["value"]))
        cells += [number(row["network"][k]) for k in NETWORK_KEYS] + [number(row["accuracy"])]
        t.add(*cells)
    return t


# --------------------------------------------------------------------------- compare


def _is_model(spec: str) -> bool:
    return spec.lower().endswith(".onnx")


def _explicit(ctx: click.Context, name: str) -> bool:
    src = ctx.get_parameter_source(name)
    return src is not None and src not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN_A RUN_B [RUN_C ...]")
@click.option("--data", "data", default=None, type=click.Path(dir_okay=False),
              help="Data file for RUNs given as .onnx models, analysed on the fly with the settings below.")
@click.option("--figures", "figures_text", default="S,G,activity", show_default=True, metavar="F[,F...]",
              help="Layer figures to compare: S, G, S_u, G_u, activity, S_c, G_c or full keys (S_mean, ...).")
@click.option("--rank-by", default="G_total", show_default=True, metavar="PATH",
              help="Rank runs by G_total, G_hidden, G_final or any report path "
                   "(accuracy, layers[2].G_mean: layer 2; positions count from 1).")
@click.option("--ascending", is_flag=True, help="Rank the lowest value first.")
@click.option("--allow-different-settings", is_flag=True,
              help="Compare runs whose min_level, min_activity, centring or data differ (warns).")
@click.option("--json", "as_json", is_flag=True, help="Print the snr-compare/1 JSON on stdout instead of tables.")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the per-layer table (two runs) or the ranking (three or more) as CSV.")
@analysis_options
@common_flags
def compare(runs: tuple[str, ...], data: str | None, figures_text: str, rank_by: str, ascending: bool,
            allow_different_settings: bool, as_json: bool, csv_path: str | None, **kw: Any) -> None:
    """Compare runs: two layer by layer with deltas (B-A), three or more ranked.

    A RUN is a report JSON file, a run folder written by `snr analyze --out`, a folder of
    those (each *.json report and run folder inside, sorted), `-` (a report on stdin), or
    with --data an .onnx model analysed on the fly.

    \b
    Examples:
      snr compare runs/a runs/b
      snr compare a.onnx b.onnx --data test.npz --figures S,G,G_c
      snr compare runs/* --rank-by accuracy --json
    """
    from ..reports.compare import Run, compare_runs, parse_figures, rank_path, unique_labels
    from ..reports.files import STDIN, clean, expand_runs, read_report
    from ..reports.outfiles import check_output_file, write_text

    ctx = click.get_current_context()
    state = get_state()
    runs = tuple(expand_runs(runs))
    if len(runs) < 2:
        raise UsageError(f"compare needs at least two runs (got {len(runs)}): RUN_A RUN_B [RUN_C ...]")
    if sum(1 for r in runs if r == STDIN) > 1:
        raise UsageError("'-' (stdin) may be given only once")
    figures = parse_figures(figures_text)
    path = rank_path(rank_by)
    if csv_path:
        check_output_file(csv_path, "--csv")
    models = [r for r in runs if r != STDIN and _is_model(r)]
    if models and not data:
        raise UsageError(f"{models[0]} is a model: pass --data FILE to analyse it on the fly, "
                         "or give its report (snr analyze --out DIR)")
    if data and not models:
        raise UsageError("--data is only used to analyse .onnx runs, and no RUN is an .onnx model")
    if not models:
        # kw holds exactly the analysis options: they only matter for models analysed here
        given = [p for p in ctx.command.params if p.name in kw and _explicit(ctx, p.name)]
        if given:
            opt = given[0].opts[0]
            raise UsageError(f"{opt} only applies to .onnx runs analysed with --data; reports keep "
                             "the settings they were made with")
    settings = analysis_kwargs(kw)

    loaded: list[Run | None] = []
    for spec in runs:   # read every report before the (slow) analyses, so a typo fails fast
        if spec != STDIN and _is_model(spec):
            loaded.append(None)
            continue
        r = read_report(spec)
        loaded.append(Run(r.report, r.label, spec, r.kind, r.path, r.sha256))
    for i, spec in enumerate(runs):
        if loaded[i] is None:
            report = run_analysis(spec, data, dict(settings)).to_dict()
            loaded[i] = Run(report, spec, spec, "model", None, None)
    run_list = [r for r in loaded if r is not None]
    unique_labels(run_list)

    cmp = compare_runs(run_list, figures=figures, rank_by=path, ascending=ascending,
                       allow_different_settings=allow_different_settings, warn=state.warn)
    if csv_path:
        write_text(csv_path, cmp.to_csv(), "--csv")
    if as_json:
        click.echo(json.dumps(clean(cmp.to_dict()), indent=2, allow_nan=False))
    else:
        state.print_grids(pair_grids(cmp) if cmp.pair else [ranking_grid(cmp)])
    if csv_path and not state.quiet:
        click.echo(printable(f"wrote {csv_path}"), err=True)


# --------------------------------------------------------------------------- check


@click.command(context_settings=CONTEXT)
@click.argument("report")
@click.option("--require", "requires", multiple=True, metavar="'PATH OP NUMBER'",
              help="A condition, e.g. 'network.G_total >= 2.5' (OP: >= > <= < == !=). Repeatable.")
@click.option("--baseline", default=None, metavar="BASE",
              help="Report (file, run folder or -) that --max-drop measures drops from.")
@click.option("--max-drop", "max_drops", multiple=True, metavar="PATH=AMOUNT",
              help="Fail when BASE - REPORT exceeds AMOUNT (0.1) or AMOUNT% of |BASE| (5%). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the snr-check/1 outcome as JSON instead of lines.")
@common_flags
def check(report: str, requires: tuple[str, ...], baseline: str | None, max_drops: tuple[str, ...],
          as_json: bool) -> None:
    """Check conditions on REPORT (a report file, a run folder or - for stdin); exit 1 if any fails.

    PATH is a dotted path into the report: network.G_total, accuracy, layers[1].S_mean
    ([i] counts from 1: layers[i] is the layer with index i; layers[-1] is the last layer).

    \b
    Examples:
      snr check run --require 'network.G_total >= 2.5' --require 'accuracy > 0.9'
      snr check run --baseline base.json --max-drop network.G_total=5%
      snr analyze m.onnx --data d.npz --json | snr check - --require 'network.G_total > 0'
    """
    from ..reports.check import parse_max_drop, parse_requirement, run_checks
    from ..reports.compare import Run, check_settings
    from ..reports.files import STDIN, clean, read_report

    state = get_state()
    if not requires and not max_drops:
        raise UsageError("nothing to check: give at least one --require 'PATH OP NUMBER' "
                         "or --baseline BASE with --max-drop PATH=AMOUNT")
    if max_drops and baseline is None:
        raise UsageError("--max-drop needs --baseline BASE (the report the drop is measured from)")
    if baseline is not None and not max_drops:
        raise UsageError("--baseline is only used by --max-drop PATH=AMOUNT; give at least one")
    if baseline == STDIN and report == STDIN:
        raise UsageError("'-' (stdin) may be given only once: REPORT and --baseline cannot both be -")
    reqs = [parse_requirement(e) for e in requires]
    drops = [parse_max_drop(e) for e in max_drops]
    current = read_report(report)
    base = read_report(baseline) if baseline is not None else None
    if base is not None:
        runs = [Run(base.report, f"the baseline {base.label}", baseline, base.kind),
                Run(current.report, current.label, report, current.kind)]
        check_settings(runs, allow=True, warn=state.warn, note="drops may reflect that rather than the model")
    result = run_checks(current.report, current.label, reqs, baseline=None if base is None else base.report,
                        baseline_label=None if base is None else base.label, max_drops=drops)
    if as_json:
        click.echo(json.dumps(clean(result.to_dict()), indent=2, allow_nan=False))
    else:
        for line in result.lines():
            click.echo(printable(line))
    click.get_current_context().exit(result.exit_code)
