"""The paper's figures on finished statistics (docs/metrics.md, Kept inputs to Network figures). Pure numpy.

Undefined unit figures are NaN here; the report turns them into nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..stats.layer import FinishedStats


def kept_channels(m: np.ndarray, a: np.ndarray, min_level: float, min_activity: float) -> np.ndarray:
    """docs/metrics.md, Kept inputs (paper B.1): keep channel j when a_j >= min_activity, a_j > 0, m_j > min_level * max m."""
    top = m.max() if m.size else 0.0
    return (a >= min_activity) & (a > 0) & (m > min_level * top)


def unit_figures(w: np.ndarray, cov: np.ndarray, m: np.ndarray, a: np.ndarray,
                 kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S_i (eq. 10) and G_i (eq. 13) for every unit; NaN where undefined.

    ``w`` (units, P) weights, ``cov`` (P, units) cov(x_j, y_i), ``m``, ``a``, ``kept`` (P,)
    per input. With x~_j = x_j / m_j and w~_ij = w_ij m_j,
    c_ij = cov(x_j, y_i) / (m_j a_j) (eq. 9); S_i in [-1, 1], higher is closer to SNR-optimal;
    G_i = S_i ||c_i|| / max_j |c_ij|.
    """
    units = w.shape[0]
    s = np.full(units, np.nan)
    g = np.full(units, np.nan)
    if not kept.any():
        return s, g
    mk, ak = m[kept], a[kept]
    wt = w[:, kept] * mk                                  # w~_ij
    c = cov[kept, :].T / (mk * ak)                        # c_ij, eq. 9
    dot = np.einsum("ij,ij->i", wt, c)
    w_norm = np.linalg.norm(wt, axis=1)
    c_norm = np.linalg.norm(c, axis=1)
    c_max = np.abs(c).max(axis=1)
    ok = (w_norm > 0) & (c_max > 0) & np.isfinite(dot) & np.isfinite(c_norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        s[ok] = dot[ok] / (w_norm[ok] * c_norm[ok])       # eq. 10
        g[ok] = dot[ok] / (w_norm[ok] * c_max[ok])        # eq. 13
    s[ok] = np.clip(s[ok], -1.0, 1.0)
    return s, g


def why_undefined(w: np.ndarray, cov: np.ndarray, m: np.ndarray, a: np.ndarray,
                  kept: np.ndarray) -> list[str | None]:
    """Per unit, why its figures are undefined (None when defined); same arguments as ``unit_figures``."""
    if not np.all(np.isfinite(m)):   # an input value overflowed: max m is inf and no input is kept
        return ["non-finite statistics (overflow)"] * w.shape[0]
    if not kept.any():
        return ["no kept input"] * w.shape[0]
    mk, ak = m[kept], a[kept]
    wt = w[:, kept] * mk
    with np.errstate(all="ignore"):
        c = cov[kept, :].T / (mk * ak)
    out: list[str | None] = []
    for i in range(w.shape[0]):
        if not np.all(np.isfinite(c[i])) or not np.all(np.isfinite(wt[i])):
            out.append("non-finite statistics (overflow)")
        elif not np.any(wt[i]):
            out.append("zero weights on the kept inputs")
        elif not np.any(c[i]):
            out.append("zero covariance with every kept input")
        else:
            out.append(None)
    return out


def centred(w: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Appendix C (eq. 17-18): W'_ij = W_ij - mean_k W_kj, and cov(x_j, y'_i) for y' = W'x."""
    return w - w.mean(axis=0, keepdims=True), cov - cov.mean(axis=1, keepdims=True)


def weighted_mean(v: np.ndarray, r: np.ndarray) -> float | None:
    """sum r_i v_i / sum r_i over defined units (docs/metrics.md, Activity and layer means); None when undefined."""
    ok = np.isfinite(v)
    total = r[ok].sum()
    if not ok.any() or total <= 0:
        return None
    return float((r[ok] * v[ok]).sum() / total)


def plain_mean(v: np.ndarray) -> float | None:
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else None


@dataclass
class LayerFigures:
    """Per-unit and per-layer figures of one layer."""

    S: np.ndarray
    G: np.ndarray
    r: np.ndarray
    inputs_kept: int
    kept_channels: np.ndarray
    S_centred: np.ndarray | None = None
    G_centred: np.ndarray | None = None
    undefined_reasons: dict[str, int] | None = None

    @property
    def undefined_units(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.S)))

    def means(self) -> dict[str, float | None]:
        return {
            "S_mean": weighted_mean(self.S, self.r),
            "G_mean": weighted_mean(self.G, self.r),
            "S_mean_unweighted": plain_mean(self.S),
            "G_mean_unweighted": plain_mean(self.G),
            "activity_mean": float(self.r.mean()) if self.r.size else None,
            "S_mean_centred": None if self.S_centred is None else plain_mean(self.S_centred),
            "G_mean_centred": None if self.G_centred is None else plain_mean(self.G_centred),
        }


def layer_figures(weight: np.ndarray, group: int, kernel_size: int, st: FinishedStats, *,
                  min_level: float, min_activity: float, classifier: bool) -> LayerFigures:
    """Sections 3-6 for one layer: kept inputs, unit S and G per group, centred figures on the classifier."""
    kept_ch = kept_channels(st.m, st.a, min_level, min_activity)
    units = weight.shape[0]
    mg = units // group
    cg = len(st.m) // group
    s_all, g_all = np.full(units, np.nan), np.full(units, np.nan)
    reasons: dict[str, int] = {}
    for k in range(group):
        ch = slice(k * cg, (k + 1) * cg)
        expand = lambda v: np.repeat(v[ch], kernel_size)  # noqa: E731 - per patch element
        w = weight[k * mg:(k + 1) * mg]
        s, g = unit_figures(w, st.cov[k], expand(st.m), expand(st.a), expand(kept_ch))
        s_all[k * mg:(k + 1) * mg], g_all[k * mg:(k + 1) * mg] = s, g
        if not np.all(np.isfinite(s)):
            for why in why_undefined(w, st.cov[k], expand(st.m), expand(st.a), expand(kept_ch)):
                if why:
                    reasons[why] = reasons.get(why, 0) + 1
    figs = LayerFigures(S=s_all, G=g_all, r=st.r, inputs_kept=int(kept_ch.sum()) * kernel_size,
                        kept_channels=kept_ch, undefined_reasons=reasons)
    if classifier:
        wc, cc = centred(weight, st.cov[0])
        e = lambda v: np.repeat(v, kernel_size)  # noqa: E731
        figs.S_centred, figs.G_centred = unit_figures(wc, cc, e(st.m), e(st.a), e(kept_ch))
    return figs


def network_figures(layers: list[dict]) -> dict[str, float | None]:
    """Eq. 14: G_hidden = sum of G_mean over layers other than F; G_final from F (docs/metrics.md, Network figures)."""
    if not layers:
        return {"G_hidden": None, "G_final": None, "G_total": None}
    final = next((L for L in layers if L["classifier"]), layers[-1])
    hidden = [L["G_mean"] for L in layers if L is not final]
    g_hidden = None if any(v is None for v in hidden) else float(sum(hidden))
    g_final = final["G_mean_centred"] if final["classifier"] else final["G_mean"]
    g_total = None if g_hidden is None or g_final is None else g_hidden + g_final
    return {"G_hidden": g_hidden, "G_final": g_final, "G_total": g_total}
