"""``snr check``: pass/fail conditions on a report, for CI gates.

Pure logic; no click, no rich, nothing ``eval``-ed.

- ``--require 'PATH OP NUMBER'``: ``OP`` is one of ``>= > <= < == !=`` (whitespace around
  it optional); ``PATH`` follows ``paths.py`` (list positions count from 1: ``layers[1]``
  is the first layer, ``layers[-1]`` the last); ``NUMBER`` is a decimal literal (``2.5``,
  ``-1``, ``1e-3``).
- ``--max-drop 'PATH=AMOUNT'`` against a baseline report: fails when
  ``baseline - current > AMOUNT``; with ``AMOUNT%`` the allowed drop is that percentage
  of ``|baseline|``.

A condition that cannot be evaluated (unknown path, null or non-numeric value) is a
``UsageError`` (exit 2), never a silent pass or fail. ``CheckResult.exit_code`` is 0 when
every condition passes and ``EXIT_CHECK_FAILED`` (1) otherwise.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError
from .numbers import fmt_number
from .paths import Path, PathError, kind_of, resolve, scan_path

SCHEMA = "snr-check/1"
OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}
_OP_ORDER = (">=", "<=", "==", "!=", ">", "<")   # two-character operators first
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Requirement:
    """``PATH OP NUMBER``."""

    expr: str
    path: Path
    op: str
    bound: float
    bound_text: str


@dataclass(frozen=True)
class MaxDrop:
    """``PATH=AMOUNT`` or ``PATH=AMOUNT%``: the largest allowed ``baseline - current``."""

    expr: str
    path: Path
    amount: float
    relative: bool
    amount_text: str

    def allowed(self, base: float) -> float:
        return self.amount / 100.0 * abs(base) if self.relative else self.amount


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _found(text: str, pos: int) -> str:
    return repr(text[pos:pos + 12]) if pos < len(text) else "the end"


def _scan(text: str, pos: int, flag: str) -> tuple[Path, int]:
    try:
        return scan_path(text, pos)
    except PathError as e:
        raise UsageError(f"{flag} {text!r}: {e}") from None


def _number_at(text: str, pos: int, flag: str, what: str) -> tuple[float, str, int]:
    m = _NUMBER.match(text, pos)
    if not m:
        raise UsageError(f"{flag} {text!r}: expected {what} at column {pos + 1}, found {_found(text, pos)}")
    value = float(m.group())
    if not math.isfinite(value):
        raise UsageError(f"{flag} {text!r}: {m.group()} at column {pos + 1} is too large for a number "
                         "(it overflows to infinity)")
    return value, m.group(), m.end()


def parse_requirement(expr: str) -> Requirement:
    """``'network.G_total >= 2.5'`` -> ``Requirement``; ``UsageError`` naming the column otherwise."""
    flag = "--require"
    pos = _skip_ws(expr, 0)
    if pos == len(expr):
        raise UsageError(f"{flag}: empty condition; write PATH OP NUMBER, e.g. 'network.G_total >= 2.5'")
    path, pos = _scan(expr, pos, flag)
    pos = _skip_ws(expr, pos)
    op = next((o for o in _OP_ORDER if expr.startswith(o, pos)), None)
    if op is None:
        hint = ""
        for wrong, right in (("=>", ">="), ("=<", "<="), ("=", "==")):
            if expr.startswith(wrong, pos):
                hint = f" (did you mean {right}?)"
                break
        raise UsageError(f"{flag} {expr!r}: expected an operator (>=, >, <=, <, ==, !=) at column {pos + 1}, "
                         f"found {_found(expr, pos)}{hint}")
    pos = _skip_ws(expr, pos + len(op))
    bound, text, pos = _number_at(expr, pos, flag, "a number")
    pos = _skip_ws(expr, pos)
    if pos != len(expr):
        raise UsageError(f"{flag} {expr!r}: unexpected {_found(expr, pos)} at column {pos + 1} "
                         "(write PATH OP NUMBER)")
    return Requirement(expr, path, op, bound, text)


def parse_max_drop(expr: str) -> MaxDrop:
    """``'network.G_total=5%'`` or ``'layers[1].S_mean = 0.1'`` -> ``MaxDrop``."""
    flag = "--max-drop"
    pos = _skip_ws(expr, 0)
    if pos == len(expr):
        raise UsageError(f"{flag}: empty; write PATH=AMOUNT or PATH=AMOUNT%, e.g. network.G_total=5%")
    path, pos = _scan(expr, pos, flag)
    pos = _skip_ws(expr, pos)
    if not expr.startswith("=", pos) or expr.startswith("==", pos):
        raise UsageError(f"{flag} {expr!r}: expected '=' at column {pos + 1}, found {_found(expr, pos)} "
                         "(write PATH=AMOUNT or PATH=AMOUNT%)")
    pos = _skip_ws(expr, pos + 1)
    amount, text, pos = _number_at(expr, pos, flag, "an amount (0.1, or 5% of the baseline)")
    pos = _skip_ws(expr, pos)
    relative = expr.startswith("%", pos)
    if relative:
        pos = _skip_ws(expr, pos + 1)
        text += "%"
    if pos != len(expr):
        raise UsageError(f"{flag} {expr!r}: unexpected {_found(expr, pos)} at column {pos + 1} "
                         "(write PATH=AMOUNT or PATH=AMOUNT%)")
    if amount < 0:
        raise UsageError(f"{flag} {expr!r}: the allowed drop must be 0 or more, got {text}")
    return MaxDrop(expr, path, amount, relative, text)


def numeric_value(report: dict[str, Any], path: Path, label: str, flag: str) -> int | float:
    """The number at ``path``; ``UsageError`` for unknown paths, null and non-numbers."""
    try:
        v = resolve(report, path)
    except PathError as e:
        raise UsageError(f"{flag}: {e} (in {label})") from None
    if v is None:
        raise UsageError(f"{flag}: {path.text} is null in {label} (undefined for this model or data), "
                         "so it cannot be checked")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        shown = f" ({v!r})" if isinstance(v, (str, bool)) else ""
        raise UsageError(f"{flag}: {path.text} is {kind_of(v)}{shown} in {label}, not a number")
    if isinstance(v, float) and not math.isfinite(v):
        raise UsageError(f"{flag}: {path.text} is {v} in {label}, not a finite number, so it cannot be checked")
    return v


def fmt_num(v: float, *, keep: Callable[[float], bool] | None = None) -> str:
    """The tables' number format (``numbers.fmt_number``), or the exact repr when the rounded
    number would get a different verdict from ``keep`` than the value itself."""
    return fmt_number(v, keep=keep)


@dataclass
class Outcome:
    expr: str
    kind: str                 # "require" or "max-drop"
    path: str
    value: float
    op: str                   # the operator, or "max-drop"
    bound: float              # require: the number; max-drop: the largest allowed drop (absolute)
    passed: bool
    line: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"expr": self.expr, "kind": self.kind, "path": self.path, "value": self.value, "op": self.op,
                "bound": self.bound, "passed": self.passed, **self.extra}


@dataclass
class CheckResult:
    report: str
    outcomes: list[Outcome]
    baseline: str | None = None

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.passed else EXIT_CHECK_FAILED

    def lines(self) -> list[str]:
        return [o.line for o in self.outcomes]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "report": self.report, "baseline": self.baseline, "passed": self.passed,
                "conditions": [o.to_dict() for o in self.outcomes]}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def evaluate_requirement(req: Requirement, report: dict[str, Any], label: str) -> Outcome:
    value = numeric_value(report, req.path, label, "--require")
    test = OPS[req.op]
    ok = bool(test(value, req.bound))
    shown = fmt_num(value, keep=lambda x: bool(test(x, req.bound)))
    line = f"{_verdict(ok)} {req.path.text} = {shown} {req.op} {req.bound_text}"
    return Outcome(req.expr, "require", req.path.text, value, req.op, req.bound, ok, line)


def evaluate_max_drop(md: MaxDrop, report: dict[str, Any], label: str, baseline: dict[str, Any],
                      baseline_label: str) -> Outcome:
    value = numeric_value(report, md.path, label, "--max-drop")
    base = numeric_value(baseline, md.path, f"the baseline {baseline_label}", "--max-drop")
    drop = base - value
    allowed = md.allowed(base)
    ok = not (drop > allowed)
    d = fmt_num(drop, keep=lambda x: not (x > allowed))
    a = fmt_num(allowed, keep=lambda x: not (drop > x))
    how = f"{md.amount_text} of |baseline|" if md.relative else f"max drop {md.amount_text}"
    line = (f"{_verdict(ok)} {md.path.text} = {fmt_num(value)}, baseline {fmt_num(base)}: "
            f"drop {d} {'<=' if ok else '>'} {a} ({how})")
    extra = {"baseline": base, "drop": drop, "amount": md.amount, "relative": md.relative}
    return Outcome(md.expr, "max-drop", md.path.text, value, "max-drop", allowed, ok, line, extra)


def run_checks(report: dict[str, Any], label: str, requirements: list[Requirement], *,
               baseline: dict[str, Any] | None = None, baseline_label: str | None = None,
               max_drops: list[MaxDrop] | tuple[MaxDrop, ...] = ()) -> CheckResult:
    """Evaluate every condition (``--require`` first, then ``--max-drop``) in the order given."""
    if not requirements and not max_drops:
        raise UsageError("nothing to check: give at least one --require 'PATH OP NUMBER' "
                         "or --baseline BASE with --max-drop PATH=AMOUNT")
    if max_drops and baseline is None:
        raise UsageError("--max-drop needs --baseline BASE (the report the drop is measured from)")
    outcomes = [evaluate_requirement(r, report, label) for r in requirements]
    for md in max_drops:
        outcomes.append(evaluate_max_drop(md, report, label, baseline or {}, baseline_label or "baseline"))
    return CheckResult(report=label, outcomes=outcomes, baseline=baseline_label)
