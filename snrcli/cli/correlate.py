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


def _load_runs(specs: tuple[str, ...], data: str | None, settings: dict[str, Any]):
    """Reports and run folders are read; ``.onnx`` models are analysed on ``data`` (progress bar over models)."""
    from ..reports.correlate import Run, aliases_for, load_report_file

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
            report, label, kind = load_report_file(spec)
            runs[k] = Run(report=report, label=label, aliases=aliases_for(spec, kind), source=spec, kind=kind)
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
    """Two bars on stderr (models, then items of the current model), only on a terminal and without --quiet."""

    def __init__(self, state, total: int) -> None:
        self.state, self.total, self.bar = state, total, None

    def __enter__(self):
        console = self.state.err
        if self.state.quiet or not console.is_terminal:
            return (lambda name: None), None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
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

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _table(result) -> Any:
    from rich.table import Table

    from .render import cell, fmt

    def p(v):
        if v is None:
            return "-"
        return f"{v:.2g}" if v < 0.001 else f"{v:.3f}"

    def num(v, digits=3):
        return fmt(v, digits)

    ctrl = result.control
    title = (f"Correlation of each figure with {result.target} over {len(result.runs)} runs"
             + (f" (partial: controlling for {ctrl})" if ctrl else ""))
    t = Table(title=printable(title), title_justify="left")
    t.add_column("figure")
    for col in ("rho", "p", "tau", "p", "r", "r^2", "n"):
        t.add_column(col, justify="right")
    if ctrl:
        for col in (printable(f"rho | {ctrl}"), "p", "n"):
            t.add_column(col, justify="right")
    last_group = None
    for row in result.rows:
        if last_group is not None and row["group"] != last_group and row["group"] in ("network", "baseline"):
            t.add_section()
        last_group = row["group"]
        cells = [cell(row["label"]), cell(num(row["spearman_rho"])), cell(p(row["spearman_p"])),
                 cell(num(row["kendall_tau"])), cell(p(row["kendall_p"])), cell(num(row["pearson_r"])),
                 cell(num(row["r2"])), cell(str(row["n"]))]
        if ctrl:
            cells += [cell(num(row.get("partial_rho"))), cell(p(row.get("partial_p"))),
                      cell(str(row.get("partial_n", "")))]
        t.add_row(*cells)
    return t


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--data", "data", type=click.Path(dir_okay=False), default=None,
              help="Data file for RUNs that are .onnx models (analysed on the fly with the options below).")
@click.option("--covariates", "covariates", type=click.Path(dir_okay=False), default=None,
              help="CSV with a 'run' column (report path, run-folder name or model file stem) and numeric columns.")
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
              help="Also draw one scatter panel per figure into FILE.png (needs snrcli[plot]).")
@analysis_options
@common_flags
def correlate(runs: tuple[str, ...], data: str | None, covariates: str | None, target: str | None,
              control: str | None, allow_different_settings: bool, as_json: bool, csv_path: str | None,
              plot_path: str | None, **kw: Any) -> None:
    """Correlate every figure of a family of RUNs with accuracy (Spearman, Kendall, Pearson).

    RUNs are reports (`snr analyze --json`), run folders (`--out DIR`) or .onnx models
    with --data; at least 3, analysed with the same settings and data. A figure that is
    null in a run leaves that run out of its row. Correlation over a handful of runs
    says little, and whether these figures predict more than the baselines do is open.

    \b
    Examples:
      snr correlate runs/*/
      snr correlate models/*.onnx --data test.npz --plot corr.png
      snr correlate runs/*/ --covariates runs.csv --target gap --control epochs
    """
    from ..reports.correlate import MIN_RUNS, attach_covariates, correlate_runs, covariate_column, read_covariates, \
        unique_labels

    state = get_state()
    settings = analysis_kwargs(kw)
    if target == "accuracy":
        target = None
    if (target or control) and not covariates:
        raise UsageError(f"--{'target' if target else 'control'} names a column of --covariates FILE; "
                         "pass --covariates")
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
    cov = read_covariates(covariates) if covariates else None
    if cov is not None:
        for flag, col in (("--target", target), ("--control", control)):
            if col and col not in cov.columns:
                raise UsageError(f"{flag} {col}: no such column in {covariates} "
                                 f"(columns: {', '.join(c for c in cov.columns if c != 'run')})")
    family = _load_runs(runs, data, settings)
    unique_labels(family)
    target_values = control_values = None
    if cov is not None:
        attach_covariates(family, cov)
        if target:
            target_values = covariate_column(family, cov, target, "--target")
        if control:
            control_values = covariate_column(family, cov, control, "--control")
    result = correlate_runs(family, target=target or "accuracy", target_values=target_values, control=control,
                            control_values=control_values, allow_different_settings=allow_different_settings,
                            warn=state.warn)
    if csv_path:
        write_text(csv_path, result.to_csv(), "--csv")
    if plot_path:
        from ..reports.plot import scatter_panels
        scatter_panels(result, plot_path)
    if as_json:
        click.echo(result.to_json())
        return
    state.out.print(_table(result))
    if not state.quiet:
        written = [p for p in (csv_path, plot_path) if p]
        if written:
            click.echo(printable(f"wrote {', '.join(written)}"), err=True)
