"""The figures of ``snr report``: matplotlib (Agg) drawn to SVG, returned as ``data:`` URIs for ``<img>``.

Imported only when ``snr report`` runs (matplotlib is the optional extra ``snrcli[plot]``).
Text is kept as SVG text (no embedded font), mathtext is off (a ``$`` in a layer name is a
dollar sign) and the SVG is reproducible (fixed ids, no date), so one report gives one file.
Layer names are cut to ``NAME_CHARS`` characters; the page's tables give them in full.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from .plot import require_matplotlib
from .units import LayerUnits

RC = {"svg.fonttype": "none", "svg.hashsalt": "snr-report", "text.parse_math": False, "font.size": 8.5,
      "axes.titlesize": 9.5, "axes.labelsize": 8.5, "legend.fontsize": 8, "xtick.labelsize": 8,
      "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
      "grid.color": "#e3e6ea", "grid.linewidth": 0.6, "axes.axisbelow": True}
NAME_CHARS = 24
RUN_COLOURS = ("#1f6fb4", "#e8710a")       # run A, run B
NETWORK_COLOURS = {"G_hidden": "#1f6fb4", "G_final": "#e8710a", "G_total": "#202124"}
MAX_LEGEND_LAYERS = 12


def _plt():
    return require_matplotlib("snr report")


def _svg(fig, tight: bool = True) -> str:
    """The figure as a data: URI; ``tight`` crops to what is drawn (needed for legends outside the axes)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def short(text: Any, limit: int = NAME_CHARS) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit - 1] + "\u2026"


