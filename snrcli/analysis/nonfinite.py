"""Finding items that hold NaN or Inf (or values beyond the model's float range), and the error that names them."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .npzfile import release_rows


def finite_sum(block: np.ndarray) -> bool:
    """Whether the sum of a float block is finite, which proves every value finite (NaN and Inf
    propagate); an overflowing sum of finite values says False and the exact test decides. One pass
    without temporaries: ten times faster than ``isfinite(...).all(axis=1)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(block, axis=None)))


def nonfinite_items(a: np.ndarray, limit: float | None = None, chunk_bytes: int = 16 << 20) -> np.ndarray:
    """Boolean mask of items holding NaN or Inf, or values beyond ``limit`` in magnitude (the model's
    float range); read in chunks of about ``chunk_bytes``, so memory-mapped data stays on disk."""
    bad = np.zeros(len(a), dtype=bool)
    if a.dtype.kind not in "fciu" or (a.dtype.kind in "iu" and limit is None):
        return bad
    item_bytes = a.dtype.itemsize * int(np.prod(a.shape[1:]))
    chunk = max(1, chunk_bytes // max(1, item_bytes))
    for s in range(0, len(a), chunk):
        block = np.asarray(a[s:s + chunk]).reshape(min(chunk, len(a) - s), -1)
        if limit is None and finite_sum(block):
            release_rows(a, s, s + chunk)
            continue
        ok = np.isfinite(block) if a.dtype.kind in "fc" else np.ones(block.shape, dtype=bool)
        if limit is not None:
            ok &= np.abs(block) <= limit
        bad[s:s + chunk] = ~ok.all(axis=1)
        del block
        release_rows(a, s, s + chunk)
    return bad


def float_limit(data: np.dtype, model: np.dtype) -> float | None:
    """The model dtype's largest finite value when the data can exceed it (float16 models, say)."""
    if model.kind != "f":
        return None
    top = float(np.finfo(model).max)
    if data.kind == "f" and float(np.finfo(data).max) <= top:
        return None
    if data.kind in "iu" and float(np.iinfo(data).max) <= top:
        return None
    return top


def bad_items(bad: np.ndarray) -> str:
    count = int(bad.sum())
    return ", ".join(str(i) for i in np.flatnonzero(bad)[:5]) + (", ..." if count > 5 else "")


def describe_bad(narrow: list[str]) -> str:
    return "NaN or Inf" + (f" (or values beyond the model's {narrow[0]} range)" if narrow else "")


def nonfinite_error(bad: np.ndarray, narrow: list[str] = ()) -> DataError:
    """The error for items holding NaN or Inf (``bad``: a mask over all items)."""
    return DataError(f"the data holds {describe_bad(list(narrow))} in {int(bad.sum())} of {len(bad)} items "
                     f"(items {bad_items(bad)}); fix the data or pass --drop-nonfinite to leave those items out")
