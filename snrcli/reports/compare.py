"""``snr compare``: two runs layer by layer with deltas, or three and more ranked by one figure.

Pure logic over report dicts (schema ``snr-report/1``); no click, no rich.

- Two runs (A, B): layers are matched by their ``index`` field. Layers whose name, op
  or unit count differ between the runs are still matched (one warning for all); a layer
  present in one run only gets nulls for the other. Every figure has ``a``, ``b`` and
  ``delta = b - a``; a delta with a null side is null.
- Every comparison also ranks its runs by one figure (``network.G_total`` unless told
  otherwise; any path of ``paths.py``), highest first; null values go last, unranked.
- Runs whose figure settings or data differ (``SETTINGS_KEYS``) are refused (exit 2)
  unless ``allow_different_settings``; then each difference is a warning.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ReportError, UsageError
from .paths import Path, PathError, kind_of, parse_path, resolve
from .files import setting

SCHEMA = "snr-compare/1"

FIGURE_ALIASES = {
    "S": "S_mean", "G": "G_mean", "S_u": "S_mean_unweighted", "G_u": "G_mean_unweighted",
    "activity": "activity_mean", "S_c": "S_mean_centred", "G_c": "G_mean_centred",
}
# full layer keys accepted by --figures (the figures, then the numeric counts)
LAYER_FIGURES = ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean",
                 "S_mean_centred", "G_mean_centred", "units", "inputs", "inputs_kept", "samples", "undefined_units")
SHORT_NAMES = {v: k for k, v in FIGURE_ALIASES.items()}
DEFAULT_FIGURES = "S,G,activity"
NETWORK_KEYS = ("G_hidden", "G_final", "G_total")
BASELINE_KEYS = ("mean_max_softmax", "sum_squared_weights", "log_spectral_norm_product")
DEFAULT_RANK_BY = "G_total"
RANK_SHORTCUTS = {"G_total": "network.G_total", "G_hidden": "network.G_hidden", "G_final": "network.G_final"}
# what decides the figures: runs that differ here are not comparable (dotted keys)
SETTINGS_KEYS = ("settings.min_level", "settings.min_activity", "settings.centre_classifier",
                 "settings.noise_model", "data.sha256", "data.samples")

Warn = Callable[[str], None]


@dataclass
class Run:
    """One side of a comparison: a report dict and where it came from."""

    report: dict[str, Any]
    label: str                  # shown to the user (the path given, <stdin>, the model path)
    source: str                 # the RUN as given on the command line
    kind: str                   # "file", "run-folder", "stdin" or "model" (analysed on the fly)
    path: str | None = None     # the report file read (None for stdin and models)
    sha256: str | None = None   # of the report bytes read (None for a model analysed on the fly)

    def describe(self) -> dict[str, Any]:
        model = self.report.get("model") if isinstance(self.report.get("model"), dict) else {}
        data = self.report.get("data") if isinstance(self.report.get("data"), dict) else {}
        return {"label": self.label, "source": self.source, "kind": self.kind, "path": self.path,
                "sha256": self.sha256, "model": {"path": model.get("path"), "sha256": model.get("sha256")},
                "data": {"path": data.get("path"), "sha256": data.get("sha256"), "samples": data.get("samples")}}


def number(v: Any) -> int | float | None:
    """A JSON number as itself; null, booleans, strings and non-finite values as None."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def delta(a: Any, b: Any) -> int | float | None:
    """``b - a``, or None when either side is not a number (or the difference overflows)."""
    a, b = number(a), number(b)
    if a is None or b is None:
        return None
    return number(b - a)


def triple(a: Any, b: Any) -> dict[str, Any]:
    return {"a": number(a), "b": number(b), "delta": delta(a, b)}


def parse_figures(text: str) -> list[str]:
    """``"S,G,activity"`` -> ``["S_mean", "G_mean", "activity_mean"]`` (short names or full keys)."""
    out: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        key = FIGURE_ALIASES.get(name, name)
        if key not in LAYER_FIGURES:
            short = ", ".join(FIGURE_ALIASES)
            raise UsageError(f"--figures: unknown figure {name!r}; use {short} or a layer key "
                             f"({', '.join(LAYER_FIGURES)})")
        if key not in out:
            out.append(key)
    if not out:
        raise UsageError(f"--figures: no figure named (e.g. {DEFAULT_FIGURES})")
    return out


def rank_path(text: str) -> Path:
    """``--rank-by``: G_total, G_hidden, G_final or any report path (``accuracy``, ``layers[1].G_mean``)."""
    text = text.strip()
    try:
        return parse_path(RANK_SHORTCUTS.get(text, text))
    except PathError as e:
        raise UsageError(f"--rank-by: {e}") from None


