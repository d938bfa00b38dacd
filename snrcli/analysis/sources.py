"""Where the model and the data come from: files, or objects in memory (the Python API).

``snrcli.analyze`` takes, besides paths,

- the model as an ``onnx.ModelProto`` or the bytes of one;
- the data as a numpy array (fed to a one-input model), a dict of arrays (keyed by model
  input name, optional ``labels``), or an iterable of such batches, where a batch may also be
  a pair ``(inputs, labels)`` (what a PyTorch DataLoader yields, once turned into numpy).

What the report records for them: ``model.path`` / ``data.path`` are null;
``model.sha256`` is the sha256 of the serialised model (the bytes ``onnx.save`` would
write); ``data.sha256`` is the sha256 of the arrays the analysis reads, named after the model
inputs they feed and ``labels`` (``array_sha256``: each array's name, dtype, shape and C-order
bytes, names sorted), so runs on equal arrays compare as the same data however they were passed.
An iterable is read into memory once (batches concatenated; with ``limit``, reading stops
after that many items).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import onnx

from ..errors import DataError, ModelError, UsageError
from ..model.graph import GraphInput
from ..model.modelfile import external_tensor_names, file_sha256, load_model_bytes, parse_model
from .data import Dataset, data_keys, load_data, match_arrays
from .labels import LABEL_KEY

PathLike = Union[str, os.PathLike]
ModelSource = Union[PathLike, bytes, bytearray, memoryview, onnx.ModelProto]
DataSource = Union[PathLike, np.ndarray, Mapping[str, Any], Iterable[Any]]

MEMORY_MODEL = "<in-memory model>"
MEMORY_DATA = "<in-memory data>"


def is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


@dataclass
class ModelInput:
    """The model as given: a path, or serialised bytes held in memory."""

    path: str | None        # None in memory
    raw: bytes | None       # the serialised model when in memory

    @property
    def label(self) -> str:
        return self.path if self.path is not None else MEMORY_MODEL

    def hash(self) -> str:
        """The model file's sha256, or that of its bytes in memory."""
        return file_sha256(self.path) if self.path is not None else hashlib.sha256(self.raw).hexdigest()

    def load(self) -> tuple[onnx.ModelProto, bytes | None]:
        """(model, the bytes it was parsed from when they hold all of it)."""
        if self.path is not None:
            return load_model_bytes(self.path)
        model = parse_model(self.raw, MEMORY_MODEL)
        external = external_tensor_names(model)
        if external:
            raise ModelError(f"the in-memory model keeps tensor {external[0]!r} (and {len(external) - 1} more) in "
                             "external data, which an in-memory model cannot name; load it with onnx.load(path) "
                             "(which reads the external data) or pass the model's path")
        return model, self.raw


def model_input(model: ModelSource) -> ModelInput:
    """Accept a path, an ``onnx.ModelProto`` or its bytes."""
    if is_path(model):
        return ModelInput(os.fspath(model), None)
    if isinstance(model, onnx.ModelProto):
        return ModelInput(None, model.SerializeToString())
    if isinstance(model, (bytes, bytearray, memoryview)):
        return ModelInput(None, bytes(model))
    raise UsageError(f"model: expected a path, an onnx.ModelProto or its bytes, got {type(model).__name__}")


