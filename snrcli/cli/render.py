"""Terminal output: the consoles, tables that fit the terminal, and progress (rich).

All user-supplied names are printed as plain text (``markup=False``), never as rich
markup, and with control characters escaped (``cell``, ``safetext.printable``). Data goes
to stdout; progress, warnings and errors go to stderr.

Tables never cut a number. A table is described as a ``Grid`` (columns and cells); ``fit``
turns it into rich tables for a width: names fold onto more lines, number columns never
shrink; when the numbers do not fit side by side, optional columns go first, then the table
is stacked (parts that repeat the key columns, each holding whole groups of columns), and as
a last resort each row becomes a small two-column table. ``--wide`` prints every table at its
full width.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..reports.numbers import DASH, fmt_number
from ..safetext import printable

TEXT_MIN = 12          # a folding text column may narrow to this (or its own width, if less)
PIPED_WIDTH = 160      # piped tables should not wrap at 80 columns
fmt = fmt_number       # the one number format (snrcli.reports.numbers)


def cell(v: Any, style: str = "") -> Text:
    """A table cell (or title) of plain text, control characters escaped."""
    return Text(printable(v), style=style)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A closed stdout (``snr ... | head``) reaches SnrGroup, which ends with its documented exit
        code (rich's own handler exits 1, which means "a check failed")."""
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def make_console(*, stderr: bool = False, no_color: bool = False) -> Console:
    """A console that never interprets markup in text; colour off for NO_COLOR, TERM=dumb, non-TTY, --no-color."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = PIPED_WIDTH
    return _Console(file=stream, markup=False, highlight=False, emoji=False, width=width,
                   no_color=no_color or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb",
                   soft_wrap=False)


# --------------------------------------------------------------------------- tables that fit


@dataclass
class Col:
    """A column: numbers (right-justified, never cut) or text (folds onto more lines)."""

    header: str
    numeric: bool = True
    key: bool = False          # repeated in every part of a stacked table
    group: str = ""            # data columns of one group stay together when stacked
    optional: bool = False     # left out before a table is stacked


@dataclass
class Grid:
    """A table before it is fitted to a width: ``rows`` hold one str or Text per column."""

    title: str
    cols: list[Col]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str | None = None
    sections: set[int] = field(default_factory=set)   # row positions that start a new section

    def add(self, *cells: Any, section: bool = False) -> None:
        if section and self.rows:
            self.sections.add(len(self.rows))
        self.rows.append([c if isinstance(c, Text) else cell(c) for c in cells])


def _header(col: Col, split: bool) -> str:
    """A number column's header, on one line or (``split``) one word a line."""
    return "\n".join(col.header.split()) if split and col.numeric else col.header


def _natural(grid: Grid, k: int, split: bool = False) -> int:
    head = max(cell_len(w) for w in _header(grid.cols[k], split).split("\n") or [""])
    return max([head] + [cell_len(r[k].plain) for r in grid.rows])


def _least(grid: Grid, k: int, split: bool) -> int:
    """The narrowest column k can be without cutting a number (text folds)."""
    n = _natural(grid, k, split)
    return n if grid.cols[k].numeric else min(n, max(TEXT_MIN, cell_len(grid.cols[k].header)))


def table_width(widths: list[int]) -> int:
    """The width of a rich table with these column contents: padding 1 each side, rules between, edges."""
    return sum(widths) + 3 * len(widths) + 1


def _fits(grid: Grid, ks: list[int], width: int, split: bool) -> bool:
    return table_width([_least(grid, k, split) for k in ks]) <= width


def _table(grid: Grid, ks: list[int], title: str, caption: str | None, skip_blank: bool, split: bool) -> Table:
    t = Table(title=printable(title), title_justify="left", caption=None if caption is None else printable(caption),
              caption_justify="left")
    for k in ks:
        c = grid.cols[k]
        if c.numeric:
            t.add_column(printable(_header(c, split)), justify="right", no_wrap=True,
                         min_width=_natural(grid, k, split))
        else:
            t.add_column(printable(c.header), overflow="fold")
    data = [k for k in ks if not grid.cols[k].key]
    for pos, row in enumerate(grid.rows):
        if skip_blank and all(row[k].plain in ("", DASH) for k in data):
            continue
        if pos in grid.sections:
            t.add_section()
        t.add_row(*[row[k] for k in ks])
    return t


def _records(grid: Grid) -> list[Any]:
    """The last resort for a very narrow terminal: each row as a two-column table."""
    keys = [k for k, c in enumerate(grid.cols) if c.key]
    out: list[Any] = []
    for row in grid.rows:
        name = " ".join(row[k].plain for k in keys) or grid.title
        t = Table(title=printable(f"{grid.title}: {name}"), title_justify="left", show_header=False)
        t.add_column(overflow="fold")
        t.add_column(justify="right", no_wrap=True)
        for k, c in enumerate(grid.cols):
            if k not in keys and row[k].plain:
                t.add_row(cell(c.header), row[k])
        out.append(t)
    if grid.caption:
        out.append(cell(grid.caption))
    return out


