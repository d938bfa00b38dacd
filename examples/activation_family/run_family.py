#!/usr/bin/env python
"""Train a family of ReLU, GELU and tanh networks on Fashion-MNIST, analyse them and correlate.

The question: do the SNR figures (G_hidden, G_final, G_total) rank networks by test
accuracy beyond what training length and three label-free baselines already do,
for activations other than ReLU, pooled and per activation?

Networks: 784-256-256-10, the same activation on both hidden layers (ReLU, GELU
or tanh), softmax output; trained on the whole Fashion-MNIST training split
(60,000 images) with plain SGD. The family crosses 3 activations x 4 regularisers
(none, weight decay, dropout, label noise) x 3 training lengths x 2 seeds.

Three steps; each can be run alone:

  train     torch (the ``train`` extra): writes MODELS/<run>.onnx (built with
            onnx.helper from the trained weights), MODELS/<run>.json (accuracies,
            training time) and RESULTS/covariates.csv. Existing models are kept
            (delete MODELS to retrain).
  analyse   ``snrcli.analyze`` on a fixed subsample of the test split
            (--eval-size, default 2,000 images) for every model; the small reports
            go to RESULTS/<noise model>/reports/<run>.json. Needs no torch.
  correlate ``snr correlate`` over the pooled family and each activation, plain
            and with ``--control epochs``; tables in RESULTS/<noise model>/<group>/.

``--analyse-only`` runs the last two on the saved models (about a second a
model); ``--noise-model NAME`` is passed to ``snrcli.analyze`` as
``noise_model=NAME`` (leave it out for the tool's default).

Example:
  python examples/activation_family/run_family.py \\
      --train-data DATA/fashion_mnist_train.npz \\
      --test-data DATA/fashion_mnist_test.npz \\
      --models /tmp/family_models --results examples/activation_family/results
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTHS = (784, 256, 256, 10)
LR = 0.1
BATCH = 128
ACTIVATIONS = {"relu": "Relu", "gelu": "Gelu", "tanh": "Tanh"}   # run-name prefix -> ONNX op
REGULARISERS = [("none", 0.0), ("wd", 1e-3), ("dropout", 0.3), ("labelnoise", 0.2)]
HERE = Path(__file__).resolve().parent


def _sibling(name: str):
    """A module of the mnist_family example (its loaders and ``snr correlate`` launcher are reused)."""
    path = HERE.parent / "mnist_family" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"mnist_family_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def family(activations: list[str], epochs: list[int], seeds: list[int]) -> list[dict]:
    runs = []
    for act in activations:
        for reg, strength in REGULARISERS:
            for e in epochs:
                for s in seeds:
                    runs.append({"run": f"{act}_{reg}_e{e}_s{s}", "activation": act, "regulariser": reg,
                                 "strength": strength, "epochs": e, "seed": s})
    return runs


def heldout(test_x: np.ndarray, test_y: np.ndarray, size: int, folder: Path) -> Path:
    """The fixed subsample (seed 0) of the test split that every figure is measured on."""
    path = folder / f"heldout_{size}.npz"
    if not path.exists():
        idx = np.sort(np.random.default_rng(0).permutation(len(test_x))[:size])
        np.savez(path, input=test_x[idx], labels=test_y[idx])
    return path


def train(spec: dict, xtr: np.ndarray, ytr: np.ndarray):
    import torch

    torch.manual_seed(spec["seed"])          # same initialisation for every regulariser and activation
    act = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}[spec["activation"]]
    drop = spec["strength"] if spec["regulariser"] == "dropout" else 0.0
    net = torch.nn.Sequential(torch.nn.Linear(WIDTHS[0], WIDTHS[1]), act(), torch.nn.Dropout(drop),
                              torch.nn.Linear(WIDTHS[1], WIDTHS[2]), act(), torch.nn.Dropout(drop),
                              torch.nn.Linear(WIDTHS[2], WIDTHS[3]))
    wd = spec["strength"] if spec["regulariser"] == "wd" else 0.0
    weights = [p for n, p in net.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": wd}, {"params": biases, "weight_decay": 0.0}], lr=LR)
    y = ytr.copy()
    if spec["regulariser"] == "labelnoise":   # a fixed fraction of training labels replaced by a random class
        rng = np.random.default_rng(100 + spec["seed"])
        flip = rng.random(len(y)) < spec["strength"]
        y[flip] = rng.integers(0, WIDTHS[-1], int(flip.sum()))
    x, y = torch.from_numpy(xtr), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(1000 + spec["seed"])
    net.train()
    for _ in range(spec["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    return net


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        pred = np.concatenate([net(torch.from_numpy(x[i:i + 5000])).argmax(1).numpy() for i in range(0, len(x), 5000)])
    return float(np.mean(pred == y))


def to_onnx(net, act_op: str, path: Path) -> None:
    """Gemm+act, Gemm+act, Gemm+Softmax; input 'input' [N, 784], output 'probs'. Opset 20 (the Gelu op)."""
    linears = [m for m in net if m.__class__.__name__ == "Linear"]
    inits, nodes, x = [], [], "input"
    for k, lin in enumerate(linears, 1):
        inits += [numpy_helper.from_array(lin.weight.detach().numpy().astype(np.float32), f"W{k}"),
                  numpy_helper.from_array(lin.bias.detach().numpy().astype(np.float32), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [f"z{k}"], name=f"fc{k}", transB=1))
        if k < len(linears):
            nodes.append(helper.make_node(act_op, [f"z{k}"], [f"h{k}"], name=f"{act_op.lower()}{k}"))
            x = f"h{k}"
    nodes.append(helper.make_node("Softmax", [f"z{len(linears)}"], ["probs"], name="softmax", axis=1))
    graph = helper.make_graph(nodes, "mlp_784_256_256_10",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", WIDTHS[0]])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", WIDTHS[-1]])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="run_family.py")
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def train_all(specs: list[dict], args, models: Path) -> float:
    import torch

    torch.set_num_threads(args.threads)
    load = _sibling("run_family").load_images
    xtr, ytr = load(args.train_data)
    xte, yte = load(args.test_data)
    t_all = 0.0
    for k, spec in enumerate(specs, 1):
        meta_path = models / f"{spec['run']}.json"
        if meta_path.exists() and (models / f"{spec['run']}.onnx").exists():
            continue
        t = time.time()
        net = train(spec, xtr, ytr)
        seconds = time.time() - t
        to_onnx(net, ACTIVATIONS[spec["activation"]], models / f"{spec['run']}.onnx")
        meta = {**spec, "train_accuracy": round(accuracy(net, xtr, ytr), 6),
                "test_accuracy": round(accuracy(net, xte, yte), 6), "train_seconds": round(seconds, 2)}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        t_all += seconds
        print(f"[{k}/{len(specs)}] {spec['run']:<26} train {meta['train_accuracy']:.4f} "
              f"test {meta['test_accuracy']:.4f}  ({seconds:.1f}s)", flush=True)
    return t_all


def write_covariates(specs: list[dict], models: Path, results: Path) -> list[dict]:
    rows = []
    for spec in specs:
        m = json.loads((models / f"{spec['run']}.json").read_text())
        rows.append({"run": spec["run"], "activation": spec["activation"], "regulariser": spec["regulariser"],
                     "strength": spec["strength"], "epochs": spec["epochs"], "seed": spec["seed"],
                     "train_accuracy": m["train_accuracy"], "test_accuracy": m["test_accuracy"],
                     "gap": round(m["train_accuracy"] - m["test_accuracy"], 6), "train_seconds": m["train_seconds"]})
    with (results / "covariates.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows


def analyse_all(specs: list[dict], args, models: Path, out: Path, data: Path) -> float:
    """One small report per model; paths in it are relative to MODELS (no machine paths)."""
    from snrcli import analyze

    kwargs = {} if args.noise_model is None else {"noise_model": args.noise_model}
    reports = out / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for k, spec in enumerate(specs, 1):
        model = models / f"{spec['run']}.onnx"
        try:
            report = analyze(model, data, batch_size=500, threads=args.threads, **kwargs)
        except TypeError as e:
            if "noise_model" in str(e):
                sys.exit(f"this snrcli has no noise_model option ({e}); leave --noise-model out")
            raise
        d = json.loads(report.to_json())
        d["model"]["path"], d["data"]["path"] = model.name, data.name
        (reports / f"{spec['run']}.json").write_text(json.dumps(d, indent=1) + "\n")
        net = d["network"]
        print(f"[{k}/{len(specs)}] {spec['run']:<26} accuracy {d['accuracy']:.4f} G_hidden {net['G_hidden']:.3f} "
              f"G_final {net['G_final']:.3f}", flush=True)
    return time.time() - t0


def correlate_all(specs: list[dict], out: Path, covariates: list[dict]) -> float:
    """``snr correlate`` for the pooled family and each activation, plain and given epochs (run inside OUT)."""
    cmd = _sibling("run_family").correlate_cmd()
    t0 = time.time()
    groups = {"pooled": [s["run"] for s in specs]}
    for act in dict.fromkeys(s["activation"] for s in specs):
        groups[act] = [s["run"] for s in specs if s["activation"] == act]
    for group, runs in groups.items():
        folder = out / group
        folder.mkdir(parents=True, exist_ok=True)
        cov = folder / "covariates.csv"
        with cov.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(covariates[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(r for r in covariates if r["run"] in runs)
        reports = [f"reports/{r}.json" for r in runs]
        for name, extra in [("correlation", []), ("correlation_control_epochs", ["--control", "epochs"])]:
            argv = cmd + reports + ["--covariates", f"{group}/covariates.csv", "--target", "test_accuracy",
                                    "--csv", f"{group}/{name}.csv"] + extra
            env = {**os.environ, "COLUMNS": "140"}
            table = subprocess.run(argv + ["--no-color"], capture_output=True, text=True, cwd=out, env=env)
            js = subprocess.run(argv + ["--json", "--quiet"], capture_output=True, text=True, cwd=out, env=env)
            if table.returncode or js.returncode:
                sys.exit(f"snr correlate failed: {table.stderr}{js.stderr}")
            (folder / f"{name}.txt").write_text(table.stdout + "".join(f"\n{l}" for l in table.stderr.splitlines()) + "\n")
            (folder / f"{name}.json").write_text(js.stdout)
        print(f"correlated {group} ({len(runs)} runs)", flush=True)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-data", required=True, help="npz with images (N x 28 x 28, uint8) and labels")
    ap.add_argument("--test-data", required=True, help="npz of the test split, same format")
    ap.add_argument("--models", required=True, help="folder for the trained models (kept out of the repository)")
    ap.add_argument("--results", required=True, help="folder for the small results: reports, covariates, tables")
    ap.add_argument("--eval-size", type=int, default=2000, help="test images the figures are measured on")
    ap.add_argument("--activations", default="relu,gelu,tanh")
    ap.add_argument("--epochs", default="1,3,10", help="training lengths in epochs, comma-separated")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    ap.add_argument("--noise-model", default=None, help="passed to snrcli.analyze as noise_model (default: tool's)")
    ap.add_argument("--analyse-only", action="store_true", help="reuse the models in --models; analyse and correlate")
    args = ap.parse_args()

    specs = family(args.activations.split(","), [int(e) for e in args.epochs.split(",")],
                   [int(s) for s in args.seeds.split(",")])
    models, results = Path(args.models), Path(args.results)
    models.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    summary_path = results / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if not args.analyse_only:
        summary["train_seconds_this_run"] = round(train_all(specs, args, models), 1)
    missing = [s["run"] for s in specs if not (models / f"{s['run']}.onnx").exists()]
    if missing:
        sys.exit(f"{len(missing)} models missing in {models} (first: {missing[0]}); run without --analyse-only")
    covariates = write_covariates(specs, models, results)
    test = np.load(args.test_data, allow_pickle=False)
    xte = test["images"].reshape(len(test["images"]), -1).astype(np.float32) / 255.0
    data = heldout(xte, test["labels"].astype(np.int64), args.eval_size, models)
    noise = args.noise_model or "relu"
    out = results / noise
    t_an = analyse_all(specs, args, models, out, data)
    t_co = correlate_all(specs, out, covariates)
    try:
        import torch
        summary["torch"] = torch.__version__
    except ImportError:
        pass
    summary.update({"runs": len(specs), "activations": args.activations, "epochs": args.epochs, "seeds": args.seeds,
                    "eval_images": args.eval_size, "threads": args.threads,
                    "train_seconds_total": round(sum(r["train_seconds"] for r in covariates), 1),
                    f"analyse_seconds_{noise}": round(t_an, 1), f"correlate_seconds_{noise}": round(t_co, 1),
                    })
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
