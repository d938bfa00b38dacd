"""Scatter panels for ``snr correlate --plot`` (matplotlib, the optional extra ``snrcli[plot]``).

One panel per figure: the figure on the x axis, the target (accuracy) on the y
axis, one point per run, the least-squares line, Spearman's rho (and with a control
the partial rho) in the title; points coloured by a covariate when asked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

EXTRA_MESSAGE = "{what} needs matplotlib, the optional extra snrcli[plot]: pip install 'snrcli[plot]'"


def require_matplotlib(what: str = "--plot") -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, or a usage error naming ``what`` and the extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(EXTRA_MESSAGE.format(what=what)) from None
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


def _colour_values(raw: list[str]) -> tuple[list[float] | None, list[str]]:
    """Numbers when every cell is one (a colour scale), else the cells as categories."""
    try:
        nums = [float(v) for v in raw]
        if all(math.isfinite(v) for v in nums):
            return nums, []
    except ValueError:
        pass
    return None, list(dict.fromkeys(raw))


def scatter_panels(result, path: str, *, columns: int = 4, colour_name: str | None = None,
                   colours: list[str] | None = None) -> None:
    """Write ``path`` (PNG, or any format matplotlib knows by the suffix) with one panel per row of
    ``result``, atomically.

    Each panel: the figure against the target, one point per run, the least-squares line, Spearman's
    rho and, when ``result`` has a control, the partial rho given it. ``colours`` (one covariate cell per
    run, named ``colour_name``) colours the points: a colour scale when every cell is a number, else one
    colour per value with a legend.
    """
    from .outfiles import write_file

    plt = require_matplotlib()
    fmt = plot_format(path)
    rows = result.rows
    figs = {f.key: f for f in result.figures}
    n = len(rows)
    cols = min(columns, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.7 * nrows + (0.4 if colours else 0)),
                             squeeze=False)
    y_all = np.asarray(result.target_values, dtype=float)
    nums, cats = _colour_values(colours) if colours else (None, [])
    scale = None
    for ax, row in zip(axes.flat, rows):
        vals = figs[row["figure"]].values
        keep = [k for k, v in enumerate(vals) if v is not None]
        x = np.array([vals[k] for k in keep], dtype=float)
        y = y_all[keep]
        if nums is not None:
            scale = ax.scatter(x, y, s=16, alpha=0.9, c=[nums[k] for k in keep], cmap="viridis",
                               vmin=min(nums), vmax=max(nums))
        elif cats:
            for j, cat in enumerate(cats):
                sel = [i for i, k in enumerate(keep) if colours[k] == cat]
                ax.scatter(x[sel], y[sel], s=16, alpha=0.9, color=f"C{j % 10}", label=cat or "(blank)")
        else:
            ax.scatter(x, y, s=14, alpha=0.8)
        if len(x) >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.array([x.min(), x.max()])
            ax.plot(xs, slope * xs + intercept, color="C3", linewidth=1)
        if len(y) and np.ptp(y) > 0:
            pad = 0.08 * float(np.ptp(y))
            ax.set_ylim(float(y.min()) - pad, float(y.max()) + pad)
        title = f"{row['label']}\nrho = {_num(row['spearman_rho'])} (n = {row['n']})"
        if result.control:
            title += f"\npartial | {result.control} = {_num(row.get('partial_rho'))} (n = {row.get('partial_n')})"
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel(result.target, fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if scale is not None:
        fig.colorbar(scale, ax=list(axes.flat), label=colour_name, shrink=0.6)
    elif cats:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, title=colour_name, loc="lower center", ncol=min(len(cats), 6), fontsize=7)
    if scale is None:
        fig.tight_layout(rect=(0, 0.06 if cats else 0, 1, 1))
    try:
        write_file(path, "--plot", lambda tmp: fig.savefig(tmp, dpi=80, format=fmt))
    finally:
        plt.close(fig)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
