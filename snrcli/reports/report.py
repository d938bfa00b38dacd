"""The report object, schema ``snr-report/1`` (spec section 8), and its JSON/CSV writers.

Every writer is a small formatter over the same ``Report`` so the table, the
JSON and the CSV files cannot drift apart. Non-finite numbers become null.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .files import clean

SCHEMA = "snr-report/1"
LAYER_KEYS = ["index", "name", "op", "units", "inputs", "inputs_kept", "samples", "S_mean", "G_mean",
              "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "undefined_units", "classifier",
              "S_mean_centred", "G_mean_centred"]


@dataclass
class LayerResult:
    """One row of ``layers[]`` plus per-unit arrays for ``units.csv``."""

    fields: dict[str, Any]
    unit_S: np.ndarray
    unit_G: np.ndarray
    unit_r: np.ndarray
    unit_S_centred: np.ndarray | None = None
    unit_G_centred: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # activity gate, weight shape, ...

    def to_dict(self) -> dict[str, Any]:
        return clean({**{k: self.fields.get(k) for k in LAYER_KEYS}, **self.extra})


@dataclass
class Report:
    """The result of one analysis. ``to_dict()`` gives the ``snr-report/1`` JSON object."""

    tool: dict[str, Any]
    model: dict[str, Any]
    data: dict[str, Any]
    settings: dict[str, Any]
    layers: list[LayerResult]
    skipped: list[dict[str, str]]
    network: dict[str, Any]
    accuracy: float | None
    labelled: int | None
    accuracy_output: str | None
    baselines: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return clean({
            "schema": SCHEMA,
            "tool": self.tool,
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "layers": [L.to_dict() for L in self.layers],
            "skipped": self.skipped,
            "network": self.network,
            "accuracy": self.accuracy,
            "labelled": self.labelled,
            "accuracy_output": self.accuracy_output,
            "baselines": self.baselines,
            "warnings": self.warnings,
            "meta": self.meta,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def layers_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LAYER_KEYS)
    for L in report.layers:
        d = L.to_dict()
        w.writerow(["" if d[k] is None else d[k] for k in LAYER_KEYS])
    return buf.getvalue()


def units_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["layer_index", "layer_name", "unit", "S", "G", "activity", "S_centred", "G_centred"])
    for L in report.layers:
        for i in range(len(L.unit_S)):
            row = [L.unit_S[i], L.unit_G[i], L.unit_r[i],
                   None if L.unit_S_centred is None else L.unit_S_centred[i],
                   None if L.unit_G_centred is None else L.unit_G_centred[i]]
            row = ["" if clean(v) is None else repr(float(v)) for v in row]
            w.writerow([L.fields["index"], L.fields["name"], i] + row)
    return buf.getvalue()


def write_run_folder(report: Report, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write report.json, layers.csv and units.csv into ``out`` atomically (temporary folder, then rename)."""
    target = Path(out)
    if target.exists() and not force:
        raise UsageError(f"output folder {target} exists; pass --force to replace it")
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target} is a file, not a folder")
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    except OSError as e:
        raise UsageError(f"cannot create --out {target}: {e.strerror or e}") from e
    try:
        (tmp / "report.json").write_text(report.to_json() + "\n")
        (tmp / "layers.csv").write_text(layers_csv(report))
        (tmp / "units.csv").write_text(units_csv(report))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"cannot write --out {target}: {e.strerror or e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def check_out_dir(out: str | os.PathLike, *, force: bool) -> None:
    """Refuse before any work an --out folder that exists (without --force) or cannot be made."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target} is a file, not a folder")
    if target.exists() and not force:
        raise UsageError(f"output folder {target} exists; pass --force to replace it")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"cannot create --out {target}: {parent} is a file")
            if not os.access(parent, os.W_OK):
                raise UsageError(f"cannot create --out {target}: {parent} is not writable")
            break


def schema() -> dict[str, Any]:
    """The JSON Schema of ``snr-report/1`` shipped in the package."""
    return json.loads(resources.files("snrcli.reports").joinpath("schemas/snr-report-1.json").read_text())
