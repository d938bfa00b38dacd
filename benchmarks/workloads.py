"""Benchmark workloads: ONNX models built with onnx.helper (random He-init weights) and random data.

Every builder returns an ``onnx.ModelProto`` with one float32 input ``x`` whose
batch axis is symbolic; ``WORKLOADS`` says how big one item is, how many items
make the 1x data set and which batch size to use. Data is random non-negative
float32, written as ``.npy`` (memory-mapped by ``snr``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ROOT = Path(__file__).resolve().parent.parent


class Builder:
    """Tiny graph builder: ``gemm``, ``conv``, ``relu``... append nodes and initializers."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def he(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def gemm(self, x: str, n_in: int, n_out: int) -> str:
        w = self.const("w", self.he((n_out, n_in), n_in))
        b = self.const("b", np.zeros(n_out, np.float32))
        return self.node("Gemm", [x, w, b], transB=1)

    def matmul(self, x: str, n_in: int, n_out: int) -> str:
        w = self.const("w", self.he((n_in, n_out), n_in))
        b = self.const("b", (0.01 * self.rng.standard_normal(n_out)).astype(np.float32))
        return self.node("Add", [self.node("MatMul", [x, w]), b])

    def conv(self, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1, pad: int | None = None) -> str:
        pad = k // 2 if pad is None else pad
        w = self.const("w", self.he((c_out, c_in, k, k), c_in * k * k))
        b = self.const("b", np.zeros(c_out, np.float32))
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x: str, c: int) -> str:
        scale = self.const("s", (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32))
        bias = self.const("bb", (0.05 * self.rng.standard_normal(c)).astype(np.float32))
        mean = self.const("m", np.zeros(c, np.float32))
        var = self.const("v", np.ones(c, np.float32))
        return self.node("BatchNormalization", [x, scale, bias, mean, var])

    def relu(self, x: str) -> str:
        return self.node("Relu", [x])

    def model(self, x_shape: list, out: str, out_shape: list) -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def paper_mlp() -> onnx.ModelProto:
    """The paper's MNIST MLP: 784-1024-1000-10, ReLU, logits."""
    b = Builder(1)
    h = b.relu(b.gemm("x", 784, 1024))
    h = b.relu(b.gemm(h, 1024, 1000))
    return b.model(["N", 784], b.gemm(h, 1000, 10), ["N", 10])


def cnn5() -> onnx.ModelProto:
    """5 layers on 32x32x3 (CIFAR shape): conv32, conv32, pool, conv64, pool, dense 256, dense 10."""
    b = Builder(2)
    h = b.relu(b.conv("x", 3, 32))
    h = b.relu(b.conv(h, 32, 32))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.relu(b.conv(h, 32, 64))
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Flatten", [h], axis=1)
    h = b.relu(b.gemm(h, 64 * 8 * 8, 256))
    return b.model(["N", 3, 32, 32], b.gemm(h, 256, 10), ["N", 10])


def resnet18(size: int = 64) -> onnx.ModelProto:
    """ResNet-18 layout (stem 7x7/2 + maxpool, stages 64-128-256-512 of two basic blocks, BN, residual Adds)."""
    b = Builder(3)
    h = b.relu(b.bn(b.conv("x", 3, 64, k=7, stride=2), 64))
    h = b.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, c in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            t = b.relu(b.bn(b.conv(h, c_in, c, stride=stride), c))
            t = b.bn(b.conv(t, c, c), c)
            short = h if stride == 1 and c_in == c else b.bn(b.conv(h, c_in, c, k=1, stride=stride, pad=0), c)
            h = b.relu(b.node("Add", [t, short]))
            c_in = c
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    return b.model(["N", 3, size, size], b.gemm(h, 512, 10), ["N", 10])


def transformer_mlp(t: int = 128, f: int = 256) -> onnx.ModelProto:
    """A transformer MLP block on [B, T, F]: MatMul F->4F, Relu, MatMul 4F->F, residual Add."""
    b = Builder(4)
    h = b.relu(b.matmul("x", f, 4 * f))
    h = b.matmul(h, 4 * f, f)
    return b.model(["N", t, f], b.node("Add", [h, "x"]), ["N", t, f])


def transformer_mlp_gelu(t: int = 128, f: int = 256) -> onnx.ModelProto:
    """``transformer_mlp`` with GELU as exporters write it: Mul(Mul(z, 0.5), Add(Erf(Div(z, sqrt 2)), 1))."""
    b = Builder(4)
    z = b.matmul("x", f, 4 * f)
    half = b.node("Mul", [z, b.const("half", np.array(0.5, np.float32))])
    cdf = b.node("Add", [b.node("Erf", [b.node("Div", [z, b.const("sqrt2", np.array(np.sqrt(2), np.float32))])]),
                         b.const("one", np.array(1.0, np.float32))])
    h = b.matmul(b.node("Mul", [half, cdf]), 4 * f, f)
    return b.model(["N", t, f], b.node("Add", [h, "x"]), ["N", t, f])


