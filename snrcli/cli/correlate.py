"""``snr correlate RUN...``: rank and linear correlation of every figure with accuracy over a family of runs.

Registered on the main group by ``snrcli.cli`` (``main.add_command(correlate)``).
The statistics live in ``snrcli.correlate``; this module reads the runs,
analyses models on the fly and prints or writes the table.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .base import CONTEXT, common_flags, get_state
from .options import analysis_kwargs, analysis_options
from ..errors import SnrError, UsageError
from ..safetext import printable


def _load_runs(specs: list[str], data: str | None, settings: dict[str, Any]):
    """Reports and run folders are read; ``.onnx`` models are analysed on ``data`` (progress bar over models).
    The same report or model given twice is refused before any analysis."""
    from ..reports.correlate import Run, aliases_for, check_distinct, load_run

    models = [s for s in specs if s.lower().endswith(".onnx") and not Path(s).is_dir()]
    if models and not data:
        raise UsageError(f"{models[0]} is a model: analysing models needs --data FILE "
                         "(or pass reports / run folders from `snr analyze --json` / `--out`)")
    state = get_state()
    if data and not models:
        state.warn("--data is used only for .onnx models; every RUN is a report, so it is ignored")
    runs: list[Run | None] = [None] * len(specs)
    for k, spec in enumerate(specs):
        if spec not in models:
            runs[k] = load_run(spec)
    check_distinct([r for r in runs if r is not None] + [Run({}, m, source=m, kind="model") for m in models])
    if models:
        from ..analysis.api import analyze

        command = shlex.join(["snr"] + sys.argv[1:])
        with _model_progress(state, len(models)) as (next_model, progress):
            for k, spec in enumerate(specs):
                if spec not in models:
                    continue
                if not Path(spec).is_file():
                    raise UsageError(f"{spec} does not exist")
                next_model(printable(Path(spec).name))
                try:
                    report = analyze(spec, data, progress=progress,
                                     warn=lambda m, s=spec: state.warn(f"{Path(s).name}: {m}"),
                                     command=command, **settings).to_dict()
                except SnrError as e:
                    raise type(e)(f"{spec}: {e}") from e
                runs[k] = Run(report=report, label=Path(spec).stem, aliases=aliases_for(spec, "model"),
                              source=spec, kind="model")
            next_model(None)
    return [r for r in runs if r is not None]


class _model_progress:
    """Progress on stderr unless --quiet: on a terminal two bars (models, then items of the current model,
    with the time left); otherwise plain lines per model (``render.LineProgress``)."""

    def __init__(self, state, total: int) -> None:
        self.state, self.total, self.bar, self.lines = state, total, None, None

    def __enter__(self):
        console = self.state.err
        if self.state.quiet:
            return (lambda name: None), None
        if not console.is_terminal:
            return self._lines(console)
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
                            transient=True)
        self.bar.__enter__()
        models = self.bar.add_task("models", total=self.total)
        items = self.bar.add_task("items", total=None)
        started = [0]

        def next_model(name: str | None) -> None:
            """Called before each model with its name, and once with None after the last."""
            self.bar.update(models, completed=started[0])
            started[0] += 1
            if name is not None:
                self.bar.update(items, completed=0, total=None, description=f"  {name}")

        def progress(done: int, total: int) -> None:
            self.bar.update(items, completed=done, total=total)

        return next_model, progress

    def _lines(self, console):
        from .render import LineProgress

        started = [0]

        def write(text: str) -> None:
            print(text, file=console.file, flush=True)

        def next_model(name: str | None) -> None:
            if self.lines is not None:
                self.lines.close()
                self.lines = None
            if name is not None:
                started[0] += 1
                self.lines = LineProgress(write, f"analysing {name} (model {started[0]} of {self.total})")

        def progress(done: int, total: int) -> None:
            if self.lines is not None:
                self.lines(done, total)

        return next_model, progress

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _p(v: float | None) -> str:
    """A p-value: three decimals, or two significant digits below 0.001."""
    if v is None:
        return "-"
    return f"{v:.2g}" if v < 0.001 else f"{v:.3f}"


def correlation_grid(result) -> Any:
    from .render import Col, Grid, number

    ctrl = result.control
    title = (f"Correlation of each figure with {result.target} over {len(result.runs)} runs"
             + (f"; partial Spearman controlling for {ctrl}" if ctrl else ""))
    cols = [Col("figure", numeric=False, key=True), Col("rho", group="rho"), Col("p", group="rho"),
            Col("tau", group="tau"), Col("p", group="tau"), Col("r", group="r"), Col("r^2", group="r"),
            Col("n", group="r")]
    caption = None
    if ctrl:
        cols += [Col(f"rho | {ctrl}", group="partial"), Col("p", group="partial"), Col("n", group="partial")]
        caption = (f"rho | {ctrl}: partial Spearman correlation controlling for {ctrl} (ranks of the figure and "
                   f"of {result.target} each regressed on the ranks of {ctrl}; Spearman's rho of the residuals; "
                   "p from Student's t with n - 3 degrees of freedom)")
    t = Grid(title, cols, caption=caption)
    last_group = None
    for row in result.rows:
        new_section = last_group is not None and row["group"] != last_group and row["group"] in ("network", "baseline")
        last_group = row["group"]
        cells = [row["label"], number(row["spearman_rho"]), _p(row["spearman_p"]), number(row["kendall_tau"]),
                 _p(row["kendall_p"]), number(row["pearson_r"]), number(row["r2"]), str(row["n"])]
        if ctrl:
            cells += [number(row.get("partial_rho")), _p(row.get("partial_p")), str(row.get("partial_n", ""))]
        t.add(*cells, section=new_section)
    return t


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--data", "data", type=click.Path(dir_okay=False), default=None,
              help="Data file for RUNs that are .onnx models (analysed on the fly with the options below).")
@click.option("--covariates", "covariates", type=click.Path(dir_okay=False), default=None,
              help="CSV with a column naming each run (report path, run-folder name or file stem) and numeric "
                   "columns; rows for runs not given are ignored.")
@click.option("--id-column", "id_column", default="run", show_default=True, metavar="NAME",
              help="The --covariates column that names the runs.")
@click.option("--target", "target", default=None, metavar="NAME",
              help="Correlate against this covariates column instead of accuracy.")
@click.option("--control", "control", default=None, metavar="NAME",
              help="Also report partial rank correlations controlling for this covariates column.")
@click.option("--allow-different-settings", is_flag=True,
              help="Correlate runs analysed with different settings or data (a warning instead of exit 2).")
@click.option("--json", "as_json", is_flag=True, help="Print the snr-correlate/1 JSON on stdout and nothing else.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as CSV to FILE.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also draw one scatter panel per figure into FILE.png (needs snrcli[plot]); with --control "
                   "each panel also gives the partial correlation.")
@click.option("--colour-by", "--color-by", "colour_by", default=None, metavar="NAME",
              help="Colour the --plot points by this --covariates column (default: the --control column).")
@analysis_options
@common_flags
def correlate(runs: tuple[str, ...], data: str | None, covariates: str | None, id_column: str, target: str | None,
              control: str | None, allow_different_settings: bool, as_json: bool, csv_path: str | None,
              plot_path: str | None, colour_by: str | None, **kw: Any) -> None:
    """Correlate every figure of a family of RUNs with accuracy (Spearman, Kendall, Pearson).

    RUNs are reports (`snr analyze --json`), run folders (`--out DIR`), folders of those
    (each *.json report and run folder inside, sorted) or .onnx models with --data; at
    least 3, each once, analysed with the same settings and data. A figure that is
    null in a run leaves that run out of its row. Correlation over a handful of runs
    says little, and whether these figures predict more than the baselines do is open.

    \b
    Examples:
      snr correlate runs/*/
      snr correlate models/*.onnx --data test.npz --plot corr.png
      snr correlate runs/ --covariates runs.csv --id-column name --target gap --control epochs
    """
    from ..reports.correlate import MIN_RUNS, correlate_runs, unique_labels
    from ..reports.covariates import attach_covariates, covariate_column, read_covariates
    from ..reports.files import expand_runs

    state = get_state()
    settings = analysis_kwargs(kw)
    if target == "accuracy":
        target = None
    for flag, given in (("--target", target), ("--control", control), ("--colour-by", colour_by)):
        if given and not covariates:
            raise UsageError(f"{flag} names a column of --covariates FILE; pass --covariates")
    if colour_by and not plot_path:
        raise UsageError("--colour-by colours the points of --plot FILE; pass --plot")
    runs = tuple(expand_runs(runs))
    if len(runs) < MIN_RUNS:
        raise UsageError(f"correlate needs at least {MIN_RUNS} runs, got {len(runs)}")
    from ..reports.outfiles import check_output_file, write_text

    for flag, path in (("--csv", csv_path), ("--plot", plot_path)):
        if path:
            check_output_file(path, flag)
    if plot_path:
        from ..reports.plot import plot_format, require_matplotlib
        require_matplotlib()
        plot_format(plot_path)
    cov = read_covariates(covariates, id_column) if covariates else None
    if cov is not None:
        for flag, col in (("--target", target), ("--control", control), ("--colour-by", colour_by)):
            if col and (col not in cov.columns or col == id_column):
                raise UsageError(f"{flag} {col}: no such column in {covariates} "
                                 f"(columns: {', '.join(cov.value_columns)})")
    family = _load_runs(list(runs), data, settings)
    unique_labels(family)
    target_values = control_values = None
    notes: list[str] = []
    if cov is not None:
        attach_covariates(family, cov, warn=lambda m: (notes.append(m), state.warn(m)))
        if target:
            target_values = covariate_column(family, cov, target, "--target")
        if control:
            control_values = covariate_column(family, cov, control, "--control")
    result = correlate_runs(family, target=target or "accuracy", target_values=target_values, control=control,
                            control_values=control_values, allow_different_settings=allow_different_settings,
                            warn=state.warn)
    result.warnings[:0] = notes
    if csv_path:
        write_text(csv_path, result.to_csv(), "--csv")
    if plot_path:
        from ..reports.covariates import covariate_labels
        from ..reports.plot import scatter_panels
        colour = colour_by or control
        scatter_panels(result, plot_path, colour_name=colour,
                       colours=covariate_labels(family, colour) if colour else None)
    if as_json:
        click.echo(result.to_json())
        return
    state.print_grids([correlation_grid(result)])
    if not state.quiet:
        written = [p for p in (csv_path, plot_path) if p]
        if written:
            click.echo(printable(f"wrote {', '.join(written)}"), err=True)
