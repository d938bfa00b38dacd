"""The one number format of everything ``snr`` prints for people: the tables of analyze, inspect,
compare and correlate, and the lines of check (JSON and CSV keep full precision).

Four decimals (``0.5909``, ``-0.1928``, ``237.8210``); a number that rounds to zero at four decimals
prints as ``0.0000``, never ``-0.0000`` or ``-1.74409e-07``; magnitudes from 1e6 on in six
significant digits (``1.23457e+06``); integers as they are; null as ``-``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

DIGITS = 4
DASH = "-"
LARGE = 1e6


def fmt_number(v: Any, digits: int = DIGITS, *, sign: bool = False,
               keep: Callable[[float], bool] | None = None) -> str:
    """``v`` for a table or a check line.

    ``sign``: a leading ``+`` on positive numbers (deltas); zero stays unsigned. ``keep``: a verdict
    (``snr check``) that the shown number must give as ``v`` does; when the rounded text would give the
    other verdict (2.4999999 shown as 2.5000 against ``>= 2.5``), the exact value is shown instead.
    """
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:+d}" if sign and v else str(v)
    x = float(v)
    if not math.isfinite(x):
        return DASH
    if round(x, digits) == 0:
        text = f"{0.0:.{digits}f}"
    elif abs(x) >= LARGE:
        text = f"{x:+.6g}" if sign else f"{x:.6g}"
    else:
        text = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    if keep is not None and keep(float(text)) != keep(x):
        return repr(x)
    return text
