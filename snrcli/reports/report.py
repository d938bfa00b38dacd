"""The report object, schema ``snr-report/1`` (docs/report-format.md), and its JSON/CSV writers.

Every writer is a small formatter over the same ``Report`` so the table, the
JSON and the CSV files cannot drift apart. Non-finite numbers become null.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
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
UNIT_KEYS = ["layer_index", "layer_name", "unit", "S", "G", "activity", "S_centred", "G_centred"]


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
    w.writerow(UNIT_KEYS)
    for row in report.units:
        w.writerow([row[c] if c in ("layer_index", "layer_name", "unit") else
                    ("" if row[c] is None else repr(row[c])) for c in UNIT_KEYS])
    return buf.getvalue()


RUN_FILES = ("report.json", "layers.csv", "units.csv")
# How each file of a run folder starts: ``--force`` replaces a folder only when every file in it is one of these
_RUN_FILE_STARTS = {"report.json": b'{\n  "schema": "snr-report/', "layers.csv": ",".join(LAYER_KEYS[:3]).encode(),
                    "units.csv": ",".join(UNIT_KEYS[:3]).encode()}


def _foreign(folder: Path) -> list[str]:
    """Entries of ``folder`` that a run folder written by snr would not hold: other names, folders,
    symbolic links, or files that do not start the way snr writes them ([] for an empty folder)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise UsageError(f"cannot read --out {folder}: {e.strerror or e}") from e
    foreign = []
    for name in names:
        path = folder / name
        start = _RUN_FILE_STARTS.get(name)
        ok = start is not None and path.is_file() and not path.is_symlink()
        if ok:
            try:
                with open(path, "rb") as f:
                    ok = f.read(len(start)) == start
            except OSError:
                ok = False
        if not ok:
            foreign.append(name)
    return foreign


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p == f or f in p.parents


def _replaceable(target: Path, inputs: tuple[str | os.PathLike, ...]) -> None:
    """Refuse to replace ``target`` unless it is an earlier run folder (or empty): --force never
    deletes a file that snr did not write."""
    held = [str(p) for p in inputs if _inside(p, target)]
    if held:
        raise UsageError(f"--out {target} holds the input {held[0]}; --force would delete it: choose another --out")
    foreign = _foreign(target)
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UsageError(f"--out {target} holds files that snr did not write ({listed}); --force replaces only "
                         "an earlier run folder: move them or choose another --out")


def _resolve_out(out: str | os.PathLike) -> Path:
    """The folder to write: a symbolic link to a folder is followed (the link stays as it is)."""
    target = Path(out)
    if target.is_symlink():
        if not target.exists():
            raise UsageError(f"--out {target} is a broken symbolic link")
        target = Path(os.path.realpath(target))
    return target


def _make_temp_folder(parent: Path, name: str) -> Path:
    """A new empty folder beside the target, with the permissions the umask gives (mkdtemp's are 0700)."""
    for _ in range(100):
        tmp = parent / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.mkdir(mode=0o777)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {parent}")


def _remove_run_folder(folder: Path) -> bool:
    """Delete an earlier run folder moved aside: only its run files, then the folder if that left it empty."""
    for name in RUN_FILES:
        try:
            if not (folder / name).is_symlink():
                (folder / name).unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
    try:
        folder.rmdir()
        return True
    except OSError:
        return False


def write_run_folder(report: Report, out: str | os.PathLike, *, force: bool = False, units: bool = False,
                     inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write report.json, layers.csv and units.csv into ``out`` atomically: into a temporary folder
    beside it, then one rename. Without ``force`` the rename never replaces a folder, so of several
    runs writing the same ``out`` at once exactly one succeeds. With ``force`` an earlier run folder
    (only that: see ``check_out_dir``) is moved aside, replaced, then deleted file by file.
    ``inputs``: the model and data paths, which ``out`` must not hold."""
    target = check_out_dir(out, force=force, inputs=inputs)
    parent = target.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = _make_temp_folder(parent, target.name)
    except OSError as e:
        raise UsageError(f"cannot create --out {target}: {e.strerror or e}") from e
    old = None
    try:
        try:
            (tmp / "report.json").write_text(report.to_json(units) + "\n")
            (tmp / "layers.csv").write_text(layers_csv(report))
            (tmp / "units.csv").write_text(units_csv(report))
            if force and os.path.lexists(target):
                _replaceable(target, inputs)
                old = parent / f"{tmp.name[:-4]}.old"
                os.rename(target, old)
        except OSError as e:
            raise UsageError(f"cannot write --out {target}: {e.strerror or e}") from e
        try:
            os.rename(tmp, target)   # fails when target exists and is not empty: never replaces another run's folder
        except OSError as e:
            if os.path.lexists(target):
                raise UsageError(f"output folder {target} exists; pass --force to replace it"
                                 + (" (another run wrote it meanwhile)" if force else "")) from e
            raise UsageError(f"cannot write --out {target}: {e.strerror or e}") from e
    except BaseException:
        _undo(tmp, old, target)
        raise
    if old is not None and not _remove_run_folder(old):
        raise UsageError(f"wrote {target}, but the earlier run folder moved aside to {old} could not be "
                         "removed (something was added to it meanwhile); check it and delete it yourself")
    return target


def _undo(tmp: Path, old: Path | None, target: Path) -> None:
    """After a failure or an interruption: delete the temporary folder (snr's files only) and put the
    earlier run folder back (or, when another run has written the target meanwhile, delete it)."""
    if tmp.exists():
        _remove_run_folder(tmp)
    if old is not None and os.path.lexists(old):
        if os.path.lexists(target):
            _remove_run_folder(old)
        else:
            os.rename(old, target)


def check_out_dir(out: str | os.PathLike, *, force: bool, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Refuse before any work an --out folder that exists (without --force), that --force may not
    replace (it holds anything but an earlier run's files, or the inputs), or that cannot be made.
    Returns the folder to write (a symbolic link to a folder is followed)."""
    target = Path(out)
    if os.path.lexists(target) and not force:
        if target.exists() and not target.is_dir():
            raise UsageError(f"--out {target} is a file, not a folder")
        raise UsageError(f"output folder {target} exists; pass --force to replace it")
    target = _resolve_out(target)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target} is a file, not a folder")
    if target.exists():
        _replaceable(target, inputs)
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"cannot create --out {target}: {parent} is a file")
            if not os.access(parent, os.W_OK):
                raise UsageError(f"cannot create --out {target}: {parent} is not writable")
            break
    return target


SCHEMAS = ("snr-report/1", "snr-compare/1", "snr-correlate/1", "snr-check/1", "snr-inspect/1")


def schema(name: str = SCHEMA) -> dict[str, Any]:
    """The JSON Schema shipped in the package for ``name``: the report (``snr-report/1``) or the JSON
    of compare, correlate, check or inspect (``SCHEMAS``)."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}; snr writes {', '.join(SCHEMAS)}")
    file = name.replace("/", "-") + ".json"
    return json.loads(resources.files("snrcli.reports").joinpath(f"schemas/{file}").read_text())
