"""Reading the data set and cutting it into batches (docs/metrics.md, How the model is run).

``.npz`` and ``.npy`` files only, opened by ``npzfile`` (``allow_pickle=False``). Knows the
model's declared inputs (names, dtypes, dims) but nothing else about ONNX.
"""

from __future__ import annotations

import math
import mmap
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError, UsageError
from ..model.graph import GraphInput
from .npzfile import NpzMember, read_arrays

LABEL_KEY = "labels"


@dataclass
class Preprocess:
    """``x = (x * scale - mean) / std`` per channel, then an optional layout transpose (issue: --scale/--mean/--std/--layout)."""

    scale: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    layout: str | None = None          # the data's layout: "nchw" or "nhwc"
    transpose: tuple[int, ...] | None = None  # item axes permutation decided against the model input
    channel_axis: int | None = None    # item axis (0-based, no batch) that per-channel lists follow

    @property
    def active(self) -> bool:
        return bool(self.scale or self.mean or self.std or self.transpose)

    def settings(self) -> dict:
        return {"scale": self.scale, "mean": self.mean, "std": self.std, "layout": self.layout}

    def _per_channel(self, values: list[float] | None, ndim: int) -> np.ndarray | float:
        if not values:
            return 0.0
        if len(values) == 1:
            return float(values[0])
        shape = [1] * ndim
        shape[1 + self.channel_axis] = len(values)
        return np.asarray(values, dtype=np.float64).reshape(shape)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch (items on axis 0)."""
        if not self.active:
            return x
        y = np.asarray(x, dtype=np.float64)
        if self.scale:
            y = y * self._per_channel(self.scale, y.ndim)
        if self.mean:
            y = y - self._per_channel(self.mean, y.ndim)
        if self.std:
            y = y / self._per_channel(self.std, y.ndim)
        if self.transpose:
            y = y.transpose((0,) + tuple(1 + a for a in self.transpose))
        return y


def plan_preprocess(item: tuple[int, ...], dims: list, *, scale=None, mean=None, std=None,
                    layout: str | None = None, model_layout: str | None = None) -> Preprocess:
    """Check the flags against the data's item shape and decide the transpose that fits the model input
    (``model_layout``: the layout the model input takes, where the graph tells; see model/layout.py)."""
    pre = Preprocess(scale=list(scale) if scale else None, mean=list(mean) if mean else None,
                     std=list(std) if std else None, layout=layout)
    if std and any(v == 0 for v in std):
        raise UsageError("--std must not contain 0")
    n = len(item)
    if layout:
        if n < 2:
            raise UsageError(f"--layout needs items with a channel axis and spatial axes; items have shape {item}")
        pre.channel_axis = n - 1 if layout == "nhwc" else 0
        perm = (n - 1,) + tuple(range(n - 1)) if layout == "nhwc" else tuple(range(1, n)) + (0,)
        moved = tuple(item[a] for a in perm)
        want = dims[1:] if dims and len(dims) == n + 1 else list(dims or [])
        as_is, turned = _fits(item, want), _fits(moved, want)
        other = "nchw" if layout == "nhwc" else "nhwc"
        if model_layout is not None:
            as_is, turned = as_is and model_layout == layout, turned and model_layout != layout
            if not (as_is or turned):
                raise DataError(f"--layout {layout}: the model input takes {model_layout} items {_fmt_shape(dims)}, "
                                f"and items of shape {item} read as {layout} do not fit it"
                                + ("" if model_layout == layout else f" once transposed to {moved}"))
        if turned and not as_is:
            pre.transpose = perm
        elif not as_is:
            raise DataError(f"--layout {layout}: items of shape {item} fit the model input {_fmt_shape(dims)} "
                            f"neither as they are nor transposed to {other} {moved}"
                            if dims else f"--layout {layout}: the model input declares no shape, so whether to "
                            "transpose the items cannot be decided; transpose the data yourself and drop --layout")
        elif turned and moved != item:
            raise DataError(f"--layout {layout}: items of shape {item} fit the model input {_fmt_shape(dims)} both "
                            f"as they are and transposed to {other} {moved}, so its layout cannot be told; "
                            "transpose the data yourself and drop --layout")
    lists = [v for v in (scale, mean, std) if v and len(v) > 1]
    if lists:
        size = len(lists[0])
        if any(len(v) != size for v in lists):
            raise UsageError("--scale, --mean and --std lists must have the same length (one value per channel)")
        if pre.channel_axis is None:
            if n >= 1 and item[0] == size:
                pre.channel_axis = 0
            elif n >= 1 and item[-1] == size:
                pre.channel_axis = n - 1
            else:
                raise UsageError(f"{size} per-channel values but no item axis of that size in {item}; "
                                 "pass --layout to say where the channels are")
        elif item[pre.channel_axis] != size:
            raise UsageError(f"{size} per-channel values but the {layout} channel axis has {item[pre.channel_axis]}")
    return pre


@dataclass
class Dataset:
    """Arrays matched to model inputs, optional labels, and how items are fed."""

    path: str
    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    items: int
    per_item: bool = False          # the model input has no batch axis: feed one item at a time
    fixed_batch: int | None = None  # the model input has a fixed batch size
    dropped_nonfinite: int = 0
    notes: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # model input -> array key
    preprocess: dict[str, Preprocess] = field(default_factory=dict)
    label_format: str | None = None  # "class ids" or "one-hot"
    deferred_check: tuple[str, ...] = ()  # inputs tested for NaN/Inf batch by batch, as ``batches`` reads them
    label_key: str | None = None
    label_width: int | None = None   # one-hot labels: the number of columns


def _fmt_shape(dims) -> str:
    return "(" + ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in dims) + \
        ("," if len(dims) == 1 else "") + ")"


def data_keys(path: str | os.PathLike) -> list[str]:
    """Array names in an .npz file without reading the arrays ([] for .npy or unreadable files)."""
    p = Path(path)
    if p.suffix.lower() != ".npz" or not p.is_file():
        return []
    try:
        with zipfile.ZipFile(p) as z:
            return [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
    except (OSError, zipfile.BadZipFile):
        return []


def _pick(arrays: dict[str, np.ndarray], inputs: list[GraphInput], input_key: str | None,
          label_key: str | None) -> dict[str, str]:
    """Map each model input to an array key."""
    keys = [k for k in arrays if k != label_key]
    if "" in arrays:  # .npy
        if input_key is not None:
            raise UsageError("--input-key names an array of an .npz file; a .npy file holds one array")
        if len(inputs) != 1:
            raise DataError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                            "a .npy file holds one array: use an .npz with one array per input name")
        return {inputs[0].name: ""}
    if input_key is not None:
        if len(inputs) != 1:
            raise UsageError("--input-key works for one-input models only; name the npz arrays after the inputs")
        if input_key not in arrays:
            raise DataError(f"--input-key {input_key!r} is not in the data file (arrays: {', '.join(arrays)})")
        return {inputs[0].name: input_key}
    found = {i.name: i.name for i in inputs if i.name in arrays}
    if len(found) == len(inputs):
        return found
    if len(inputs) == 1 and len(keys) == 1:
        return {inputs[0].name: keys[0]}
    missing = [i.name for i in inputs if i.name not in arrays]
    raise DataError(f"no array for model input {', '.join(repr(m) for m in missing)} in the data file "
                    f"(arrays: {', '.join(arrays) or 'none'}); name the array after the input or pass --input-key")


def _layout_hint(item: tuple, dims: list) -> str:
    """Where obvious, how to make items of shape ``item`` fit a model input of ``dims`` (batch axis first)."""
    want = [d if isinstance(d, int) and d > 0 else None for d in dims[1:]]
    shape = ", ".join(map(str, item))
    if len(item) + 1 == len(want) and want[0] == 1 and all(w in (None, i) for w, i in zip(want[1:], item)):
        return f"; add a channel axis: (N, {shape}) -> (N, 1, {shape})"
    if len(item) == len(want) == 3 and None not in want:
        if tuple(item) == (want[1], want[2], want[0]):
            return "; the data looks channels-last (NHWC) and the model wants channels-first (NCHW): use --layout nhwc"
        if tuple(item) == (want[2], want[0], want[1]):
            return "; the data looks channels-first (NCHW) and the model wants channels-last (NHWC): use --layout nchw"
    if None not in want and int(np.prod(item)) == int(np.prod(want)):
        return f"; reshape the items to {tuple(want)}"
    return ""


def _fits(item: tuple, dims: list) -> bool:
    return len(item) == len(dims) and all(not isinstance(d, int) or d <= 0 or d == s for d, s in zip(dims, item))


LABEL_CHUNK_BYTES = 16 << 20


def _labels(raw, items: int, key: str) -> tuple[np.ndarray, int | None]:
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


RELEASE_MARGIN = 1 << 20
LAG_VALUES = 1 << 22   # memory-mapped rows fed without a copy are released this many values later (> stats.SMALL_PASS_VALUES)


def release_rows(a, lo: int, hi: int) -> None:
    """Tell the OS that rows [lo, hi) of a memory-mapped array were consumed, so their pages leave this
    process's resident memory (reading a large file batch by batch then keeps memory flat)."""
    if isinstance(a, NpzMember):
        a = a._mmap
    mm = getattr(a, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not a.shape or hi <= lo or not a.flags.c_contiguous:
        return
    row = a.strides[0]
    # from 1 MB before the rows: the kernel's fault-around maps pages near each fault, including pages
    # of rows already released (measured: without the margin 3% of a 1.9 GB file stayed resident)
    start = max(0, a.offset % mmap.ALLOCATIONGRANULARITY + lo * row - RELEASE_MARGIN)
    stop = a.offset % mmap.ALLOCATIONGRANULARITY + hi * row
    start -= start % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, max(0, min(stop, len(mm)) - start))
    except (OSError, ValueError):
        pass


