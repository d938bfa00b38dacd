"""Small ONNX model builders and generators of broken inputs, for the robustness tests.

Nothing here imports ``snrcli``: the models and the broken files are made from
``onnx.helper`` and ``numpy`` alone, so a bug in the tool cannot hide in its test
material.

- ``Stack`` describes a small dense/conv network (weights, biases, conv geometry,
  ReLU flags) that ``stack_model`` turns into ONNX and ``reference.forward``
  runs in numpy. The property tests draw random stacks.
- ``mlp`` / ``cnn`` / ... build the fixed models of the bad-input corpus.
- ``truncate``, ``flip_bytes``, ``strip_initializers``, ``with_custom_op``,
  ``external_data_model``, ``redirect_external`` ... make the broken inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FLOAT = TensorProto.FLOAT

NP_TO_ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
              np.dtype(np.float16): TensorProto.FLOAT16}


# --------------------------------------------------------------------------- network descriptions

@dataclass
class Act:
    """One elementwise op after a layer, on the running tensor t: ``op(t, **attrs)``; with ``const``, the
    binary ``op(t, const)`` (``op(const, t)`` when ``left``); with ``gate``, the binary ``op(t, gate(t))``
    (SiLU is ``Act("Mul", gate="Sigmoid")``). Clip's bounds are ``attrs`` min and max."""

    op: str
    attrs: dict = field(default_factory=dict)
    const: float | None = None
    left: bool = False
    gate: str | None = None


ACT_OPSETS = {"Gelu": 20, "Mish": 18}


@dataclass
class Dense:
    """``y = W x`` with ``W`` of shape (units, inputs); ``op`` Gemm (bias as C) or MatMul (+ Add bias)."""

    W: np.ndarray
    b: np.ndarray | None = None
    relu: bool = True
    op: str = "Gemm"
    trans_b: bool = True      # Gemm only: store W as (units, in) with transB=1, else W.T with transB=0
    act: tuple = ()           # elementwise ops after the layer (``Act``), in place of the ReLU

    @property
    def units(self) -> int:
        return self.W.shape[0]


@dataclass
class Conv:
    """ONNX Conv: ``W`` (M, C/group, k1, ...); ``pads`` = (begin..., end...) when ``auto_pad`` is NOTSET."""

    W: np.ndarray
    b: np.ndarray | None = None
    strides: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    auto_pad: str = "NOTSET"
    group: int = 1
    relu: bool = True
    act: tuple = ()

    @property
    def units(self) -> int:
        return self.W.shape[0]

    @property
    def nd(self) -> int:
        return self.W.ndim - 2


@dataclass
class Flatten:
    pass


@dataclass
class Stack:
    """A chain of layers fed by one input of shape (N, *item)."""

    item: tuple[int, ...]
    layers: list = field(default_factory=list)

    @property
    def weighted(self) -> list:
        return [L for L in self.layers if isinstance(L, (Dense, Conv))]


