"""Reading ``snr-report/1`` reports: a JSON file, a run folder (``snr analyze --out``) or ``-`` (stdin).

Every problem is a ``ReportError`` (exit 2) with a one-line message. No click, no rich.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence, TextIO

from ..errors import ReportError
from .paths import kind_of

REPORT_SCHEMA = "snr-report/1"
STDIN = "-"
STDIN_LABEL = "<stdin>"
RUN_FOLDER_FILE = "report.json"

# schemas this package writes that are not reports: a hint when one is passed by mistake
_OTHER_SCHEMAS = {"snr-compare/1": "snr compare --json", "snr-check/1": "snr check --json",
                  "snr-correlate/1": "snr correlate --json", "snr-inspect/1": "snr inspect --json"}


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy arrays and scalars to Python, NaN and infinities to None (without
    importing numpy: reports read from files hold none, and compare and check run without it)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        v = float(value)
        return v if math.isfinite(v) else None
    if hasattr(value, "tolist"):   # numpy arrays and scalars (numpy.float64 is a float, handled above)
        return clean(value.tolist())
    return value


@dataclass
class LoadedReport:
    """A report and where it came from."""

    report: dict[str, Any]
    label: str            # shown to the user: the path as given, or <stdin>
    source: str           # the RUN as given ("runs/a", "a.json", "-")
    kind: str             # "file", "run-folder" or "stdin"
    path: str | None      # the file actually read (None for stdin)
    sha256: str           # of the bytes read


class _NonFinite(ValueError):
    pass


class _BadNumber(ValueError):
    pass


MAX_INT_DIGITS = 19   # a report's integers are counts and indices: int64 at most


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _BadNumber(f"the number {text[:40]}, which overflows to infinity (snr writes undefined figures "
                         "as null)")
    return v


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _BadNumber(f"an integer of {digits} digits, too large for a report")
    return int(text)


def _surrogate_at(value: Any, where: str = "") -> str | None:
    """The place of the first string (or key) holding a lone surrogate (a JSON \\ud800 escape), or None."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where or "the top level"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _surrogate_at(k, where or "a key") or _surrogate_at(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _surrogate_at(v, f"{where}[{i + 1}]")
            if found:
                return found
    return None


