"""``snr report``: one self-contained HTML page for one run, two runs side by side, or a trajectory.

- ``load_runs(specs)`` reads reports (files, run folders, ``-``) and their per-unit figures.
- ``render(runs, ...)`` returns the page: one run, two (with the data of ``snr compare``),
  or three and more (trajectories, ``trajectory.py``) along the given order or a covariate.

No click here; matplotlib is needed (``snrcli[plot]``) and imported when figures are drawn.
"""

from __future__ import annotations

from typing import Callable

from ..errors import UsageError
from .compare import Run, compare_runs, unique_labels
from .files import STDIN, read_report
from .html import figure, page, tag
from .sections import (PageRun, analysed_one, analysed_two, compare_view, footer, layer_sections_one,
                       layer_sections_two, layer_table, layer_table_two, network_one, network_two, run_warnings)
from . import figures
from .units import load_units

Warn = Callable[[str], None]
PAIR_FIGURES = ["S_mean", "G_mean", "activity_mean", "S_mean_centred", "G_mean_centred"]
OVERVIEW_CAPTION = ("Per layer (top to bottom by index): the activity-weighted S and G, the classifier's centred "
                    "value as a diamond, the mean unit activity and the share of inputs kept. The bars of G show "
                    "which layers carry the network's G (G_total sums the layers' G, the classifier's centred).")


def load_runs(specs: list[str] | tuple[str, ...]) -> list[PageRun]:
    """Read every RUN (report file, run folder or ``-``) and its per-unit figures; labels made unique."""
    if sum(1 for s in specs if s == STDIN) > 1:
        raise UsageError("'-' (stdin) may be given only once")
    for s in specs:
        if s != STDIN and s.lower().endswith(".onnx"):
            raise UsageError(f"{s} is a model; snr report reads reports: analyse it first "
                             f"(snr analyze {s} --data FILE --out DIR) and pass DIR")
    runs = []
    for s in specs:
        r = read_report(s)
        units, where = load_units(r.report, r.path, r.kind, r.label)
        runs.append(PageRun(r.report, r.label, s, r.kind, r.path, r.sha256, units, where))
    shadow = [Run(p.report, p.label, p.source, p.kind) for p in runs]
    unique_labels(shadow)
    for p, s in zip(runs, shadow):
        p.label = s.label
    return runs


def one_run(run: PageRun) -> str:
    overview = figures.layer_overview([(run.label, run.layers)])
    body = [
        tag("section", tag("h2", "What was analysed"), analysed_one(run), id="run"),
        tag("section", tag("h2", "Network figures"), network_one(run), id="network-figures"),
        tag("section", tag("h2", "Warnings"), run_warnings([run]), id="warnings"),
        tag("section", tag("h2", "Layers"), layer_table(run),
            figure(overview, "S, G, activity and kept inputs per layer", OVERVIEW_CAPTION), id="layer-figures"),
        tag("section", tag("h2", "Per layer"), layer_sections_one(run), id="per-layer"),
    ]
    nav = [("run", "Run"), ("network-figures", "Network"), ("warnings", "Warnings"), ("layer-figures", "Layers"),
           ("per-layer", "Per layer")]
    model = run.get("model.path") or run.label
    return page(f"snr report: {model}", f"one run \u00b7 {run.label}", nav, body, footer())


def two_runs(a: PageRun, b: PageRun, *, allow_different_settings: bool, warn: Warn | None) -> str:
    cmp = compare_runs(compare_view([a, b]), figures=PAIR_FIGURES,
                       allow_different_settings=allow_different_settings, warn=warn)
    overview = figures.layer_overview([(f"A: {a.label}", a.layers), (f"B: {b.label}", b.layers)])
    body = [
        tag("section", tag("h2", "What was analysed"), analysed_two(a, b), id="run"),
        tag("section", tag("h2", "Network figures"), network_two(cmp), id="network-figures"),
        tag("section", tag("h2", "Warnings"), run_warnings([a, b], cmp.warnings), id="warnings"),
        tag("section", tag("h2", "Layers"), layer_table_two(cmp),
            figure(overview, "S, G, activity and kept inputs per layer, A and B", OVERVIEW_CAPTION + " A above B."),
            id="layer-figures"),
        tag("section", tag("h2", "Per layer"), layer_sections_two(a, b), id="per-layer"),
    ]
    nav = [("run", "Runs"), ("network-figures", "Network"), ("warnings", "Warnings"), ("layer-figures", "Layers"),
           ("per-layer", "Per layer")]
    return page(f"snr report: A = {a.label}, B = {b.label}", "two runs side by side, deltas B-A", nav, body,
                footer())


def render(runs: list[PageRun], *, x_column: str | None = None, allow_different_settings: bool = False,
           warn: Warn | None = None) -> str:
    """The page for these runs (one, two, or three and more); ``x_column`` names the x values' source."""
    if not runs:
        raise UsageError("snr report needs at least one run")
    if len(runs) == 1:
        return one_run(runs[0])
    if len(runs) == 2:
        return two_runs(runs[0], runs[1], allow_different_settings=allow_different_settings, warn=warn)
    from .trajectory import trajectory
    return trajectory(runs, x_column=x_column, allow_different_settings=allow_different_settings, warn=warn)