def stack_model(stack: Stack, dtype=np.float32, input_name: str = "x", output_name: str = "out") -> onnx.ModelProto:
    """The ONNX model of ``stack`` (dynamic batch axis; every node named)."""
    et = NP_TO_ONNX[np.dtype(dtype)]
    nodes, inits = [], []
    t = input_name
    k = 0

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    last = len(stack.layers) - 1
    for pos, L in enumerate(stack.layers):
        k += 1
        out = output_name if pos == last else f"t{k}"
        if isinstance(L, Flatten):
            nodes.append(helper.make_node("Flatten", [t], [out], name=f"flatten{k}", axis=1))
            t = out
            continue
        pre = out if not (L.relu or L.act) else f"pre{k}"
        if isinstance(L, Dense):
            if L.op == "Gemm":
                w = const(f"W{k}", L.W if L.trans_b else L.W.T)
                ins = [t, w] + ([const(f"b{k}", L.b)] if L.b is not None else [])
                nodes.append(helper.make_node("Gemm", ins, [pre], name=f"dense{k}", transB=int(L.trans_b)))
            else:
                w = const(f"W{k}", L.W.T)
                if L.b is None:
                    nodes.append(helper.make_node("MatMul", [t, w], [pre], name=f"dense{k}"))
                else:
                    nodes.append(helper.make_node("MatMul", [t, w], [f"mm{k}"], name=f"dense{k}"))
                    nodes.append(helper.make_node("Add", [f"mm{k}", const(f"b{k}", L.b)], [pre], name=f"bias{k}"))
        else:
            attrs = dict(group=L.group)
            if L.strides:
                attrs["strides"] = list(L.strides)
            if L.dilations:
                attrs["dilations"] = list(L.dilations)
            if L.auto_pad != "NOTSET":
                attrs["auto_pad"] = L.auto_pad
            elif L.pads:
                attrs["pads"] = list(L.pads)
            ins = [t, const(f"W{k}", L.W)] + ([const(f"b{k}", L.b)] if L.b is not None else [])
            nodes.append(helper.make_node("Conv", ins, [pre], name=f"conv{k}", **attrs))
        if L.act:
            t = pre
            for i, a in enumerate(L.act):
                nxt = out if i == len(L.act) - 1 else f"act{k}_{i}"
                if a.gate:
                    nodes.append(helper.make_node(a.gate, [t], [f"gate{k}_{i}"], name=f"gate{k}_{i}"))
                    ins = [t, f"gate{k}_{i}"]
                elif a.const is not None:
                    c = const(f"c{k}_{i}", np.array(a.const))
                    ins = [c, t] if a.left else [t, c]
                elif a.op == "Clip":
                    ins = [t] + [const(f"{b}{k}_{i}", np.array(a.attrs[b])) if b in a.attrs else ""
                                 for b in ("min", "max")]
                else:
                    ins = [t]
                attrs = {} if a.op == "Clip" else a.attrs
                nodes.append(helper.make_node(a.op, ins, [nxt], name=f"{a.op.lower()}{k}_{i}", **attrs))
                t = nxt
        elif L.relu:
            nodes.append(helper.make_node("Relu", [pre], [out], name=f"relu{k}"))
        t = out
    graph = helper.make_graph(nodes, "stack", [helper.make_tensor_value_info(input_name, et, ["N", *stack.item])],
                              [helper.make_tensor_value_info(output_name, et, None)], inits)
    used = {n.op_type for n in nodes}
    opset = max([OPSET] + [v for op, v in ACT_OPSETS.items() if op in used])
    return fill_outputs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def fill_outputs(m: onnx.ModelProto) -> onnx.ModelProto:
    """Give graph outputs declared without a shape the shape that ONNX shape inference finds."""
    try:
        inferred = onnx.shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001 - deliberately broken models keep their outputs as written
        return m
    known = {o.name: o for o in inferred.graph.output}
    for o in m.graph.output:
        if o.type.tensor_type.HasField("shape") or o.name not in known:
            continue
        if known[o.name].type.tensor_type.HasField("shape"):
            o.type.CopyFrom(known[o.name].type)
    return m


# --------------------------------------------------------------------------- fixed models of the corpus

def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def mlp(features: int = 6, hidden: int = 5, classes: int = 3, *, seed: int = 0, dtype=np.float32,
        op: str = "Gemm", input_name: str = "x") -> onnx.ModelProto:
    """x (N, features) -> dense -> Relu -> dense (logits)."""
    r = _rng(seed)
    s = Stack((features,), [Dense(r.normal(size=(hidden, features)), r.normal(size=hidden) * 0.1, True, op),
                            Dense(r.normal(size=(classes, hidden)), r.normal(size=classes) * 0.1, False, op)])
    return stack_model(s, dtype=dtype, input_name=input_name, output_name="logits")