def _show(v: Any) -> str:
    return json.dumps(v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def check_settings(runs: list[Run], allow: bool, warn: Warn | None = None,
                   keys: tuple[str, ...] = SETTINGS_KEYS,
                   note: str = "comparing anyway (--allow-different-settings)") -> list[dict[str, Any]]:
    """The settings that differ between the runs (compared with the first run).

    Raises ``UsageError`` naming the setting and both values at the first difference,
    unless ``allow``; then each difference is one warning ending in ``note``. Returns the differences.
    """
    diffs: list[dict[str, Any]] = []
    first = runs[0]
    for key in keys:
        ref = setting(first.report, key)
        odd = [r for r in runs[1:] if not _same(setting(r.report, key), ref)]
        if not odd:
            continue
        other = odd[0]
        msg = f"{key} is {_show(ref)} in {first.label} but {_show(setting(other.report, key))} in {other.label}"
        if len(odd) > 1:
            msg += f" (and differs in {len(odd) - 1} more run{'s' if len(odd) > 2 else ''})"
        if not allow:
            raise UsageError(f"the runs differ in a setting: {msg}; figures computed under different settings "
                             "or data are not comparable (pass --allow-different-settings to compare anyway)")
        diffs.append({"key": key, "values": [setting(r.report, key) for r in runs]})
        if warn:
            warn(f"{msg}; {note}")
    return diffs


def _layers_by_index(run: Run) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for pos, L in enumerate(run.report.get("layers") or [], start=1):   # pos: 1-based, as in report paths
        idx = L.get("index") if isinstance(L, dict) else None
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise ReportError(f"{run.label}: layers[{pos}] has no integer 'index'")
        if idx in out:
            raise ReportError(f"{run.label}: two layers have index {idx}")
        out[idx] = L
    return out


def _ranges(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids[:10]) + (", ..." if len(ids) > 10 else "")


def align_layers(a: Run, b: Run, figures: list[str], warn: Warn | None = None) -> list[dict[str, Any]]:
    """One row per layer index of either run: names, ops, units and ``{a, b, delta}`` per figure."""
    la, lb = _layers_by_index(a), _layers_by_index(b)
    rows = []
    differ: list[str] = []
    for idx in sorted(set(la) | set(lb)):
        A, B = la.get(idx), lb.get(idx)
        row: dict[str, Any] = {"index": idx}
        for key in ("name", "op", "units"):
            row[f"{key}_a"] = None if A is None else A.get(key)
            row[f"{key}_b"] = None if B is None else B.get(key)
        row["figures"] = {f: triple(None if A is None else A.get(f), None if B is None else B.get(f))
                          for f in figures}
        rows.append(row)
        if A is not None and B is not None:
            diffs = [f"{key} {_show(A.get(key))} vs {_show(B.get(key))}" for key in ("name", "op", "units")
                     if not _same(A.get(key), B.get(key))]
            if diffs:
                differ.append(f"layer {idx}: {', '.join(diffs)}")
    if differ and warn:
        warn(f"{len(differ)} layer{'s differ' if len(differ) > 1 else ' differs'} between A ({a.label}) and B "
             f"({b.label}), matched by layer index anyway (each row names both): {'; '.join(differ[:4])}"
             + (f"; and {len(differ) - 4} more" if len(differ) > 4 else ""))
    if warn:
        for mine, theirs, side, run in ((la, lb, "A", a), (lb, la, "B", b)):
            only = sorted(set(mine) - set(theirs))
            if only:
                warn(f"layer{'s' if len(only) > 1 else ''} {_ranges(only)} only in {side} ({run.label}): "
                     f"shown with blanks for the other run ({len(la)} layers in A, {len(lb)} in B)")
    return rows


def _rank_value(run: Run, path: Path) -> tuple[Any, str | None]:
    try:
        v = resolve(run.report, path)
    except PathError as e:
        return None, str(e)
    if v is not None and number(v) is None:
        what, want = (repr(v), "a finite number") if isinstance(v, float) else (kind_of(v), "a number")
        raise UsageError(f"--rank-by {path.text}: it is {what} in {run.label}, not {want}")
    return v, None


def rank_runs(runs: list[Run], path: Path, *, ascending: bool = False,
              warn: Warn | None = None) -> list[dict[str, Any]]:
    """Runs ordered by the value at ``path`` (highest first unless ``ascending``); null values last.

    Equal values share a rank (1, 2, 2, 4); null values have rank null and keep their input order.
    A path that exists in no run is a usage error; missing in some runs, a warning and null.
    """
    values, problems = [], []
    for r in runs:
        v, why = _rank_value(r, path)
        values.append(v)
        if why:
            problems.append((r, why))
    if problems and len(problems) == len(runs):
        raise UsageError(f"--rank-by: {problems[0][1]} (in {problems[0][0].label})")
    if warn:
        for r, why in problems:
            warn(f"--rank-by: {why} (in {r.label}); ranked last")
        failed = {id(p[0]) for p in problems}
        nulls = [r.label for r, v in zip(runs, values) if v is None and id(r) not in failed]
        if nulls:
            warn(f"--rank-by {path.text} is null in {', '.join(nulls)}; ranked last")
    order = sorted(range(len(runs)), key=lambda i: (values[i] is None,
                                                    0 if values[i] is None else (values[i] if ascending
                                                                                 else -values[i]), i))
    out, rank, prev = [], 0, object()
    for pos, i in enumerate(order, start=1):
        v = values[i]
        if v is None:
            r = None
        else:
            if not _same(v, prev):
                rank = pos
            prev = v
            r = rank
        rep = runs[i].report
        net = rep.get("network") if isinstance(rep.get("network"), dict) else {}
        out.append({"rank": r, "run": i, "label": runs[i].label, "value": v,
                    "network": {k: number(net.get(k)) for k in NETWORK_KEYS},
                    "accuracy": number(rep.get("accuracy"))})
    return out


@dataclass
class Comparison:
    runs: list[Run]
    figures: list[str]
    rank_by: str
    ascending: bool
    ranking: list[dict[str, Any]]
    layers: list[dict[str, Any]] | None = None          # two runs only
    network: dict[str, dict[str, Any]] | None = None    # two runs only: key -> {a, b, delta}
    accuracy: dict[str, Any] | None = None              # two runs only
    baselines: dict[str, dict[str, Any]] | None = None  # two runs only, keys present in either
    settings_differ: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def pair(self) -> bool:
        return len(self.runs) == 2

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "mode": "pair" if self.pair else "ranking",
                "runs": [r.describe() for r in self.runs], "figures": list(self.figures),
                "settings_differ": self.settings_differ, "layers": self.layers, "network": self.network,
                "accuracy": self.accuracy, "baselines": self.baselines,
                "rank_by": self.rank_by, "order": "ascending" if self.ascending else "descending",
                "ranking": self.ranking, "warnings": list(self.warnings)}

    def layers_csv(self) -> str:
        """index, name_a, name_b, op, then FIG_a, FIG_b, FIG_delta per figure; nulls empty."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "name_a", "name_b", "op"] + [f"{f}_{s}" for f in self.figures for s in ("a", "b", "delta")])
        for row in self.layers or []:
            ops = [o for o in (row["op_a"], row["op_b"]) if o is not None]
            op = "/".join(dict.fromkeys(str(o) for o in ops))
            cells = [row["index"], _cell(row["name_a"]), _cell(row["name_b"]), op]
            for f in self.figures:
                t = row["figures"][f]
                cells += [_cell(t["a"]), _cell(t["b"]), _cell(t["delta"])]
            w.writerow(cells)
        return buf.getvalue()

    def ranking_csv(self) -> str:
        """rank, run, label, the rank value, network figures and accuracy; nulls empty."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["rank", "label", "source", self.rank_by] + list(NETWORK_KEYS) + ["accuracy"])
        for row in self.ranking:
            w.writerow([_cell(row["rank"]), row["label"], self.runs[row["run"]].source, _cell(row["value"])]
                       + [_cell(row["network"][k]) for k in NETWORK_KEYS] + [_cell(row["accuracy"])])
        return buf.getvalue()

    def to_csv(self) -> str:
        """The per-layer table for two runs, the ranking for three or more."""
        return self.layers_csv() if self.pair else self.ranking_csv()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def unique_labels(runs: list[Run]) -> None:
    """Runs given twice (the same path) get a ``#n`` suffix from their second appearance on."""
    seen: dict[str, int] = {}
    for r in runs:
        n = seen.get(r.label, 0) + 1
        seen[r.label] = n
        if n > 1:
            r.label = f"{r.label} #{n}"


