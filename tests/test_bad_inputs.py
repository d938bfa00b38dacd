"""Untrusted models and data (issue #5): every broken input fails clearly, and nothing is written.

The corpus is generated here (``tests/corpus.py``): truncated, zero-byte and byte-flipped
models, other protobufs, stripped initializers, made-up custom-domain ops, escaping or
absolute external-data paths, unsupported opsets and dtypes, object arrays, NaN/Inf,
wrong keys, ranks, shapes, labels. Each case runs ``snr analyze ... --out DIR`` through
click's CliRunner and must give its documented exit code, exactly one line on stderr
(``error: ...``), no traceback, nothing on stdout, no DIR and no leftover temporary
folder. Inputs that are odd but valid (float16/float64 models, external data, several
inputs and outputs, dynamic dims, integer data, all-zero data, degenerate layers,
preprocessing flags) must run, with null figures and reasons where figures are undefined.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper, numpy_helper

import corpus as C

EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


# --------------------------------------------------------------------------- running snr

def invoke(*args):
    from snrcli.cli import main

    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "120"})
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=True)


def describe(r) -> str:
    exc = ""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        exc = f"\n--- exception ---\n{r.exception!r}"
    return f"exit {r.exit_code}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}{exc}"


def assert_failed_cleanly(r, code: int, says: tuple[str, ...], root: Path, before: set[str], out: Path) -> str:
    """The failure contract: exit code, one 'error:' line naming the problem, no traceback, nothing written."""
    text = describe(r)
    assert r.exit_code == code, text
    assert "Traceback" not in r.stdout + r.stderr, text
    assert r.exception is None or isinstance(r.exception, SystemExit), text
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"wanted exactly one stderr line\n{text}"
    assert lines[0].startswith("error: "), text
    for needle in says:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in the message\n{text}"
    assert r.stdout == "", text
    assert not out.exists(), f"{out} was written\n{text}"
    assert C.listing(root) == before, f"files left behind: {sorted(C.listing(root) - before)}\n{text}"
    return lines[0]


def report_of(r) -> dict:
    assert r.exit_code == 0, describe(r)
    return json.loads(r.stdout)


def figures(d: dict) -> list:
    return [L[k] for L in d["layers"] for k in ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted",
                                                 "S_mean_centred", "G_mean_centred")] + list(d["network"].values())


def assert_figures_close(a: dict, b: dict, rel: float, abs_: float = 1e-12) -> None:
    fa, fb = figures(a), figures(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        assert (x is None and y is None) or (x is not None and y is not None
                                             and x == pytest.approx(y, rel=rel, abs=abs_)), (fa, fb)


def assert_finite_or_null(d: dict) -> None:
    for v in figures(d):
        assert v is None or (isinstance(v, float) and math.isfinite(v)), d


# --------------------------------------------------------------------------- standard material

def mlp_file(folder: Path, **kw) -> Path:
    return C.save(folder / "model.onnx", C.mlp(**kw))


def cnn_file(folder: Path, **kw) -> Path:
    return C.save(folder / "model.onnx", C.cnn(**kw))


def mlp_data(folder: Path, n: int = 10) -> Path:
    return C.npz(folder / "data.npz", x=C.features(n, 6))


# --------------------------------------------------------------------------- the corpus

@dataclass
class Case:
    build: Callable[[Path], list]      # writes the files into a folder, returns the arguments after 'analyze'
    code: int
    says: tuple[str, ...]


CASES: list = []


def case(name: str, code: int, *says: str, bug: str | None = None):
    """Register a corpus entry; ``bug`` marks a known bug (strict xfail, so the fix shows up as XPASS)."""
    def register(build):
        marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
        CASES.append(pytest.param(Case(build, code, says), id=name, marks=marks))
        return build
    return register


# models: unreadable files ------------------------------------------------------

@case("model-zero-bytes", EXIT_BAD_INPUT, "empty", "0 bytes")
def _(f):
    return [C.write_bytes(f / "model.onnx", b""), "--data", mlp_data(f)]


for _keep in (0.1, 0.5, 0.9, 0.99):
    @case(f"model-truncated-{int(_keep * 100)}pct", EXIT_BAD_INPUT, "cannot read", "truncated")
    def _(f, keep=_keep):
        return [C.write_bytes(f / "model.onnx", C.truncate(C.model_bytes(C.mlp()), keep)), "--data", mlp_data(f)]


@case("model-flip-first-byte", EXIT_BAD_INPUT, "cannot read", "not ONNX")
def _(f):
    return [C.write_bytes(f / "model.onnx", C.flip_bytes(C.model_bytes(C.mlp()), [0])), "--data", mlp_data(f)]


@case("model-flip-last-byte", EXIT_BAD_INPUT, "cannot read")
def _(f):
    raw = C.model_bytes(C.mlp())
    return [C.write_bytes(f / "model.onnx", C.flip_bytes(raw, [len(raw) - 1])), "--data", mlp_data(f)]


@case("model-text-file", EXIT_BAD_INPUT, "cannot read", "not ONNX")
def _(f):
    return [C.write_bytes(f / "model.onnx", b"this is not an onnx model\n" * 3), "--data", mlp_data(f)]


@case("model-random-bytes", EXIT_BAD_INPUT, "cannot read")
def _(f):
    raw = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    return [C.write_bytes(f / "model.onnx", raw), "--data", mlp_data(f)]


@case("model-is-a-tensorproto", EXIT_BAD_INPUT, "not ONNX")
def _(f):
    return [C.write_bytes(f / "model.onnx", C.other_protobuf()), "--data", mlp_data(f)]


@case("model-is-a-nodeproto", EXIT_BAD_INPUT, "no ONNX graph", "another kind of protobuf")
def _(f):
    node = helper.make_node("Relu", ["a"], ["b"], name="r")
    return [C.write_bytes(f / "model.onnx", node.SerializeToString()), "--data", mlp_data(f)]


@case("model-is-a-bare-graphproto", EXIT_BAD_INPUT, "no ONNX graph")
def _(f):
    return [C.write_bytes(f / "model.onnx", C.mlp().graph.SerializeToString()), "--data", mlp_data(f)]


@case("model-missing", EXIT_BAD_INPUT, "model file not found")
def _(f):
    return [f / "nope.onnx", "--data", mlp_data(f)]


# models: valid protobuf, broken or unsupported graph ------------------------------

@case("model-initializers-stripped", EXIT_BAD_INPUT, "no supported layer", "Gemm of two activations")
def _(f):
    return [C.save(f / "model.onnx", C.strip_initializers(C.mlp())), "--data", mlp_data(f)]


@case("model-custom-domain-op", EXIT_BAD_INPUT, "custom-domain", "com.example.fancy:FancyRelu",
      "--custom-op-library")
def _(f):
    return [C.save(f / "model.onnx", C.with_custom_op(C.mlp())), "--data", mlp_data(f)]


@case("model-opset-99", EXIT_BAD_INPUT, "onnxruntime cannot load the model", "opset")
def _(f):
    return [C.save(f / "model.onnx", C.with_opset(C.mlp(), 99)), "--data", mlp_data(f)]


@case("model-opset-99-named", EXIT_BAD_INPUT, "99")
def _(f):
    return [C.save(f / "model.onnx", C.with_opset(C.mlp(), 99)), "--data", mlp_data(f)]


@case("model-opset-1-no-kernel", EXIT_BAD_INPUT, "onnxruntime cannot load the model")
def _(f):
    return [C.save(f / "model.onnx", C.with_opset(C.mlp(), 1)), "--data", mlp_data(f)]


@case("model-bfloat16", EXIT_BAD_INPUT, "onnxruntime cannot load the model")
def _(f):
    return [C.save(f / "model.onnx", C.bfloat16_mlp()), "--data", C.npz(f / "data.npz", x=C.features(6, 4))]


@case("model-bfloat16-named", EXIT_BAD_INPUT, "bfloat16")
def _(f):
    return [C.save(f / "model.onnx", C.bfloat16_mlp()), "--data", C.npz(f / "data.npz", x=C.features(6, 4))]


@case("model-float64-conv-no-kernel", EXIT_BAD_INPUT, "onnxruntime cannot load the model", "Conv")
def _(f):
    s = C.Stack((1, 4, 4), [C.Conv(np.ones((2, 1, 3, 3)), None, relu=False)])
    return [C.save(f / "model.onnx", C.stack_model(s, dtype=np.float64)), "--data",
            C.npz(f / "data.npz", x=C.images(5, size=4).astype(np.float64))]


@case("model-all-layers-skipped", EXIT_BAD_INPUT, "no supported layer", "deconv (ConvTranspose)",
      "transposed convolution is not analysed", "mm_two_activations (MatMul)", "MatMul of two activations")
def _(f):
    return [C.save(f / "model.onnx", C.convtranspose_only()), "--data",
            C.npz(f / "data.npz", x=C.images(4, size=4), v=np.ones((4, 72, 2), np.float32))]


@case("model-no-weighted-op", EXIT_BAD_INPUT, "no supported layer", "no Gemm, MatMul or Conv node")
def _(f):
    return [C.save(f / "model.onnx", C.no_weighted_op()), "--data", C.npz(f / "data.npz", x=C.features(5, 4))]


@case("model-graph-cycle", EXIT_BAD_INPUT, "cycle")
def _(f):
    w = numpy_helper.from_array(np.ones((6, 3), np.float32), "W")
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "z"], ["y"], name="add"),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    m = C.make(nodes, [C.vi("x", C.FLOAT, ["N", 6])], [C.vi("y", C.FLOAT, ["N", 3])], [w])
    return [C.save(f / "model.onnx", m), "--data", mlp_data(f)]


@case("model-node-without-outputs", EXIT_BAD_INPUT, "model")
def _(f):
    m = C.mlp()
    del m.graph.node[0].output[:]
    return [C.save(f / "model.onnx", m), "--data", mlp_data(f)]


@case("model-tensor-name-not-utf8", EXIT_BAD_INPUT, "model")
def _(f):
    raw = C.model_bytes(C.mlp())
    return [C.write_bytes(f / "model.onnx", raw.replace(b"pre1", b"p\x8de1", 1)), "--data", mlp_data(f)]


@case("model-node-name-not-utf8", EXIT_BAD_INPUT, "model")
def _(f):
    raw = C.model_bytes(C.mlp())
    return [C.write_bytes(f / "model.onnx", raw.replace(b"dense1", b"de\x91se1", 1)), "--data", mlp_data(f)]


@case("model-nan-weight", EXIT_BAD_INPUT, "W1")
def _(f):
    m = C.mlp()
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w.flat[0] = np.nan
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W1"))
    return [C.save(f / "model.onnx", m), "--data", mlp_data(f)]


@case("model-weight-input-supplied-by-data", EXIT_BAD_INPUT, "the data supplies W1", "stores as a weight")
def _(f):
    m = C.mlp()
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return [C.save(f / "model.onnx", m), "--data",
            C.npz(f / "data.npz", x=C.features(10), W1=np.zeros((5, 6), np.float32))]


@case("model-bad-custom-op-library", EXIT_BAD_INPUT, "custom-op-library", "libfake.so")
def _(f):
    lib = C.write_bytes(f / "libfake.so", b"not a shared library")
    return [C.save(f / "model.onnx", C.with_custom_op(C.mlp())), "--data", mlp_data(f), "--custom-op-library", lib]


# models: external data ----------------------------------------------------------

def _external(f: Path, location: str) -> Path:
    path = C.external_data_model(f / "m")
    C.redirect_external(path, location)
    return path


@case("external-absolute-path", EXIT_BAD_INPUT, "absolute path", "'/etc/passwd'", "refused")
def _(f):
    return [_external(f, "/etc/passwd"), "--data", mlp_data(f)]


@case("external-climbs-out", EXIT_BAD_INPUT, "outside the model's folder", "../../x", "refused")
def _(f):
    return [_external(f, "../../x"), "--data", mlp_data(f)]


@case("external-sibling-file-outside", EXIT_BAD_INPUT, "outside the model's folder", "refused")
def _(f):
    C.write_bytes(f / "weights.bin", b"\0" * 4096)          # exists, one folder up: still refused
    return [_external(f, "../weights.bin"), "--data", mlp_data(f)]


@case("external-dotdot-inside-path", EXIT_BAD_INPUT, "outside the model's folder")
def _(f):
    return [_external(f, "sub/../../weights.bin"), "--data", mlp_data(f)]


@case("external-symlink-escapes", EXIT_BAD_INPUT, "outside the model's folder")
def _(f):
    C.write_bytes(f / "outside.bin", b"\0" * 4096)
    path = C.external_data_model(f / "m")
    os.remove(path.parent / "weights.bin")
    os.symlink(f / "outside.bin", path.parent / "weights.bin")
    return [path, "--data", mlp_data(f)]


@case("external-file-missing", EXIT_BAD_INPUT, "missing.bin", "missing")
def _(f):
    return [_external(f, "missing.bin"), "--data", mlp_data(f)]


@case("external-length-beyond-file", EXIT_BAD_INPUT, "external data")
def _(f):
    path = C.external_data_model(f / "m")
    m = onnx.load(str(path), load_external_data=False)
    m.graph.initializer[0].external_data.add(key="length", value="1000000")
    path.write_bytes(m.SerializeToString())
    return [path, "--data", mlp_data(f)]


# data ---------------------------------------------------------------------------

@case("data-wrong-key", EXIT_BAD_INPUT, "no array for model input 'x'", "foo, bar", "--input-key")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", foo=C.features(), bar=C.features())]


@case("data-input-key-missing", EXIT_BAD_INPUT, "--input-key 'zz'")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--input-key", "zz"]


@case("data-wrong-rank", EXIT_BAD_INPUT, "(6, 1)", "(N, 6)")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features()[:, :, None])]


@case("data-wrong-trailing-shape", EXIT_BAD_INPUT, "items of shape (5,)", "wants (N, 6)")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(10, 5))]


@case("data-missing-channel-axis", EXIT_BAD_INPUT, "items of shape (6, 6)", "wants (N, 1, 6, 6)")
def _(f):
    return [cnn_file(f), "--data", C.npz(f / "d.npz", x=C.images(10)[:, 0])]


@case("data-missing-channel-axis-hint", EXIT_BAD_INPUT, "add a channel axis: (N, 6, 6) -> (N, 1, 6, 6)")
def _(f):
    return [cnn_file(f), "--data", C.npz(f / "d.npz", x=C.images(10)[:, 0])]


@case("data-nhwc-into-nchw", EXIT_BAD_INPUT, "items of shape (6, 6, 3)", "wants (N, 3, 6, 6)")
def _(f):
    return [cnn_file(f, channels=3), "--data", C.npz(f / "d.npz", x=C.images(10, c=3).transpose(0, 2, 3, 1))]


@case("data-nhwc-into-nchw-hint", EXIT_BAD_INPUT, "--layout nhwc")
def _(f):
    return [cnn_file(f, channels=3), "--data", C.npz(f / "d.npz", x=C.images(10, c=3).transpose(0, 2, 3, 1))]


@case("data-object-array-npz", EXIT_BAD_INPUT, "object (pickled) arrays", "refused")
def _(f):
    return [mlp_file(f), "--data", C.object_npz(f / "d.npz")]


@case("data-object-array-npy", EXIT_BAD_INPUT, "object (pickled) arrays", "refused")
def _(f):
    arr = np.empty(4, dtype=object)
    arr[:] = [np.zeros(6)] * 4
    return [mlp_file(f), "--data", C.npy(f / "d.npy", arr, allow_pickle=True)]


@case("data-nan", EXIT_BAD_INPUT, "NaN or Inf in 2 of 10 items", "items 2, 5", "--drop-nonfinite")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.with_nonfinite(C.features(), [2, 5]))]


@case("data-inf", EXIT_BAD_INPUT, "NaN or Inf in 1 of 10 items", "--drop-nonfinite")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.with_nonfinite(C.features(), [7], -np.inf))]


@case("data-nan-many-items", EXIT_BAD_INPUT, "NaN or Inf in 7 of 10 items", "...")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.with_nonfinite(C.features(), range(7)))]


@case("data-all-nan-dropped", EXIT_BAD_INPUT, "empty")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=np.full((5, 6), np.nan, np.float32)), "--drop-nonfinite"]


@case("data-one-item-left-after-drop", EXIT_BAD_INPUT, "one item", "at least 2")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.with_nonfinite(C.features(3), [0, 1])),
            "--drop-nonfinite"]


@case("data-one-item", EXIT_BAD_INPUT, "one item", "at least 2")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(1))]


@case("data-zero-items", EXIT_BAD_INPUT, "empty")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(0))]


@case("data-labels-wrong-length", EXIT_BAD_INPUT, "9 entries", "10 items")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(), labels=np.arange(9) % 3)]


@case("data-labels-not-whole", EXIT_BAD_INPUT, "not whole class ids")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(), labels=np.linspace(0, 1, 10))]


@case("data-labels-strings", EXIT_BAD_INPUT, "labels", "integer class ids")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features(), labels=np.array(["cat"] * 10))]


@case("data-label-key-missing", EXIT_BAD_INPUT, "--label-key 'y'")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--label-key", "y"]


@case("data-strings", EXIT_BAD_INPUT, "numeric data is needed")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=np.full((10, 6), "a"))]


@case("data-complex", EXIT_BAD_INPUT, "complex128", "numeric data is needed")
def _(f):
    return [mlp_file(f), "--data", C.npz(f / "d.npz", x=C.features().astype(complex))]


@case("data-truncated-npz", EXIT_BAD_INPUT, "cannot read", "truncated")
def _(f):
    raw = mlp_data(f).read_bytes()
    return [mlp_file(f), "--data", C.write_bytes(f / "cut.npz", raw[:len(raw) // 2])]


@case("data-truncated-npy", EXIT_BAD_INPUT, "cannot read")
def _(f):
    raw = C.npy(f / "ok.npy", C.features()).read_bytes()
    return [mlp_file(f), "--data", C.write_bytes(f / "cut.npy", raw[:150])]


@case("data-empty-npy", EXIT_BAD_INPUT, "cannot read")
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", b"")]


@case("data-garbage-npz", EXIT_BAD_INPUT, "cannot read")
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npz", b"PK\x03\x04 not really a zip")]


@case("data-unsupported-suffix", EXIT_BAD_INPUT, "unsupported data file type '.csv'")
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.csv", b"1,2,3\n")]


@case("data-missing", EXIT_BAD_INPUT, "data file not found")
def _(f):
    return [mlp_file(f), "--data", f / "nope.npz"]


@case("data-two-inputs-one-missing", EXIT_BAD_INPUT, "no array for model input 'b'")
def _(f):
    return [C.save(f / "m.onnx", C.two_inputs_two_outputs()), "--data", C.npz(f / "d.npz", a=C.features(8, 3))]


@case("data-two-inputs-item-counts-differ", EXIT_BAD_INPUT, "7 items", "8")
def _(f):
    return [C.save(f / "m.onnx", C.two_inputs_two_outputs()), "--data",
            C.npz(f / "d.npz", a=C.features(8, 3), b=C.features(7, 2))]


@case("data-npy-for-two-inputs", EXIT_BAD_INPUT, "2 inputs", ".npz")
def _(f):
    return [C.save(f / "m.onnx", C.two_inputs_two_outputs()), "--data", C.npy(f / "d.npy", C.features(8, 3))]


@case("data-float16-overflow", EXIT_BAD_INPUT, "float16")
def _(f):
    return [C.save(f / "model.onnx", C.mlp(dtype=np.float16)), "--data",
            C.npz(f / "d.npz", x=C.features() * 1e5)]


# running ------------------------------------------------------------------------

@case("runtime-failure-mid-run", EXIT_BAD_INPUT, "items 4-6", "onnxruntime failed while running the model")
def _(f):
    return [C.save(f / "m.onnx", C.reshape_fails_on_odd_batches()), "--data",
            C.npz(f / "d.npz", x=C.features(7, 4)), "--batch-size", "4"]


# usage errors raised by snr itself (one line, exit 2) ------------------------------

@case("usage-std-zero", EXIT_USAGE, "--std must not contain 0")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--std", "0"]


@case("usage-per-channel-list-fits-no-axis", EXIT_USAGE, "per-channel values", "--layout")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--mean", "0.1,0.2"]


@case("usage-layout-on-flat-items", EXIT_USAGE, "--layout needs items with a channel axis")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--layout", "nhwc"]


@case("usage-lists-of-different-lengths", EXIT_USAGE, "same length")
def _(f):
    return [cnn_file(f, channels=3), "--data", C.npz(f / "d.npz", x=C.images(10, c=3)),
            "--mean", "0.1,0.2,0.3", "--std", "1,2"]


@case("usage-unknown-output", EXIT_USAGE, "--output 'zz' is not an output", "logits")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--output", "zz"]


@case("usage-unknown-provider", EXIT_USAGE, "BogusExecutionProvider", "not available")
def _(f):
    return [mlp_file(f), "--data", mlp_data(f), "--providers", "BogusExecutionProvider"]


@case("usage-input-key-for-two-inputs", EXIT_USAGE, "--input-key works for one-input models only")
def _(f):
    return [C.save(f / "m.onnx", C.two_inputs_two_outputs()), "--data",
            C.npz(f / "d.npz", a=C.features(8, 3), b=C.features(8, 2)), "--input-key", "a"]


def analyze_broken_case(entry, tmp_path: Path, monkeypatch, run: Callable = invoke) -> tuple:
    """Build a corpus case's files under ``tmp_path/in``, run ``snr analyze ... --out tmp_path/out`` from
    ``tmp_path`` through ``run`` and check it failed cleanly: (result, its one stderr line)."""
    folder = tmp_path / "in"
    folder.mkdir()
    args = entry.build(folder)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before = C.listing(tmp_path)
    r = run("analyze", *args, "--out", out)
    return r, assert_failed_cleanly(r, entry.code, entry.says, tmp_path, before, out)


@pytest.mark.parametrize("entry", CASES)
def test_broken_input_fails_cleanly(entry: Case, tmp_path, monkeypatch):
    analyze_broken_case(entry, tmp_path, monkeypatch)


# --------------------------------------------------------------------------- external data: nothing read

@pytest.mark.parametrize("location", ["/etc/hostname", "../outside.bin", "../../outside.bin", "a/../../outside.bin"])
def test_escaping_external_data_is_refused_before_anything_is_read(tmp_path, monkeypatch, location):
    folder = tmp_path / "deep" / "er"
    outside = C.write_bytes(tmp_path / "deep" / "outside.bin", b"\0" * 4096)
    C.write_bytes(tmp_path / "outside.bin", b"\0" * 4096)
    path = C.external_data_model(folder / "m")
    C.redirect_external(path, location)
    data = mlp_data(folder)
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *a, **k):
        opened.append(os.path.abspath(str(file)) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *a, **k)

    def no_read(*a, **k):
        raise AssertionError("external data was read")

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", no_read)
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_tensor", no_read)
    monkeypatch.chdir(tmp_path)
    before = C.listing(tmp_path)
    r = invoke("analyze", path, "--data", data, "--out", tmp_path / "out")
    line = assert_failed_cleanly(r, EXIT_BAD_INPUT, ("refused",), tmp_path, before, tmp_path / "out")
    assert repr(location) in line
    assert not [p for p in opened if p.endswith("outside.bin") or p == "/etc/hostname"], opened
    assert outside.read_bytes() == b"\0" * 4096


def test_external_data_model_gives_the_figures_of_the_inline_model(tmp_path):
    inline = C.save(tmp_path / "inline.onnx", C.mlp())
    external = C.external_data_model(tmp_path / "ext")
    assert (tmp_path / "ext" / "weights.bin").stat().st_size > 0
    assert all(t.data_location == onnx.TensorProto.EXTERNAL
               for t in onnx.load(str(external), load_external_data=False).graph.initializer)
    data = mlp_data(tmp_path)
    a = report_of(invoke("analyze", inline, "--data", data, "--json"))
    b = report_of(invoke("analyze", external, "--data", data, "--json"))
    assert a["layers"] == b["layers"] and a["network"] == b["network"]
    assert onnx.load(str(external), load_external_data=False).graph.initializer[0].external_data, \
        "the user's file was rewritten"


# --------------------------------------------------------------------------- byte flips

def _clean_outcome(r, root: Path, before: set[str], out: Path) -> str | None:
    """None when the run ended cleanly: success with finite/null figures, or exit 3 with one error line
    (checker warnings may precede it) and nothing written."""
    if "Traceback" in r.stdout + r.stderr:
        return "traceback"
    if r.exit_code == 0:
        if not out.is_dir():
            return "no output folder after success"
        d = json.loads((out / "report.json").read_text())
        bad = [v for v in figures(d) if v is not None and not math.isfinite(v)]
        return f"non-finite figures {bad}" if bad else None
    lines = r.stderr.strip().splitlines()
    if r.exit_code != EXIT_BAD_INPUT:
        return f"exit {r.exit_code}: {lines[-1] if lines else ''}"
    if not lines or not lines[-1].startswith("error: ") or any(not l.startswith("warning: ") for l in lines[:-1]):
        return f"stderr is not warnings then one error line: {lines}"
    if out.exists() or C.listing(root) != before:
        return "files left behind"
    return None


def test_every_single_byte_flip_ends_cleanly(tmp_path, monkeypatch):
    raw = C.model_bytes(C.mlp())
    data = mlp_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    problems = {}
    for pos in range(0, len(raw), 7):
        model = C.write_bytes(tmp_path / "model.onnx", C.flip_bytes(raw, [pos]))
        out = tmp_path / "out"
        before = C.listing(tmp_path)
        r = invoke("analyze", model, "--data", data, "--out", out, "--quiet")
        why = _clean_outcome(r, tmp_path, before, out)
        if why:
            problems[pos] = why
        if out.exists():
            import shutil
            shutil.rmtree(out)
    assert not problems, "\n".join(f"byte {p}: {why}" for p, why in problems.items())


def test_flipping_a_weight_byte_still_analyses(tmp_path):
    """A flip inside a float32 weight's low mantissa byte leaves a valid model: it must run, figures finite."""
    m = C.mlp()
    raw = C.model_bytes(m)
    weights = m.graph.initializer[0].raw_data
    at = raw.find(weights)
    assert at > 0
    model = C.write_bytes(tmp_path / "model.onnx", C.flip_bytes(raw, [at + 4]))   # 2nd weight, lowest byte
    d = report_of(invoke("analyze", model, "--data", mlp_data(tmp_path), "--json"))
    assert_finite_or_null(d)
    assert all(v is not None for v in d["network"].values())


# --------------------------------------------------------------------------- odd but valid models

def test_checker_complaint_is_a_warning_and_the_model_runs(tmp_path):
    model = C.save(tmp_path / "m.onnx", C.checker_fails_but_runs())
    r = invoke("analyze", model, "--data", mlp_data(tmp_path), "--out", tmp_path / "out")
    assert r.exit_code == 0, describe(r)
    assert "warning: onnx.checker" in r.stderr and "onnxruntime decides" in r.stderr
    d = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any("onnx.checker" in w for w in d["warnings"])


def test_shape_inference_failure_is_a_warning(tmp_path):
    model = C.save(tmp_path / "m.onnx", C.shape_inference_fails_but_runs())
    r = invoke("analyze", model, "--data", mlp_data(tmp_path))
    assert r.exit_code == 0, describe(r)
    assert "shape" in r.stderr.lower() and "warning:" in r.stderr


def test_shape_inference_failure_still_runs(tmp_path):
    model = C.save(tmp_path / "m.onnx", C.shape_inference_fails_but_runs())
    d = report_of(invoke("analyze", model, "--data", mlp_data(tmp_path), "--json"))
    assert all(v is not None for v in d["network"].values())


@pytest.mark.parametrize("dtype,rtol", [(np.float16, 2e-2), (np.float64, 1e-5)])
@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_float16_and_float64_models_run_like_float32(tmp_path, dtype, rtol, op):
    data = mlp_data(tmp_path)
    ref = report_of(invoke("analyze", C.save(tmp_path / "f32.onnx", C.mlp(op=op)), "--data", data, "--json"))
    r = invoke("analyze", C.save(tmp_path / "other.onnx", C.mlp(dtype=dtype, op=op)), "--data", data, "--json")
    d = report_of(r)
    assert "Traceback" not in r.stderr
    assert_finite_or_null(d)
    assert_figures_close(d, ref, rel=rtol, abs_=rtol)


def test_several_inputs_and_outputs_non_image_inputs(tmp_path):
    model = C.save(tmp_path / "m.onnx", C.two_inputs_two_outputs())
    data = C.npz(tmp_path / "d.npz", a=C.features(12, 3), b=C.features(12, 2, seed=1),
                 labels=np.arange(12) % 3)
    d = report_of(invoke("analyze", model, "--data", data, "--json"))
    assert [L["name"] for L in d["layers"]] == ["fc1", "fc2"]
    assert d["data"]["samples"] == 12 and d["accuracy_output"] == "logits" and d["accuracy"] is not None
    assert d["layers"][1]["classifier"] and d["layers"][0]["activity_mean"] < 1.0 + 1e-12
    assert_finite_or_null(d)


@pytest.mark.parametrize("length", [5, 11])
def test_dynamic_dims_other_than_batch(tmp_path, length):
    model = C.save(tmp_path / "m.onnx", C.conv1d_dynamic_length())
    x = np.random.default_rng(length).normal(size=(8, 2, length)).astype(np.float32)
    d = report_of(invoke("analyze", model, "--data", C.npz(tmp_path / "d.npz", x=x), "--json"))
    assert d["layers"][0]["samples"] == 8 * length
    assert_finite_or_null(d)


def test_fixed_batch_model_pads_the_last_batch_and_matches_the_dynamic_model(tmp_path):
    fixed = C.mlp()
    dim = fixed.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = 4
    data = mlp_data(tmp_path, n=10)
    r = invoke("analyze", C.save(tmp_path / "fixed.onnx", fixed), "--data", data, "--json")
    d = report_of(r)
    assert "fixed batch size of 4" in r.stderr
    ref = report_of(invoke("analyze", mlp_file(tmp_path), "--data", data, "--json"))
    assert d["layers"][0]["samples"] == 10
    assert_figures_close(d, ref, rel=1e-9)


# --------------------------------------------------------------------------- odd but valid data

def test_integer_data_is_converted_and_said_once(tmp_path):
    x = (C.features(10) * 10).astype(np.int64)
    r = invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=x), "--batch-size", "3",
               "--json")
    d = report_of(r)
    lines = [l for l in r.stderr.splitlines() if "converted" in l]
    assert len(lines) == 1 and "int64" in lines[0] and "float32" in lines[0], r.stderr
    ref = report_of(invoke("analyze", mlp_file(tmp_path), "--data",
                           C.npz(tmp_path / "f.npz", x=x.astype(np.float32)), "--json"))
    assert_figures_close(d, ref, rel=1e-9)


def test_all_zero_data_gives_null_figures_with_reasons(tmp_path):
    r = invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=np.zeros((10, 6), np.float32)),
               "--json")
    d = report_of(r)
    assert "NaN" not in r.stdout
    for L in d["layers"]:
        assert L["undefined_units"] == L["units"]
        assert L["S_mean"] is None and L["G_mean"] is None and L["S_mean_unweighted"] is None
        assert sum(L["undefined_reasons"].values()) == L["units"], L["undefined_reasons"]
        assert f"layer {L['index']} ({L['name']}): every unit is undefined" in r.stderr
    assert d["network"] == {"G_hidden": None, "G_final": None, "G_total": None}
    assert d["layers"][0]["undefined_reasons"] == {"no kept input": 5}


def test_nan_items_dropped_on_request(tmp_path):
    x = C.with_nonfinite(C.features(10), [2, 5])
    r = invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=x), "--drop-nonfinite", "--json")
    d = report_of(r)
    assert "dropped 2 items holding NaN or Inf (items 2, 5)" in r.stderr
    assert d["data"]["samples"] == 8 and d["data"]["dropped_nonfinite"] == 2
    keep = np.array([i not in (2, 5) for i in range(10)])
    ref = report_of(invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "k.npz", x=x[keep]), "--json"))
    assert_figures_close(d, ref, rel=1e-12)


# --------------------------------------------------------------------------- degenerate layers

def _two_layer(W1, W2, b1=None) -> C.Stack:
    return C.Stack((W1.shape[1],), [C.Dense(np.asarray(W1, float), b1, relu=True),
                                    C.Dense(np.asarray(W2, float), None, relu=False)])


def test_zero_weight_layer_is_null_with_a_reason(tmp_path):
    s = _two_layer(np.zeros((4, 6)), np.ones((3, 4)), b1=np.ones(4))
    model = C.save(tmp_path / "m.onnx", C.stack_model(s))
    d = report_of(invoke("analyze", model, "--data", mlp_data(tmp_path), "--json"))
    L1 = d["layers"][0]
    assert L1["undefined_units"] == 4 and L1["S_mean"] is None
    assert L1["undefined_reasons"] == {"zero weights on the kept inputs": 4}
    assert d["network"]["G_total"] is None


def test_constant_data_zero_variance_is_null_with_a_reason(tmp_path):
    x = np.tile(np.arange(1, 7, dtype=np.float32), (10, 1))
    d = report_of(invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=x), "--json"))
    L1 = d["layers"][0]
    assert L1["inputs_kept"] == 6 and L1["undefined_units"] == L1["units"]
    assert L1["undefined_reasons"] == {"zero covariance with every kept input": L1["units"]}


def test_overflowing_layer_is_null_with_a_reason(tmp_path):
    x = (C.features(10) * 1e38).astype(np.float32)           # finite data; the first layer's output overflows
    r = invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=x), "--json")
    d = report_of(r)
    assert "NaN" not in r.stdout and "Infinity" not in r.stdout
    # layer 1's statistics are float64 sums of its finite inputs (cov(x, y) = cov(x, x) W^T): defined;
    # layer 2 reads the overflowed (inf) activations
    assert d["layers"][0]["undefined_units"] == 0 and d["layers"][0]["S_mean"] is not None
    reasons = d["layers"][1]["undefined_reasons"]
    assert reasons == {"non-finite statistics (overflow)": d["layers"][1]["units"]}, reasons
    assert_finite_or_null(d)


def test_overflowing_layer_prints_no_python_warnings(tmp_path):
    """Run the real command: under pytest, Python warnings are captured and would not reach stderr."""
    x = (C.features(10) * 1e38).astype(np.float32)
    p = _snr_subprocess(tmp_path, "analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", x=x), "--json")
    assert p.returncode == 0, p.stderr
    assert "RuntimeWarning" not in p.stderr, p.stderr
    assert all(l.startswith("warning: ") for l in p.stderr.strip().splitlines()), p.stderr


def test_infinite_weight_gives_nulls_not_nan(tmp_path):
    m = C.mlp()
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w.flat[0] = np.inf
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W1"))
    r = invoke("analyze", C.save(tmp_path / "m.onnx", m), "--data", mlp_data(tmp_path), "--json")
    assert r.exit_code in (EXIT_OK, EXIT_BAD_INPUT), describe(r)
    if r.exit_code == EXIT_OK:
        assert_finite_or_null(json.loads(r.stdout))
    else:
        assert len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("mean,std", [([0.5], [0.5]), ([0.4, 0.5, 0.6], [0.2, 0.25, 0.5])])
def test_raw_uint8_nhwc_with_preprocessing_flags_equals_hand_preprocessing(tmp_path, mean, std):
    flags = ["--scale", "1/255", "--mean", ",".join(map(str, mean)), "--std", ",".join(map(str, std))]
    raw = np.random.default_rng(3).integers(0, 256, size=(12, 6, 6, 3), dtype=np.uint8)
    model = cnn_file(tmp_path, channels=3)
    by_hand = (raw.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    by_hand = by_hand.transpose(0, 3, 1, 2).astype(np.float32)
    a = report_of(invoke("analyze", model, "--data", C.npz(tmp_path / "raw.npz", x=raw), *flags,
                         "--layout", "nhwc", "--json", "--batch-size", "5"))
    b = report_of(invoke("analyze", model, "--data", C.npz(tmp_path / "hand.npz", x=by_hand), "--json"))
    assert_figures_close(a, b, rel=1e-6, abs_=1e-9)
    for La, Lb in zip(a["layers"], b["layers"]):
        assert La["inputs_kept"] == Lb["inputs_kept"] and La["samples"] == Lb["samples"]
    s = a["settings"]
    assert s["scale"] == pytest.approx([1 / 255]) and s["mean"] == pytest.approx(mean)
    assert s["std"] == pytest.approx(std) and s["layout"] == "nhwc"
    assert b["settings"].get("scale") is None and b["settings"].get("layout") is None


# --------------------------------------------------------------------------- output folder and interruption

def test_existing_out_folder_is_refused_and_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, data = mlp_file(tmp_path), mlp_data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = C.listing(tmp_path)
    r = invoke("analyze", model, "--data", data, "--out", out)
    assert r.exit_code == EXIT_USAGE, describe(r)
    assert "exists" in r.stderr and "--force" in r.stderr and "Traceback" not in r.stderr
    assert C.listing(tmp_path) == before and (out / "keep.txt").read_text() == "mine"


def test_force_replaces_the_out_folder_atomically(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path), "--out", out)
    assert r.exit_code == 0, describe(r)
    first = (out / "report.json").read_text()
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path, n=12), "--out", out, "--force")
    assert r.exit_code == 0, describe(r)
    assert sorted(os.listdir(out)) == ["layers.csv", "report.json", "units.csv"]
    assert (out / "report.json").read_text() != first
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], os.listdir(tmp_path)


def test_keyboard_interrupt_on_the_second_batch_exits_130_and_writes_nothing(tmp_path, monkeypatch):
    import snrcli.analysis.runner

    real_run = snrcli.analysis.runner.Runner.run
    calls = []

    def interrupted(self, feeds):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(self, feeds)

    monkeypatch.setattr(snrcli.analysis.runner.Runner, "run", interrupted)
    model, data = mlp_file(tmp_path), mlp_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before = C.listing(tmp_path)
    r = invoke("analyze", model, "--data", data, "--batch-size", "3", "--out", out)
    assert r.exit_code == EXIT_INTERRUPTED, describe(r)
    assert len(calls) == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines() == [
        "interrupted: stopped before finishing; nothing was written"]
    assert not out.exists() and C.listing(tmp_path) == before


def test_keyboard_interrupt_while_writing_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import snrcli.reports.report

    def interrupted(report):
        raise KeyboardInterrupt

    monkeypatch.setattr(snrcli.reports.report, "units_csv", interrupted)
    model, data = mlp_file(tmp_path), mlp_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = C.listing(tmp_path)
    r = invoke("analyze", model, "--data", data, "--out", tmp_path / "out")
    assert r.exit_code == EXIT_INTERRUPTED, describe(r)
    assert C.listing(tmp_path) == before, sorted(C.listing(tmp_path) - before)


def test_runtime_failure_in_a_worker_names_the_items(tmp_path, monkeypatch):
    """--jobs 2: shards [0, 3) and [3, 7); the first shard's only batch (3 rows) fails in onnxruntime."""
    model = C.save(tmp_path / "m.onnx", C.reshape_fails_on_odd_batches())
    data = C.npz(tmp_path / "d.npz", x=C.features(7, 4))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    before = C.listing(tmp_path)
    r = invoke("analyze", model, "--data", data, "--batch-size", "4", "--jobs", "2", "--out", out)
    assert_failed_cleanly(r, EXIT_BAD_INPUT, ("items 0-2", "onnxruntime failed while running the model"),
                          tmp_path, before, out)


# --------------------------------------------------------------------------- the real command, in a subprocess

def _snr_subprocess(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "snrcli", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_runtime_failure_is_one_line_on_the_real_stderr(tmp_path):
    model = C.save(tmp_path / "m.onnx", C.reshape_fails_on_odd_batches())
    data = C.npz(tmp_path / "d.npz", x=C.features(7, 4))
    p = _snr_subprocess(tmp_path, "analyze", model, "--data", data, "--batch-size", "4")
    assert p.returncode == EXIT_BAD_INPUT, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: items 4-6"), p.stderr
    assert "\x1b[" not in p.stderr


def test_debug_after_the_command_shows_the_traceback(tmp_path, monkeypatch):
    import snrcli.analysis.api

    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(snrcli.analysis.api, "analyze", broken)
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path), "--debug")
    assert r.exit_code == EXIT_INTERNAL
    assert "Traceback" in r.stderr, r.stderr


def test_internal_error_is_one_line_without_debug(tmp_path, monkeypatch):
    import snrcli.analysis.api

    def broken(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(snrcli.analysis.api, "analyze", broken)
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path))
    assert r.exit_code == EXIT_INTERNAL
    assert r.stderr.strip().splitlines() == [
        "internal error: RuntimeError: simulated bug; run with --debug for the traceback"]
    r = invoke("--debug", "analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path))
    assert r.exit_code == EXIT_INTERNAL and "Traceback" in r.stderr


def test_out_folder_under_a_file_is_a_usage_error(tmp_path, monkeypatch):
    model, data = mlp_file(tmp_path), mlp_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = C.listing(tmp_path)
    r = invoke("analyze", model, "--data", data, "--out", model / "run")
    assert r.exit_code == EXIT_USAGE, describe(r)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert C.listing(tmp_path) == before
