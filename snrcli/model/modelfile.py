"""Reading an ONNX model file as untrusted input.

The user's file is opened read-only and never rewritten. External-data
``location`` entries must name files inside the model's folder: absolute paths
and paths that climb out of it are refused before anything is read.
"""

from __future__ import annotations

import hashlib
import os
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

import onnx
from onnx import external_data_helper

from ..errors import ModelError


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers (dense and sparse) and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                yield from (sparse.values, sparse.indices)
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """The tensors whose data the model says lives in another file (graph, subgraphs and functions)."""
    tensors = chain(_graph_tensors(model.graph), *(_node_tensors(f.node) for f in model.functions))
    for tensor in tensors:
        if tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def check_external_paths(model: onnx.ModelProto, base_dir: Path) -> list[str]:
    """Names of the external-data files, each confined to ``base_dir``; raises ModelError otherwise."""
    base = base_dir.resolve()
    files = []
    for tensor in _external_tensors(model):
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        if not location:
            raise ModelError(f"tensor {tensor.name!r} says its data is external but names no location")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location.split("/")[0]:
            raise ModelError(
                f"tensor {tensor.name!r} points at external data by an absolute path ({location!r}); "
                "refused: external data must sit in the model's folder")
        target = (base / location).resolve()
        if base != target and base not in target.parents:
            raise ModelError(
                f"tensor {tensor.name!r} points at external data outside the model's folder ({location!r}); "
                "refused: external data must sit in the model's folder")
        if not target.is_file():
            raise ModelError(f"external data file {location!r} of tensor {tensor.name!r} is missing "
                             f"(looked in {base})")
        files.append(location)
    return files


def _names_are_text(graph: onnx.GraphProto) -> bool:
    names: list = []
    for n in graph.node:
        names += [n.name, n.op_type, n.domain, *n.input, *n.output]
    names += [t.name for t in graph.initializer]
    names += [v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)]
    return all(isinstance(x, str) for x in names)


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ONNX model, its external data confined to its folder (ModelError on any problem)."""
    return load_model_bytes(path)[0]


def parse_model(raw: bytes, label: str) -> onnx.ModelProto:
    """The ONNX model serialised in ``raw`` (``label`` names it in errors); ModelError when it is not one."""
    try:
        model = onnx.load_model_from_string(bytes(raw))
    except Exception as e:  # protobuf raises DecodeError and others
        raise ModelError(f"cannot read {label} as an ONNX model ({type(e).__name__}: {str(e)[:120]}); "
                         "is the file truncated or not ONNX?") from e
    if not model.HasField("graph") or (len(model.graph.node) == 0 and len(model.graph.input) == 0):
        raise ModelError(f"{label} holds no ONNX graph (is it another kind of protobuf?)")
    if not _names_are_text(model.graph):
        raise ModelError(f"{label} holds names that are not UTF-8 text: the file is corrupt")
    return model


def external_tensor_names(model: onnx.ModelProto) -> list[str]:
    """The tensors whose data is stored outside the model (external data)."""
    return [t.name for t in _external_tensors(model)]


def load_model_bytes(path: str | os.PathLike) -> tuple[onnx.ModelProto, bytes | None]:
    """``load_model``, and the file's bytes when they hold the whole model (no external data): what the
    model was parsed from, so a session can be made from them without serialising the model again."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelError(f"model path is a folder, not an .onnx file: {p}")
    if not p.is_file():     # a FIFO would block, a device never ends: refused before opening
        raise ModelError(f"model path {p} is not a regular file (a FIFO or a device); name the .onnx file")
    if p.stat().st_size == 0:
        raise ModelError(f"model file is empty (0 bytes): {p}")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror or e}") from e
    model = parse_model(raw, str(p))
    if check_external_paths(model, p.parent):
        try:
            external_data_helper.load_external_data_for_model(model, str(p.parent))
        except Exception as e:
            raise ModelError(f"cannot read the external data of {p}: {e}") from e
        return model, None
    return model, raw
