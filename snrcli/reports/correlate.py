"""``snr correlate``: how well each figure of a family of reports tracks accuracy (or another target).

Pure statistics over report dicts (schema ``snr-report/1``); no click, no rich.
The layout follows Tables 1 and 2 of Norridge (2021): one row per figure, with
Spearman's rho, Kendall's tau (each with its p-value), Pearson's r and r^2 and
the number of runs used.

- Figures: every layer's ``S_mean`` and ``G_mean`` (rows ``layers[i].S_mean``),
  the classifier's ``S_mean_centred`` / ``G_mean_centred``, ``network.G_hidden``,
  ``G_final``, ``G_total``, and the label-free ``baselines``.
- A run whose figure is null is dropped from that row only (``n`` says how many
  runs a row used). A row with fewer than 3 runs, or whose figure or target is
  constant over its runs, has null statistics and a warning.
- Partial rank correlation with one control variable z (``PARTIAL_METHOD``): the
  ranks of the figure and of the target are each regressed (least squares with
  intercept) on the ranks of z; ``partial_rho`` is Spearman's rho of the two
  residual vectors and ``partial_p`` its two-sided p-value from Student's t with
  n - 3 degrees of freedom (one more lost to the control).
- Layers are matched across runs by index; where their names differ (a network
  exported with and without dropout, say) one note says so and each row lists the
  names it used.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


from ..errors import UsageError
from .files import clean, lookup, read_report, setting
from .ranks import correlation_p, kendall, pearson, rankdata, spearman

SCHEMA = "snr-correlate/1"
MIN_RUNS = 3
# settings that decide the figures and must agree over the family (dotted paths into a report)
SHARED_KEYS = ("settings.min_level", "settings.min_activity", "settings.centre_classifier",
               "settings.noise_model", "data.sha256", "data.samples")
NETWORK_KEYS = ("G_hidden", "G_final", "G_total")
BASELINE_KEYS = ("mean_max_softmax", "sum_squared_weights", "log_spectral_norm_product")
STAT_KEYS = ("spearman_rho", "spearman_p", "kendall_tau", "kendall_p", "pearson_r", "r2", "n")
PARTIAL_KEYS = ("partial_rho", "partial_p", "partial_n")
PARTIAL_METHOD = ("partial Spearman: the ranks of the figure and of the target each regressed (least squares, "
                  "with intercept) on the ranks of the control; Spearman's rho of the two residuals, p from "
                  "Student's t with n - 3 degrees of freedom")

Warn = Callable[[str], None]


# --------------------------------------------------------------------------- statistics


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _null_stats(n: int) -> dict[str, Any]:
    return {"spearman_rho": None, "spearman_p": None, "kendall_tau": None, "kendall_p": None,
            "pearson_r": None, "r2": None, "n": n}


def _constant(a: Sequence[float]) -> bool:
    return all(v == a[0] for v in a)


def pair_stats(x: Sequence[float | None], y: Sequence[float | None]) -> tuple[dict[str, Any], str | None]:
    """Spearman, Kendall (tau-b) and Pearson of ``x`` against ``y`` over the pairs where both are present.

    Returns (statistics, why-null): the second item says why the statistics are null, or is None.
    """
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if a is not None and b is not None
             and math.isfinite(float(a)) and math.isfinite(float(b))]
    n = len(pairs)
    if n < MIN_RUNS:
        return _null_stats(n), f"only {n} run(s) have this figure (at least {MIN_RUNS} needed)"
    xa = [p[0] for p in pairs]
    ya = [p[1] for p in pairs]
    if _constant(xa):
        return _null_stats(n), f"the figure is constant ({xa[0]:.6g}) over its {n} runs"
    if _constant(ya):
        return _null_stats(n), f"the target is constant ({ya[0]:.6g}) over these {n} runs"
    rho, rho_p = spearman(xa, ya)
    tau, tau_p = kendall(xa, ya)
    r = _finite(pearson(xa, ya))
    return {"spearman_rho": _finite(rho), "spearman_p": _finite(rho_p), "kendall_tau": _finite(tau),
            "kendall_p": _finite(tau_p), "pearson_r": r, "r2": None if r is None else r * r, "n": n}, None


def rank_residuals(values: Sequence[float], control: Sequence[float]) -> list[float]:
    """Residuals of the (average) ranks of ``values`` after least-squares regression on the ranks of ``control``."""
    rv = rankdata(values)
    rc = rankdata(control)
    mv, mc = math.fsum(rv) / len(rv), math.fsum(rc) / len(rc)
    rv = [v - mv for v in rv]
    rc = [c - mc for c in rc]
    slope = math.fsum(v * c for v, c in zip(rv, rc)) / math.fsum(c * c for c in rc)
    return [v - slope * c for v, c in zip(rv, rc)]


def partial_stats(x: Sequence[float | None], y: Sequence[float | None],
                  z: Sequence[float | None]) -> tuple[dict[str, Any], str | None]:
    """Partial Spearman rho of x and y controlling for z (module docstring), with its p-value and n."""
    triples = [(float(a), float(b), float(c)) for a, b, c in zip(x, y, z)
               if a is not None and b is not None and c is not None
               and all(math.isfinite(float(v)) for v in (a, b, c))]
    n = len(triples)
    null = {"partial_rho": None, "partial_p": None, "partial_n": n}
    if n < MIN_RUNS + 1:
        return null, f"partial correlation needs at least {MIN_RUNS + 1} runs, {n} have the figure"
    xa, ya, za = ([t[k] for t in triples] for k in range(3))
    if _constant(za):
        return null, "the control is constant over the runs"
    if _constant(xa) or _constant(ya):
        return null, None  # already said by pair_stats
    ex, ey = rank_residuals(xa, za), rank_residuals(ya, za)
    if _constant([round(v, 12) for v in ex]) or _constant([round(v, 12) for v in ey]):
        return null, "the control explains the ranks of one side completely (constant residuals)"
    rho = spearman(ex, ey)[0]
    p = correlation_p(rho, n - 3)
    return {"partial_rho": _finite(rho), "partial_p": _finite(p), "partial_n": n}, None


# --------------------------------------------------------------------------- runs and figures


@dataclass
class Run:
    """One member of the family: a report dict and how the user named it."""

    report: dict[str, Any]
    label: str                         # shown in tables and plots
    aliases: tuple[str, ...] = ()      # names a covariates row may use for it
    source: str = ""                   # the path the user gave
    kind: str = "report"               # "report", "run-folder" or "model"
    covariates: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None          # of the report bytes read (None for a model analysed on the fly)


def load_report_file(spec: str) -> tuple[dict[str, Any], str, str]:
    """A report file, a run folder or ``-`` (stdin) -> (dict, label, kind); run folders are labelled by name."""
    run = load_run(spec)
    return run.report, run.label, run.kind


def load_run(spec: str) -> Run:
    """A report file, a run folder or ``-`` (stdin) as a ``Run``; run folders are labelled by name."""
    loaded = read_report(spec)
    kind = "run-folder" if loaded.kind == "run-folder" else "report"
    label = Path(spec).resolve().name if kind == "run-folder" else loaded.label
    return Run(report=loaded.report, label=label, aliases=aliases_for(spec, kind), source=spec, kind=kind,
               sha256=loaded.sha256)


def check_distinct(runs: list[Run]) -> None:
    """The same report (equal bytes) or the same model path given twice is a usage error."""
    seen: dict[str, Run] = {}
    for r in runs:
        key = f"report {r.sha256}" if r.sha256 else (f"model {Path(r.source).resolve()}" if r.kind == "model"
                                                     else None)
        if key is None:
            continue
        if key in seen:
            what = "model" if r.kind == "model" else "report"
            raise UsageError(f"{seen[key].source} and {r.source} are the same {what}: give each run once "
                             "(a run counted twice would weigh twice in every correlation)")
        seen[key] = r


def aliases_for(spec: str, kind: str) -> tuple[str, ...]:
    """The names a covariates row may use for a run given on the command line as ``spec``."""
    p = Path(spec)
    names = [spec, os.path.normpath(spec), str(p.resolve())]
    if kind == "run-folder":
        names.append(p.resolve().name)
    elif kind == "model":
        names += [p.stem, p.name]
    else:
        names += [p.name, p.stem]
    return tuple(dict.fromkeys(names))


@dataclass
class Figure:
    key: str                 # stable id: "layers[2].G_mean", "network.G_total", "baselines.sum_squared_weights"
    label: str               # shown in the table: "L2 fc2  G"
    group: str               # "layer", "classifier", "network", "baseline"
    values: list[float | None]
    layer: int | None = None
    names: list[str] | None = None   # layer rows: the layer's names across the runs


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def figures(reports: list[dict[str, Any]], warn: Warn | None = None) -> list[Figure]:
    """Every figure of the family, one ``Figure`` (values aligned with ``reports``) per table row."""
    by_index: dict[int, list[dict[str, Any] | None]] = {}
    for k, r in enumerate(reports):
        for L in r.get("layers") or []:
            idx = L.get("index")
            if isinstance(idx, int):
                by_index.setdefault(idx, [None] * len(reports))[k] = L
    out: list[Figure] = []
    renamed: list[str] = []
    for idx in sorted(by_index):
        layers = by_index[idx]
        present = [L for L in layers if L is not None]
        names = list(dict.fromkeys(str(L.get("name")) for L in present))
        if len(names) > 1:
            renamed.append(f"{idx} ({' | '.join(names[:3])}{' | ...' if len(names) > 3 else ''})")
        name = "|".join(names[:3]) + ("|..." if len(names) > 3 else "")
        for fig in ("S_mean", "G_mean"):
            out.append(Figure(f"layers[{idx}].{fig}", f"L{idx} {name}  {fig[0]}", "layer",
                              [None if L is None else _number(L.get(fig)) for L in layers], idx, names))
        if any(L.get("classifier") for L in present):
            for fig in ("S_mean_centred", "G_mean_centred"):
                out.append(Figure(f"layers[{idx}].{fig}", f"L{idx} {name}  {fig[0]} centred", "classifier",
                                  [None if L is None or not L.get("classifier") else _number(L.get(fig))
                                   for L in layers], idx, names))
    if renamed and warn:
        warn(f"layer names differ across the runs at layer{'s' if len(renamed) > 1 else ''} "
             f"{', '.join(renamed[:5])}{', ...' if len(renamed) > 5 else ''}: rows match layers by index and "
             "list the names they used")
    for key in NETWORK_KEYS:
        out.append(Figure(f"network.{key}", key, "network", [_number(lookup(r, f"network.{key}")) for r in reports]))
    for key in BASELINE_KEYS:
        out.append(Figure(f"baselines.{key}", key, "baseline",
                          [_number(lookup(r, f"baselines.{key}")) for r in reports]))
    return out


def check_shared_settings(runs: list[Run], allow: bool, warn: Warn | None = None) -> dict[str, Any]:
    """The settings the family shares; refuses (exit 2) when one differs, unless ``allow``."""
    shared: dict[str, Any] = {}
    for key in SHARED_KEYS:
        groups: dict[str, list[str]] = {}
        for run in runs:
            groups.setdefault(json.dumps(setting(run.report, key)), []).append(run.label)
        if len(groups) == 1:
            shared[key] = setting(runs[0].report, key)
            continue
        shared[key] = None
        parts = "; ".join(f"{v} ({', '.join(labels[:3])}{', ...' if len(labels) > 3 else ''})"
                          for v, labels in groups.items())
        msg = f"the runs differ in {key}: {parts}"
        if not allow:
            raise UsageError(msg + "; figures computed under different settings or data are not comparable "
                                   "(pass --allow-different-settings to correlate them anyway)")
        if warn:
            warn(msg + " (--allow-different-settings)")
    return shared


# --------------------------------------------------------------------------- the whole table


@dataclass
class Correlation:
    target: str
    control: str | None
    runs: list[Run]
    target_values: list[float]
    control_values: list[float] | None
    figures: list[Figure]
    rows: list[dict[str, Any]]
    shared_settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "schema": SCHEMA,
            "target": self.target,
            "control": self.control,
            "partial_method": PARTIAL_METHOD if self.control else None,
            "runs": [{"label": r.label, "source": r.source, "kind": r.kind,
                      "model": lookup(r.report, "model.path"), "model_sha256": lookup(r.report, "model.sha256"),
                      "target": t, "control": None if self.control_values is None else self.control_values[k],
                      "figures": {f.key: f.values[k] for f in self.figures}}
                     for k, (r, t) in enumerate(zip(self.runs, self.target_values))],
            "settings": self.shared_settings,
            "rows": self.rows,
            "warnings": self.warnings,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_csv(self) -> str:
        cols = ["figure", "label", "group", "layer"] + list(STAT_KEYS) + (list(PARTIAL_KEYS) if self.control else [])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for row in self.rows:
            w.writerow(["" if row.get(c) is None else (repr(row[c]) if isinstance(row[c], float) else row[c])
                        for c in cols])
        return buf.getvalue()


def correlate_runs(runs: list[Run], *, target: str = "accuracy", target_values: list[float] | None = None,
                   control: str | None = None, control_values: list[float] | None = None,
                   allow_different_settings: bool = False, warn: Warn | None = None) -> Correlation:
    """The correlation table of ``runs`` against accuracy (default) or the given target values."""
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    if len(runs) < MIN_RUNS:
        raise UsageError(f"correlate needs at least {MIN_RUNS} runs, got {len(runs)}")
    if target_values is None:
        missing = [r.label for r in runs if _number(r.report.get("accuracy")) is None]
        if missing:
            raise UsageError(f"no accuracy in {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                             "analyse with labelled data (a 'labels' array), or correlate against a covariate "
                             "with --covariates FILE --target COLUMN")
        target_values = [float(r.report["accuracy"]) for r in runs]
    if len(target_values) != len(runs) or (control_values is not None and len(control_values) != len(runs)):
        raise ValueError("target/control values must have one value per run")
    shared = check_shared_settings(runs, allow_different_settings, note)
    seen: dict[str, str] = {}
    for r in runs:
        sha = lookup(r.report, "model.sha256")
        if sha and sha in seen:
            note(f"{r.label} and {seen[sha]} are the same model file (sha256 {sha[:12]}...): "
                 "a repeated run counts twice")
        elif sha:
            seen[sha] = r.label
    figs = figures([r.report for r in runs], note)
    rows = []
    target_constant = _constant(target_values)
    if target_constant:
        note(f"the target {target} is constant ({target_values[0]:.6g}) over all {len(runs)} runs: "
             "every statistic is null")
    for f in figs:
        st, why = pair_stats(f.values, target_values)
        if why and not target_constant:
            note(f"{f.key}: {why}; its statistics are null")
        row = {"figure": f.key, "label": f.label, "group": f.group, "layer": f.layer, "names": f.names, **st}
        if control_values is not None:
            pst, pwhy = partial_stats(f.values, target_values, control_values)
            if pwhy and not why and not target_constant:
                note(f"{f.key}: {pwhy}; its partial correlation is null")
            row.update(pst)
        rows.append(row)
    return Correlation(target=target, control=control, runs=runs, target_values=list(target_values),
                       control_values=None if control_values is None else list(control_values),
                       figures=figs, rows=rows, shared_settings=shared, warnings=warnings)


def runs_from_specs(specs: Iterable[str]) -> list[Run]:
    """Load report files and run folders (not models) into ``Run`` objects."""
    return [load_run(spec) for spec in specs]


def unique_labels(runs: list[Run]) -> None:
    """Runs sharing a label (two run folders called 'a' in different places) are labelled by their path."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.label] = counts.get(r.label, 0) + 1
    for r in runs:
        if counts[r.label] > 1:
            r.label = r.source