def array_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over each array's key, dtype, shape and C-order bytes, in key order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@dataclass
class DataInput:
    """The data as given: a path, or named arrays in memory (key "" for a lone array)."""

    path: str | None
    arrays: dict[str, np.ndarray] | None

    @property
    def in_memory(self) -> bool:
        return self.path is None

    @property
    def label(self) -> str:
        return self.path if self.path is not None else MEMORY_DATA

    def hash(self, ds: Dataset) -> str:
        """The data file's sha256; in memory, see ``matched_hash``."""
        return file_sha256(self.path) if self.path is not None else self.matched_hash(ds)

    def matched_hash(self, ds: Dataset) -> str:
        """In memory: the sha256 of the arrays the analysis reads, named after the model inputs they
        feed, and the labels as 'labels' (so an array, a dict and (inputs, labels) batches of the same
        numbers hash alike)."""
        arrays = {name: self.arrays[key] for name, key in ds.keys.items()}
        if ds.label_key is not None:
            arrays[LABEL_KEY] = self.arrays[ds.label_key]
        return array_sha256(arrays)

    def keys(self) -> list[str]:
        return data_keys(self.path) if self.path is not None else list(self.arrays)

    def load(self, inputs: list[GraphInput], **options) -> Dataset:
        if self.path is not None:
            return load_data(self.path, inputs, **options)
        return match_arrays(self.arrays, MEMORY_DATA, inputs, **options)


def _array(value: Any, what: str) -> np.ndarray:
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - whatever the object raises, the user learns which one it was
        raise DataError(f"{what}: cannot be read as a numpy array ({type(e).__name__}: {e})") from None
    if a.dtype.hasobject:
        raise DataError(f"{what} has dtype object (ragged or mixed items); pass numeric arrays "
                        "(np.stack the items first)")
    return a


def _named(batch: Any, where: str) -> dict[str, np.ndarray]:
    """One batch as named arrays: an array, a dict of arrays, or a pair (inputs, labels)."""
    if isinstance(batch, Mapping):
        out = {}
        for k, v in batch.items():
            if not isinstance(k, str):
                raise DataError(f"{where}: array names must be strings (model input names or 'labels'), got {k!r}")
            out[k] = _array(v, f"{where}[{k!r}]")
        return out
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise DataError(f"{where}: a batch given as a tuple or list must be a pair (inputs, labels); "
                            f"got {len(batch)} items")
        inputs, labels = batch
        out = _named(inputs, where)
        if LABEL_KEY in out:
            raise DataError(f"{where}: labels given twice (in the inputs and as the pair's second item)")
        out[LABEL_KEY] = _array(labels, f"{where} labels")
        return out
    return {"": _array(batch, where)}


def _concatenate(batches: Iterable[Any], limit: int | None) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    keys: list[str] | None = None
    items = 0
    for n, batch in enumerate(batches):
        named = _named(batch, f"batch {n}")
        if keys is None:
            keys = sorted(named)
            parts = {k: [] for k in keys}
        elif sorted(named) != keys:
            raise DataError(f"batch {n} holds arrays {sorted(named)} but batch 0 held {keys}")
        sizes = {k: (len(a) if a.ndim else None) for k, a in named.items()}
        if None in sizes.values() or len(set(sizes.values())) != 1:
            got = ", ".join(f"{k or 'array'}: {v}" for k, v in sizes.items())
            raise DataError(f"batch {n}: every array needs the same number of items on its first axis (got {got})")
        for k, a in named.items():
            parts[k].append(a)
        items += next(iter(sizes.values()))
        if limit is not None and items >= limit:
            break
    if keys is None:
        raise DataError("the data iterable yielded no batch")
    out = {}
    for k, arrays in parts.items():
        try:
            out[k] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        except ValueError as e:
            raise DataError(f"the batches of {k or 'the inputs'!r} do not stack: {e}") from None
    return out


def data_input(data: DataSource, limit: int | None = None) -> DataInput:
    """Accept a path, an array, a dict of arrays or an iterable of batches (read into memory here)."""
    if is_path(data):
        return DataInput(os.fspath(data), None)
    if isinstance(data, (bytes, bytearray)):
        raise UsageError("data: bytes are not a data source; pass a path, an array, a dict of arrays or "
                         "an iterable of batches")
    if isinstance(data, (np.ndarray, Mapping)) or hasattr(data, "__array__"):
        return DataInput(None, _named(data, "the data"))
    if isinstance(data, Iterable):
        return DataInput(None, _concatenate(data, limit))
    raise UsageError(f"data: expected a path, a numpy array, a dict of arrays or an iterable of batches, "
                     f"got {type(data).__name__}")
