"""Reading the labels: class ids or one-hot rows, checked and kept as int64 class ids only."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .npzfile import release_rows

LABEL_KEY = "labels"
LABEL_CHUNK_BYTES = 16 << 20


def read_labels(raw, items: int, key: str) -> tuple[np.ndarray, int | None]:
    """Class ids (int64) of the first ``items`` labels and the one-hot width (None for ids), read
    LABEL_CHUNK_BYTES at a time like the data, so only the ids are kept, never the whole (decompressed,
    one-hot) array. Refuses what would score silently wrong: negative ids, ids beyond int64, one-hot rows
    with no positive entry or holding NaN."""
    if raw.ndim not in (1, 2) or (raw.ndim == 2 and raw.shape[1] < 1):
        raise DataError(f"labels {key!r} have shape {raw.shape}; expected (N,) class ids or (N, classes) one-hot")
    if raw.dtype.kind not in "iubf":
        raise DataError(f"labels {key!r} have dtype {raw.dtype}; expected integer class ids")
    onehot = raw.ndim == 2 and raw.shape[1] > 1
    width = int(raw.shape[1]) if onehot else None
    out = np.empty(items, dtype=np.int64)
    rows = max(1, LABEL_CHUNK_BYTES // max(1, raw.dtype.itemsize * math.prod(raw.shape[1:])))
    for s in range(0, items, rows):
        block = np.asarray(raw[s:min(items, s + rows)])
        if onehot:
            if block.dtype.kind == "f" and not np.all(np.isfinite(block)):
                raise DataError(f"labels {key!r} are one-hot rows holding NaN or Inf")
            empty = np.flatnonzero(block.max(axis=1) <= 0) if len(block) else []
            if len(empty):
                raise DataError(f"labels {key!r} are (N, {raw.shape[1]}) one-hot rows, but row {s + int(empty[0])} "
                                "has no positive entry; save one-hot rows or (N,) class ids")
            block = block.argmax(axis=1)
        block = block.reshape(-1)
        if block.dtype.kind == "f" and (not np.all(np.isfinite(block)) or not np.all(block == np.round(block))):
            raise DataError(f"labels {key!r} are not whole class ids")
        if len(block) and block.dtype.kind != "b":
            if block.min() < 0:
                at = int(np.argmax(block < 0))
                raise DataError(f"labels {key!r} hold a negative class id ({block[at]} at item {s + at}); "
                                "class ids count from 0")
            hi = block.max()
            if hi > np.iinfo(np.int64).max or (block.dtype.kind == "f" and hi >= 2.0 ** 63):
                raise DataError(f"labels {key!r} hold a class id too large for any model ({hi})")
        out[s:s + len(block)] = block
        release_rows(raw, s, s + rows)
    return out, width
