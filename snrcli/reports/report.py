"""The report object, schema ``snr-report/1`` (spec section 8), and its JSON/CSV writers.

Every writer is a small formatter over the same ``Report`` so the table, the
JSON and the CSV files cannot drift apart. Non-finite numbers become null.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

SCHEMA = "snr-report/1"
LAYER_KEYS = ["index", "name", "op", "units", "inputs", "inputs_kept", "samples", "S_mean", "G_mean",
              "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "undefined_units", "classifier",
              "S_mean_centred", "G_mean_centred"]
UNIT_KEYS = ["layer_index", "layer_name", "unit", "S", "G", "activity", "S_centred", "G_centred"]


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


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
    w.writerow(UNIT_KEYS)
    for L in report.layers:
        for i in range(len(L.unit_S)):
            row = [L.unit_S[i], L.unit_G[i], L.unit_r[i],
                   None if L.unit_S_centred is None else L.unit_S_centred[i],
                   None if L.unit_G_centred is None else L.unit_G_centred[i]]
            row = ["" if clean(v) is None else repr(float(v)) for v in row]
            w.writerow([L.fields["index"], L.fields["name"], i] + row)
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


def write_run_folder(report: Report, out: str | os.PathLike, *, force: bool = False,
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
            (tmp / "report.json").write_text(report.to_json() + "\n")
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


def schema() -> dict[str, Any]:
    """The JSON Schema of ``snr-report/1`` shipped in the package."""
    return json.loads(resources.files("snrcli.reports").joinpath("schemas/snr-report-1.json").read_text())
