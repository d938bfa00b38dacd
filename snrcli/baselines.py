"""Label-free reference figures computed beside S and G, so the figures can be judged against what is free.

- ``mean_max_softmax``: mean over items of the largest class probability of the scored output
  (softmax applied to logits; probabilities and log-probabilities recognised and used as such),
- ``sum_squared_weights``: sum of w^2 over every analysed layer,
- ``log_spectral_norm_product``: sum over layers of log sigma_max(W), W the (units x inputs-per-unit) matrix.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse.linalg


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows of class scores as probabilities: kept when they already are, exp() of log-probabilities, else softmax."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    sums = s.sum(axis=-1)
    if s.min() >= 0 and s.max() <= 1 and np.allclose(sums, 1.0, atol=1e-3):
        return s
    top = s.max(axis=-1, keepdims=True)
    lse = top[..., 0] + np.log(np.exp(s - top).sum(axis=-1))
    if s.max() <= 0 and np.allclose(lse, 0.0, atol=1e-3):
        return np.exp(s)
    e = np.exp(s - top)
    return e / e.sum(axis=-1, keepdims=True)


def max_confidence_sum(scores: np.ndarray) -> float:
    """Sum over rows of max softmax probability (rows = items)."""
    p = probabilities(scores.reshape(-1, scores.shape[-1]))
    return float(p.max(axis=-1).sum())


LANCZOS_MIN = 256   # larger Gram matrices get their top eigenvalue by Lanczos iteration


def spectral_norm(w: np.ndarray) -> float:
    """Largest singular value: the square root of the top eigenvalue of the smaller Gram matrix
    (one symmetric eigenvalue instead of a full SVD)."""
    if w.size == 0:
        return 0.0
    a = np.asarray(w, dtype=np.float64)
    gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    n = gram.shape[0]
    if n <= LANCZOS_MIN:
        top = scipy.linalg.eigvalsh(gram, subset_by_index=[n - 1, n - 1])[0]
    else:   # Lanczos to machine precision (tol=0) from a fixed start: a few ms where a dense solver takes 100s
        top = scipy.sparse.linalg.eigsh(gram, k=1, which="LA", v0=np.ones(n), tol=0,
                                        return_eigenvectors=False)[0]
    return math.sqrt(max(float(top), 0.0))


def weight_baselines(weights: list[np.ndarray]) -> dict[str, float | None]:
    """Sum of squared weights and log of the product of spectral norms over the layers (null when a
    weight is not finite or a norm is 0)."""
    if not all(np.all(np.isfinite(w)) for w in weights):
        return {"sum_squared_weights": None, "log_spectral_norm_product": None}
    sq = float(sum(float(np.sum(np.square(w))) for w in weights))
    logs = []
    for w in weights:
        try:
            sigma = spectral_norm(w)
        except (np.linalg.LinAlgError, ValueError):
            return {"sum_squared_weights": sq, "log_spectral_norm_product": None}
        logs.append(math.log(sigma) if sigma > 0 else -math.inf)
    total = float(sum(logs))
    return {"sum_squared_weights": sq if math.isfinite(sq) else None,
            "log_spectral_norm_product": total if math.isfinite(total) else None}
