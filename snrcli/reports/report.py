"""The report object, schema ``snr-report/1`` (docs/report-format.md), and its JSON/CSV writers.

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

from ..errors import ReportError, UsageError
from .files import clean

SCHEMA = "snr-report/1"
LAYER_KEYS = ["index", "name", "op", "units", "inputs", "inputs_kept", "samples", "S_mean", "G_mean",
              "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "undefined_units", "classifier",
              "S_mean_centred", "G_mean_centred"]


class LayerResult(dict):
    """One layer of a report: a plain dict of its JSON fields (one item of ``layers[]``), with the
    per-unit figures as numpy arrays in the attributes ``unit_S``, ``unit_G``, ``unit_r`` (activity),
    ``unit_S_centred`` and ``unit_G_centred`` (None where there are none: not the classifier, or a
    report read from JSON)."""

    def __init__(self, fields: dict[str, Any], unit_S: np.ndarray | None = None, unit_G: np.ndarray | None = None,
                 unit_r: np.ndarray | None = None, unit_S_centred: np.ndarray | None = None,
                 unit_G_centred: np.ndarray | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(clean({**{k: fields.get(k) for k in LAYER_KEYS}, **(extra or {})}))
        self.unit_S, self.unit_G, self.unit_r = unit_S, unit_G, unit_r
        self.unit_S_centred, self.unit_G_centred = unit_S_centred, unit_G_centred

    @property
    def fields(self) -> dict[str, Any]:
        return self

    def to_dict(self, units: bool = False) -> dict[str, Any]:
        """The ``layers[]`` entry; with ``units``, also ``per_unit`` (the columns of ``units.csv``)."""
        d = dict(self)   # a layer read from JSON keeps the per_unit lists it came with
        if units and self.unit_S is not None:
            d["per_unit"] = self.per_unit()
        return clean(d)

    def per_unit(self) -> dict[str, Any]:
        """One list per unit figure, in unit order; ``S_centred``/``G_centred`` null unless the classifier."""
        return {"S": self.unit_S, "G": self.unit_G, "activity": self.unit_r,
                "S_centred": self.unit_S_centred, "G_centred": self.unit_G_centred}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerResult":
        """A layer of a report read from JSON: its figures (and ``per_unit`` lists, when it has them),
        without per-unit arrays."""
        return cls(fields=d, extra={k: v for k, v in d.items() if k not in LAYER_KEYS})

    def unit_rows(self) -> list[dict[str, Any]]:
        """One dict per unit (the columns of ``units.csv``); [] when the report was read from JSON."""
        if self.unit_S is None:
            return []
        cols = {"S": self.unit_S, "G": self.unit_G, "activity": self.unit_r,
                "S_centred": self.unit_S_centred, "G_centred": self.unit_G_centred}
        return [{"layer_index": self["index"], "layer_name": self["name"], "unit": i,
                 **{k: None if v is None else clean(float(v[i])) for k, v in cols.items()}}
                for i in range(len(self.unit_S))]


@dataclass
class Report:
    """The result of one analysis (schema ``snr-report/1``).

    Plain accessors: ``layers`` (one dict per layer, as in the JSON; each also carries its per-unit
    numpy arrays, see ``LayerResult``), ``network``, ``settings``, ``accuracy``, ``labelled``,
    ``baselines``, ``model``, ``data``, ``skipped``, ``warnings``, ``meta``, and ``units`` (one dict
    per unit, as in ``units.csv``). ``to_dict()``/``to_json()`` give the JSON object;
    ``Report.from_json()`` and ``Report.from_dict()`` read one back (without per-unit figures, which
    the JSON does not hold).
    """

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

    def __post_init__(self) -> None:
        # plain JSON values from here on: Python numbers, lists for tuples, None for NaN
        for name in ("tool", "model", "data", "settings", "skipped", "network", "accuracy", "labelled",
                     "baselines", "warnings", "meta"):
            setattr(self, name, clean(getattr(self, name)))

    @property
    def units(self) -> list[dict[str, Any]]:
        """One plain dict per unit of every layer (``units.csv``); [] for a report read from JSON."""
        return [row for L in self.layers for row in L.unit_rows()]

    def to_dict(self, units: bool = False) -> dict[str, Any]:
        """The ``snr-report/1`` object; ``units`` adds each layer's ``per_unit`` lists (``analyze --units``)."""
        return clean({
            "schema": SCHEMA,
            "tool": self.tool,
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "layers": [L.to_dict(units) for L in self.layers],
            "skipped": self.skipped,
            "network": self.network,
            "accuracy": self.accuracy,
            "labelled": self.labelled,
            "accuracy_output": self.accuracy_output,
            "baselines": self.baselines,
            "warnings": self.warnings,
            "meta": self.meta,
        })

    def to_json(self, units: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(units), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        """The report of an ``snr-report/1`` dict (``ReportError`` when it is not one)."""
        from .files import parse_report

        try:
            text = json.dumps(d, allow_nan=False)   # (also a deep copy: the report does not share the dict)
        except (TypeError, ValueError) as e:
            raise ReportError(f"the report dict is not plain JSON data: {e}") from None
        d = parse_report(text.encode(), "the report dict")
        return cls(tool=d.get("tool") or {}, model=d.get("model") or {}, data=d.get("data") or {},
                   settings=d.get("settings") or {},
                   layers=[LayerResult.from_dict(L) for L in d["layers"]], skipped=d.get("skipped") or [],
                   network=d.get("network") or {}, accuracy=d.get("accuracy"), labelled=d.get("labelled"),
                   accuracy_output=d.get("accuracy_output"), baselines=d.get("baselines") or {},
                   warnings=d.get("warnings") or [], meta=d.get("meta") or {})

    @classmethod
    def from_json(cls, text: str | bytes) -> "Report":
        """The report of ``snr-report/1`` JSON text (``ReportError`` when it is not one)."""
        from .files import parse_report

        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return cls.from_dict(parse_report(raw, "the report JSON"))


def layers_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LAYER_KEYS)
    for d in report.to_dict()["layers"]:
        w.writerow(["" if d[k] is None else d[k] for k in LAYER_KEYS])
    return buf.getvalue()


def units_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["layer_index", "layer_name", "unit", "S", "G", "activity", "S_centred", "G_centred"]
    w.writerow(cols)
    for row in report.units:
        w.writerow([row[c] if c in ("layer_index", "layer_name", "unit") else
                    ("" if row[c] is None else repr(row[c])) for c in cols])
    return buf.getvalue()


def write_run_folder(report: Report, out: str | os.PathLike, *, force: bool = False, units: bool = False) -> Path:
    """Write report.json, layers.csv and units.csv into ``out`` atomically (temporary folder, then rename).

    ``units`` also puts the per-unit lists into report.json (units.csv has them either way).
    """
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
        (tmp / "report.json").write_text(report.to_json(units) + "\n")
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


SCHEMAS = ("snr-report/1", "snr-compare/1", "snr-correlate/1", "snr-check/1", "snr-inspect/1")


def schema(name: str = SCHEMA) -> dict[str, Any]:
    """The JSON Schema shipped in the package for ``name``: the report (``snr-report/1``) or the JSON
    of compare, correlate, check or inspect (``SCHEMAS``)."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}; snr writes {', '.join(SCHEMAS)}")
    file = name.replace("/", "-") + ".json"
    return json.loads(resources.files("snrcli.reports").joinpath(f"schemas/{file}").read_text())
