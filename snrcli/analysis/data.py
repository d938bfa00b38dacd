"""Matching the data set's arrays to the model inputs (docs/metrics.md, How the model is run).

``.npz`` and ``.npy`` files only, opened by ``npzfile`` (``allow_pickle=False``). Knows the
model's declared inputs (names, dtypes, dims) but nothing else about ONNX. Preprocessing,
labels, the NaN/Inf checks and the batches fed to the model live in their own modules.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..model.graph import GraphInput
from .labels import LABEL_KEY, read_labels
from .nonfinite import float_limit, describe_bad, bad_items, nonfinite_error, nonfinite_items
from .npzfile import read_arrays
from .preprocess import Preprocess, fits, fmt_shape, plan_preprocess


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
        if dims and a.ndim == len(dims) + 1 and fits(item, dims):
            mode = True
        elif not dims or (a.ndim == len(dims) and fits(item, dims[1:])):
            mode = False
        else:
            raise DataError(f"{label} has items of shape {item} but model input {inp.name!r} "
                            f"wants {fmt_shape(dims)}" + _layout_hint(item, dims))
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
        labels, width = read_labels(raw, items, lk)
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
        limit = float_limit(a.dtype, inp.np_dtype)
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
        where, what = bad_items(bad), describe_bad(narrow)
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
