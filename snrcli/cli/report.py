"""``snr report RUN... --html FILE``: one self-contained HTML page (logic in ``reports/pages.py``)."""

from __future__ import annotations

import click

from .base import CONTEXT, common_flags, get_state
from ..errors import UsageError
from ..safetext import printable


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN [RUN ...]")
@click.option("--html", "html_path", required=True, type=click.Path(), metavar="FILE",
              help="Write the page here (one file; refused if it exists, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing FILE.")
@click.option("--covariates", default=None, type=click.Path(dir_okay=False), metavar="CSV",
              help="CSV with a 'run' column (as snr correlate reads it), for --x.")
@click.option("--x", "x_column", default=None, metavar="COLUMN",
              help="Three or more runs: draw them along this numeric --covariates column (epoch, step).")
@click.option("--allow-different-settings", is_flag=True,
              help="Report runs whose min_level, min_activity, centring or data differ (warns).")
@common_flags
def report(runs: tuple[str, ...], html_path: str, force: bool, covariates: str | None, x_column: str | None,
           allow_different_settings: bool) -> None:
    """Write one self-contained HTML page about RUNs: one run, two side by side, or a trajectory.

    A RUN is a report JSON file (snr analyze --json), a run folder (snr analyze --out
    DIR; its units.csv gives the per-unit plots) or - (a report on stdin). Three or more
    runs are drawn in the order given, or along --x COLUMN of --covariates CSV. The page
    loads nothing from elsewhere and prints readably. Needs matplotlib (snrcli[plot]).

    \b
    Examples:
      snr report runs/a --html a.html
      snr report runs/base runs/new --html diff.html
      snr report runs/ep* --covariates epochs.csv --x epoch --html training.html
    """
    from ..reports.html import check_target, write_atomic
    from ..reports.plot import require_matplotlib

    state = get_state()
    if x_column and not covariates:
        raise UsageError("--x names a column of --covariates CSV; pass --covariates")
    if covariates and not x_column:
        raise UsageError("--covariates is read for --x COLUMN; pass --x")
    if x_column and len(runs) < 3:
        raise UsageError(f"--x draws three or more runs along a column; got {len(runs)} run(s)")
    check_target(html_path, force=force)
    require_matplotlib("snr report")

    from ..reports.pages import load_runs, render

    page_runs = load_runs(runs)
    if x_column:
        page_runs = _along(page_runs, covariates, x_column)
    text = render(page_runs, x_column=x_column, allow_different_settings=allow_different_settings, warn=state.warn)
    write_atomic(html_path, text)
    if not state.quiet:
        click.echo(printable(f"wrote {html_path}"), err=True)


def _along(page_runs, covariates: str, column: str):
    """The runs with their x from the covariates file, ordered by it (ties keep the order given)."""
    from ..reports.correlate import Run, aliases_for
    from ..reports.covariates import attach_covariates, covariate_column, read_covariates

    cov = read_covariates(covariates)
    if column not in cov.columns:
        raise UsageError(f"--x {column}: no such column in {covariates} "
                         f"(columns: {', '.join(cov.value_columns)})")
    family = [Run(report=p.report, label=p.label, source=p.source,
                  aliases=aliases_for(p.source, "run-folder" if p.kind == "run-folder" else "report"))
              for p in page_runs]
    attach_covariates(family, cov, warn=get_state().warn)
    for p, x in zip(page_runs, covariate_column(family, cov, column, "--x")):
        p.x = x
    return sorted(page_runs, key=lambda p: p.x)
