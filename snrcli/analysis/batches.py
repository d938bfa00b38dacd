"""Cutting the matched data into the batches fed to the model, releasing memory-mapped pages behind them."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ..errors import UsageError
from ..model.graph import GraphInput
from .data import Dataset
from .nonfinite import finite_sum, nonfinite_error, nonfinite_items
from .npzfile import release_rows

LAG_VALUES = 1 << 22   # memory-mapped rows fed without a copy are released this many values later (> stats.SMALL_PASS_VALUES)


def _check_block(ds: Dataset, raw: np.ndarray) -> None:
    """A deferred NaN/Inf test on one batch as read (``Dataset.deferred_check``): a finite sum clears it;
    otherwise the exact test, and on a hit the whole data set is scanned so the error counts every item."""
    if finite_sum(raw) or np.isfinite(raw).all():
        return
    bad = np.zeros(ds.items, dtype=bool)
    for name in ds.deferred_check:
        bad |= nonfinite_items(ds.arrays[name])
    raise nonfinite_error(bad)


def batches(ds: Dataset, inputs: list[GraphInput], batch_size: int, start: int = 0,
            stop: int | None = None) -> Iterator[tuple[dict[str, np.ndarray], int, int]]:
    """Yield (feeds, valid items, start) over items [start, stop), converting dtype and padding fixed batches."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    stop = ds.items if stop is None else min(stop, ds.items)
    dtypes = {i.name: i.np_dtype for i in inputs}
    # .npy data already in the model's dtype is fed as views of the memory map, not copies; its pages
    # are released LAG_VALUES values behind the batch being read (the statistics may still hold rows)
    direct = {k: max(1, LAG_VALUES // max(1, math.prod(a.shape[1:]))) for k, a in ds.arrays.items()
              if isinstance(a, np.memmap) and a.dtype == dtypes[k] and k not in ds.preprocess}
    behind = dict.fromkeys(direct, start)

    def block(k: str, lo: int, hi: int) -> np.ndarray:
        if k in direct:
            raw = ds.arrays[k][lo:hi]
            cut = lo - direct[k]
            if cut > behind[k]:
                release_rows(ds.arrays[k], behind[k], cut)
                behind[k] = cut
        else:
            raw = np.array(ds.arrays[k][lo:hi])  # a copy: the mapped pages can then be released
            release_rows(ds.arrays[k], lo, hi)
        if k in ds.deferred_check:
            _check_block(ds, raw)
        pre = ds.preprocess.get(k)
        if pre is not None:
            raw = pre.apply(raw)
        return np.ascontiguousarray(raw, dtype=dtypes[k])

    if ds.per_item:
        for i in range(start, stop):
            yield {k: block(k, i, i + 1)[0] for k in ds.arrays}, 1, i
    else:
        size = ds.fixed_batch or batch_size
        for lo in range(start, stop, size):
            feeds = {}
            valid = min(size, stop - lo)
            for k in ds.arrays:
                blk = block(k, lo, lo + valid)
                if ds.fixed_batch and valid < size:
                    blk = np.concatenate([blk, np.repeat(blk[-1:], size - valid, axis=0)])
                feeds[k] = blk
            yield feeds, valid, lo
    for k in direct:
        release_rows(ds.arrays[k], behind[k], stop)