def _val(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else np.nan


# --------------------------------------------------------------------------- layers of one or two runs


def layer_overview(runs: Sequence[tuple[str, list[dict[str, Any]]]]) -> str:
    """Per layer: S, G (with the classifier's centred value marked), unit activity and the share of
    inputs kept; one bar per run (one or two runs), layers top to bottom by index."""
    plt = _plt()
    with plt.rc_context(RC):
        indices = sorted({L["index"] for _, layers in runs for L in layers})
        names = {}
        for _, layers in runs:
            for L in layers:
                names.setdefault(L["index"], L.get("name"))
        pos = {idx: k for k, idx in enumerate(indices)}
        n, m = len(indices), len(runs)
        height = 1.1 + 0.24 * n * max(1, m) + 0.2
        fig, axes = plt.subplots(1, 4, figsize=(10.5, height), sharey=True)
        bar = 0.8 / m
        panels = (("S_mean", "S (activity-weighted)", "S_mean_centred"),
                  ("G_mean", "G (activity-weighted)", "G_mean_centred"),
                  ("activity_mean", "unit activity (mean)", None),
                  ("kept", "inputs kept (share)", None))
        for ax, (key, title, centred_key) in zip(axes, panels):
            for r, (label, layers) in enumerate(runs):
                ys = np.array([pos[L["index"]] for L in layers], dtype=float) + (r - (m - 1) / 2) * bar
                if key == "kept":
                    vals = np.array([_val(L.get("inputs_kept")) / _val(L.get("inputs")) if _val(L.get("inputs"))
                                     else np.nan for L in layers])
                else:
                    vals = np.array([_val(L.get(key)) for L in layers])
                ax.barh(ys, np.nan_to_num(vals), height=bar * 0.92, color=RUN_COLOURS[r % 2],
                        label=short(label, 40) if m > 1 else None)
                for y, v in zip(ys, vals):
                    if np.isnan(v):
                        ax.text(0, y, " null", va="center", fontsize=7, color="#5f6368")
                if centred_key:
                    cls = [(y, _val(L.get(centred_key))) for y, L in zip(ys, layers) if L.get("classifier")]
                    if cls:
                        ax.scatter([c[1] for c in cls], [c[0] for c in cls], marker="D", s=22, color="#202124",
                                   zorder=3, label="classifier, centred" if r == 0 else None)
            ax.set_title(title)
            if key in ("activity_mean", "kept"):
                ax.set_xlim(0, 1.02)
            ax.axvline(0, color="#5f6368", linewidth=0.6)
        axes[0].set_yticks(range(n), [short(f"{idx} {names[idx]}") for idx in indices])
        axes[0].invert_yaxis()
        handles = [h for ax in axes[:2] for h in ax.get_legend_handles_labels()[0]]
        labels = [t for ax in axes[:2] for t in ax.get_legend_handles_labels()[1]]
        if labels and m > 1:            # one run: the caption explains the diamond
            seen = dict(zip(labels, handles))
            fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=3, frameon=False,
                       bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout()
        return _svg(fig)


def _hist(ax, values: np.ndarray, weights: np.ndarray | None, edges: np.ndarray, colour: str, label: str | None,
          filled: bool) -> None:
    ok = np.isfinite(values) & (np.ones_like(values, bool) if weights is None else np.isfinite(weights))
    v = values[ok]
    if not len(v):
        return
    w = np.full(len(v), 1.0 / len(v)) if weights is None else weights[ok] / max(weights[ok].sum(), 1e-300)
    if filled:
        ax.hist(v, bins=edges, weights=w, color=colour, alpha=0.55, label=label)
    else:
        ax.hist(v, bins=edges, weights=w, histtype="step", color=colour, linewidth=1.6, label=label)


def _edges(arrays: list[np.ndarray], bounds: tuple[float, float] | None) -> np.ndarray:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if not len(finite):
        return np.linspace(0, 1, 11)
    lo, hi = float(finite.min()), float(finite.max())
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    bins = int(np.clip(np.sqrt(len(finite)) * 1.5, 6, 40))
    return np.linspace(lo, hi, bins + 1)


def unit_distributions(sides: Sequence[tuple[str, dict[str, Any], LayerUnits]]) -> str:
    """One layer: histograms of unit S and unit G weighted by unit activity, unit activity, and for the
    classifier unit S and G after centring; each run's layer mean marked (one or two runs overlaid)."""
    plt = _plt()
    classifier = any(L.get("classifier") and u.S_centred is not None for _, L, u in sides)
    panels = [("S", "S_mean", "unit S (weighted by activity)", True, (-1.0, 1.0)),
              ("G", "G_mean", "unit G (weighted by activity)", True, None),
              ("activity", "activity_mean", "unit activity", False, (0.0, 1.0))]
    if classifier:
        panels += [("S_centred", "S_mean_centred", "unit S, centred (classifier)", False, (-1.0, 1.0)),
                   ("G_centred", "G_mean_centred", "unit G, centred (classifier)", False, None)]
    two = len(sides) > 1
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, len(panels), figsize=(2.35 * len(panels) + 0.6, 2.3))
        for ax, (key, mean_key, title, weighted, bounds) in zip(np.atleast_1d(axes), panels):
            arrays = [getattr(u, key) for _, _, u in sides if getattr(u, key) is not None]
            edges = _edges(arrays, bounds)
            drawn = False
            for r, (label, L, u) in enumerate(sides):
                values = getattr(u, key)
                if values is None:
                    continue
                colour = RUN_COLOURS[r % 2]
                _hist(ax, values, u.activity if weighted else None, edges, colour,
                      short(label, 30) if two else None, filled=r == 0)
                drawn = drawn or bool(np.isfinite(values).any())
                mean = _val(L.get(mean_key))
                if np.isfinite(mean):
                    ax.axvline(mean, color=colour if two else "#202124", linestyle="--" if r else "-",
                               linewidth=1.3, label=None if two else "layer mean")
            if not drawn:
                ax.text(0.5, 0.5, "no defined unit", transform=ax.transAxes, ha="center", va="center",
                        color="#5f6368")
            ax.set_title(title)
            ax.set_ylabel("share of activity" if weighted else "share of units")
        first = np.atleast_1d(axes)[0]
        if first.get_legend_handles_labels()[1]:
            first.legend(loc="upper left", frameon=False)
        fig.tight_layout(pad=0.3)
        return _svg(fig, tight=False)


# --------------------------------------------------------------------------- trajectories


def _x_axis(ax, x: np.ndarray, xlabel: str, integer: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(xlabel)
    if integer:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))


