"""Scatter panels for ``snr correlate --plot`` (matplotlib, the optional extra ``snrcli[plot]``).

One panel per figure: the figure on the x axis, the target (accuracy) on the y
axis, one point per run, the least-squares line, and Spearman's rho in the title.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

EXTRA_MESSAGE = "--plot needs matplotlib, the optional extra snrcli[plot]: pip install 'snrcli[plot]'"


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, or a usage error naming the extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(EXTRA_MESSAGE) from None
    return plt


def plot_format(path: str) -> str:
    """The image format that ``path``'s suffix names (png without a suffix); a usage error for a suffix
    matplotlib cannot write. Needs matplotlib (``require_matplotlib``)."""
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    known = FigureCanvasBase.get_supported_filetypes()
    if suffix not in known:
        raise UsageError(f"--plot {path}: unknown image format {suffix!r}; use one of "
                         f"{', '.join('.' + k for k in sorted(known))}")
    return suffix


def scatter_panels(result, path: str, *, columns: int = 4) -> None:
    """Write ``path`` (PNG, or any format matplotlib knows by the suffix) with one panel per row of
    ``result``, atomically."""
    from .outfiles import write_file

    plt = require_matplotlib()
    fmt = plot_format(path)
    rows = result.rows
    figs = {f.key: f for f in result.figures}
    n = len(rows)
    cols = min(columns, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.7 * nrows), squeeze=False)
    y_all = np.asarray(result.target_values, dtype=float)
    for ax, row in zip(axes.flat, rows):
        vals = figs[row["figure"]].values
        keep = [k for k, v in enumerate(vals) if v is not None]
        x = np.array([vals[k] for k in keep], dtype=float)
        y = y_all[keep]
        ax.scatter(x, y, s=14, alpha=0.8)
        if len(x) >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.array([x.min(), x.max()])
            ax.plot(xs, slope * xs + intercept, color="C3", linewidth=1)
        if len(y) and np.ptp(y) > 0:
            pad = 0.08 * float(np.ptp(y))
            ax.set_ylim(float(y.min()) - pad, float(y.max()) + pad)
        rho = row["spearman_rho"]
        ax.set_title(f"{row['label']}\nrho = {'n/a' if rho is None else f'{rho:.3f}'} (n = {row['n']})",
                     fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(result.target, fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    try:
        write_file(path, "--plot", lambda tmp: fig.savefig(tmp, dpi=80, format=fmt))
    finally:
        plt.close(fig)