def cnn(channels: int = 1, size: int = 6, *, seed: int = 0, classes: int = 3, filters: int = 4,
        input_name: str = "x") -> onnx.ModelProto:
    """x (N, C, size, size) -> Conv 3x3 pad 1 -> Relu -> Flatten -> Gemm (logits)."""
    r = _rng(seed)
    s = Stack((channels, size, size), [
        Conv(r.normal(size=(filters, channels, 3, 3)), r.normal(size=filters) * 0.1, pads=(1, 1, 1, 1)),
        Flatten(),
        Dense(r.normal(size=(classes, filters * size * size)) * 0.1, np.zeros(classes), relu=False)])
    return stack_model(s, input_name=input_name, output_name="logits")


def make(nodes, inputs, outputs, inits=(), opset: int = OPSET, domains: Sequence[tuple[str, int]] = (),
         ir_version: int | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domains]
    m = helper.make_model(graph, opset_imports=ops)
    if ir_version is not None:
        m.ir_version = ir_version
    return fill_outputs(m)


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def with_custom_op(base: onnx.ModelProto, domain: str = "com.example.fancy", op: str = "FancyRelu") -> onnx.ModelProto:
    """The MLP with its hidden Relu replaced by a made-up op of a custom domain."""
    m = onnx.ModelProto()
    m.CopyFrom(base)
    for n in m.graph.node:
        if n.op_type == "Relu":
            n.op_type = op
            n.domain = domain
            break
    m.opset_import.append(helper.make_opsetid(domain, 1))
    return m


