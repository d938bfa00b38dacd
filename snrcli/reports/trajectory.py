"""The ``snr report`` page for three and more runs: the figures along the runs (checkpoints of one
training run, say), in the order given or along a covariate (``--x epoch``).

Layers are matched across runs by their index, as ``snr correlate`` does.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import figures
from .compare import BASELINE_KEYS, NETWORK_KEYS, check_settings
from .html import Html, figure, fmt, key_values, note, num_cell, page, table, tag
from .sections import PageRun, analysed_rows, compare_view, footer, run_warnings
from .units import HOW_TO_GET

Warn = Callable[[str], None]
BASELINE_HEADS = {"mean_max_softmax": "mean max softmax", "sum_squared_weights": "sum squared weights",
                  "log_spectral_norm_product": "log spectral norm product"}
SAME_EVERYWHERE = ("data", "data sha256", "items", "labels", "min_level / min_activity", "softmax centring",
                   "precision", "preprocessing", "limit / batch size", "noise model", "snr version")


def _shared(runs: list[PageRun]) -> Html:
    """What was analysed: one value where every run agrees, else 'differs' (the runs table has details)."""
    per_run = [dict(analysed_rows(r)) for r in runs]
    rows: list[tuple[str, Any]] = []
    for name in SAME_EVERYWHERE:
        values = [p.get(name) for p in per_run]
        if all(v is None for v in values):
            continue
        distinct = list(dict.fromkeys(str(v) for v in values))
        if len(distinct) == 1:
            rows.append((name, values[0]))
        else:
            rows.append((name, tag("strong", f"differs between the runs ({len(distinct)} values)")))
    models = {r.get("model.sha256") for r in runs}
    rows.insert(0, ("models", f"{len(runs)} runs of {len(models)} distinct model file(s) (runs table)"))
    return key_values(rows)


def _runs_table(runs: list[PageRun], x_column: str | None) -> Html:
    head = ["#", "run"] + ([x_column] if x_column else []) + ["model sha256"] + list(NETWORK_KEYS) + \
        ["accuracy"] + [BASELINE_HEADS[k] for k in BASELINE_KEYS]
    rows, attrs = [], []
    for k, r in enumerate(runs, start=1):
        cells: list[Any] = [num_cell(k), tag("td", r.label, class_="name")]
        if x_column:
            cells.append(tag("td", f"{r.x:g}", class_="num", data_value=repr(r.x)))
        sha = r.get("model.sha256")
        cells.append(tag("td", tag("span", (sha or "-")[:12], class_="mono", title=sha), class_="nowrap"))
        cells += [num_cell(r.get(f"network.{key}")) for key in NETWORK_KEYS]
        cells.append(num_cell(r.get("accuracy")))
        cells += [num_cell(r.get(f"baselines.{key}")) for key in BASELINE_KEYS]
        rows.append(cells)
        attrs.append({"data_run": k})
    return table(head, rows, id_="runs", row_attrs=attrs,
                 caption="Network figures (eq. 14), accuracy and the label-free baselines of each run; "
                         "- : null. Model sha256: its first 12 hex digits.")


def _layer_index(runs: list[PageRun]) -> list[tuple[int, dict[str, Any], list[dict[str, Any] | None]]]:
    """(index, the first run's layer, that layer in each run or None), by layer index."""
    by: dict[int, list[dict[str, Any] | None]] = {}
    for k, r in enumerate(runs):
        for L in r.layers:
            idx = L.get("index")
            if isinstance(idx, int) and not isinstance(idx, bool):
                by.setdefault(idx, [None] * len(runs))[k] = L
    return [(idx, next(L for L in by[idx] if L is not None), by[idx]) for idx in sorted(by)]


def _layers_table(runs: list[PageRun], layers) -> Html:
    head = ["#", "layer", "op", "units"] + [f"G {k}" for k in range(1, len(runs) + 1)]
    rows, attrs = [], []
    for idx, first, per_run in layers:
        name: list[Any] = [first.get("name")]
        if first.get("classifier"):
            name.append(tag("span", " (classifier)", class_="note"))
        cells: list[Any] = [num_cell(idx), tag("td", tag("a", *name, href=f"#layer-{idx}"), class_="name"),
                            first.get("op"), num_cell(first.get("units"))]
        cells += [num_cell(None if L is None else L.get("G_mean")) for L in per_run]
        rows.append(cells)
        attrs.append({"data_layer": idx})
    return table(head, rows, id_="layers", row_attrs=attrs,
                 caption="Each layer's G (activity-weighted mean, eq. 13) in each run; the columns are the runs "
                         "of the runs table, in its order. Layers are matched by index; - : null or absent.")


def _x_values(runs: list[PageRun], x_column: str | None) -> tuple[np.ndarray, str, bool]:
    if x_column:
        return np.array([r.x for r in runs], dtype=float), x_column, False
    return np.arange(1, len(runs) + 1, dtype=float), "run (in the order given)", True


def _layer_sections(runs: list[PageRun], layers, x: np.ndarray, xlabel: str, integer: bool) -> Html:
    have = [r.units is not None for r in runs]
    parts = []
    if not all(have):
        missing = [r.label for r, h in zip(runs, have) if not h]
        listed = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        what = "No run has" if not any(have) else f"{len(missing)} of {len(runs)} runs have no"
        parts.append(note(f"{what} per-unit figures ({listed}); "
                          + ("the spread of the units is drawn for the others. " if any(have) else "")
                          + f"{HOW_TO_GET[0].upper()}{HOW_TO_GET[1:]}."))
    for idx, first, per_run in layers:
        cls = ", classifier" if first.get("classifier") else ""
        what = f" ({first.get('op')}, {fmt(first.get('units'))} units{cls})"
        body = [tag("h3", f"{idx} \u00b7 ", first.get("name"), what, id=f"layer-{idx}")]
        if any(have):
            units = [None if r.units is None else r.units.get(idx) for r in runs]
            if any(u is not None for u in units):
                means = {"S": [None if L is None else L.get("S_mean") for L in per_run],
                         "G": [None if L is None else L.get("G_mean") for L in per_run]}
                uri = figures.trajectory_units(x, xlabel, integer, units, means)
                body.append(figure(uri, f"spread of unit S and G in layer {idx} along the runs",
                                   "The units' S and G in each run: median, 25-75% and 10-90% of the defined "
                                   "units (unweighted), and the layer's activity-weighted mean (dashed)."))
        parts.append(tag("section", *body, class_="layer"))
    return Html("".join(parts))


def trajectory(runs: list[PageRun], *, x_column: str | None, allow_different_settings: bool,
               warn: Warn | None) -> str:
    """The page for three and more runs (already in the order to draw)."""
    differ: list[str] = []

    def note_difference(msg: str) -> None:
        differ.append(msg)
        if warn:
            warn(msg)

    check_settings(compare_view(runs), allow_different_settings, note_difference,
                   note="reporting anyway (--allow-different-settings)")
    x, xlabel, integer = _x_values(runs, x_column)
    layers = _layer_index(runs)
    network = {k: [r.get(f"network.{k}") for r in runs] for k in NETWORK_KEYS}
    baselines = {k: [r.get(f"baselines.{k}") for r in runs] for k in BASELINE_KEYS}
    net_fig = figures.trajectory_network(x, xlabel, integer, network, [r.get("accuracy") for r in runs], baselines)
    layer_fig = figures.trajectory_layers(x, xlabel, integer, [
        (idx, str(first.get("name")), [None if L is None else L.get("G_mean") for L in per_run],
         [None if L is None else L.get("S_mean") for L in per_run]) for idx, first, per_run in layers])
    along = f"along {x_column}" if x_column else "in the order given"
    body = [
        tag("section", tag("h2", "What was analysed"), _shared(runs), _runs_table(runs, x_column), id="run"),
        tag("section", tag("h2", "Along the runs"),
            figure(net_fig, "network figures, accuracy and baselines along the runs",
                   "Network figures (G_hidden, G_final, G_total), accuracy with the mean max-softmax confidence, "
                   "and the weight baselines, " + along + ". The figures need no labels; accuracy does."),
            figure(layer_fig, "layer G and S along the runs",
                   "Each layer's activity-weighted G and S " + along + ", coloured from the first layer "
                   "(dark) to the last (light)."),
            id="network-figures"),
        tag("section", tag("h2", "Layers"), _layers_table(runs, layers), id="layer-figures"),
        tag("section", tag("h2", "Per layer"), _layer_sections(runs, layers, x, xlabel, integer), id="per-layer"),
        tag("section", tag("h2", "Warnings"), run_warnings(runs, differ), id="warnings"),
    ]
    nav = [("run", "Runs"), ("network-figures", "Trajectories"), ("layer-figures", "Layers"),
           ("per-layer", "Per layer"), ("warnings", "Warnings")]
    return page(f"snr report: {len(runs)} runs", f"trajectories {along}", nav, body, footer())
