#!/usr/bin/env python
"""Train one small network on Fashion-MNIST, export ONNX after every epoch, analyse each checkpoint
with snr on held-out images and write the trajectory report (``snr report --x epoch``).

The network is a 784-128-64-10 ReLU MLP with a softmax output, trained with SGD (momentum 0.9,
learning rate 0.05, minibatches of 128, cross-entropy). Checkpoint 0 is the initialisation. Each
checkpoint is written as ONNX with onnx.helper (Gemm+Relu, Gemm+Relu, Gemm+Softmax; input
``input`` [N, 784], output ``probs``) and its accuracy checked against torch's.

Data (nothing is downloaded): the two .npz files of Fashion-MNIST, each holding ``images``
(uint8, N x 28 x 28) and ``labels``. Training uses a subsample of the training file; the
analysis and the test accuracy use held-out images from the test file.

Needs the ``train`` extra: pip install torch==2.13.0 (CPU build), then pip install '.[plot]'.

Example (from the repository root):
  python examples/checkpoints/train_checkpoints.py \\
      --train-data DATA/fashion_mnist_train.npz \\
      --test-data DATA/fashion_mnist_test.npz \\
      --out checkpoints --results examples/checkpoints/results
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTHS = (784, 128, 64, 10)


def load(path: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (all when n <= 0) drawn without replacement (seed), flattened to [0, 1] floats."""
    with np.load(path, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    idx = np.random.default_rng(seed).permutation(len(images))
    idx = idx[:n] if n > 0 else idx
    x = images[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
    return x, labels[idx].astype(np.int64)


def to_onnx(net, path: Path) -> None:
    linears = [m for m in net if m.__class__.__name__ == "Linear"]
    inits, nodes, x = [], [], "input"
    for k, lin in enumerate(linears, 1):
        inits += [numpy_helper.from_array(lin.weight.detach().numpy().astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(lin.bias.detach().numpy().astype(np.float32), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [f"z{k}"], name=f"fc{k}", transB=1))
        if k < len(linears):
            nodes.append(helper.make_node("Relu", [f"z{k}"], [f"h{k}"], name=f"relu{k}"))
            x = f"h{k}"
    nodes.append(helper.make_node("Softmax", [f"z{len(linears)}"], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(nodes, "mlp_784_128_64_10",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", WIDTHS[0]])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", WIDTHS[-1]])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="train_checkpoints.py")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def evaluate(net, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the network on x, y."""
    import torch

    with torch.no_grad():
        logits = net(torch.from_numpy(x))
        loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)))
        return loss, float((logits.argmax(1).numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-data", required=True, help="Fashion-MNIST training .npz (images, labels)")
    ap.add_argument("--test-data", required=True, help="Fashion-MNIST test .npz: the held-out images")
    ap.add_argument("--out", required=True, help="working folder for the ONNX checkpoints and the data file")
    ap.add_argument("--results", required=True, help="where the run folders, covariates and report go")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--eval-size", type=int, default=5000, help="held-out images analysed")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from snrcli.analysis.api import analyze
    from snrcli.reports.report import write_run_folder

    torch.set_num_threads(1)        # the example's timings assume one core
    torch.manual_seed(args.seed)
    out, results = Path(args.out), Path(args.results)
    (out / "models").mkdir(parents=True, exist_ok=True)
    runs_dir = results / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.mkdir(parents=True)

    xtr, ytr = load(args.train_data, args.train_size, args.seed)
    xte, yte = load(args.test_data, args.eval_size, args.seed + 1)
    held_out = out / "heldout.npz"
    np.savez(held_out, input=xte, labels=yte)

    net = torch.nn.Sequential(torch.nn.Linear(WIDTHS[0], WIDTHS[1]), torch.nn.ReLU(),
                              torch.nn.Linear(WIDTHS[1], WIDTHS[2]), torch.nn.ReLU(),
                              torch.nn.Linear(WIDTHS[2], WIDTHS[3]))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    rows, t0 = [], time.time()
    for epoch in range(args.epochs + 1):
        if epoch:
            net.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 128):
                idx = perm[i:i + 128]
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
        net.eval()
        name = f"epoch{epoch:02d}"
        model = out / "models" / f"{name}.onnx"
        to_onnx(net, model)
        train_loss, train_acc = evaluate(net, xtr, ytr)
        test_loss, test_acc = evaluate(net, xte, yte)
        report = analyze(model, held_out)
        if abs(report.accuracy - test_acc) > 1e-3:
            raise SystemExit(f"{name}: ONNX accuracy {report.accuracy} differs from torch's {test_acc}")
        write_run_folder(report, runs_dir / name)
        rows.append({"run": name, "epoch": epoch, "train_loss": round(train_loss, 5),
                     "train_accuracy": round(train_acc, 5), "test_loss": round(test_loss, 5),
                     "test_accuracy": round(test_acc, 5)})
        print(f"{name}: train {train_acc:.4f}, held-out {test_acc:.4f}, G_total "
              f"{report.network['G_total']:.4f} ({time.time() - t0:.0f} s)", flush=True)

    covariates = results / "covariates.csv"
    with open(covariates, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # run inside RESULTS, so that the page names the runs runs/epoch00, ... wherever RESULTS is
    folders = [f"runs/{r['run']}" for r in rows]
    snr = [sys.executable, "-m", "snrcli"]
    subprocess.run(snr + ["report", *folders, "--covariates", covariates.name, "--x", "epoch",
                          "--html", "training.html", "--force"], check=True, cwd=results)
    subprocess.run(snr + ["report", folders[-1], "--html", "last_epoch.html", "--force"], check=True, cwd=results)
    (results / "summary.json").write_text(json.dumps({
        "network": "784-128-64-10 ReLU MLP, softmax output", "optimiser": "SGD lr 0.05 momentum 0.9, batch 128",
        "train_images": len(xtr), "held_out_images": len(xte), "epochs": args.epochs, "seed": args.seed,
        "torch": torch.__version__, "seconds": round(time.time() - t0, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
