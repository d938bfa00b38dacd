"""Label-free baselines reported beside S and G (issue: correlate's baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snrcli.analysis.baselines import max_confidence_sum, probabilities, spectral_norm, weight_baselines


def test_spectral_norm_known_values():
    assert spectral_norm(np.diag([3.0, -2.0])) == pytest.approx(3.0)
    assert spectral_norm(np.array([[3.0, 4.0]])) == pytest.approx(5.0)       # one unit: its norm
    assert spectral_norm(np.array([[3.0], [4.0]])) == pytest.approx(5.0)
    assert spectral_norm(np.zeros((2, 3))) == 0.0
    rng = np.random.default_rng(0)
    for shape in [(40, 30), (30, 40), (7, 300)]:
        w = rng.normal(size=shape)
        assert spectral_norm(w) == pytest.approx(np.linalg.norm(w, 2), rel=1e-12)


def test_weight_baselines_sum_and_log_product():
    w1, w2 = np.diag([3.0, 1.0]), np.array([[2.0, 0.0]])
    b = weight_baselines([w1, w2])
    assert b["sum_squared_weights"] == pytest.approx(9 + 1 + 4)
    assert b["log_spectral_norm_product"] == pytest.approx(math.log(3.0) + math.log(2.0))
    assert weight_baselines([w1, np.zeros((2, 2))])["log_spectral_norm_product"] is None
    assert weight_baselines([np.array([[np.nan]])]) == {"sum_squared_weights": None,
                                                        "log_spectral_norm_product": None}


def test_probabilities_recognises_probabilities_log_probabilities_and_logits():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(probabilities(p), p)
    np.testing.assert_allclose(probabilities(np.log(p)), p)
    logits = np.array([[2.0, 0.0, 0.0]])
    e = math.exp(2.0)
    np.testing.assert_allclose(probabilities(logits), [[e / (e + 2), 1 / (e + 2), 1 / (e + 2)]])
    assert max_confidence_sum(p) == pytest.approx(0.7 + 0.8)


def test_scores_in_zero_one_that_do_not_sum_to_one_are_softmaxed():
    """Sigmoid-style rows (every score in [0, 1], rows not summing to 1) are scores, not probabilities:
    the max-softmax baseline applies softmax to them."""
    rows = np.array([[0.2, 0.3, 0.1], [0.9, 0.8, 0.95], [0.0, 1.0, 1.0]])
    e = np.exp(rows)
    want = (e.max(axis=1) / e.sum(axis=1))
    np.testing.assert_allclose(probabilities(rows), e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    assert max_confidence_sum(rows) == pytest.approx(want.sum(), rel=1e-12)
    assert max_confidence_sum(rows) != pytest.approx(rows.max(axis=1).sum())   # 0.3 + 0.95 + 1.0 taken as is
    # rows of probabilities (summing to 1) stay as they are
    p = np.array([[0.2, 0.3, 0.5]])
    assert max_confidence_sum(p) == pytest.approx(0.5)
