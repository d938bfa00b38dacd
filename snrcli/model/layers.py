"""Which nodes are layers (docs/metrics.md, Words): a weighted node becomes a ``Layer`` (its weight as a
units x inputs-per-unit view, conv geometry) or a ``Skipped`` op with the reason it is not analysed.
Also the names layers are reported under.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import onnx

from .constants import ConstantFolder, attribute
from .reach import DEFAULT_DOMAINS
from .sites import Site

SKIP_REASONS = {
    "ConvTranspose": "transposed convolution is not analysed",
    "ConvInteger": "integer (quantised) convolution is not analysed",
    "QLinearConv": "quantised convolution is not analysed",
    "MatMulInteger": "integer (quantised) MatMul is not analysed",
    "QLinearMatMul": "quantised MatMul is not analysed",
    "LSTM": "recurrent layer is not analysed",
    "GRU": "recurrent layer is not analysed",
    "RNN": "recurrent layer is not analysed",
    "Einsum": "Einsum is not analysed",
    "Attention": "fused attention is not analysed",
}
ML_WEIGHTED = {"LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor",
               "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"}


@dataclass(frozen=True)
class ConvGeometry:
    """Convolution hyper-parameters; ``pads`` is (begin..., end...) unless ``auto_pad`` is SAME_*."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    auto_pad: str
    group: int


@dataclass
class Layer:
    """One analysed layer. ``weight`` is (units, inputs per unit), float64; Gemm's alpha included."""

    index: int
    name: str
    op: str
    input: str
    output: str
    weight: np.ndarray
    conv: ConvGeometry | None = None
    input_transposed: bool = False      # Gemm transA=1: samples are the columns of the input
    output_is_weighted_sum: bool = True  # False when Gemm adds a non-constant C
    gate: str | None = None
    classifier: bool = False
    weight_name: str = ""
    feeds_output: bool = True           # False when no graph output depends on the layer's output
    node: str = ""                        # the node's name (``name`` may be the exporter's module path)
    input_site: Site | None = None        # docs/metrics.md, Noise models: the activation the layer reads ...
    unit_site: Site | None = None         # ... and the one its output feeds

    @property
    def units(self) -> int:
        return int(self.weight.shape[0])

    @property
    def group(self) -> int:
        return self.conv.group if self.conv else 1

    @property
    def kernel_size(self) -> int:
        return int(np.prod(self.conv.kernel)) if self.conv else 1

    @property
    def in_channels(self) -> int:
        """Input channels (conv) or input features (dense) of the layer's input tensor."""
        return self.weight.shape[1] // self.kernel_size * self.group

    @property
    def inputs(self) -> int:
        """Layer-wide input count: features (dense), C_in x kernel elements (conv)."""
        return self.in_channels * self.kernel_size


@dataclass
class Skipped:
    name: str
    op: str
    reason: str


def node_name(node: onnx.NodeProto) -> str:
    """The node's name, or its first output's name when it has none (docs/report-format.md, layers)."""
    return node.name or (node.output[0] if node.output else node.op_type)


SCOPES_KEY = "pkg.torch.onnx.name_scopes"   # torch's dynamo exporter: module paths, then the node's own name


def module_path(node: onnx.NodeProto) -> str | None:
    """The module path torch's ONNX exporter stores in a node's metadata (``['', 'blocks.0', 'blocks.0.fc1',
    'linear_3']`` gives ``blocks.0.fc1``), or None."""
    for p in node.metadata_props:
        if p.key != SCOPES_KEY or len(p.value) > 10_000:
            continue
        try:
            scopes = ast.literal_eval(p.value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
        if isinstance(scopes, (list, tuple)) and len(scopes) >= 2 and all(isinstance(s, str) for s in scopes):
            return scopes[-2] or None
    return None


def _conv_geometry(node, w: np.ndarray) -> ConvGeometry:
    nd = w.ndim - 2
    kernel = tuple(int(k) for k in (attribute(node, "kernel_shape") or w.shape[2:]))
    auto_pad = attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    return ConvGeometry(
        kernel=kernel,
        strides=tuple(attribute(node, "strides") or [1] * nd),
        dilations=tuple(attribute(node, "dilations") or [1] * nd),
        pads=tuple(attribute(node, "pads") or [0] * (2 * nd)),
        auto_pad=auto_pad or "NOTSET",
        group=int(attribute(node, "group", 1)),
    )


def as_layer(node, folder: ConstantFolder) -> Layer | Skipped | None:
    name, op = node_name(node), node.op_type
    if node.domain not in DEFAULT_DOMAINS:
        if op in ML_WEIGHTED:
            return Skipped(name, op, f"{node.domain} op {op} is not analysed (only default-domain ops are layers)")
        if any(folder.is_constant(i) for i in node.input):
            return Skipped(name, op, f"op of domain {node.domain!r} is not analysed")
        return None
    if op in SKIP_REASONS:
        return Skipped(name, op, SKIP_REASONS[op])
    if op not in ("Gemm", "MatMul", "Conv") or len(node.input) < 2:
        return None
    if not node.output or not node.output[0]:
        return Skipped(name, op, "node has no output (malformed graph)")
    a_const, b = folder.is_constant(node.input[0]), folder.value(node.input[1])
    if b is None:
        why = folder.why_not(node.input[1])
        if why:
            return Skipped(name, op, f"its weight {node.input[1]!r} comes from constants but is not usable: {why}")
        return Skipped(name, op, "constant on the left" if a_const else
                       f"{op} of two activations" if op != "Conv" else "weight is not a constant")
    b = b.astype(np.float64)
    common = dict(index=0, name=name, op=op, input=node.input[0], output=node.output[0],
                  weight_name=node.input[1])
    if op == "MatMul":
        if b.ndim != 2:
            return Skipped(name, op, f"weight is {b.ndim}-D, not 2-D")
        return Layer(weight=np.ascontiguousarray(b.T), **common)
    if op == "Gemm":
        if b.ndim != 2:
            return Skipped(name, op, f"weight is {b.ndim}-D, not 2-D")
        w = b if attribute(node, "transB", 0) else b.T
        alpha = float(attribute(node, "alpha", 1.0))
        c = node.input[2] if len(node.input) > 2 else ""
        w = w if alpha == 1.0 else alpha * w   # (no copy of a large weight for the usual alpha)
        return Layer(weight=np.ascontiguousarray(w), input_transposed=bool(attribute(node, "transA", 0)),
                     output_is_weighted_sum=(not c) or folder.is_constant(c), **common)
    if b.ndim < 3:
        return Skipped(name, op, f"weight is {b.ndim}-D, not a convolution kernel")
    geom = _conv_geometry(node, b)
    return Layer(weight=np.ascontiguousarray(b.reshape(b.shape[0], -1)), conv=geom, **common)
