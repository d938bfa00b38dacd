"""Per-unit figures of a report: ``units.csv`` of a run folder, or ``layers[].per_unit`` (``analyze --units``).

Pure reading and checking; no click, no matplotlib. Undefined figures are NaN in the
arrays (they are only plotted, never written back). Problems are ``ReportError`` (exit 2).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReportError

UNITS_FILE = "units.csv"
COLUMNS = ("layer_index", "layer_name", "unit", "S", "G", "activity", "S_centred", "G_centred")
FIGURES = ("S", "G", "activity", "S_centred", "G_centred")
HOW_TO_GET = ("per-unit figures come with run folders (snr analyze MODEL --data FILE --out DIR) "
              "or with snr analyze --json --units")


@dataclass
class LayerUnits:
    """One layer's unit figures; ``S_centred``/``G_centred`` are None unless the layer is the classifier."""

    S: np.ndarray
    G: np.ndarray
    activity: np.ndarray
    S_centred: np.ndarray | None = None
    G_centred: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.S)

    def defined(self, centred: bool = False) -> int:
        """How many units have a figure (plain, or after centring)."""
        s = self.S_centred if centred else self.S
        return 0 if s is None else int(np.isfinite(s).sum())


Units = dict[int, LayerUnits]   # layer index -> its units


def _value(text: str, where: str) -> float:
    if text == "":
        return math.nan
    try:
        v = float(text)
    except ValueError:
        raise ReportError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ReportError(f"{where}: {text!r} is not a finite number (undefined figures are empty cells)")
    return v


def _check_layers(units: Units, report: dict[str, Any], label: str) -> None:
    """Every layer of the report has exactly its ``units`` rows, and no other layer has any."""
    expected = {L.get("index"): L for L in report.get("layers") or []}
    for idx, lu in units.items():
        if idx not in expected:
            raise ReportError(f"{label}: per-unit figures for layer {idx}, which the report does not have")
    for idx, L in expected.items():
        n = L.get("units")
        got = units.get(idx)
        count = 0 if got is None else got.count
        if isinstance(n, int) and count != n:
            raise ReportError(f"{label}: layer {idx} has {n} units in the report but {count} per-unit rows; "
                              "the per-unit figures belong to another analysis")


def parse_units_csv(text: str, report: dict[str, Any], label: str) -> Units:
    """``units.csv`` text -> per-layer arrays, checked against ``report``'s layers."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:len(COLUMNS)]] != list(COLUMNS):
        raise ReportError(f"{label}: not a units.csv written by snr analyze (expected the columns "
                          f"{', '.join(COLUMNS)})")
    rows: dict[int, list[list[float]]] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < len(COLUMNS):
            raise ReportError(f"{label}, line {line}: {len(row)} cells, expected {len(COLUMNS)}")
        where = f"{label}, line {line}"
        try:
            idx = int(row[0])
        except ValueError:
            raise ReportError(f"{where}: layer_index {row[0]!r} is not a whole number") from None
        rows.setdefault(idx, []).append([_value(c.strip(), where) for c in row[3:8]])
    out: Units = {}
    for idx, values in rows.items():
        a = np.array(values, dtype=np.float64).reshape(-1, 5)
        centred = not np.all(np.isnan(a[:, 3])) or not np.all(np.isnan(a[:, 4]))
        out[idx] = LayerUnits(a[:, 0], a[:, 1], a[:, 2], a[:, 3] if centred else None, a[:, 4] if centred else None)
    _check_layers(out, report, label)
    return out


def _column(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, list):
        raise ReportError(f"{where} is not a list")
    out = np.empty(len(values), dtype=np.float64)
    for k, v in enumerate(values):
        if v is None:
            out[k] = math.nan
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ReportError(f"{where}[{k}] is {v!r}, not a number or null")
        else:
            out[k] = v
    return out


def units_from_json(report: dict[str, Any], label: str) -> Units | None:
    """The ``per_unit`` lists of every layer, or None when the report has none (made without ``--units``)."""
    layers = report.get("layers") or []
    if not any(isinstance(L.get("per_unit"), dict) for L in layers):
        return None
    out: Units = {}
    for pos, L in enumerate(layers, start=1):
        pu = L.get("per_unit")
        where = f"{label}: layers[{pos}].per_unit"
        if not isinstance(pu, dict):
            raise ReportError(f"{where} is missing while other layers have it")
        cols = {}
        for key in FIGURES:
            v = pu.get(key)
            cols[key] = None if v is None and key in ("S_centred", "G_centred") else _column(v, f"{where}.{key}")
        if len({len(c) for c in cols.values() if c is not None}) != 1:
            raise ReportError(f"{where}: its lists have different lengths")
        out[L.get("index")] = LayerUnits(**cols)
    _check_layers(out, report, label)
    return out


def load_units(report: dict[str, Any], report_path: str | None, kind: str, label: str) -> tuple[Units | None, str]:
    """The per-unit figures of a run and where they came from, or (None, why there are none)."""
    units = units_from_json(report, label)
    if units is not None:
        return units, "report"
    if kind == "run-folder" and report_path is not None:
        f = Path(report_path).parent / UNITS_FILE
        if f.is_file():
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ReportError(f"{f}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
            return parse_units_csv(text, report, str(f)), str(f)
        return None, f"the run folder has no {UNITS_FILE}"
    return None, "the report carries no per-unit figures"
