"""``snr report``: one self-contained HTML page for one run, two runs side by side, or a trajectory.

- ``load_runs(specs)`` reads reports (files, run folders, ``-``) and their per-unit figures.
- ``render(runs, ...)`` returns the page: one run, two (with the data of ``snr compare``),
  or three and more (trajectories, ``trajectory.py``) along the given order or a covariate.

No click here; matplotlib is needed (``snrcli[plot]``) and imported when figures are drawn.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ReportError, UsageError
from .compare import (BASELINE_KEYS, NETWORK_KEYS, Comparison, Run, align_layers, check_settings, triple,
                      unique_labels)
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
        _check_indices(r.report, r.label)
        units, where = load_units(r.report, r.path, r.kind, r.label)
        runs.append(PageRun(r.report, r.label, s, r.kind, r.path, r.sha256, units, where))
    shadow = [Run(p.report, p.label, p.source, p.kind) for p in runs]
    unique_labels(shadow)
    for p, s in zip(runs, shadow):
        p.label = s.label
    return runs


def _check_indices(report: dict, label: str) -> None:
    """Every layer has its own whole-number ``index`` (pages link and match layers by it)."""
    seen = set()
    for pos, L in enumerate(report.get("layers") or [], start=1):
        idx = L.get("index")
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise ReportError(f"{label}: layers[{pos}] has no integer 'index'")
        if idx in seen:
            raise ReportError(f"{label}: two layers have index {idx}")
        seen.add(idx)


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


def pair_data(a: PageRun, b: PageRun, *, allow_different_settings: bool, warn: Warn | None) -> Comparison:
    """What ``snr compare A B`` computes (layers matched by index, deltas B-A), without its ranking."""
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    ra, rb = compare_view([a, b])
    diffs = check_settings([ra, rb], allow_different_settings, note)
    cmp = Comparison(runs=[ra, rb], figures=list(PAIR_FIGURES), rank_by="", ascending=False, ranking=[],
                     settings_differ=diffs, warnings=warnings)
    cmp.layers = align_layers(ra, rb, cmp.figures, note)
    cmp.network = {k: triple(a.get(f"network.{k}"), b.get(f"network.{k}")) for k in NETWORK_KEYS}
    cmp.accuracy = triple(a.get("accuracy"), b.get("accuracy"))
    ba, bb = a.get("baselines"), b.get("baselines")
    ba, bb = (ba if isinstance(ba, dict) else {}), (bb if isinstance(bb, dict) else {})
    cmp.baselines = {k: triple(ba.get(k), bb.get(k)) for k in BASELINE_KEYS if k in ba or k in bb}
    return cmp


def two_runs(a: PageRun, b: PageRun, *, allow_different_settings: bool, warn: Warn | None) -> str:
    cmp = pair_data(a, b, allow_different_settings=allow_different_settings, warn=warn)
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