def fit(grid: Grid, width: int | None) -> list[Any]:
    """Rich tables (and a stacked table's caption) showing every cell of ``grid`` within ``width``
    columns (None: at full width). Tried in turn: the whole table; number headers one word a line;
    without the optional columns; stacked in parts of whole column groups; one small table per row."""
    every = list(range(len(grid.cols)))
    if width is None or _fits(grid, every, width, False):
        return [_table(grid, every, grid.title, grid.caption, False, False)]
    if _fits(grid, every, width, True):
        return [_table(grid, every, grid.title, grid.caption, False, True)]
    kept = [k for k in every if not grid.cols[k].optional]
    if _fits(grid, kept, width, True):
        return [_table(grid, kept, grid.title, grid.caption, False, True)]
    keys = [k for k in kept if grid.cols[k].key]
    groups: dict[str, list[int]] = {}
    for k in kept:
        if not grid.cols[k].key:
            groups.setdefault(grid.cols[k].group or f"#{k}", []).append(k)
    for split in (False, True):
        parts = _stack(grid, keys, list(groups.values()), width, split)
        if parts:
            out: list[Any] = []
            for n, ks in enumerate(parts):
                title = grid.title if n == 0 else f"{grid.title} (continued, {n + 1} of {len(parts)})"
                out.append(_table(grid, keys + ks, title, None, n > 0, split))
            if grid.caption:
                out.append(cell(grid.caption))   # under the last part, wrapped at the terminal's width
            return out
    return _records(grid)


def _stack(grid: Grid, keys: list[int], groups: list[list[int]], width: int, split: bool) -> list[list[int]]:
    """Groups of columns packed greedily into parts that fit beside the key columns ([] if one cannot)."""
    parts: list[list[int]] = []
    for ks in groups:
        if not _fits(grid, keys + ks, width, split):
            return []
        if parts and _fits(grid, keys + parts[-1] + ks, width, split):
            parts[-1] += ks
        else:
            parts.append(list(ks))
    return parts


def print_grids(console: Console, grids: list[Grid], *, wide: bool = False) -> None:
    """Print each grid fitted to the console's width (or at full width with ``wide``)."""
    for g in grids:
        width = console.width
        if wide:    # the console's own width, not print(width=...), which cannot exceed it
            console.width = max(width, table_width([_natural(g, k) for k in range(len(g.cols))]))
        try:
            for t in fit(g, None if wide else width):
                console.print(t)
        finally:
            console.width = width


def number(v: Any, digits: int = 4) -> Text:
    return Text(fmt(v, digits))


def delta(d: Any) -> Text:
    """B - A: signed, green up and red down; zero up to rounding is plain 0.0000."""
    s = fmt(d, sign=True)
    if d is None or s.strip("+-0.") == "":
        return Text(s)
    return Text(s, style="green" if d > 0 else "red")


# --------------------------------------------------------------------------- analyze and inspect


def analysis_grids(report: dict[str, Any]) -> list[Grid]:
    """The layer table, the network figures and the skipped ops of one report dict."""
    layers = report["layers"]
    any_undefined = any(L["undefined_units"] for L in layers)
    cols = [Col("#", key=True), Col("layer", numeric=False, key=True), Col("op", numeric=False, optional=True),
            Col("units", group="size"), Col("kept", group="size"), Col("activity", group="activity"),
            Col("S", group="SG"), Col("G", group="SG"), Col("S_c", group="centred"), Col("G_c", group="centred")]
    if any_undefined:
        cols.append(Col("undefined", group="undefined"))
    t = Grid("SNR figures per layer", cols,
             caption="S, G: activity-weighted unit means (eq. 10, 13); S_c, G_c: classifier after softmax "
                     "centring (eq. 18); kept: inputs kept / inputs"
                     + ("; activity: mean squared activation slopes (--noise-model activation)"
                        if report["settings"].get("noise_model") == "activation" else ""))
    for L in layers:
        row = [L["index"], L["name"] + (" *" if L["classifier"] else ""), L["op"], L["units"],
               f"{L['inputs_kept']}/{L['inputs']}", number(L["activity_mean"]), number(L["S_mean"]),
               number(L["G_mean"]), number(L["S_mean_centred"]) if L["classifier"] else "",
               number(L["G_mean_centred"]) if L["classifier"] else ""]
        if any_undefined:
            row.append(str(L["undefined_units"]) if L["undefined_units"] else "")
        t.add(*row)
    n = report["network"]
    net = Grid("Network (eq. 14)" + ("; * = classifier" if any(L["classifier"] for L in layers) else ""),
               [Col(c) for c in ("G_hidden", "G_final", "G_total", "accuracy", "items")],
               caption=null_network_reasons(report) or None)
    acc = report.get("accuracy")
    net.add(number(n["G_hidden"]), number(n["G_final"]), number(n["G_total"]),
            DASH if acc is None else f"{fmt(acc)} ({report.get('labelled')})", str(report["data"]["samples"]))
    out = [t, net]
    if report["skipped"]:
        out.append(skipped_grid(report["skipped"]))
    return out