def compare_runs(runs: list[Run], *, figures: list[str] | None = None, rank_by: str | Path = DEFAULT_RANK_BY,
                 ascending: bool = False, allow_different_settings: bool = False,
                 warn: Warn | None = None) -> Comparison:
    """Compare two runs layer by layer (and rank them), or rank three and more."""
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn:
            warn(msg)

    if len(runs) < 2:
        raise UsageError(f"compare needs at least two runs, got {len(runs)}")
    figures = list(figures) if figures is not None else parse_figures(DEFAULT_FIGURES)
    path = rank_by if isinstance(rank_by, Path) else rank_path(rank_by)
    diffs = check_settings(runs, allow_different_settings, note)
    cmp = Comparison(runs=runs, figures=figures, rank_by=path.text, ascending=ascending, ranking=[],
                     settings_differ=diffs, warnings=warnings)
    if len(runs) == 2:
        a, b = runs
        cmp.layers = align_layers(a, b, figures, note)
        na = a.report.get("network") if isinstance(a.report.get("network"), dict) else {}
        nb = b.report.get("network") if isinstance(b.report.get("network"), dict) else {}
        cmp.network = {k: triple(na.get(k), nb.get(k)) for k in NETWORK_KEYS}
        cmp.accuracy = triple(a.report.get("accuracy"), b.report.get("accuracy"))
        ba = a.report.get("baselines") if isinstance(a.report.get("baselines"), dict) else {}
        bb = b.report.get("baselines") if isinstance(b.report.get("baselines"), dict) else {}
        keys = [k for k in BASELINE_KEYS if k in ba or k in bb]
        keys += [k for k in list(ba) + list(bb) if k not in keys and (number(ba.get(k)) is not None
                                                                     or number(bb.get(k)) is not None)]
        cmp.baselines = {k: triple(ba.get(k), bb.get(k)) for k in dict.fromkeys(keys)}
    cmp.ranking = rank_runs(runs, path, ascending=ascending, warn=note)
    return cmp
