"""Dotted paths into a report dict: ``network.G_total``, ``layers[1].S_mean``, ``layers[-1].G_mean_centred``.

Grammar (no whitespace inside a path)::

    path       := identifier ( '.' identifier | '[' integer ']' )*
    identifier := [A-Za-z_] [A-Za-z0-9_]*
    integer    := [+-]? [0-9]+        (not 0: positions count from 1)

``[i]`` is a position in the JSON list **counted from 1**: ``[1]`` is the first item,
``[i]`` the i-th; a negative ``i`` counts from the end as in Python (``[-1]`` is the last
item). ``[0]`` (also ``[+0]``, ``[-0]``) is an error. The rule is the same for every list;
for ``layers`` it matches the numbering reports use (``index`` 1..L in order, the ``#``
column of the tables, G1/G2/G3, ``snr correlate``'s row keys): ``layers[2]`` is the
layer with ``"index": 2``, ``layers[-1]`` the last layer (usually the classifier).

``parse_path`` / ``scan_path`` raise ``PathError`` (a usage error, exit 2) for text that
is not a path or holds ``[0]``; ``resolve`` raises it for a key that is not there or a
position out of range; a null value, or a path that runs through a null, gives ``None``
for the caller to decide. Hand-written: nothing here is ``eval``-ed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Union

from ..errors import UsageError

Step = Union[str, int]   # a key (str) or a list position (int: 1-based, negative from the end, never 0)


class PathError(UsageError):
    """A path that does not parse or does not lead anywhere in the report (exit 2)."""


@dataclass(frozen=True)
class Path:
    """A parsed path: its steps and the canonical text (``layers[-1].G_mean``)."""

    steps: tuple[Step, ...]

    @property
    def text(self) -> str:
        return format_path(self.steps)

    def __str__(self) -> str:
        return self.text


def format_path(steps: tuple[Step, ...] | list[Step]) -> str:
    out = ""
    for s in steps:
        if isinstance(s, int):
            out += f"[{s}]"
        else:
            out += ("." if out else "") + s
    return out


def _is_ident_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_ident_char(c: str) -> bool:
    return _is_ident_start(c) or ("0" <= c <= "9")


def _shown(text: str, pos: int) -> str:
    return repr(text[pos:pos + 12]) if pos < len(text) else "the end"


def zero_position_message(steps: tuple[Step, ...] | list[Step]) -> str:
    """The error for ``[0]`` after ``steps`` (the path to that list): positions count from 1."""
    before = format_path(tuple(steps))
    first = "layer (index 1)" if steps and steps[-1] == "layers" else "item"
    return f"{before}[0]: positions count from 1: {before}[1] is the first {first}, {before}[-1] the last"


def scan_path(text: str, pos: int = 0) -> tuple[Path, int]:
    """Read one path from ``text`` starting at ``pos``; returns it and the position just after it.

    Stops at the first character that cannot continue a path (an operator, a space,
    ``=``), so expressions like ``network.G_total>=2`` can be tokenised around it.
    Raises ``PathError`` naming the column (1-based) of the problem.
    """
    steps: list[Step] = []
    n = len(text)

    def ident(p: int) -> tuple[str, int]:
        if p >= n or not _is_ident_start(text[p]):
            raise PathError(f"bad path {text!r}: expected a name (letter or _) at column {p + 1}, "
                            f"found {_shown(text, p)}")
        q = p + 1
        while q < n and _is_ident_char(text[q]):
            q += 1
        return text[p:q], q

    name, pos = ident(pos)
    steps.append(name)
    while pos < n:
        c = text[pos]
        if c == ".":
            name, pos = ident(pos + 1)
            steps.append(name)
        elif c == "[":
            q = pos + 1
            start = q
            if q < n and text[q] in "+-":
                q += 1
            digits = q
            while q < n and "0" <= text[q] <= "9":
                q += 1
            if q == digits:
                raise PathError(f"bad path {text!r}: expected an integer list position at column {digits + 1}, "
                                f"found {_shown(text, digits)} (e.g. layers[1], layers[-1])")
            if q >= n or text[q] != "]":
                raise PathError(f"bad path {text!r}: expected ']' at column {q + 1}, found {_shown(text, q)}")
            position = int(text[start:q])
            if position == 0:
                raise PathError(zero_position_message(steps))
            steps.append(position)
            pos = q + 1
        else:
            break
    return Path(tuple(steps)), pos


def parse_path(text: str) -> Path:
    """Parse a whole string as a path (surrounding whitespace allowed); ``PathError`` otherwise."""
    stripped = text.strip()
    if not stripped:
        raise PathError("empty path (e.g. network.G_total, layers[1].S_mean, accuracy)")
    lead = len(text) - len(text.lstrip())
    path, end = scan_path(text, lead)
    if text[end:].strip():
        end += len(text[end:]) - len(text[end:].lstrip())
        raise PathError(f"bad path {text!r}: unexpected {_shown(text, end)} at column {end + 1} "
                        "(a path is name(.name | [integer])*)")
    return path


def kind_of(value: Any) -> str:
    """'an object', 'a list', 'a string', 'a boolean', 'a number' or 'null'."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _keys_hint(d: dict[str, Any], key: str) -> str:
    keys = [str(k) for k in d]
    close = difflib.get_close_matches(key, keys, n=1)
    shown = ", ".join(keys[:15]) + (", ..." if len(keys) > 15 else "")
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}keys there: {shown or 'none'}"


def resolve(report: Any, path: Path | str) -> Any:
    """The value at ``path`` in ``report``: a number, string, object, list, or None for null.

    ``[i]`` counts from 1 (``[-i]`` from the end). Raises ``PathError`` for ``[0]``, an
    unknown key, a list position out of range, or a step that does not fit the value
    (``.key`` on a list, ``[i]`` on an object or number).
    """
    if isinstance(path, str):
        path = parse_path(path)
    for k, step in enumerate(path.steps):   # a Path built by hand may hold [0]; parse_path never does
        if isinstance(step, int) and step == 0:
            raise PathError(zero_position_message(path.steps[:k]))
    cur = report
    for k, step in enumerate(path.steps):
        if cur is None:
            return None
        where = format_path(path.steps[:k]) or "the report"
        full = path.text
        if isinstance(step, int):
            if not isinstance(cur, list):
                hint = "; use .key on an object" if isinstance(cur, dict) else ""
                raise PathError(f"{full}: {where} is {kind_of(cur)}, not a list, so [{step}] does not apply{hint}")
            size = len(cur)
            if not (1 <= step <= size or -size <= step <= -1):
                rng = f"1..{size} or -{size}..-1" if size else "none: the list is empty"
                extra = ""
                if k >= 1 and path.steps[k - 1] == "layers":
                    extra = "; layers[i] is the layer with index i, counted from 1"
                raise PathError(f"{full}: position {step} is out of range, {where} has {size} "
                                f"item{'s' if size != 1 else ''} (valid: {rng}){extra}")
            cur = cur[step - 1] if step > 0 else cur[step]
        else:
            if not isinstance(cur, dict):
                hint = "; use [i] on a list, e.g. layers[1]" if isinstance(cur, list) else ""
                raise PathError(f"{full}: {where} is {kind_of(cur)}, not an object, so .{step} does not apply{hint}")
            if step not in cur:
                raise PathError(f"{full}: no key {step!r} in {where} ({_keys_hint(cur, step)})")
            cur = cur[step]
    return cur
