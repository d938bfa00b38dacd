"""``snr correlate --covariates FILE.csv``: a row of numbers per run (epochs, seed, train accuracy, ...).

The id column (``--id-column``, default ``run``) names each run by the path given on the command
line, a run folder's name, or a report's or model's file stem. Rows naming no run given are ignored
(with one note); a run without a row, a missing column, a blank or non-numeric cell in a column that
is used are usage errors. No click, no rich.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UsageError

DEFAULT_ID_COLUMN = "run"


@dataclass
class Covariates:
    path: str
    columns: list[str]
    rows: dict[str, dict[str, str]]   # run name -> raw row
    id_column: str = DEFAULT_ID_COLUMN

    @property
    def value_columns(self) -> list[str]:
        return [c for c in self.columns if c != self.id_column]


MAX_COVARIATES_BYTES = 16 << 20   # a table with one row per run


def read_covariates(path: str, id_column: str = DEFAULT_ID_COLUMN) -> Covariates:
    """The CSV of ``--covariates``: UTF-8, an id column, one row per run; usage errors otherwise."""
    try:
        info = os.stat(path)
        size = info.st_size
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"--covariates {path} is not a regular file")
        if size > MAX_COVARIATES_BYTES:
            raise UsageError(f"--covariates {path} is {size / 2**20:.0f} MB; a covariates table has one row per "
                             f"run and at most {MAX_COVARIATES_BYTES >> 20} MB is read")
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"--covariates {path}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"--covariates {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 CSV") \
            from None
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _covariate_rows(path, reader, id_column)
    except csv.Error as e:
        raise UsageError(f"--covariates {path}, line {reader.line_num}: not readable as CSV ({e})") from None


def _covariate_rows(path: str, reader: csv.DictReader, id_column: str) -> Covariates:
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if id_column not in columns:
        hint = "" if id_column != DEFAULT_ID_COLUMN else "; name the column that holds the run names with --id-column"
        raise UsageError(f"--covariates {path} has no {id_column!r} column (columns: {', '.join(columns) or 'none'})"
                         + hint)
    rows: dict[str, dict[str, str]] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        name = row.get(id_column, "")
        if not name:
            raise UsageError(f"--covariates {path}, line {line}: empty {id_column!r} cell")
        if name in rows:
            raise UsageError(f"--covariates {path}: run {name!r} appears twice")
        rows[name] = row
    return Covariates(path, columns, rows, id_column)


def attach_covariates(runs: list, cov: Covariates, warn: Callable[[str], None] | None = None) -> None:
    """Give each run (``correlate.Run``) its row. Rows naming no run are ignored with one note to ``warn``;
    a run without a row, or a row matching several runs, is a usage error."""
    owner: dict[str, object] = {}
    unknown = []
    for name in cov.rows:
        matches = [r for r in runs if name in r.aliases]
        if not matches:
            unknown.append(name)
        elif len(matches) > 1:
            raise UsageError(f"--covariates: run name {name!r} matches several runs "
                             f"({', '.join(r.source for r in matches)}); name them by path")
        else:
            if id(matches[0]) in {id(r) for r in owner.values()}:
                other = next(k for k, r in owner.items() if r is matches[0])
                raise UsageError(f"--covariates: rows {other!r} and {name!r} both name the run {matches[0].source}")
            owner[name] = matches[0]
    missing = [r.source for r in runs if all(r is not o for o in owner.values())]
    if missing:
        hint = (f"; rows name runs by report path, run-folder name or file stem, e.g. {runs[0].label}"
                f" (ignored rows: {', '.join(map(repr, unknown[:3]))}{' ...' if len(unknown) > 3 else ''})"
                if unknown else "")
        raise UsageError(f"--covariates {cov.path} has no row for {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}" + hint)
    if unknown and warn:
        warn(f"--covariates {cov.path}: {len(unknown)} row{'s' if len(unknown) > 1 else ''} for runs not given "
             f"ignored ({', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''})")
    for name, run in owner.items():
        run.covariates = cov.rows[name]


def _short(raw: str, keep: int = 40) -> str:
    return repr(raw if len(raw) <= keep else raw[:keep] + "...")


def covariate_column(runs: list, cov: Covariates, column: str, flag: str) -> list[float]:
    """The numeric column ``column`` for every run (all present), or a usage error naming what is wrong."""
    if column not in cov.columns or column == cov.id_column:
        raise UsageError(f"{flag} {column}: no such column in {cov.path} (columns: {', '.join(cov.value_columns)})")
    values = []
    for run in runs:
        raw = run.covariates.get(column, "")
        if raw == "":
            raise UsageError(f"{flag} {column}: {cov.path} has no value for run {run.label}")
        try:
            v = float(raw)
        except ValueError:
            raise UsageError(f"{flag} {column}: column is not numeric ({_short(raw)} for run {run.label})") \
                from None
        if not math.isfinite(v):
            raise UsageError(f"{flag} {column}: {_short(raw)} for run {run.label} is not a finite number")
        values.append(v)
    return values


def covariate_labels(runs: list, column: str) -> list[str]:
    """The raw cells of ``column`` per run (for colouring plots by a column that need not be numeric)."""
    return [run.covariates.get(column, "") for run in runs]