def cnn_wide() -> onnx.ModelProto:
    """The larger CNN: 4 conv layers of 64 channels (3x3, pad 1) on 32x32, global pooling, dense 10."""
    b = Builder(5)
    h, c = "x", 3
    for _ in range(4):
        h, c = b.relu(b.conv(h, c, 64)), 64
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    return b.model(["N", 3, 32, 32], b.gemm(h, 64, 10), ["N", 10])


def cifar_cnn() -> onnx.ModelProto:
    """The paper's CIFAR-shaped CNN: conv 5x5 64 (pad 2), ReLU, max-pool 2, conv 5x5 64, ReLU, max-pool 2,
    flatten, dense 4096-1000-500-10 with ReLUs, softmax."""
    b = Builder(6)
    h = b.node("MaxPool", [b.relu(b.conv("x", 3, 64, k=5))], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("MaxPool", [b.relu(b.conv(h, 64, 64, k=5))], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Flatten", [h], axis=1)
    h = b.relu(b.gemm(h, 64 * 8 * 8, 1000))
    h = b.relu(b.gemm(h, 1000, 500))
    return b.model(["N", 3, 32, 32], b.node("Softmax", [b.gemm(h, 500, 10)], axis=1), ["N", 10])


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str                 # "dense" or "conv": which ratio target applies ("start-up": none)
    build: Callable[[], onnx.ModelProto] | None
    item: tuple[int, ...]
    items: int                # 1x data set
    quick_items: int
    batch: int = 256

    @property
    def target(self) -> float | None:
        """The ratio target; None for the sample digits, whose 10 ms of inference makes a ratio measure
        start-up, not analysis."""
        return {"dense": 2.0, "conv": 3.0}.get(self.kind)


WORKLOADS = [
    Workload("digits", "(a) sample digits MLP 64-32-16-10", "start-up", None, (1, 8, 8), 540, 540),
    Workload("mlp", "(b) paper MLP 784-1024-1000-10", "dense", paper_mlp, (784,), 60000, 2048),
    Workload("cnn5", "(c) 5-layer CNN 32x32x3", "conv", cnn5, (3, 32, 32), 5000, 512),
    Workload("resnet18", "(d) ResNet-18 64x64x3", "conv", resnet18, (3, 64, 64), 512, 64, batch=64),
    Workload("transformer", "(e) transformer MLP T=128 F=256", "dense", transformer_mlp, (128, 256), 1024, 64,
             batch=32),
    Workload("cnn64", "(f) larger CNN 4x conv64 32x32", "conv", cnn_wide, (3, 32, 32), 1000, 128, batch=128),
    Workload("cifar", "(g) paper CIFAR CNN 5x5 conv64 x2, dense 4096-1000-500-10", "conv", cifar_cnn,
             (3, 32, 32), 8000, 1024),
]


def digits_paths() -> tuple[Path, Path] | None:
    m, d = ROOT / "sample_models" / "digits_mlp.onnx", ROOT / "sample_models" / "digits_test.npz"
    return (m, d) if m.is_file() and d.is_file() else None


def random_data(w: Workload, items: int, seed: int = 0) -> np.ndarray:
    """Random non-negative float32 items (uniform [0, 1), like scaled pixels)."""
    rng = np.random.default_rng(seed)
    return rng.random((items,) + w.item, dtype=np.float32)


def prepare(w: Workload, folder: Path, scales: tuple[int, ...], quick: bool) -> tuple[Path, dict[int, Path]] | None:
    """Write the model and one ``.npy`` per data scale into ``folder``; None when the workload is unavailable."""
    folder.mkdir(parents=True, exist_ok=True)
    items = w.quick_items if quick else w.items
    if w.build is None:
        found = digits_paths()
        if found is None:
            return None
        model = found[0]
        base = np.load(found[1])["input"].astype(np.float32)
        items = len(base)
    else:
        model = folder / f"{w.key}.onnx"
        onnx.save_model(w.build(), model)
        base = None
    data = {}
    for s in scales:
        path = folder / f"{w.key}_x{s}.npy"
        if base is not None:
            arr = np.concatenate([base] * s)
            np.save(path, arr)
        else:  # written block by block so the driver never holds the 10x array
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(items * s,) + w.item)
            for k in range(s):
                out[k * items:(k + 1) * items] = random_data(w, items, seed=k)
            out.flush()
            del out
        data[s] = path
    return model, data
