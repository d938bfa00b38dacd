"""The parts of an ``snr report`` page that one run and two runs share: what was analysed, the
network figures, warnings, the per-layer table and each layer's section.

Every value goes through ``html.tag``/``esc``: names, paths and warnings come from files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import __version__
from . import figures
from .compare import Run
from .html import Html, figure, fmt, key_values, note, num_cell, number, table, tag
from .units import HOW_TO_GET, Units

EXPLAIN = ("S (eq. 10) says how closely each unit's weights point along the direction that maximises its "
           "signal-to-noise ratio, and G (eq. 13) also grows with how evenly that signal is spread over the "
           "unit's inputs; both are measured from the trained weights on the data above, without labels. They "
           "describe the network and are not a quality score: whether they predict accuracy better than the "
           "label-free baselines shown beside them is an open question.")

NETWORK_ROWS = (
    ("network", "G_hidden", "sum of layer G over every layer but the classifier (eq. 14)"),
    ("network", "G_final", "the classifier's G after softmax centring (eq. 18), or the last layer's G"),
    ("network", "G_total", "G_hidden + G_final"),
    ("", "accuracy", "top-1 accuracy on the labelled items"),
    ("baselines", "mean_max_softmax", "mean largest softmax probability (label-free)"),
    ("baselines", "sum_squared_weights", "sum of squared weights of all layers (label-free)"),
    ("baselines", "log_spectral_norm_product", "sum over layers of log largest singular value (label-free)"),
)

# the per-layer table: (header, layer key, digits)
LAYER_COLUMNS = (("activity", "activity_mean", 3), ("S", "S_mean", 4), ("G", "G_mean", 4),
                 ("S_u", "S_mean_unweighted", 4), ("G_u", "G_mean_unweighted", 4),
                 ("S_c", "S_mean_centred", 4), ("G_c", "G_mean_centred", 4))
LAYER_LEGEND = ("S, G: activity-weighted means of the units' figures (eq. 10, 13); S_u, G_u: plain means; "
                "S_c, G_c: the classifier after softmax centring (eq. 18); kept: inputs kept / inputs; "
                "undefined: units without figures (below); - : null.")


@dataclass
class PageRun:
    """One report on the page, with its per-unit figures when it has them."""

    report: dict[str, Any]
    label: str
    source: str
    kind: str
    path: str | None
    sha256: str | None
    units: Units | None
    units_from: str            # the file the units came from, or why there are none
    x: float | None = None

    def get(self, dotted: str) -> Any:
        cur: Any = self.report
        for part in dotted.split("."):
            if not isinstance(cur, dict):
                return None
            cur = cur.get(part)
        return cur

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [L for L in self.report.get("layers") or [] if isinstance(L, dict)]


def compare_view(runs: list[PageRun]) -> list[Run]:
    """The runs as ``snr compare`` sees them."""
    return [Run(p.report, p.label, p.source, p.kind, p.path, p.sha256) for p in runs]


def _code(v: Any) -> Html:
    return tag("span", "-" if v is None else v, class_="mono")


def _list(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x, 6) for x in v)
    return fmt(v, 6)


def _labels(run: PageRun) -> str:
    labels, labelled = run.get("data.labels"), run.get("labelled")
    if not labels:
        return "none (no accuracy)"
    return f"{labels}, {labelled} scored" if labelled is not None else str(labels)


def analysed_rows(run: PageRun) -> list[tuple[str, Any]]:
    """(name, value) rows saying what was analysed and how; values are text or ``Html``."""
    s = run.get("settings")
    s = s if isinstance(s, dict) else {}
    pre = [f"{k} {_list(s.get(k))}" for k in ("scale", "mean", "std") if s.get(k) is not None]
    if s.get("layout"):
        pre.append(f"layout {s['layout']}")
    rows: list[tuple[str, Any]] = [
        ("model", _code(run.get("model.path"))),
        ("model sha256", _code(run.get("model.sha256"))),
        ("data", _code(run.get("data.path"))),
        ("data sha256", _code(run.get("data.sha256"))),
        ("items", fmt(run.get("data.samples"))),
        ("labels", _labels(run)),
        ("min_level / min_activity", f"{fmt(s.get('min_level'), 4)} / {fmt(s.get('min_activity'), 4)}"),
        ("softmax centring", "on" if s.get("centre_classifier") else "off"),
        ("precision", s.get("precision") or "-"),
        ("preprocessing", "; ".join(pre) or "none"),
        ("limit / batch size", f"{fmt(s.get('limit'))} / {fmt(s.get('batch_size'))}"),
    ]
    if s.get("noise_model") is not None:
        rows.append(("noise model", s.get("noise_model")))
    if run.get("data.dropped_nonfinite"):
        rows.append(("items dropped (NaN/Inf)", fmt(run.get("data.dropped_nonfinite"))))
    rows += [
        ("snr version", run.get("tool.version") or "-"),
        ("analysed at", run.get("meta.timestamp") or "-"),
        ("command", _code(run.get("meta.command"))),
        ("report", _code(run.label)),
        ("per-unit figures", run.units_from if run.units is None else _code(run.units_from)),
    ]
    return rows


def analysed_one(run: PageRun) -> Html:
    """Two tables side by side: the files, then how they were analysed."""
    rows = analysed_rows(run)
    half = 6
    return tag("div", key_values(rows[:half]), key_values(rows[half:]), class_="columns")


def analysed_two(a: PageRun, b: PageRun) -> Html:
    ra, rb = analysed_rows(a), analysed_rows(b)
    rows, attrs = [], []
    for (name, va), (_, vb) in zip(ra, rb):
        rows.append([tag("th", name, scope="row"), tag("td", va), tag("td", vb)])
        attrs.append({"class_": "differs"} if str(va) != str(vb) and name not in ("report", "per-unit figures",
                                                                                 "analysed at") else {})
    return table(["", "A", "B"], rows, class_="kv", row_attrs=attrs,
                 caption="rows that differ between the runs are shaded")


def network_one(run: PageRun) -> Html:
    rows = []
    baselines = run.get("baselines")
    baselines = baselines if isinstance(baselines, dict) else {}
    for group, key, what in NETWORK_ROWS:
        v = run.get(f"{group}.{key}" if group else key)
        if group == "baselines" and v is None and key not in baselines:
            continue
        extra = f" ({run.get('labelled')} items)" if key == "accuracy" and v is not None else ""
        rows.append([tag("th", key, scope="row"), num_cell(v), tag("td", what + extra)])
    return tag("p", EXPLAIN, class_="explain") + table(["figure", "value", "what it is"], rows, id_="network")


def network_two(cmp) -> Html:
    triples = [(k, cmp.network[k]) for k in ("G_hidden", "G_final", "G_total")]
    triples.append(("accuracy", cmp.accuracy))
    triples += list((cmp.baselines or {}).items())
    rows = [[tag("th", k, scope="row"), num_cell(t["a"]), num_cell(t["b"]), num_cell(t["delta"], delta=True)]
            for k, t in triples]
    return tag("p", EXPLAIN, class_="explain") + table(["figure", "A", "B", "B-A"], rows, id_="network")


def warnings_block(items: list[tuple[str, str]], skipped: list[tuple[str, dict[str, Any]]]) -> Html:
    """Warnings (``(who, text)``; who may be empty) and the weighted ops that were skipped."""
    parts = []
    if items:
        parts.append(tag("ul", *[tag("li", tag("strong", who + ": ") if who else "", text)
                                 for who, text in items], class_="warnings"))
    else:
        parts.append(tag("p", "No warnings."))
    if skipped:
        rows = [[who, tag("td", s.get("name"), class_="name"), s.get("op"), s.get("reason")] for who, s in skipped]
        parts.append(tag("h3", "Weighted ops not analysed"))
        parts.append(table(["run", "name", "op", "reason"], rows, id_="skipped"))
    return Html("".join(parts))


def footer() -> Html:
    return tag("p", f"Made by snr {__version__} (snr report). Self-contained: no script, nothing loaded from "
                    "elsewhere. Figures follow Norridge (2021), \u201cThink Global, Act Local: Relating DNN "
                    "generalisation and node-level SNR\u201d; equation numbers are the paper's.")


def run_warnings(runs: list[PageRun], extra: list[str] = ()) -> Html:
    many = len(runs) > 1
    items = [("", w) for w in extra]
    for r in runs:
        items += [(r.label if many else "", str(w)) for w in _as_list(r.report.get("warnings"))]
    skipped = [(r.label, s) for r in runs for s in _as_list(r.report.get("skipped")) if isinstance(s, dict)]
    return warnings_block(items, skipped)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def undefined_text(L: dict[str, Any]) -> str:
    n = L.get("undefined_units")
    reasons = L.get("undefined_reasons") or {}
    if not n:
        return "none"
    why = "; ".join(f"{r}: {c}" for r, c in reasons.items()) if isinstance(reasons, dict) else ""
    return f"{n} ({why})" if why else str(n)


def kept_text(L: dict[str, Any]) -> str:
    kept, total = number(L.get("inputs_kept")), number(L.get("inputs"))
    if kept is None or total is None:
        return "-"
    return f"{fmt(kept)} of {fmt(total)} ({fmt(total - kept)} dropped)"


def layer_table(run: PageRun) -> Html:
    rows, attrs = [], []
    for L in run.layers:
        name = [L.get("name"), tag("span", " (classifier)", class_="note")] if L.get("classifier") else [L.get("name")]
        cells = [num_cell(L.get("index")), tag("td", tag("a", *name, href=f"#layer-{_anchor(L)}"), class_="name"),
                 L.get("op"), num_cell(L.get("units")),
                 tag("td", f"{fmt(L.get('inputs_kept'))}/{fmt(L.get('inputs'))}", class_="num"),
                 num_cell(L.get("samples"))]
        cells += [num_cell(L.get(key), digits) for _, key, digits in LAYER_COLUMNS]
        cells.append(num_cell(L.get("undefined_units")))
        rows.append(cells)
        attrs.append({"data_layer": L.get("index"), "class_": "classifier" if L.get("classifier") else None})
    head = ["#", "layer", "op", "units", "kept", "samples"] + [h for h, _, _ in LAYER_COLUMNS] + ["undefined"]
    return table(head, rows, id_="layers", row_attrs=attrs, caption=LAYER_LEGEND)


def _anchor(L: dict[str, Any]) -> str:
    idx = L.get("index")
    return str(idx) if isinstance(idx, int) and not isinstance(idx, bool) else "x"


def layer_facts(L: dict[str, Any]) -> list[tuple[str, Any]]:
    shape = L.get("weight_shape")
    return [("units", fmt(L.get("units"))), ("inputs kept", kept_text(L)),
            ("samples", fmt(L.get("samples"))), ("unit activity (mean)", fmt(L.get("activity_mean"), 3)),
            ("activity read from", _code(L.get("activity_gate") or "none (activity 1)")),
            ("weight shape", "x".join(str(d) for d in shape) if isinstance(shape, list) else "-"),
            ("undefined units", undefined_text(L))]


def layer_heading(L: dict[str, Any]) -> Html:
    extra = " \u00b7 classifier" if L.get("classifier") else ""
    return tag("h3", f"{L.get('index')} \u00b7 ", L.get("name"), f" ({L.get('op')}{extra})",
               id=f"layer-{_anchor(L)}")


def _distribution_caption(L: dict[str, Any]) -> str:
    text = ("Histograms over the layer's units: S and G weighted by each unit's activity (how often it is on), "
            "so their weighted means are the layer's S and G (line); unit activity unweighted, its mean marked.")
    if L.get("classifier"):
        text += " Centred: the classifier's units after softmax centring (eq. 18), every unit weight 1."
    return text


def layer_sections_one(run: PageRun) -> Html:
    parts = []
    if run.units is None:
        parts.append(note(f"No per-unit figures: {run.units_from}. The layer figures above are complete; "
                          f"{HOW_TO_GET}."))
    for L in run.layers:
        body = [key_values(layer_facts(L))]
        lu = run.units.get(L.get("index")) if run.units else None
        if lu is not None:
            uri = figures.unit_distributions([(run.label, L, lu)])
            body.append(figure(uri, _alt(L), _distribution_caption(L)))
        parts.append(tag("section", layer_heading(L), tag("div", *body, class_="layer-body"), class_="layer"))
    return Html("".join(parts))


def _alt(L: dict[str, Any]) -> str:
    return f"distributions of unit S, G and activity in layer {L.get('index')} ({L.get('name')})"


def layer_sections_two(a: PageRun, b: PageRun) -> Html:
    la = {L.get("index"): L for L in a.layers}
    lb = {L.get("index"): L for L in b.layers}
    parts = []
    missing = [f"{side} ({r.label}): {r.units_from}" for side, r in (("A", a), ("B", b)) if r.units is None]
    if missing:
        parts.append(note("No per-unit figures for " + "; ".join(missing) + f". {HOW_TO_GET[0].upper()}"
                          f"{HOW_TO_GET[1:]}."))
    for idx in sorted(set(la) | set(lb), key=lambda i: (not isinstance(i, int), i if isinstance(i, int) else 0)):
        A, B = la.get(idx), lb.get(idx)
        first = A if A is not None else B
        facts_a = layer_facts(A) if A is not None else [(k, "(not in A)") for k, _ in layer_facts(B)]
        facts_b = layer_facts(B) if B is not None else [(k, "(not in B)") for k, _ in layer_facts(A)]
        rows = [[tag("th", k, scope="row"), tag("td", va), tag("td", vb)] for (k, va), (_, vb) in zip(facts_a, facts_b)]
        heading = layer_heading(first)
        if A is not None and B is not None and A.get("name") != B.get("name"):
            heading = tag("h3", f"{idx} \u00b7 A: ", A.get("name"), " \u00b7 B: ", B.get("name"), id=f"layer-{idx}")
        body = [table(["", "A", "B"], rows, class_="kv")]
        sides = [(r.label, L, r.units.get(idx)) for r, L in ((a, A), (b, B))
                 if L is not None and r.units is not None and r.units.get(idx) is not None]
        if sides:
            uri = figures.unit_distributions(sides)
            which = "A filled, B outlined; A's means solid, B's dashed. " if len(sides) == 2 else ""
            body.append(figure(uri, _alt(first), which + _distribution_caption(first)))
        parts.append(tag("section", heading, tag("div", *body, class_="layer-body"), class_="layer"))
    return Html("".join(parts))


def layer_table_two(cmp) -> Html:
    """The compare data: one row per layer index, A, B and B-A for each figure."""
    head = ["#", "layer", "op"]
    for f in cmp.figures:
        short = {"S_mean": "S", "G_mean": "G", "activity_mean": "activity", "S_mean_centred": "S_c",
                 "G_mean_centred": "G_c"}.get(f, f)
        head += [f"{short} A", f"{short} B", f"{short} B-A"]
    rows, attrs = [], []
    for row in cmp.layers:
        if row["name_a"] is None:
            name: list[Any] = [row["name_b"], tag("span", " (B only)", class_="note")]
        elif row["name_b"] is None:
            name = [row["name_a"], tag("span", " (A only)", class_="note")]
        elif row["name_a"] == row["name_b"]:
            name = [row["name_a"]]
        else:
            name = [row["name_a"], " | ", row["name_b"]]
        op = " | ".join(dict.fromkeys(str(o) for o in (row["op_a"], row["op_b"]) if o is not None))
        cells: list[Any] = [num_cell(row["index"]), tag("td", tag("a", *name, href=f"#layer-{row['index']}"),
                                                          class_="name"), op]
        for f in cmp.figures:
            t = row["figures"][f]
            digits = 3 if f == "activity_mean" else 4
            cells += [num_cell(t["a"], digits), num_cell(t["b"], digits), num_cell(t["delta"], digits, delta=True)]
        rows.append(cells)
        attrs.append({"data_layer": row["index"]})
    return table(head, rows, id_="layers", row_attrs=attrs,
                 caption="Layers matched by index; B-A: green up, red down; - : null or absent. " + LAYER_LEGEND)
