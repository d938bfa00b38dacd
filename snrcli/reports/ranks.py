"""Rank statistics for ``snr correlate`` in plain Python: Spearman's rho, Kendall's tau-b, Pearson's r
and their two-sided p-values, as scipy.stats computes them.

A family of reports has tens to thousands of runs, so plain Python is fast enough, and it
spares ``snr correlate`` the import of numpy and scipy.stats (about 0.7 s of start-up on a
2-core machine). ``tests/test_ranks.py`` holds these functions to scipy's answers.

- Spearman: Pearson's r of the average ranks; p from Student's t with n - 2 degrees of freedom.
- Kendall tau-b: concordant minus discordant pairs over the tie-corrected pair counts (discordant
  pairs counted by merge sort, O(n log n)); p exact (the Mahonian distribution of permutations'
  inversion counts, in integers) when neither side has ties and n <= 33 or at most one pair is
  out of order, else the normal approximation with the tie-corrected variance.
- Student's t tail: the regularised incomplete beta function by its continued fraction (modified
  Lentz): within 1e-11 relative of scipy up to 1,000 degrees of freedom, 1e-9 at 100,000 (the
  log-gamma differences lose digits).
"""

from __future__ import annotations

import math
from itertools import groupby
from typing import Sequence

KENDALL_EXACT_MAX_N = 33      # scipy's rule for the exact Kendall p-value (no ties)


def rankdata(values: Sequence[float]) -> list[float]:
    """Average ranks, 1-based (ties share the mean of the ranks they span)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation coefficient, clipped to [-1, 1]; NaN when either side is constant."""
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxx = math.fsum(v * v for v in dx)
    syy = math.fsum(v * v for v in dy)
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    norm = math.sqrt(sxx * syy)
    if not 0.0 < norm < math.inf:                       # the product under- or overflowed
        norm = math.sqrt(sxx) * math.sqrt(syy)
    r = math.fsum(a * b for a, b in zip(dx, dy)) / norm
    return max(-1.0, min(1.0, r))


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (Student's t, n - 2 degrees of freedom)."""
    rho = pearson(rankdata(x), rankdata(y))
    return rho, correlation_p(rho, len(x) - 2)


def correlation_p(r: float, df: int) -> float:
    """Two-sided p-value of a correlation ``r`` through t = r sqrt(df / (1 - r^2)) with ``df`` degrees of freedom."""
    if math.isnan(r) or df <= 0:
        return math.nan
    if abs(r) >= 1.0:
        return 0.0
    t = abs(r) * math.sqrt(df / ((1.0 + r) * (1.0 - r)))
    return 2.0 * t_sf(t, df)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if t < 0:
        return 1.0 - t_sf(-t, df)
    if math.isinf(t):
        return 0.0
    return 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):                  # the continued fraction converges fast below this
        return 1.0 - betainc(b, a, 1.0 - x)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    return math.exp(log_front) * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float, eps: float = 1e-16, tiny: float = 1e-300) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _inversions(seq: list[int]) -> int:
    """Pairs i < j with seq[i] > seq[j] (merge sort); ``seq`` is sorted in place."""
    n = len(seq)
    if n < 2:
        return 0
    mid = n // 2
    left, right = seq[:mid], seq[mid:]
    count = _inversions(left) + _inversions(right)
    i = j = k = 0
    while i < len(left) and j < len(right):
        if right[j] < left[i]:
            seq[k] = right[j]
            count += len(left) - i
            j += 1
        else:
            seq[k] = left[i]
            i += 1
        k += 1
    seq[k:] = left[i:] + right[j:]
    return count


def _tie_sums(values: Sequence[float]) -> tuple[int, int, int]:
    """Over the groups of tied values (sizes t): sum t(t-1)/2, sum t(t-1)(t-2), sum t(t-1)(2t+5)."""
    sizes = [len(list(g)) for _, g in groupby(sorted(values))]
    return (sum(t * (t - 1) // 2 for t in sizes), sum(t * (t - 1) * (t - 2) for t in sizes),
            sum(t * (t - 1) * (2 * t + 5) for t in sizes))


def kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b and its two-sided p-value (module docstring); NaN, NaN when a side is constant."""
    n = len(x)
    pairs = sorted(zip(x, y))
    y_rank = {v: i for i, v in enumerate(sorted(set(y)))}
    dis = _inversions([y_rank[b] for _, b in pairs])
    joint = sum(t * (t - 1) // 2 for t in (len(list(g)) for _, g in groupby(pairs)))   # tied on both sides
    xtie, x0, x1 = _tie_sums(x)
    ytie, y0, y1 = _tie_sums(y)
    tot = n * (n - 1) // 2
    if xtie == tot or ytie == tot:
        return math.nan, math.nan
    s = tot - xtie - ytie + joint - 2 * dis            # concordant minus discordant
    tau = max(-1.0, min(1.0, s / math.sqrt(tot - xtie) / math.sqrt(tot - ytie)))
    if xtie == 0 and ytie == 0 and (n <= KENDALL_EXACT_MAX_N or min(dis, tot - dis) <= 1):
        return tau, kendall_exact_p(n, tot - dis)
    m = n * (n - 1.0)
    var = ((m * (2 * n + 5) - x1 - y1) / 18.0 + (2.0 * xtie * ytie) / m + x0 * y0 / (9.0 * m * (n - 2)))
    return tau, math.erfc(abs(s) / math.sqrt(var) / math.sqrt(2.0))


def kendall_exact_p(n: int, concordant: int) -> float:
    """Two-sided exact p-value of ``concordant`` pairs among n items in order, no ties: twice the
    probability of a count at least as extreme, from the number of permutations of n with each
    inversion count (computed in integers)."""
    tot = n * (n - 1) // 2
    c = min(concordant, tot - concordant)
    if 4 * c == n * (n - 1) or n <= 2:
        return 1.0
    counts = [1] + [0] * c                               # permutations of 1 item by inversions <= c
    for j in range(2, n + 1):                            # add item j: 0 .. j - 1 new inversions
        running, out = 0, []
        for k in range(c + 1):
            running += counts[k]
            if k >= j:
                running -= counts[k - j]
            out.append(running)
        counts = out
    return min(1.0, 2 * sum(counts) / math.factorial(n))
