"""Terminal output: the consoles, tables and the progress bar (rich).

All user-supplied names are printed as plain text (``markup=False``), never as
rich markup. Data goes to stdout; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

DASH = "-"


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
        width = 160  # piped tables should not wrap at 80 columns
    return _Console(file=stream, markup=False, highlight=False, emoji=False, width=width,
                   no_color=no_color or bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb",
                   soft_wrap=False)


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def analysis_tables(report: dict[str, Any]) -> list[Any]:
    """The layer table, the network figures and the skipped ops of one report dict."""
    layers = report["layers"]
    any_undefined = any(L["undefined_units"] for L in layers)
    t = Table(title="SNR figures per layer", title_justify="left",
              caption="S, G: activity-weighted unit means (eq. 10, 13); S_c, G_c: classifier after softmax "
                      "centring (eq. 18); kept: inputs kept / inputs", caption_justify="left")
    right = {"justify": "right"}
    for col, kw in [("#", right), ("layer", {}), ("op", {}), ("units", right), ("kept", right),
                    ("activity", right), ("S", right), ("G", right), ("S_c", right), ("G_c", right)]:
        t.add_column(col, **kw)
    if any_undefined:
        t.add_column("undefined", justify="right")
    for L in layers:
        row = [Text(str(L["index"])), Text(L["name"] + (" *" if L["classifier"] else "")), Text(L["op"]),
               Text(str(L["units"])), Text(f"{L['inputs_kept']}/{L['inputs']}"), Text(fmt(L["activity_mean"], 3)),
               Text(fmt(L["S_mean"])), Text(fmt(L["G_mean"])),
               Text(fmt(L["S_mean_centred"]) if L["classifier"] else ""),
               Text(fmt(L["G_mean_centred"]) if L["classifier"] else "")]
        if any_undefined:
            row.append(Text(str(L["undefined_units"]) if L["undefined_units"] else ""))
        t.add_row(*row)
    n = report["network"]
    net = Table(title="Network (eq. 14)" + ("; * = classifier" if any(L["classifier"] for L in layers) else ""),
                title_justify="left")
    for col in ("G_hidden", "G_final", "G_total", "accuracy", "items"):
        net.add_column(col, justify="right")
    acc = report.get("accuracy")
    net.add_row(fmt(n["G_hidden"]), fmt(n["G_final"]), fmt(n["G_total"]),
                DASH if acc is None else f"{acc:.4f} ({report.get('labelled')})", str(report["data"]["samples"]))
    why = null_network_reasons(report)
    if why:
        net.caption = why
        net.caption_justify = "left"
    out: list[Any] = [t, net]
    if report["skipped"]:
        sk = Table(title="Skipped weighted ops", title_justify="left")
        for col in ("name", "op", "reason"):
            sk.add_column(col)
        for s in report["skipped"]:
            sk.add_row(Text(s["name"]), Text(s["op"]), Text(s["reason"]))
        out.append(sk)
    return out


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


def inspect_tables(rows: list[dict[str, Any]], skipped: list[dict[str, str]]) -> list[Any]:
    t = Table(title="Layers found", title_justify="left")
    for col in ("#", "name", "op", "weight shape", "units", "inputs per unit", "activity gate", "classifier"):
        t.add_column(col)
    for r in rows:
        t.add_row(Text(str(r["index"])), Text(r["name"]), Text(r["op"]), Text("x".join(map(str, r["weight_shape"]))),
                  Text(str(r["units"])), Text(str(r["inputs_per_unit"])), Text(r["activity_gate"] or DASH),
                  Text("yes" if r["classifier"] else ""))
    out: list[Any] = [t]
    if skipped:
        sk = Table(title="Skipped weighted ops", title_justify="left")
        for col in ("name", "op", "reason"):
            sk.add_column(col)
        for s in skipped:
            sk.add_row(Text(s["name"]), Text(s["op"]), Text(s["reason"]))
        out.append(sk)
    return out


@contextmanager
def progress_bar(console: Console, enabled: bool, label: str = "items") -> Iterator:
    """Yields a callback(done, total); draws a bar on stderr only when it is a terminal and enabled."""
    if not enabled or not console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TextColumn(label),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("run", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
