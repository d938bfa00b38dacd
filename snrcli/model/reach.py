"""What reaches what in an ONNX graph, beyond the layer walks of ``graph.py``.

- ``subgraph_ops``: weighted ops inside ``If``/``Loop``/``Scan`` bodies (listed as skipped:
  control-flow bodies are not analysed),
- ``live_tensors``: the tensors some graph output depends on (a layer outside it feeds nothing),
- ``score_kind``: whether the scored output is a Sigmoid output or a layer's raw output (a logit),
  which decides how a one-score-per-item (binary) head is read.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")
WEIGHTED = ("Gemm", "MatMul", "Conv")
# ops that hand their first input on unchanged in value (only its shape may change)
_PASS = ("Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze")
_SQUASH = ("Sigmoid", "HardSigmoid")


def _subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.name, a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            for g in a.graphs:
                yield a.name, g


def _label(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def subgraph_ops(node: onnx.NodeProto, weighted: Iterable[str]) -> list[tuple[str, str, str]]:
    """(name, op, reason) for every op of ``weighted`` inside the subgraphs of ``node``, at any depth."""
    wanted = set(weighted)
    found = []
    for attr, g in _subgraphs(node):
        where = f"inside the {attr} body of {node.op_type} {_label(node)!r}"
        for inner in g.node:
            if inner.op_type in wanted:
                found.append((_label(inner), inner.op_type,
                              f"{where}: ops in control-flow (If/Loop/Scan) bodies are not analysed"))
            found += subgraph_ops(inner, wanted)
    return found


def _outer_names(node: onnx.NodeProto) -> set[str]:
    """Every tensor name the subgraphs of ``node`` read (outer-scope names among them)."""
    names: set[str] = set()
    for _, g in _subgraphs(node):
        for inner in g.node:
            names.update(i for i in inner.input if i)
            names |= _outer_names(inner)
    return names


def live_tensors(nodes: list[onnx.NodeProto], outputs: Iterable[str]) -> set[str]:
    """The tensors that some graph output depends on (``nodes`` in running order)."""
    live = set(outputs)
    for n in reversed(nodes):
        if any(o in live for o in n.output if o):
            live.update(i for i in n.input if i)
            live |= _outer_names(n)
    return live


def score_kind(nodes: list[onnx.NodeProto], output: str | None, layer_outputs: set[str],
               is_constant) -> str | None:
    """How the scored output reads: ``"probability"`` when a Sigmoid makes it, ``"logit"`` when it is a
    layer's output (through bias adds and shape-only ops), else None."""
    if output is None:
        return None
    producer = {o: n for n in nodes for o in n.output if o}
    t, seen = output, set()
    while t not in seen:
        seen.add(t)
        if t in layer_outputs:
            return "logit"
        n = producer.get(t)
        if n is None or n.domain not in DEFAULT_DOMAINS or not n.input:
            return None
        if n.op_type in _SQUASH:
            return "probability"
        if n.op_type in _PASS:
            t = n.input[0]
        elif n.op_type == "Add" and len(n.input) == 2 and n.input[0] != n.input[1]:
            varying = [i for i in n.input if not is_constant(i)]
            if len(varying) != 1:
                return None
            t = varying[0]
        else:
            return None
    return None
