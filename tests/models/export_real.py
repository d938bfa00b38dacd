#!/usr/bin/env python
"""Train three small Fashion-MNIST networks and export each with both torch ONNX exporters.

Run by hand (needs the ``train`` extra: ``pip install torch==2.13.0`` and, for the
default exporter, ``onnxscript``); the outputs are committed beside this script and
read by ``tests/test_real_exports.py``:

  transformer_gelu  patch embedding (Conv 4x4, stride 4) -> nn.TransformerEncoderLayer
                    (d_model 32, 4 heads, feed-forward 64, activation="gelu",
                    batch_first=True) -> mean over the 49 patches -> Linear(32, 10)
  cnn_silu          Conv 3x3 (8) -> BatchNorm -> SiLU -> Conv 3x3 stride 2 (16) -> BatchNorm
                    -> SiLU -> MaxPool 2 -> Flatten -> Linear(784, 10)
  mlp_tanh          Flatten -> Linear(784, 64) -> Tanh -> Linear(64, 32) -> Tanh -> Linear(32, 10)

Each takes ``input`` [N, 1, 28, 28] and returns ``logits`` [N, 10]. For each:
``<name>_legacy.onnx`` (``torch.onnx.export(..., dynamo=False)``, opset 17) and
``<name>_dynamo.onnx`` (the default exporter, opset 20); both hold the same trained
weights and have a dynamic batch axis; the default exporter's per-node stack traces
are removed (they name files on the exporting machine). The CNN is trained with BatchNorm, which is folded into the
conv before it (``fuse_conv_bn_eval``) before export: both exporters fold it
anyway, but each rounds the folded weights its own way (up to 2.4e-7 on the conv
weights, enough to move the last layer's G by 2e-5 relative), and the two exports
are meant to hold identical weights. One
data file serves all six: ``fashion_test_256.npz`` (``input`` float32 in [0, 1],
``labels``), 256 images of the Fashion-MNIST test split.

  python tests/models/export_real.py --data ../shared/data/fashion_mnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ITEMS = 256
DATA = "fashion_test_256.npz"


def models():
    import torch
    from torch import nn

    class PatchTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(1, 32, kernel_size=4, stride=4)
            self.pos = nn.Parameter(torch.zeros(1, 49, 32))
            self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation="gelu", batch_first=True)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
            return self.head(self.encoder(tokens).mean(dim=1))

    def cnn():
        net = nn.Sequential()
        net.add_module("conv1", nn.Conv2d(1, 8, 3, padding=1))
        net.add_module("bn1", nn.BatchNorm2d(8))
        net.add_module("act1", nn.SiLU())
        net.add_module("conv2", nn.Conv2d(8, 16, 3, stride=2, padding=1))
        net.add_module("bn2", nn.BatchNorm2d(16))
        net.add_module("act2", nn.SiLU())
        net.add_module("pool", nn.MaxPool2d(2))
        net.add_module("flatten", nn.Flatten())
        net.add_module("fc", nn.Linear(16 * 7 * 7, 10))
        return net

    def mlp():
        net = nn.Sequential()
        net.add_module("flatten", nn.Flatten())
        net.add_module("fc1", nn.Linear(784, 64))
        net.add_module("act1", nn.Tanh())
        net.add_module("fc2", nn.Linear(64, 32))
        net.add_module("act2", nn.Tanh())
        net.add_module("fc3", nn.Linear(32, 10))
        return net

    return {"transformer_gelu": PatchTransformer, "cnn_silu": cnn, "mlp_tanh": mlp}


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return z["images"].astype(np.float32) / 255.0, z["labels"].astype(np.int64)


def train(net, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 128):
            idx = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()


def fuse_batchnorm(net):
    """The CNN without its BatchNorm modules, each folded into the conv before it (float32, in torch)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    mods = dict(net.named_children())
    out = nn.Sequential()
    for name, mod in mods.items():
        if isinstance(mod, nn.BatchNorm2d):
            continue
        bn = mods.get(name.replace("conv", "bn"))
        out.add_module(name, fuse_conv_bn_eval(mod, bn) if isinstance(mod, nn.Conv2d) and bn is not None else mod)
    return out.eval()


def export(net, example, stem: Path) -> None:
    import torch

    torch.onnx.export(net, (example,), str(stem) + "_legacy.onnx", dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "N"}})
    program = torch.onnx.export(net, (example,), dynamo=True, input_names=["input"], output_names=["logits"],
                                dynamic_shapes=({0: torch.export.Dim("N", min=1, max=4096)},))
    program.save(str(stem) + "_dynamo.onnx")
    strip_stack_traces(Path(str(stem) + "_dynamo.onnx"))


def strip_stack_traces(path: Path) -> None:
    """Drop the exporter's per-node Python stack traces (they hold the exporting machine's file paths);
    the module paths (``pkg.torch.onnx.name_scopes``, ``namespace``) stay."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        keep = [(p.key, p.value) for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        for key, value in keep:
            node.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder with fashion_mnist_train.npz and fashion_mnist_test.npz")
    ap.add_argument("--train-items", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    xtr, ytr = load(Path(args.data) / "fashion_mnist_train.npz")
    xte, yte = load(Path(args.data) / "fashion_mnist_test.npz")
    rng = np.random.default_rng(0)
    tr = rng.permutation(len(xtr))[:args.train_items]
    te = np.sort(rng.permutation(len(xte))[:ITEMS])
    summary = {}
    x = xte[te].reshape(-1, 1, 28, 28)
    np.savez_compressed(out / DATA, input=x, labels=yte[te])
    for k, (name, make) in enumerate(models().items()):
        torch.manual_seed(k)
        net = make()
        train(net, xtr[tr].reshape(-1, 1, 28, 28), ytr[tr], args.epochs, seed=k)
        with torch.no_grad():
            logits = net(torch.from_numpy(x)).numpy()
        if name == "cnn_silu":
            net = fuse_batchnorm(net)
        export(net, torch.from_numpy(x[:2]), out / name)
        row = {"torch_accuracy": float(np.mean(logits.argmax(1) == yte[te]))}
        for kind in ("legacy", "dynamo"):
            path = out / f"{name}_{kind}.onnx"
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"input": x})[0]
            row[f"{kind}_max_abs_diff"] = float(np.abs(got - logits).max())
            row[f"{kind}_bytes"] = path.stat().st_size
        summary[name] = row
        print(name, json.dumps(row), flush=True)
    print(json.dumps({"torch": torch.__version__, "train_items": len(tr), "epochs": args.epochs}))


if __name__ == "__main__":
    main()