def skipped_grid(skipped: list[dict[str, str]]) -> Grid:
    sk = Grid("Skipped weighted ops", [Col("name", numeric=False), Col("op", numeric=False),
                                       Col("reason", numeric=False)])
    for s in skipped:
        sk.add(s["name"], s["op"], s["reason"])
    return sk


def null_network_reasons(report: dict[str, Any]) -> str:
    """Why network figures are null: the layers with no defined unit, and their units' reasons."""
    if all(v is not None for v in report["network"].values()):
        return ""
    parts = []
    for L in report["layers"]:
        if L["G_mean"] is None:
            reasons = L.get("undefined_reasons") or {}
            detail = ", ".join(f"{n} {why}" for why, n in reasons.items()) or "no defined unit"
            parts.append(f"layer {L['index']} ({L['name']}): {detail}")
    return "null network figures: " + ("; ".join(parts) if parts else "a layer figure is undefined")


def inspect_grids(rows: list[dict[str, Any]], skipped: list[dict[str, str]]) -> list[Grid]:
    t = Grid("Layers found", [Col("#", key=True), Col("name", numeric=False, key=True), Col("op", numeric=False),
                              Col("weight"), Col("units"), Col("inputs/unit"), Col("gate", numeric=False),
                              Col("reads", numeric=False, optional=True), Col("feeds", numeric=False, optional=True),
                              Col("classifier", numeric=False)],
             caption="weight: units x inputs per unit; gate: the tensor whose values > 0 count as activity; "
                     "reads, feeds: the ops of the activation before and after the layer")
    for r in rows:
        t.add(r["index"], r["name"], r["op"], "x".join(map(str, r["weight_shape"])), r["units"],
              r["inputs_per_unit"], r["activity_gate"] or DASH, " ".join(r["input_activation"] or [DASH]),
              " ".join(r["unit_activation"] or [DASH]), "yes" if r["classifier"] else "")
    return [t] + ([skipped_grid(skipped)] if skipped else [])


# --------------------------------------------------------------------------- progress


def duration(seconds: float) -> str:
    """12 s, 3 min 05 s, 2 h 07 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class LineProgress:
    """Progress as plain lines, for a stderr that is not a terminal (CI logs): from ``first`` seconds on,
    a line whenever another tenth of the items is done or ``every`` seconds have passed, whichever comes
    first (items done, rate, time left), and a last line when a run that printed any finishes. Runs
    shorter than ``first`` print nothing (an error then stays the only line)."""

    def __init__(self, write: Callable[[str], None], label: str = "analysing", *, first: float = 10.0,
                 every: float = 10.0, clock: Callable[[], float] | None = None) -> None:
        self.write, self.label, self.first, self.every = write, label, first, every
        self.clock = clock or time.monotonic
        self.start = self.clock()
        self.last_time: float | None = None
        self.last_tenth = 0
        self.done = self.total = 0

    def line(self, done: int, total: int, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        text = f"{self.label}: {done:,} of {total:,} items ({100 * done // max(total, 1)}%), {rate:,.0f} items/s"
        if done >= total:
            return text + f", done in {duration(elapsed)}"
        return text + (f", about {duration((total - done) / rate)} left" if rate > 0 else "")

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = self.clock()
        if now - self.start < self.first or done >= total:
            return
        tenth = 10 * done // max(total, 1)
        if tenth > self.last_tenth or self.last_time is None or now - self.last_time >= self.every:
            self.write(self.line(done, total, now))
            self.last_time, self.last_tenth = now, tenth

    def close(self) -> None:
        if self.last_time is not None and self.total and self.done >= self.total:
            self.write(self.line(self.done, self.total, self.clock()))


def _err_line(console: Console) -> Callable[[str], None]:
    def write(text: str) -> None:
        print(text, file=console.file, flush=True)
    return write


@contextmanager
def progress_bar(console: Console, enabled: bool, label: str = "items") -> Iterator:
    """Yields a callback(done, total): a bar with the time left on a terminal, plain lines otherwise."""
    if not enabled:
        yield lambda done, total: None
        return
    if not console.is_terminal:
        lines = LineProgress(_err_line(console))
        yield lines
        lines.close()
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TextColumn(label),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("run", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
