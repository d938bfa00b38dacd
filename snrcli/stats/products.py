"""Products of activations for the co-moments (docs/metrics.md, Statistics gathered per layer), and the buffers they reuse.

float32 activations are multiplied in float32 blocks of at most ``BLOCK_ROWS``
samples, each block's result summed in float64; float64 activations, small
co-moment matrices and ``--precision float64`` use float64 throughout.
"""

from __future__ import annotations

import math
import threading

import numpy as np

BLOCK_ROWS = 4096        # samples per float32 product; each block's result is added in float64
FLOAT32_MIN_SIZE = 1 << 9   # float32 products only for co-moment matrices of at least this many entries


def work_dtype(size: int, *arrays: np.ndarray, exact: bool = False) -> type:
    """The dtype of the products for a co-moment matrix of ``size`` entries: float32 (blocked, each block
    summed in float64) for float32/float16 activations and matrices big enough for it to matter;
    float64 otherwise (small layers cost little either way and keep float64's exactness), or always
    when ``exact`` (``--precision float64``)."""
    small = all(a.dtype in (np.float32, np.float16) for a in arrays)
    return np.float32 if small and size >= FLOAT32_MIN_SIZE and not exact else np.float64


def blocked_product(a: np.ndarray, b: np.ndarray | None, out: np.ndarray, pool=None) -> None:
    """``out += a @ b.T`` in float64, ``a`` (G, P, L) and ``b`` (G, M, L) (``b=None``: ``a`` itself,
    a Gram matrix); float32 operands are multiplied in equal blocks of at most ``BLOCK_ROWS`` samples.
    ``pool`` (``StatThreads``): each block's rows of ``a`` are cut between its threads (not for a Gram
    matrix, whose product by rows would cost twice its syrk)."""
    L = a.shape[-1]
    blocks = max(1, -(-L // BLOCK_ROWS)) if a.dtype == np.float32 else 1
    step = max(1, -(-L // blocks))
    g, p = a.shape[0], a.shape[1]
    tmp = scratch("block", (g, p, (a if b is None else b).shape[1]), a.dtype)
    n = pool.threads if pool is not None and b is not None and p >= 8 * pool.threads else 1
    edges = [p * t // n for t in range(n + 1)]
    for lo in range(0, L, step):
        ab = a[..., lo:lo + step]
        bb = ab if b is None else b[..., lo:lo + step]
        if n > 1:
            pool.map(lambda t: np.matmul(ab[:, edges[t]:edges[t + 1]], bb.transpose(0, 2, 1),
                                         out=tmp[:, edges[t]:edges[t + 1]]), n)
        elif g == 1:
            np.matmul(ab[0], bb[0].T, out=tmp[0])
        elif ab.shape[1] == 1 and bb.shape[1] == 1:       # depthwise: one dot product per group
            np.einsum("gl,gl->g", ab[:, 0], bb[:, 0], out=tmp[:, 0, 0])
        else:
            np.matmul(ab, bb.transpose(0, 2, 1), out=tmp)
        out += tmp


def sum_middle(a: np.ndarray) -> np.ndarray:
    """Sums over the middle axis of (R, n, P), in float64. float32 input is summed by a BLAS product with
    ones (six times faster than a float64 reduction), so n should be a chunk of items, not a data set."""
    if a.dtype != np.float32:
        return a.sum(axis=1, dtype=np.float64)
    ones = np.ones((1, a.shape[1]), dtype=np.float32)
    return np.matmul(ones, a)[:, 0].astype(np.float64)


_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable buffer of this thread (contents undefined). Fresh large arrays cost a page fault per
    4 kB page on first touch, which made each temporary as slow as the products themselves."""
    pool = _local.__dict__.setdefault("pool", {})
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buf = pool.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = pool[name] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def rows_product(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``a^T b`` of float32 rows ``a`` (k, n) and ``b`` (k, m), into this thread's scratch buffer
    (``b=None``: ``a^T a``, which numpy computes by BLAS syrk, half the work of a general product).
    numpy releases the GIL meanwhile."""
    tmp = scratch("product", (a.shape[1], a.shape[1] if b is None else b.shape[1]), np.float32)
    return np.matmul(a.T, a if b is None else b, out=tmp)


def mirror_upper(m: np.ndarray, block: int = 128) -> None:
    """Copy the upper triangle of the square matrix ``m`` onto its lower triangle, in place, a band of
    ``block`` rows at a time (4 ms for 1,024 x 1,024 where fancy indexing took 12)."""
    n = len(m)
    for i in range(0, n, block):
        j = min(i + block, n)
        m[i:j, :i] = m[:i, i:j].T
        d = m[i:j, i:j]
        np.copyto(d, d.T.copy(), where=np.tri(j - i, k=-1, dtype=bool))


def release_scratch() -> None:
    """Free this thread's buffers (at the end of a run)."""
    _local.__dict__.pop("pool", None)