def strip_initializers(base: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every initializer removed (weights now dangle)."""
    m = onnx.ModelProto()
    m.CopyFrom(base)
    del m.graph.initializer[:]
    return m


def with_opset(base: onnx.ModelProto, version: int) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(base)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = version
    return m


def bfloat16_mlp() -> onnx.ModelProto:
    """A one-layer MatMul model whose tensors are bfloat16 (onnxruntime CPU has no kernel for it)."""
    w = helper.make_tensor("W", TensorProto.BFLOAT16, [4, 3], [0.5, -0.25, 1.0, 0.75] * 3)
    return make([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
                [vi("x", TensorProto.BFLOAT16, ["N", 4])], [vi("y", TensorProto.BFLOAT16, ["N", 3])], [w])


def convtranspose_only() -> onnx.ModelProto:
    """Every weighted op is skipped: a ConvTranspose and a MatMul of two activations."""
    w = numpy_helper.from_array(np.ones((1, 2, 3, 3), np.float32), "W")
    nodes = [helper.make_node("ConvTranspose", ["x", "W"], ["up"], name="deconv"),
             helper.make_node("Flatten", ["up"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "v"], ["y"], name="mm_two_activations")]
    return make(nodes, [vi("x", FLOAT, ["N", 1, 4, 4]), vi("v", FLOAT, [72, 2])], [vi("y", FLOAT, None)], [w])


def no_weighted_op() -> onnx.ModelProto:
    return make([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", FLOAT, ["N", 4])], [vi("y", FLOAT, None)])


def reshape_fails_on_odd_batches(features: int = 4, units: int = 3) -> onnx.ModelProto:
    """Gemm then Reshape to (-1, 2*units): onnxruntime fails on any batch with an odd number of rows."""
    r = _rng(3)
    w = numpy_helper.from_array(r.normal(size=(features, units)).astype(np.float32), "W")
    shape = numpy_helper.from_array(np.array([-1, 2 * units], np.int64), "shape")
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Reshape", ["h", "shape"], ["y"], name="pairs")]
    return make(nodes, [vi("x", FLOAT, ["N", features])], [vi("y", FLOAT, None)], [w, shape])


def two_inputs_two_outputs(seed: int = 5) -> onnx.ModelProto:
    """Non-image inputs a (N, 3) and b (N, 2) -> Concat -> Gemm -> Relu -> Gemm; outputs logits and hidden."""
    r = _rng(seed)
    w1 = numpy_helper.from_array(r.normal(size=(5, 4)).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(r.normal(size=(4, 3)).astype(np.float32), "W2")
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="cat"),
             helper.make_node("Gemm", ["ab", "W1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
             helper.make_node("Gemm", ["hr", "W2"], ["logits"], name="fc2")]
    return make(nodes, [vi("a", FLOAT, ["N", 3]), vi("b", FLOAT, ["N", 2])],
                [vi("logits", FLOAT, ["N", 3]), vi("hr", FLOAT, ["N", 4])], [w1, w2])


def conv1d_dynamic_length(seed: int = 6) -> onnx.ModelProto:
    """x (N, 2, L) with L symbolic -> Conv1d -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    r = _rng(seed)
    w = numpy_helper.from_array(r.normal(size=(3, 2, 3)).astype(np.float32), "Wc")
    wd = numpy_helper.from_array(r.normal(size=(3, 2)).astype(np.float32), "Wd")
    nodes = [helper.make_node("Conv", ["x", "Wc"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["cr"], name="relu"),
             helper.make_node("GlobalAveragePool", ["cr"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "Wd"], ["y"], name="fc")]
    return make(nodes, [vi("x", FLOAT, ["N", 2, "L"])], [vi("y", FLOAT, ["N", 2])], [w, wd])


def checker_fails_but_runs(seed: int = 0) -> onnx.ModelProto:
    """The MLP with a graph output that has no type: onnx.checker complains, onnxruntime runs it."""
    m = mlp(seed=seed)
    out = m.graph.output[0]
    out.ClearField("type")
    return m


def shape_inference_fails_but_runs(seed: int = 0) -> onnx.ModelProto:
    """The MLP whose declared output shape contradicts the real one (shape inference merge error)."""
    m = mlp(seed=seed)
    m.graph.output[0].CopyFrom(vi("logits", FLOAT, ["N", 7]))
    return m


def external_data_model(folder: Path, base: onnx.ModelProto | None = None, name: str = "model.onnx",
                        location: str = "weights.bin") -> Path:
    """Save ``base`` (default: the MLP) with every tensor in one external file beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    m = onnx.ModelProto()
    m.CopyFrom(base if base is not None else mlp())
    path = folder / name
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def redirect_external(path: Path, location: str) -> None:
    """Rewrite every external-data ``location`` entry of the model file at ``path`` (data untouched)."""
    m = onnx.load(str(path), load_external_data=False)
    n = 0
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
                n += 1
    assert n, "the model has no external tensors"
    path.write_bytes(m.SerializeToString())


# --------------------------------------------------------------------------- byte-level corruption

def model_bytes(m: onnx.ModelProto) -> bytes:
    return m.SerializeToString()


def truncate(raw: bytes, keep: float) -> bytes:
    return raw[:int(len(raw) * keep)]


def flip_bytes(raw: bytes, positions: Sequence[int], mask: int = 0xFF) -> bytes:
    b = bytearray(raw)
    for p in positions:
        b[p % len(b)] ^= mask
    return bytes(b)


def other_protobuf() -> bytes:
    """A valid protobuf that is not a ModelProto: a serialised TensorProto."""
    return numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "t").SerializeToString()


def write_bytes(path: Path, raw: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def save(path: Path, m: onnx.ModelProto) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path


# --------------------------------------------------------------------------- data files

def npz(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def npy(path: Path, array: np.ndarray, allow_pickle: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=allow_pickle)
    return path


def object_npz(path: Path, key: str = "x", items: int = 4) -> Path:
    """An .npz whose array is a pickled object array."""
    arr = np.empty(items, dtype=object)
    for i in range(items):
        arr[i] = np.zeros(6, np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{key: arr})
    return path


def with_nonfinite(x: np.ndarray, items: Sequence[int], value=np.nan) -> np.ndarray:
    y = np.array(x, dtype=np.float32, copy=True)
    for i in items:
        y[i].flat[0] = value
    return y


def features(n: int = 10, f: int = 6, seed: int = 0) -> np.ndarray:
    return _rng(seed).normal(size=(n, f)).astype(np.float32)


def images(n: int = 10, c: int = 1, size: int = 6, seed: int = 0) -> np.ndarray:
    return _rng(seed).uniform(0, 1, size=(n, c, size, size)).astype(np.float32)


def listing(folder: Path) -> set[str]:
    """Every path under ``folder``, relative, for before/after comparisons."""
    out = set()
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(root, name), folder))
    return out
