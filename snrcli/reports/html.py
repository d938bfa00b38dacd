"""A small HTML builder that escapes everything it is not told is markup, the page shell and its writing.

Text reaching a page comes from model files and report files (layer names, paths,
warnings), so every string is escaped unless it is an ``Html`` value made here. The
page loads nothing: no script, no external style or font; figures are ``data:`` images,
and a Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError

# nothing but inline style and data: images; no script, no connection, no form
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class Html(str):
    """A string that is already markup (built by this module); everything else gets escaped."""

    def __add__(self, other: Any) -> "Html":
        return Html(str.__add__(self, esc(other)))

    def __radd__(self, other: Any) -> "Html":
        return Html(str.__add__(esc(other), self))


def esc(value: Any) -> Html:
    """``value`` as text: markup passes through, anything else is escaped (quotes too)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(p) for p in parts))


def _attrs(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


def tag(name: str, /, *children: Any, **attrs: Any) -> Html:
    """``<name attrs>children</name>``; children are escaped unless ``Html``. ``class_`` -> class."""
    return Html(f"<{name}{_attrs(attrs)}>{join(children)}</{name}>")


def void(name: str, /, **attrs: Any) -> Html:
    return Html(f"<{name}{_attrs(attrs)}>")


# --------------------------------------------------------------------------- numbers


def number(v: Any) -> float | int | None:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def fmt(v: Any, digits: int = 4) -> str:
    """As the terminal tables show it: 4 decimals (or ``digits``), whole numbers as they are, ``-`` for null."""
    n = number(v)
    if n is None:
        return "-" if v is None or isinstance(v, (int, float)) else str(v)
    if isinstance(n, int):
        return f"{n:,}" if abs(n) >= 10000 else str(n)
    return f"{n:.{digits}f}"


def fmt_delta(v: Any, digits: int = 4) -> str:
    n = number(v)
    if n is None:
        return "-"
    if n == 0:
        return "0"
    return f"{n:+.{digits}f}" if isinstance(n, float) else f"{n:+d}"


def num_cell(v: Any, digits: int = 4, *, delta: bool = False, cls: str | None = None) -> Html:
    """A right-aligned cell; ``data-value`` keeps the full value (empty for null)."""
    n = number(v)
    text = fmt_delta(v, digits) if delta else fmt(v, digits)
    classes = ["num"] + ([cls] if cls else [])
    if delta and n:
        classes.append("up" if n > 0 else "down")
    return tag("td", text, class_=" ".join(classes), data_value="" if n is None else repr(n))


def table(head: list[Any], rows: Iterable[list[Any]], *, id_: str | None = None, class_: str | None = None,
          caption: Any = None, row_attrs: list[dict[str, Any]] | None = None) -> Html:
    """A table: header cells are text or ``Html``; row cells are ``<td>`` markup (``num_cell``) or text."""
    def cell(c: Any) -> Html:
        return c if isinstance(c, Html) and c.startswith(("<td", "<th")) else tag("td", c)

    body = [tag("tr", *[cell(c) for c in r], **((row_attrs or [])[k] if row_attrs else {}))
            for k, r in enumerate(rows)]
    parts = [tag("caption", caption)] if caption is not None else []
    parts += [tag("thead", tag("tr", *[tag("th", h, scope="col") for h in head])), tag("tbody", *body)]
    return tag("div", tag("table", *parts, id=id_, class_=class_), class_="scroll")


def key_values(rows: list[tuple[Any, Any]], *, class_: str = "kv") -> Html:
    """A two-column table of names and values (values: text or ``Html``)."""
    return tag("table", tag("tbody", *[tag("tr", tag("th", k, scope="row"), tag("td", v)) for k, v in rows]),
               class_=class_)


def figure(data_uri: str, alt: str, caption: Any = None, *, class_: str = "fig") -> Html:
    parts = [void("img", src=data_uri, alt=alt)]
    if caption is not None:
        parts.append(tag("figcaption", caption))
    return tag("figure", *parts, class_=class_)


def note(*text: Any) -> Html:
    return tag("p", *text, class_="note")


# --------------------------------------------------------------------------- the page

STYLE = """
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5f6368; --line: #d0d4da; --band: #f4f6f8;
        --up: #1a7f37; --down: #b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1180px; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 1.6rem 0 .4rem; overflow-wrap: anywhere; }
p { margin: .4rem 0; }
.sub { color: var(--muted); margin: 0 0 1rem; overflow-wrap: anywhere; }
.note { color: var(--muted); font-size: .92rem; }
.explain { background: var(--band); border-left: 4px solid #8ab4f8; padding: .5rem .8rem; max-width: 60rem; }
nav { font-size: .9rem; margin: .5rem 0 1rem; }
nav a { margin-right: .8rem; color: #1a56db; text-decoration: none; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .86em;
              overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .3rem 0 .8rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: .88rem; caption-side: bottom; padding-top: .3rem; }
th, td { border-bottom: 1px solid var(--line); padding: .22rem .55rem; text-align: left; vertical-align: top; }
thead th { background: var(--band); font-weight: 600; vertical-align: bottom; }
td.num { text-align: right; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
td.up { color: var(--up); } td.down { color: var(--down); }
td.name { overflow-wrap: break-word; min-width: 6rem; max-width: 24rem; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
.columns > table { flex: 1 1 24rem; }
table.kv th { font-weight: 600; color: var(--muted); white-space: nowrap; padding-right: 1.2rem; }
table.kv td { overflow-wrap: anywhere; }
tr.differs td, tr.differs th { background: #fff4e5; }
tr.classifier td { font-weight: 600; }
ul.warnings li { margin: .2rem 0; overflow-wrap: anywhere; }
figure { margin: .6rem 0 1rem; }
.layer-body { display: flex; flex-wrap: wrap; gap: .4rem 1.6rem; align-items: flex-start; }
.layer-body figure { margin-top: .2rem; display: table; max-width: 100%; }
.layer-body figcaption { display: table-caption; caption-side: bottom; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: .2rem; max-width: 60rem; }
.layer { break-inside: avoid; page-break-inside: avoid; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line);
         padding-top: .5rem; }
@media print {
  @page { margin: 14mm 12mm; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav { display: none; }
  .scroll { overflow: visible; }
  table { font-size: 8.5pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  h3 { break-after: avoid; page-break-after: avoid; }
  figure, table, .layer { break-inside: avoid; page-break-inside: avoid; }
  figure img { max-height: 120mm; width: auto; }
  a { color: inherit; text-decoration: none; }
  .explain { border-left-color: #999; }
}
"""


def page(title: str, subtitle: Any, nav: list[tuple[str, str]], body: list[Html], footer: Any) -> str:
    """The whole document: one file, no outside resource, no script."""
    links = join([tag("a", text, href=f"#{anchor}") for anchor, text in nav], " ")
    doc = [
        "<!DOCTYPE html>",
        tag("html",
            tag("head",
                void("meta", charset="utf-8"),
                void("meta", http_equiv="Content-Security-Policy", content=CSP),
                void("meta", name="viewport", content="width=device-width, initial-scale=1"),
                void("meta", name="generator", content="snr report"),
                tag("title", title),
                tag("style", Html(STYLE))),
            tag("body",
                tag("header", tag("h1", title), tag("p", subtitle, class_="sub")),
                tag("nav", links),
                tag("main", *body),
                tag("footer", footer)),
            lang="en"),
    ]
    return "\n".join(doc) + "\n"


# --------------------------------------------------------------------------- writing


def check_target(path: str | os.PathLike, *, force: bool) -> Path:
    """Refuse, before any work, a FILE that exists (without ``force``), is a folder, or cannot be made."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--html {target} is a folder; name a file")
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to replace it")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"cannot write --html {target}: {parent} is a file")
            if not os.access(parent, os.W_OK):
                raise UsageError(f"cannot write --html {target}: {parent} is not writable")
            break
    return target


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, then rename it over ``path``
    (missing folders are made first)."""
    from .outfiles import write_file

    target = Path(path)
    try:
        target.absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--html {target}: cannot write it: {e.strerror or e}") from None
    write_file(str(target), "--html", lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline="\n"))
