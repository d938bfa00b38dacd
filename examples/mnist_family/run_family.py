#!/usr/bin/env python
"""Train a family of 784-1024-1000-10 networks, export them to ONNX, analyse them and correlate.

A small-scale repetition of the set-up behind Table 1 of Norridge (2021): fully
connected ReLU networks with a softmax output, trained with plain SGD at a fixed
learning rate, differing in regulariser, training length and seed. Every network
is exported to ONNX (built with onnx.helper from the trained weights), analysed
with ``snrcli.analysis.api.analyze`` on held-out images, and the family is then passed to
``snr correlate`` (plain, and with ``--control epochs``).

Two ways to give the data (nothing is downloaded):

  --data mnist_test.npz
      one file (e.g. the MNIST *test* set, 10000 images): a fixed random half
      (seed 0) is the training pool, the other half is held out for
      evaluation and analysis.
  --data fashion_mnist_train.npz --test-data fashion_mnist_test.npz
      a proper split: a random subsample of the training file is the training
      set, a random subsample of the test file is held out.

Each .npz holds ``images`` (uint8, N x 28 x 28) and ``labels``. Needs the ``train`` extra
(torch, CPU build, and scikit-learn) and the ``plot`` extra (matplotlib, for the plot):
``pip install '.[train,plot]'``.

Example:
  python examples/mnist_family/run_family.py --data mnist_test.npz \
      --out fam/mnist --results examples/mnist_family/results/mnist
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTHS = (784, 1024, 1000, 10)
LR = 0.1
BATCH = 250

# (regulariser, strength): strength is the L2 coefficient (added to the loss as
# strength/2 * sum w^2, i.e. SGD weight decay), the dropout probability on both
# hidden layers, or the std of Gaussian noise added to the [0, 1] input pixels.
REGULARISERS = [("none", 0.0), ("l2", 1e-4), ("l2", 1e-3), ("l2", 1e-2), ("dropout", 0.5), ("input_noise", 0.3)]


def family(epochs: list[int], seeds: list[int]) -> list[dict]:
    runs = []
    for reg, strength in REGULARISERS:
        for e in epochs:
            for s in seeds:
                tag = reg if reg in ("none", "dropout") else f"{reg}_{strength:g}"
                runs.append({"run": f"{tag}_e{e}_s{s}", "regulariser": reg, "strength": strength,
                             "epochs": e, "seed": s})
    return runs


def load_images(path: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        x = z["images"].reshape(len(z["images"]), -1).astype(np.float32) / 255.0
        y = z["labels"].astype(np.int64)
    return x, y


def split(args) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    rng = np.random.default_rng(0)
    if args.test_data is None:
        x, y = load_images(args.data)
        perm = rng.permutation(len(x))
        half = len(x) // 2
        tr, te = perm[:half], perm[half:]
        tr, te = tr[:args.train_size], te[:args.eval_size]
        how = (f"one file ({args.data}, {len(x)} images) split in two fixed halves (seed 0): "
               f"{len(tr)} training images from the first half, {len(te)} held-out images from the second")
        return (x[tr], y[tr]), (x[te], y[te]), how
    xtr, ytr = load_images(args.data)
    xte, yte = load_images(args.test_data)
    tr = rng.permutation(len(xtr))[:args.train_size]
    te = rng.permutation(len(xte))[:args.eval_size]
    how = (f"{len(tr)} training images subsampled (seed 0) from {args.data} ({len(xtr)} images); "
           f"{len(te)} held-out images subsampled from {args.test_data} ({len(xte)} images)")
    return (xtr[tr], ytr[tr]), (xte[te], yte[te]), how


def train(spec: dict, xtr: np.ndarray, ytr: np.ndarray):
    import torch

    torch.manual_seed(spec["seed"])
    drop = spec["strength"] if spec["regulariser"] == "dropout" else 0.0
    layers = [torch.nn.Linear(WIDTHS[0], WIDTHS[1]), torch.nn.ReLU(), torch.nn.Dropout(drop),
              torch.nn.Linear(WIDTHS[1], WIDTHS[2]), torch.nn.ReLU(), torch.nn.Dropout(drop),
              torch.nn.Linear(WIDTHS[2], WIDTHS[3])]
    net = torch.nn.Sequential(*layers)
    wd = spec["strength"] if spec["regulariser"] == "l2" else 0.0
    # plain SGD: no momentum, fixed learning rate; weight decay on the weight matrices only
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}], lr=LR)
    x = torch.from_numpy(xtr)
    y = torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(1000 + spec["seed"])
    noise = spec["strength"] if spec["regulariser"] == "input_noise" else 0.0
    net.train()
    for _ in range(spec["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            xb = x[idx]
            if noise:
                xb = xb + noise * torch.randn(xb.shape, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            loss.backward()
            opt.step()
    net.eval()
    return net


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 2000])).argmax(1).numpy() for i in range(0, len(x), 2000)])
    return float(np.mean(pred == y))


def to_onnx(net, path: Path) -> None:
    """Gemm+Relu, Gemm+Relu, Gemm+Softmax from the trained weights; input 'input' [N, 784], output 'probs'."""
    linears = [m for m in net if m.__class__.__name__ == "Linear"]
    inits, nodes = [], []
    x = "input"
    for k, lin in enumerate(linears, 1):
        w = lin.weight.detach().numpy().astype(np.float32)
        b = lin.bias.detach().numpy().astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [f"z{k}"], name=f"fc{k}", transB=1))
        if k < len(linears):
            nodes.append(helper.make_node("Relu", [f"z{k}"], [f"h{k}"], name=f"relu{k}"))
            x = f"h{k}"
    nodes.append(helper.make_node("Softmax", [f"z{len(linears)}"], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(nodes, "mlp_784_1024_1000_10",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", WIDTHS[0]])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", WIDTHS[-1]])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="run_family.py")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def correlate_cmd() -> list[str]:
    """`snr correlate` when the main group has it, else the command object run through a tiny group."""
    try:
        from snrcli.cli import main
        if "correlate" in main.commands:
            return [sys.executable, "-m", "snrcli", "correlate"]
    except ImportError:
        pass
    shim = ("import sys; from snrcli.cli.base import SnrGroup; from snrcli.cli.correlate import correlate; "
            "g = SnrGroup('snr'); g.add_command(correlate); g(sys.argv[1:], prog_name='snr')")
    return [sys.executable, "-c", shim, "correlate"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="npz with images and labels (training pool, or both halves)")
    ap.add_argument("--test-data", default=None, help="npz of held-out images (then --data is the training file)")
    ap.add_argument("--out", required=True, help="working folder: models, run folders, logs")
    ap.add_argument("--results", required=True, help="where the small results go (tables, plot, covariates)")
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--eval-size", type=int, default=5000)
    ap.add_argument("--epochs", default="3,10,40", help="training lengths in epochs, comma-separated")
    ap.add_argument("--seeds", default="0,1", help="seeds, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--correlate-only", action="store_true",
                    help="reuse OUT/runs and RESULTS/covariates.csv from an earlier run; only run snr correlate")
    args = ap.parse_args()

    import torch
    from snrcli.analysis.api import analyze
    from snrcli.reports.report import write_run_folder

    torch.set_num_threads(args.threads)
    out, results = Path(args.out), Path(args.results)
    (out / "models").mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    results.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.correlate_only:
        correlate(runs_dir, results, t0, json.loads((results / "summary.json").read_text()))
        return
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs_dir.mkdir()
    (xtr, ytr), (xte, yte), how = split(args)
    heldout = out / "heldout.npz"
    np.savez(heldout, input=xte, labels=yte)
    print(how, flush=True)
    specs = family([int(e) for e in args.epochs.split(",")], [int(s) for s in args.seeds.split(",")])
    rows = []
    t_train = t_analyse = 0.0
    for k, spec in enumerate(specs, 1):
        t = time.time()
        net = train(spec, xtr, ytr)
        train_acc, test_acc = accuracy(net, xtr, ytr), accuracy(net, xte, yte)
        model = out / "models" / f"{spec['run']}.onnx"
        to_onnx(net, model)
        t_train += time.time() - t
        t = time.time()
        report = analyze(model, heldout, batch_size=1000, threads=args.threads)
        write_run_folder(report, runs_dir / spec["run"], force=True)
        t_analyse += time.time() - t
        acc = report.accuracy
        if abs(acc - test_acc) > 1e-3:
            print(f"  warning: onnx accuracy {acc:.4f} differs from torch {test_acc:.4f}", flush=True)
        rows.append({**spec, "train_accuracy": round(train_acc, 6), "test_accuracy": round(acc, 6),
                     "gap": round(train_acc - acc, 6)})
        net_fig = report.network
        print(f"[{k}/{len(specs)}] {spec['run']:<22} train {train_acc:.4f} test {acc:.4f} "
              f"G_hidden {net_fig['G_hidden']:.3f} G_total {net_fig['G_total']:.3f}  "
              f"({time.time() - t0:.0f}s)", flush=True)
    cov = results / "covariates.csv"
    with cov.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["run", "epochs", "regulariser", "strength", "seed", "train_accuracy",
                                          "test_accuracy", "gap"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    summary = {"data": how, "runs": len(specs), "epochs": args.epochs, "seeds": args.seeds,
               "train_size": len(xtr), "eval_size": len(xte), "threads": args.threads,
               "wall_s": {"train_and_export": round(t_train, 1), "analyse": round(t_analyse, 1),
                          "until_correlate": round(time.time() - t0, 1)},
               "torch": torch.__version__, "cpu_count": os.cpu_count()}
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    correlate(runs_dir, results, t0, summary)


def correlate(runs_dir: Path, results: Path, t0: float, summary: dict) -> None:
    cov = results / "covariates.csv"
    folders = sorted(str(p) for p in runs_dir.iterdir())
    t = time.time()
    cmd = correlate_cmd()
    with cov.open() as f:
        epochs = {r["run"]: int(r["epochs"]) for r in csv.DictReader(f)}
    longest = [d for d in folders if epochs[Path(d).name] == max(epochs.values())]
    for name, extra in [("correlation", ["--covariates", str(cov)]),
                        ("correlation_control_epochs", ["--covariates", str(cov), "--control", "epochs"]),
                        ("correlation_gap", ["--covariates", str(cov), "--target", "gap", "--control", "epochs"]),
                        ("correlation_longest", [])]:
        plot = ["--plot", str(results / f"{name}.png")] if name == "correlation" else []
        family_dirs = longest if name == "correlation_longest" else folders
        argv = cmd + family_dirs + ["--csv", str(results / f"{name}.csv")] + extra + plot
        table = subprocess.run(argv + ["--no-color"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "140"})
        js = subprocess.run(argv[:len(cmd)] + [a for a in argv[len(cmd):] if a not in plot] + ["--json", "--quiet"],
                            capture_output=True, text=True)
        if table.returncode or js.returncode:
            sys.exit(f"snr correlate failed: {table.stderr}{js.stderr}")
        (results / f"{name}.txt").write_text(table.stdout + ("".join(f"\n{l}" for l in table.stderr.splitlines())))
        (results / f"{name}.json").write_text(js.stdout)
        print(table.stdout, table.stderr, flush=True)
    summary["wall_s"]["correlate"] = round(time.time() - t, 1)
    summary["wall_s"]["total"] = round(summary["wall_s"]["until_correlate"] + summary["wall_s"]["correlate"], 1)
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