def _finite_sum(block: np.ndarray) -> bool:
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
        if limit is None and _finite_sum(block):
            release_rows(a, s, s + chunk)
            continue
        ok = np.isfinite(block) if a.dtype.kind in "fc" else np.ones(block.shape, dtype=bool)
        if limit is not None:
            ok &= np.abs(block) <= limit
        bad[s:s + chunk] = ~ok.all(axis=1)
        del block
        release_rows(a, s, s + chunk)
    return bad


def _float_limit(data: np.dtype, model: np.dtype) -> float | None:
    """The model dtype's largest finite value when the data can exceed it (float16 models, say)."""
    if model.kind != "f":
        return None
    top = float(np.finfo(model).max)
    if data.kind == "f" and float(np.finfo(data).max) <= top:
        return None
    if data.kind in "iu" and float(np.iinfo(data).max) <= top:
        return None
    return top


def load_data(path: str | os.PathLike, inputs: list[GraphInput], **options) -> Dataset:
    """Read the data file and match it to the model inputs (docs/metrics.md, How the model is run), planning any preprocessing."""
    return match_arrays(read_arrays(Path(path)), str(path), inputs, **options)


def match_arrays(arrays: dict[str, np.ndarray], path: str, inputs: list[GraphInput], *,
                 input_key: str | None = None, label_key: str | None = None, limit: int | None = None,
                 drop_nonfinite: bool = False, scale: list[float] | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, layout: str | None = None) -> Dataset:
    """Match named arrays (a file's, or given in memory; key "" for a lone array) to the model inputs."""
    lk = label_key if label_key is not None else (LABEL_KEY if LABEL_KEY in arrays else None)
    if label_key is not None and label_key not in arrays:
        raise DataError(f"--label-key {label_key!r} is not in the data file (arrays: {', '.join(arrays)})")
    mapping = _pick(arrays, inputs, input_key, lk)
    matched: dict[str, np.ndarray] = {}
    notes: list[str] = []
    per_item = None
    fixed = None
    items = None
    wants_pre = bool(scale or mean or std or layout)
    if wants_pre and len(inputs) != 1:
        raise UsageError("--scale, --mean, --std and --layout work for one-input models only")
    plans: dict[str, Preprocess] = {}
    for inp in inputs:
        key = mapping[inp.name]
        a = arrays[key]
        label = f"array {key!r}" if key else "the .npy array"
        if a.dtype.kind not in "biuf":
            raise DataError(f"{label} has dtype {a.dtype}; numeric data is needed")
        dims = inp.dims
        if a.ndim == 0:
            raise DataError(f"{label} is a scalar; expected one item per row")
        item = tuple(a.shape[1:])
        if wants_pre:
            plan = plan_preprocess(item, dims, scale=scale, mean=mean, std=std, layout=layout,
                                   model_layout=inp.layout)
            plans[inp.name] = plan
            if plan.transpose:
                item = tuple(item[i] for i in plan.transpose)
        if dims and a.ndim == len(dims) + 1 and _fits(item, dims):
            mode = True
        elif not dims or (a.ndim == len(dims) and _fits(item, dims[1:])):
            mode = False
        else:
            raise DataError(f"{label} has items of shape {item} but model input {inp.name!r} "
                            f"wants {_fmt_shape(dims)}" + _layout_hint(item, dims))
        if per_item is not None and mode != per_item:
            raise DataError("the data arrays disagree on whether items carry a batch axis")
        per_item = mode
        if not mode and dims and isinstance(dims[0], int) and dims[0] > 0:
            fixed = dims[0]
        if items is not None and len(a) != items:
            raise DataError(f"{label} has {len(a)} items but another input's array has {items}")
        items = len(a)
        want = inp.np_dtype
        if a.dtype != want:
            if a.dtype.kind in "iub" and want.kind == "f":
                notes.append(f"{label}: {a.dtype} data converted to the model's {want}")
            elif a.dtype.kind == "f" and want.kind in "iub":
                notes.append(f"{label}: {a.dtype} data converted to the model's {want}: fractional parts are "
                             "dropped (values truncated toward zero); save the data as whole numbers of that type")
            elif a.dtype.kind in "iu" and want.kind in "iu" and not np.can_cast(a.dtype, want):
                notes.append(f"{label}: {a.dtype} data converted to the model's {want}: values outside its range "
                             "wrap around")
        matched[inp.name] = a
        if getattr(a, "note", None):
            notes.append(a.note)
    if not inputs:
        raise DataError("the model has no inputs to feed")
    items = int(items or 0)
    total = items
    if limit is not None:
        items = min(items, limit)
        matched = {k: v[:items] for k, v in matched.items()}
    labels, label_format, width = None, None, None
    if lk is not None:
        raw = arrays[lk]
        if len(raw) != total:   # before --limit cuts both: a mismatch would hide under it
            raise DataError(f"labels {lk!r} have {len(raw)} entries but the data has {total} items")
        labels, width = _labels(raw, items, lk)
        if getattr(raw, "note", None):
            notes.append(raw.note)
        label_format = "one-hot" if raw.ndim == 2 and raw.shape[1] > 1 else "class ids"
        if label_format == "one-hot":
            notes.append(f"labels {lk!r} are one-hot rows: the class of each item is the argmax of its row")
    bad = np.zeros(items, dtype=bool)
    narrow = []
    deferred = []
    for inp in inputs:
        a = matched[inp.name]
        limit = _float_limit(a.dtype, inp.np_dtype)
        if limit is not None:
            narrow.append(str(inp.np_dtype))
        elif not drop_nonfinite and a.dtype.kind in "fc":
            deferred.append(inp.name)   # the stream tests each batch it reads: one pass over the data, not two
            continue
        bad |= nonfinite_items(a, limit)
    dropped = 0
    if bad.any():
        if not drop_nonfinite:
            raise nonfinite_error(bad, narrow)
        count = int(bad.sum())
        where, what = _where(bad), _what(narrow)
        keep = ~bad
        matched = {k: np.asarray(v)[keep] for k, v in matched.items()}
        labels = labels[keep] if labels is not None else None
        dropped = count
        items -= count
        notes.append(f"dropped {count} items holding {what} (items {where})")
    if items == 0:
        raise DataError("the data set is empty: no items to analyse")
    if items == 1:
        raise DataError("the data set has one item: covariances need at least 2 items")
    return Dataset(path=path, arrays=matched, labels=labels, items=items,
                   per_item=bool(per_item), fixed_batch=fixed, dropped_nonfinite=dropped, notes=notes,
                   keys=mapping, preprocess=plans, label_format=label_format, deferred_check=tuple(deferred),
                   label_key=lk, label_width=width)


def _where(bad: np.ndarray) -> str:
    count = int(bad.sum())
    return ", ".join(str(i) for i in np.flatnonzero(bad)[:5]) + (", ..." if count > 5 else "")


def _what(narrow: list[str]) -> str:
    return "NaN or Inf" + (f" (or values beyond the model's {narrow[0]} range)" if narrow else "")


def nonfinite_error(bad: np.ndarray, narrow: list[str] = ()) -> DataError:
    """The error for items holding NaN or Inf (``bad``: a mask over all items)."""
    return DataError(f"the data holds {_what(list(narrow))} in {int(bad.sum())} of {len(bad)} items "
                     f"(items {_where(bad)}); fix the data or pass --drop-nonfinite to leave those items out")


def _check_block(ds: Dataset, raw: np.ndarray) -> None:
    """A deferred NaN/Inf test on one batch as read (``Dataset.deferred_check``): a finite sum clears it;
    otherwise the exact test, and on a hit the whole data set is scanned so the error counts every item."""
    if _finite_sum(raw) or np.isfinite(raw).all():
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
