"""The rank statistics of ``snr correlate`` (snrcli.reports.ranks) against scipy.stats, and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from snrcli.reports import ranks

REL = 1e-12


def close(a: float, b: float, rel: float = REL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)


def test_known_answers():
    # scipy's documented kendalltau example: tau -0.4714, p 0.2827 (ties: normal approximation)
    tau, p = ranks.kendall([12, 2, 1, 12, 2], [1, 4, 7, 1, 0])
    assert tau == pytest.approx(-0.47140452079103173, rel=1e-14)
    assert p == pytest.approx(0.2827454599327748, rel=1e-12)
    # perfect order, 4 items, no ties: exact p = 2 / 4! = 1/12
    assert ranks.kendall([1, 2, 3, 4], [10, 20, 30, 40]) == (1.0, pytest.approx(1 / 12, rel=1e-15))
    # one pair out of order among 4: P(inversions <= 1) = (1 + 3) / 24, two-sided 1/3
    assert ranks.kendall([1, 2, 3, 4], [1, 3, 2, 4])[1] == pytest.approx(1 / 3, rel=1e-15)
    assert ranks.rankdata([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    # Student's t with 1 degree of freedom is Cauchy: P(T > 1) = 1/4
    assert ranks.t_sf(1.0, 1) == pytest.approx(0.25, rel=1e-14)
    assert ranks.t_sf(0.0, 7) == pytest.approx(0.5, rel=1e-15)
    assert ranks.spearman([1, 2, 3], [3, 2, 1]) == (-1.0, 0.0)


def test_constant_sides_give_nan():
    assert all(math.isnan(v) for v in ranks.kendall([1, 1, 1], [1, 2, 3]))
    assert math.isnan(ranks.pearson([2, 2, 2], [1, 2, 3]))


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 100, 1000, 10_000])
@pytest.mark.parametrize("t", [0.0, 0.01, 0.5, 1.0, 2.0, 5.0, 20.0, 1e3])
def test_t_tail_matches_scipy(t, df):
    expected = float(stats.t.sf(t, df))
    if expected < 1e-280:
        assert ranks.t_sf(t, df) < 1e-270
    else:
        assert close(ranks.t_sf(t, df), expected, 1e-11 if df <= 1000 else 1e-9), (ranks.t_sf(t, df), expected)


def _check(x: list[float], y: list[float]) -> None:
    rho, rho_p = stats.spearmanr(x, y)
    tau, tau_p = stats.kendalltau(x, y)
    got_rho, got_rho_p = ranks.spearman(x, y)
    got_tau, got_tau_p = ranks.kendall(x, y)
    assert close(got_rho, float(rho), 1e-12) or abs(got_rho - rho) < 1e-14
    if abs(rho) < 1 - 1e-9:   # near +-1 the p-value is as sensitive as 1 - |rho| (rounding in the last bit)
        assert close(got_rho_p, float(rho_p), 1e-9) or abs(got_rho_p - rho_p) < 1e-14
    assert close(got_tau, float(tau), 1e-12) or abs(got_tau - tau) < 1e-14
    assert close(got_tau_p, float(tau_p), 1e-9) or abs(got_tau_p - tau_p) < 1e-14
    if np.std(x) > 0 and np.std(y) > 0:
        assert abs(ranks.pearson(x, y) - stats.pearsonr(x, y).statistic) < 1e-13


values = st.lists(st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
                  min_size=3, max_size=60)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), xs=values)
def test_spearman_kendall_pearson_match_scipy(data, xs):
    ys = data.draw(st.lists(st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
                            min_size=len(xs), max_size=len(xs)))
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return
    _check(xs, ys)


@pytest.mark.parametrize("n", [3, 4, 10, 33, 34, 60, 200])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_untied_samples_exact_and_asymptotic_p(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = 0.3 * x + rng.standard_normal(n)
    _check(x.tolist(), y.tolist())
    # nearly sorted: at most one pair out of order takes the exact path at any n
    z = sorted(x.tolist())
    z[0], z[1] = z[1], z[0]
    _check(sorted(x.tolist()), z)


def test_inversion_count_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(50):
        seq = rng.integers(0, 6, size=int(rng.integers(0, 30))).tolist()
        brute = sum(seq[i] > seq[j] for i in range(len(seq)) for j in range(i + 1, len(seq)))
        assert ranks._inversions(list(seq)) == brute
