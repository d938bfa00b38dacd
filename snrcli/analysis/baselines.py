"""Label-free reference figures computed beside S and G, so the figures can be judged against what is free.

- ``mean_max_softmax``: mean over items of the largest class probability of the scored output
  (softmax applied to logits; probabilities and log-probabilities recognised and used as such),
- ``sum_squared_weights``: sum of w^2 over every analysed layer,
- ``log_spectral_norm_product``: sum over layers of log sigma_max(W), W the (units x inputs-per-unit) matrix.
"""

from __future__ import annotations

import math

import numpy as np


def _near(a: np.ndarray, b: float) -> bool:
    """``np.allclose(a, b, atol=1e-3)`` for a scalar ``b``, without its per-call overhead (NaN is never near)."""
    return bool(np.all(np.abs(a - b) <= 1e-3 + 1e-5 * abs(b)))


def _max_probabilities(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, each row's largest probability) of rows of class scores: kept when they already
    are probabilities, exp() of log-probabilities, else softmax (whose largest value is 1 / the sum of
    exp(s - max s), computed once)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s, s.max(axis=-1, initial=0.0)
    lo, hi = s.min(), s.max()
    if lo >= 0 and hi <= 1 and _near(s.sum(axis=-1), 1.0):
        return s, s.max(axis=-1)
    top = s.max(axis=-1, keepdims=True)
    e = np.exp(s - top)
    z = e.sum(axis=-1)
    if hi <= 0 and _near(top[..., 0] + np.log(z), 0.0):
        p = np.exp(s)
        return p, p.max(axis=-1)
    return e / z[..., None], 1.0 / z


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows of class scores as probabilities: kept when they already are, exp() of log-probabilities, else softmax."""
    return _max_probabilities(scores)[0]


def max_confidence_sum(scores: np.ndarray) -> float:
    """Sum over rows of max softmax probability (rows = items)."""
    return float(_max_probabilities(scores.reshape(-1, scores.shape[-1]))[1].sum())


LANCZOS_MIN = 256   # larger Gram matrices get their top eigenvalue by Lanczos iteration


def spectral_norm(w: np.ndarray) -> float:
    """Largest singular value: the square root of the top eigenvalue of the smaller Gram matrix
    (one symmetric eigenvalue instead of a full SVD)."""
    if w.size == 0:
        return 0.0
    a = np.asarray(w, dtype=np.float64)
    gram = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    n = gram.shape[0]
    if n <= LANCZOS_MIN:    # numpy's dense solver: importing scipy.linalg would cost more (0.1-0.4 s)
        top = np.linalg.eigvalsh(gram)[-1]
    else:   # Lanczos to machine precision (tol=0) from a fixed start: a few ms where a dense solver takes 100s
        import scipy.sparse.linalg

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
