"""Names from models and reports made safe to print on a terminal.

Layer, output and file names come from files the user may not have written. Printed as they
are, an escape sequence in a name would drive the terminal (colours, titles, cursor moves) and a
newline would break the one-line error contract; a lone surrogate (from a JSON ``\\ud800``
escape) cannot be encoded at all. ``printable`` writes such characters as Python-style escapes.
"""

from __future__ import annotations

import unicodedata

# categories escaped: control characters, lone surrogates, line and paragraph separators, and the
# format characters that reorder text (bidirectional overrides and isolates)
_ESCAPED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def _escape(c: str) -> str:
    n = ord(c)
    if n < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{n:02x}")
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: object) -> str:
    """``text`` (made a string) with control characters, lone surrogates, line separators and
    bidirectional controls written as escapes (``\\x1b``, ``\\n``, ``\\ud800``, ``\\u202e``)."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():
        return s
    return "".join(_escape(c) if c in _BIDI or unicodedata.category(c) in _ESCAPED_CATEGORIES else c
                   for c in s)