def parse_report(raw: bytes, label: str) -> dict[str, Any]:
    """Decode and validate the bytes of a report; ``ReportError`` naming ``label`` otherwise."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReportError(f"{label} is not UTF-8 text (byte {e.start}); expected an {REPORT_SCHEMA} JSON report") \
            from None
    if not text.strip():
        raise ReportError(f"{label} is empty; expected an {REPORT_SCHEMA} JSON report")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise ReportError(f"{label}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except _NonFinite as e:
        raise ReportError(f"{label} holds {e} (not valid JSON; snr writes undefined figures as null)") from None
    except _BadNumber as e:
        raise ReportError(f"{label} holds {e}; not a report snr wrote") from None
    except RecursionError:
        raise ReportError(f"{label}: JSON nested too deeply to be a report") from None
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ReportError(f"{label} holds {found}, not a JSON object; expected an {REPORT_SCHEMA} report")
    if "schema" not in data:
        raise ReportError(f"{label} has no 'schema' key; this snr reads {REPORT_SCHEMA} reports "
                          "(from snr analyze --json or --out)")
    schema = data["schema"]
    if not isinstance(schema, str):
        raise ReportError(f"{label} has a 'schema' that is {kind_of(schema)}, not the string "
                          f"{json.dumps(REPORT_SCHEMA)}; expected an {REPORT_SCHEMA} report")
    if schema != REPORT_SCHEMA:
        hint = f" (that is the output of {_OTHER_SCHEMAS[schema]})" if schema in _OTHER_SCHEMAS else ""
        raise ReportError(f"{label} has schema {json.dumps(schema)}{hint}; this snr supports {REPORT_SCHEMA}")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise ReportError(f"{label}: 'layers' is {'missing' if layers is None else 'not a list'}; "
                          f"not a valid {REPORT_SCHEMA} report")
    for i, L in enumerate(layers):
        if not isinstance(L, dict):
            raise ReportError(f"{label}: layers[{i}] is not an object; not a valid {REPORT_SCHEMA} report")
    where = _surrogate_at(data)
    if where:
        raise ReportError(f"{label}: {where} holds a lone surrogate (a \\u escape of half a character), "
                          "which is not text; not a report snr wrote")
    return data


def _read_stdin(stream: TextIO | BinaryIO | None) -> bytes:
    stream = sys.stdin if stream is None else stream
    if stream is None:
        raise ReportError("'-' names stdin, but there is no stdin")
    try:
        if stream.isatty():
            raise ReportError("'-' reads a report from stdin, but stdin is a terminal; pipe one in, e.g. "
                              "snr analyze m.onnx --data d.npz --json | snr check - ...")
    except (AttributeError, ValueError):
        pass
    buf = getattr(stream, "buffer", None)
    try:
        if buf is not None:
            return buf.read()
        data = stream.read()
    except OSError as e:
        raise ReportError(f"cannot read stdin: {e.strerror or e}") from None
    return data.encode("utf-8") if isinstance(data, str) else data


def _file_for(spec: str) -> tuple[Path, str]:
    """The report file a spec names, and its kind ('file' or 'run-folder')."""
    p = Path(spec)
    if p.is_dir():
        f = p / RUN_FOLDER_FILE
        if not f.is_file():
            raise ReportError(f"{spec} is a folder without {RUN_FOLDER_FILE} "
                              "(not a run folder written by snr analyze --out)")
        return f, "run-folder"
    if not p.exists():
        raise ReportError(f"{spec}: no such file or folder")
    if not p.is_file():
        raise ReportError(f"{spec} is not a regular file")
    return p, "file"


def read_report(spec: str | os.PathLike, *, stdin: TextIO | BinaryIO | None = None) -> LoadedReport:
    """Read a report file, a run folder (its report.json) or ``-`` (``stdin``, default ``sys.stdin``; read once)."""
    spec = os.fspath(spec)
    if spec == STDIN:
        raw = _read_stdin(stdin)
        return LoadedReport(parse_report(raw, STDIN_LABEL), STDIN_LABEL, spec, "stdin", None,
                            hashlib.sha256(raw).hexdigest())
    f, kind = _file_for(spec)
    try:
        raw = f.read_bytes()
    except OSError as e:
        raise ReportError(f"{f}: cannot read it: {e.strerror or e}") from None
    label = (spec.rstrip("/\\") or spec) if kind == "run-folder" else spec
    return LoadedReport(parse_report(raw, label if kind == "file" else str(f)), label, spec, kind, str(f),
                        hashlib.sha256(raw).hexdigest())


def load_report(spec: str | os.PathLike, *, stdin: TextIO | BinaryIO | None = None) -> tuple[dict[str, Any], str]:
    """``(report dict, display label)`` for a report file, a run folder or ``-`` (stdin)."""
    r = read_report(spec, stdin=stdin)
    return r.report, r.label


def report_sha256(source: str | os.PathLike | bytes) -> str:
    """sha256 (hex) of report bytes, or of the report file that a path or run folder names.

    stdin cannot be read twice: use ``read_report('-').sha256`` for it.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(source)).hexdigest()
    spec = os.fspath(source)
    if spec == STDIN:
        raise ReportError("the sha256 of stdin is known only when it is read: use read_report('-').sha256")
    f, _ = _file_for(spec)
    h = hashlib.sha256()
    try:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise ReportError(f"{f}: cannot read it: {e.strerror or e}") from None
    return h.hexdigest()


def expand_runs(specs: Sequence[str]) -> list[str]:
    """RUN arguments with each folder of reports replaced by its reports.

    A folder holding ``report.json`` is one run (a run folder written by ``snr analyze --out``); any
    other folder stands for the ``*.json`` files and the run folders inside it, sorted by name.
    Everything else is kept as given. A folder with neither is a ``ReportError``.
    """
    out: list[str] = []
    for spec in specs:
        p = Path(spec)
        if spec == STDIN or not p.is_dir() or (p / RUN_FOLDER_FILE).is_file():
            out.append(spec)
            continue
        inside = sorted((c for c in p.iterdir() if (c.is_file() and c.suffix.lower() == ".json")
                         or (c.is_dir() and (c / RUN_FOLDER_FILE).is_file())), key=lambda c: c.name)
        if not inside:
            raise ReportError(f"{spec} is a folder without {RUN_FOLDER_FILE} and without *.json reports or run "
                              "folders inside it")
        out += [str(c) for c in inside]
    return out


SETTING_DEFAULTS = {"settings.noise_model": "relu"}   # what reports written before a setting existed used


def setting(report: dict[str, Any], dotted: str) -> Any:
    """``lookup``, with the value a report written before the setting existed used (``SETTING_DEFAULTS``)."""
    value = lookup(report, dotted)
    return SETTING_DEFAULTS.get(dotted) if value is None else value


def lookup(report: dict[str, Any], dotted: str) -> Any:
    """``report['a']['b']`` for ``"a.b"``, or None when a key is missing (lenient; see ``paths.resolve``)."""
    cur: Any = report
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur
