"""Train the shipped sample models on scikit-learn's bundled 8x8 digits and write them as ONNX.

Run from the repository root:

    pip install -e '.[train]'
    python sample_models/train.py            # writes into sample_models/

Writes ``digits_mlp.onnx`` (softmax probabilities), ``digits_cnn.onnx`` (raw logits) and
``digits_test.npz`` (the test split: ``input`` float32 (N, 1, 8, 8) in [0, 1], ``labels`` int64).
The data ships inside scikit-learn, so nothing is downloaded. The ONNX graphs are built by hand
with ``onnx.helper`` from the trained weights (opset 17, IR version 8), checked with
``onnx.checker`` and compared against torch with onnxruntime. Training is full-batch Adam on one
CPU thread with fixed seeds, so reruns give the same weights on the same torch build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

OPSET, IR_VERSION = 17, 8
LR, WEIGHT_DECAY = 1e-2, 1e-4


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels scaled to [0, 1], shaped (N, 1, 8, 8); fixed 70/30 stratified split (random_state=0)."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 32), nn.Linear(32, 16), nn.Linear(16, 10)

    def forward(self, x):  # logits; the ONNX graph adds the Softmax
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


# ---- hand-built ONNX graphs -------------------------------------------------------------

def _params(model: nn.Module) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(p.detach().numpy().astype(np.float32), name)
            for name, p in model.state_dict().items()]


def _gemm(name: str, x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Gemm", [x, f"{name}.weight", f"{name}.bias"], [out], name=name, transB=1)


def _conv(name: str, x: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [out], name=name,
                            kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])


def _relu(name: str, x: str) -> onnx.NodeProto:
    return helper.make_node("Relu", [x], [name], name=name)


def _pool(name: str, x: str) -> onnx.NodeProto:
    return helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=[2, 2], strides=[2, 2])


def _model(name: str, nodes, params, output: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 10])], initializer=params)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="snrcli sample_models/train.py",
                              doc_string="8x8 digits (scikit-learn), pixels / 16, NCHW")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp_onnx(model: MLP) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], name="flatten", axis=1),
        _gemm("fc1", "flat", "fc1_out"), _relu("relu1", "fc1_out"),
        _gemm("fc2", "relu1", "fc2_out"), _relu("relu2", "fc2_out"),
        _gemm("fc3", "relu2", "logits"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return _model("digits_mlp", nodes, _params(model), "probs")


def cnn_onnx(model: CNN) -> onnx.ModelProto:
    nodes = [
        _conv("conv1", "input", "conv1_out"), _relu("relu1", "conv1_out"), _pool("pool1", "relu1"),
        _conv("conv2", "pool1", "conv2_out"), _relu("relu2", "conv2_out"), _pool("pool2", "relu2"),
        helper.make_node("Flatten", ["pool2"], ["flat"], name="flatten", axis=1),
        _gemm("fc1", "flat", "fc1_out"), _relu("relu3", "fc1_out"),
        _gemm("fc2", "relu3", "logits"),
    ]
    return _model("digits_cnn", nodes, _params(model), "logits")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    ap.add_argument("--epochs", type=int, default=100, help="full-batch epochs per model (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for initialisation (default 0)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # one thread: bit-reproducible reductions
    torch.use_deterministic_algorithms(True)
    x_tr, x_te, y_tr, y_te = load_split()
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "digits_test.npz", input=x_te, labels=y_te)
    print(f"torch {torch.__version__}; train {len(y_tr)}, test {len(y_te)} items")

    for name, cls, to_onnx, head in [("digits_mlp", MLP, mlp_onnx, "softmax"),
                                     ("digits_cnn", CNN, cnn_onnx, "logits")]:
        torch.manual_seed(args.seed)
        model = train(cls(), x_tr, y_tr, args.epochs)
        proto = to_onnx(model)
        path = args.out / f"{name}.onnx"
        onnx.save(proto, path)

        with torch.no_grad():
            ref = model(torch.from_numpy(x_te))
            ref = (torch.softmax(ref, -1) if head == "softmax" else ref).numpy()
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x_te})[0]
        diff = float(np.abs(got - ref).max())
        assert diff < 1e-4, f"{name}: onnxruntime and torch differ by {diff}"
        acc = float((got.argmax(1) == y_te).mean())
        print(f"{path.name}: {path.stat().st_size} bytes, test accuracy {acc:.4f} "
              f"(onnxruntime), max |onnx - torch| {diff:.2e}")


if __name__ == "__main__":
    main()
