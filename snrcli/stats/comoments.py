"""Shifted, mergeable co-moment sums (docs/metrics.md, Statistics gathered per layer), and the one way
rows get into them: ``add_rows``.

Co-moments use sums shifted by a fixed reference (the first rows' means), so
large means do not cancel and the result does not depend on how the data is
split into batches beyond rounding. Products of activations follow ``products``
(float32 blocks summed in float64 for large layers, float64 otherwise); every
other sum is float64. ``merge`` combines the sums of shards of a data set.

float32 rows are shifted into a row buffer of up to ``BLOCK_ROWS`` rows and
multiplied when it is full: one product of 4,096 rows costs much less than
sixteen of 256 (a batch).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .products import BLOCK_ROWS, blocked_product, mirror_upper, rows_product, sum_middle, work_dtype
from .threads import StatThreads

BUFFER_BYTES = 16 << 20   # float32 rows buffered per dense layer before they are multiplied
BLOCK_SPLIT_MIN = 1 << 20   # rows' shifts (and passes) are shared out between threads from this many values
PRODUCT_SPLIT_MIN = 1 << 24   # a buffered product is cut between threads from this many multiply-adds


def rounded(v: np.ndarray, dt) -> np.ndarray:
    """A shift exactly representable in the working dtype, so x - shift rounds once."""
    return np.asarray(v, dtype=dt).astype(np.float64)


class CoMoments:
    """Shifted sums giving the population covariance between P inputs and M outputs, for G groups.

    ``gram=True``: the outputs are the inputs themselves (cov(x, x), P x P); ``exact=True``: float64
    products whatever the activations' dtype (``--precision float64``).
    """

    def __init__(self, p: int, m: int, groups: int = 1, gram: bool = False, exact: bool = False):
        m = p if gram else m
        self.gram = gram
        self.exact = exact
        self.n = 0
        self.shift_x = np.zeros((groups, p))
        self.shift_y = np.zeros((groups, m))
        self.sx = np.zeros((groups, p))
        self.sy = np.zeros((groups, m))
        self.sxy = np.zeros((groups, p, m))
        self._clear_pending()

    def _clear_pending(self) -> None:
        self._upper = False                     # gram: products added to the upper triangle of sxy only
        self._xbuf: np.ndarray | None = None    # float32 shifted rows not yet multiplied
        self._ybuf: np.ndarray | None = None
        self._xshift: np.ndarray | None = None  # the shifts as float32, placed beside the buffers
        self._yshift: np.ndarray | None = None
        self._rows = 0

    def set_shift(self, shift_x: np.ndarray, shift_y: np.ndarray) -> None:
        """Fix the reference point (only before the first sample)."""
        assert self.n == 0
        self.shift_x[...] = shift_x
        self.shift_y[...] = shift_y
        if self._xbuf is not None:
            self._xshift[...] = self.shift_x[0]
            if self._yshift is not None:
                self._yshift[...] = self.shift_y[0]

    def update(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Add samples of one group: ``x`` (n, P) and ``y`` (n, M); ``y`` is omitted for a Gram accumulator."""
        self.add_rows([(x, y)])

    def add_rows(self, pieces: list[tuple], pool: StatThreads | None = None,
                 passes: Callable[[tuple], Any] | None = None) -> list:
        """Add the rows of ``pieces`` (tuples of row-aligned arrays ``(x, y, ...)``, ``y`` None for a Gram
        accumulator) to group 0. ``pool``: large runs of rows are shared out between its threads, each
        shifting its rows into the buffer. ``passes(piece)``, where given, is called on each piece on the
        thread that shifts it, just before (other passes over the same values, while they are in cache);
        its results are returned in row order."""
        pieces = [q for q in pieces if len(q[0])]
        if not pieces:
            return []
        x, y = pieces[0][0], pieces[0][1]
        dt = work_dtype(self.sxy[0].size, *((x,) if self.gram else (x, y)), exact=self.exact)
        if self.n == 0:   # shifts: the first rows' means
            mx = rounded(x.mean(axis=0, dtype=np.float64), dt)
            self.set_shift(mx, mx if self.gram else rounded(y.mean(axis=0, dtype=np.float64), dt))
        if dt == np.float64:
            return [self._float64_rows(q, passes) for q in _joined(pieces)]
        total = sum(len(q[0]) for q in pieces)
        results: list = []
        at = 0
        while at < total:
            k = min(total - at, self.buffer_rows() - self._rows)
            results += self._shift_in(_row_range(pieces, at, at + k), k, pool, passes)
            at += k
        return results

    def _float64_rows(self, piece: tuple, passes) -> Any:
        x, y = piece[0], piece[1]
        done = passes(piece) if passes else None
        self.n += len(x)
        xs = np.subtract(x, self.shift_x[0], dtype=np.float64)
        ys = None if self.gram else np.subtract(y, self.shift_y[0], dtype=np.float64)
        blocked_product(xs.T[None], None if ys is None else ys.T[None], self.sxy)
        sx = xs.sum(axis=0)
        self.sx[0] += sx
        self.sy[0] += sx if ys is None else ys.sum(axis=0)
        return done

    def buffer_rows(self) -> int:
        """Rows of the float32 buffers (allocated on first use): ``BLOCK_ROWS``, or fewer for wide layers."""
        if self._xbuf is None:
            p, m = self.sx.shape[1], self.sy.shape[1]
            width = p + (0 if self.gram else m)
            rows = int(min(BLOCK_ROWS, max(64, BUFFER_BYTES // (4 * width))))
            self._xbuf, self._xshift = _buffer_and_shift(rows, p)
            self._xshift[...] = self.shift_x[0]
            if not self.gram:
                self._ybuf, self._yshift = _buffer_and_shift(rows, m)
                self._yshift[...] = self.shift_y[0]
        return len(self._xbuf)

    def _shift_in(self, pieces: list[tuple], rows: int, pool: StatThreads | None, passes) -> list:
        """Shift ``rows`` rows (at most the buffers' free rows) into the buffers, each thread of ``pool``
        a run of them; multiply the buffers if that fills them."""
        p, m = self.sx.shape[1], (0 if self.gram else self.sy.shape[1])
        n = pool.threads if pool is not None and rows * (p + m) >= BLOCK_SPLIT_MIN and rows >= pool.threads else 1
        edges = [rows * t // n for t in range(n + 1)]
        start = self._rows

        def run(t: int) -> tuple:
            sx, sy, done = np.zeros(p), np.zeros(m), []
            at = start + edges[t]
            for q in _row_range(pieces, edges[t], edges[t + 1]):
                if passes:
                    done.append(passes(q))
                k = len(q[0])
                xs = np.subtract(q[0], self._xshift, out=self._xbuf[at:at + k], casting="unsafe")
                sx += sum_middle(xs[None])[0]
                if m:
                    ys = np.subtract(q[1], self._yshift, out=self._ybuf[at:at + k], casting="unsafe")
                    sy += sum_middle(ys[None])[0]
                at += k
            return sx, sy, done

        parts = pool.map(run, n) if n > 1 else [run(0)]
        self.n += rows
        self._rows += rows
        for sx, sy, _ in parts:
            self.sx[0] += sx
            self.sy[0] += sx if self.gram else sy
        if self._rows == len(self._xbuf):
            self.flush(pool)
        return [d for part in parts for d in part[2]]

    @property
    def pending(self) -> int:
        """Rows in the buffers, not yet multiplied."""
        return self._rows

    def flush(self, pool: StatThreads | None = None) -> None:
        """Multiply the buffered rows (float32) and add the result to the float64 sums. With ``pool``, a
        large product's result is cut between the threads, each multiplying all the rows on one BLAS
        thread into its own part of the sums: columns of x^T y, or bands of columns of a Gram matrix's
        upper triangle (band t ends at P sqrt(t / T), so the bands cost the same; the lower triangle
        is completed by ``_fold`` when the sums are read)."""
        rows, self._rows = self._rows, 0
        if not rows:
            return
        xs = self._xbuf[:rows]
        ys = None if self.gram else self._ybuf[:rows]
        self._upper = self.gram
        p = xs.shape[1]
        m = p if ys is None else ys.shape[1]
        work = rows * p * (p // 2 if ys is None else m)
        n = pool.threads if pool is not None and work >= PRODUCT_SPLIT_MIN and m >= 8 * pool.threads else 1
        if ys is None:
            edges = [round(p * math.sqrt(t / n)) for t in range(n + 1)]
        else:
            edges = [m * t // n for t in range(n + 1)]
        sums = self.sxy[0]

        def run(t: int) -> None:
            a, b = edges[t], edges[t + 1]
            if b <= a:
                return
            if ys is not None:
                sums[:, a:b] += rows_product(xs, ys[:, a:b])
                return
            sums[a:b, a:b] += rows_product(xs[:, a:b])    # (upper triangle, see _fold)
            if a:
                sums[:a, a:b] += rows_product(xs[:, :a], xs[:, a:b])

        if n > 1:
            pool.map(run, n)
        else:
            run(0)

    def _fold(self) -> None:
        """Multiply buffered rows and complete the Gram matrix's lower triangle (before ``sxy`` is read)."""
        if self._rows:
            self.flush()
        if self._upper:
            mirror_upper(self.sxy[0])
        self._clear_pending()

    def __getstate__(self):
        self._fold()
        return self.__dict__

    def merge(self, other: "CoMoments") -> None:
        """Add another accumulator's samples (re-expressed about this one's shift)."""
        if other.n == 0:
            return
        self._fold()
        other._fold()
        if self.n == 0:
            self.__dict__.update({k: np.copy(v) if isinstance(v, np.ndarray) else v
                                  for k, v in other.__dict__.items()})
            return
        dx = other.shift_x - self.shift_x
        dy = other.shift_y - self.shift_y
        n = other.n
        self.sxy += (other.sxy + other.sx[:, :, None] * dy[:, None, :] + dx[:, :, None] * other.sy[:, None, :]
                     + n * dx[:, :, None] * dy[:, None, :])
        self.sx += other.sx + n * dx
        self.sy += other.sy + n * dy
        self.n += n

    def cov(self) -> np.ndarray:
        """Population covariance (divide by n), shape (G, P, M)."""
        self._fold()
        if self.n == 0:
            return np.full(self.sxy.shape, np.nan)
        mx, my = self.sx / self.n, self.sy / self.n
        return self.sxy / self.n - mx[:, :, None] * my[:, None, :]


def _buffer_and_shift(rows: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """A float32 row buffer (rows, p) and a float32 shift vector (p,) from one allocation, the vector
    at the same offset within its 4 kB page as the buffer. ``np.subtract(x, shift, out=rows)`` ran
    5x slower (2.7 against 0.5 ns a value) when the shift sat 4 to 28 bytes past an output row
    modulo 4 kB (a false store-to-load dependency, "4K aliasing"); a vector allocated on its own
    landed there by chance. Here row r starts 4 p r bytes past the vector's offset modulo 4 kB: never
    in that window when p is a multiple of 8 (and only for a few rows otherwise)."""
    n = rows * p
    at = -(-n // 1024) * 1024          # floats: the first 4 kB multiple at or after the buffer's end
    raw = np.empty(at + p, np.float32)
    return raw[:n].reshape(rows, p), raw[at:at + p]


def _joined(pieces: list[tuple]) -> list[tuple]:
    """Row-aligned pieces (tuples of arrays or None) as one piece, each array concatenated (a copy,
    unless there is one piece): a few large numpy calls instead of many small ones."""
    if len(pieces) == 1:
        return pieces
    return [tuple(None if v is None else np.concatenate([q[i] for q in pieces]) for i, v in enumerate(pieces[0]))]


def _row_range(pieces: list[tuple], a: int, b: int) -> list[tuple]:
    """Rows [a, b) of the concatenation of ``pieces`` (tuples of row-aligned arrays or None), as slices."""
    out, at = [], 0
    for piece in pieces:
        k = len(piece[0])
        lo, hi = max(a - at, 0), min(b - at, k)
        if lo < hi:
            out.append(tuple(None if v is None else v[lo:hi] for v in piece))
        at += k
        if at >= b:
            break
    return out