def trajectory_network(x: np.ndarray, xlabel: str, integer: bool, network: dict[str, list[Any]],
                       accuracy: list[Any], baselines: dict[str, list[Any]]) -> str:
    """Network figures, accuracy and the label-free baselines along the runs (one panel each group)."""
    plt = _plt()
    with plt.rc_context(RC):
        panels = [("network figures (eq. 14)", list(network.items()))]
        acc_like = [("accuracy", accuracy)] if any(_val(v) == _val(v) for v in accuracy) else []
        if any(_val(v) == _val(v) for v in baselines.get("mean_max_softmax", [])):
            acc_like.append(("mean max-softmax", baselines["mean_max_softmax"]))
        if acc_like:
            panels.append(("accuracy and confidence", acc_like))
        for key, title in (("sum_squared_weights", "sum of squared weights"),
                           ("log_spectral_norm_product", "log product of spectral norms")):
            if any(_val(v) == _val(v) for v in baselines.get(key, [])):
                panels.append((title, [(key, baselines[key])]))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels) + 0.4, 2.7), squeeze=False)
        for ax, (title, series) in zip(axes[0], panels):
            for k, (name, values) in enumerate(series):
                y = np.array([_val(v) for v in values])
                colour = NETWORK_COLOURS.get(name, f"C{k}")
                ax.plot(x, y, marker="o", markersize=3, linewidth=1.4, color=colour,
                        label=name if len(series) > 1 else None)
            ax.set_title(title)
            _x_axis(ax, x, xlabel, integer)
            if len(series) > 1:
                ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(series),
                          handlelength=1.5, columnspacing=0.8)
        fig.tight_layout()
        return _svg(fig)


def trajectory_layers(x: np.ndarray, xlabel: str, integer: bool,
                      layers: list[tuple[int, str, list[Any], list[Any]]]) -> str:
    """Each layer's G and S (activity-weighted means) along the runs; ``layers``: (index, name, G, S)."""
    plt = _plt()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.0))
        cmap = plt.get_cmap("viridis")
        n = len(layers)
        for k, (idx, name, g, s) in enumerate(layers):
            colour = cmap(0.85 * k / max(n - 1, 1))
            for ax, values in zip(axes, (g, s)):
                ax.plot(x, [_val(v) for v in values], marker="o", markersize=2.5, linewidth=1.3, color=colour,
                        label=short(f"{idx} {name}"))
        axes[0].set_title("layer G (activity-weighted mean)")
        axes[1].set_title("layer S (activity-weighted mean)")
        for ax in axes:
            _x_axis(ax, x, xlabel, integer)
        if n <= MAX_LEGEND_LAYERS:
            axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="layer")
        else:
            from matplotlib.cm import ScalarMappable
            from matplotlib.colors import Normalize
            sm = ScalarMappable(norm=Normalize(layers[0][0], layers[-1][0]),
                                cmap=plt.matplotlib.colors.ListedColormap(cmap(np.linspace(0, 0.85, 256))))
            fig.colorbar(sm, ax=axes, label="layer index", fraction=0.03, pad=0.02)
        if n <= MAX_LEGEND_LAYERS:
            fig.tight_layout()
        return _svg(fig)


def trajectory_units(x: np.ndarray, xlabel: str, integer: bool, per_run: list[LayerUnits | None],
                     means: dict[str, list[Any]]) -> str:
    """One layer along the runs: median of unit S and unit G with 25-75% and 10-90% bands (over defined
    units), and the layer's activity-weighted mean dashed."""
    plt = _plt()
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(8.6, 2.5))
        for ax, key, title in ((axes[0], "S", "unit S"), (axes[1], "G", "unit G")):
            q = np.full((len(per_run), 5), np.nan)
            for k, u in enumerate(per_run):
                if u is None:
                    continue
                v = getattr(u, key)
                v = v[np.isfinite(v)]
                if len(v):
                    q[k] = np.percentile(v, [10, 25, 50, 75, 90])
            ax.fill_between(x, q[:, 0], q[:, 4], color="#1f6fb4", alpha=0.15, linewidth=0, label="10-90%")
            ax.fill_between(x, q[:, 1], q[:, 3], color="#1f6fb4", alpha=0.3, linewidth=0, label="25-75%")
            ax.plot(x, q[:, 2], color="#1f6fb4", linewidth=1.4, label="median")
            ax.plot(x, [_val(v) for v in means[key]], color="#202124", linestyle="--", linewidth=1.1,
                    label="layer mean (weighted)")
            ax.set_title(title)
            _x_axis(ax, x, xlabel, integer)
        axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout()
        return _svg(fig)
