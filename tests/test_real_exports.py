"""Networks exported by torch itself, with both exporters: what ``snr`` finds in them and whether the two agree.

``tests/models/export_real.py`` trained three small Fashion-MNIST networks (a GELU
transformer encoder layer on 4x4 patches, a SiLU CNN, a tanh MLP) and exported each
with ``torch.onnx.export(..., dynamo=False)`` (``*_legacy.onnx``, opset 17, GELU
written out with ``Erf``) and with the default exporter (``*_dynamo.onnx``, opset 20,
the ``Gelu`` op, nodes named like ``node_MatMul_93``). Both exports of a network hold
bit-identical weights, so every figure must agree between them up to float32 rounding
of the activations.

The tests at the end need the noise model for other activations (``--noise-model``,
``input_activation``/``unit_activation``, the ``node`` field); they skip with the reason
"needs --noise-model" until the package has it, and run by themselves once it does.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest

import snrcli
from snrcli.analysis import api

MODELS = Path(__file__).resolve().parent / "models"
DATA = MODELS / "fashion_test_256.npz"
NETS = ("transformer_gelu", "cnn_silu", "mlp_tanh")
KINDS = ("legacy", "dynamo")
TOL = 1e-5

# Top-1 accuracy on the 256 images, as torch computed it before export (export_real.py prints it).
ACCURACY = {"transformer_gelu": 193 / 256, "cnn_silu": 226 / 256, "mlp_tanh": 217 / 256}

# (legacy name, dynamo node name, op, units, inputs, classifier) per layer, in layer order.
LAYERS = {
    "transformer_gelu": [
        ("/patch/Conv", "node_conv2d", "Conv", 32, 16, False),
        ("/encoder/self_attn/MatMul", "node_MatMul_8", "MatMul", 96, 32, False),   # in_proj: q, k, v
        ("/encoder/self_attn/Gemm", "node_linear_1", "Gemm", 32, 32, False),       # out_proj
        ("/encoder/linear1/MatMul", "node_MatMul_93", "MatMul", 64, 32, False),
        ("/encoder/linear2/MatMul", "node_MatMul_95", "MatMul", 32, 64, False),
        ("/head/Gemm", "node_linear_4", "Gemm", 10, 32, True),
    ],
    "cnn_silu": [
        ("/conv1/Conv", "node_conv2d", "Conv", 8, 9, False),
        ("/conv2/Conv", "node_conv2d_1", "Conv", 16, 72, False),
        ("/fc/Gemm", "node_linear", "Gemm", 10, 784, True),
    ],
    "mlp_tanh": [
        ("/fc1/Gemm", "node_linear", "Gemm", 64, 784, False),
        ("/fc2/Gemm", "node_linear_1", "Gemm", 32, 64, False),
        ("/fc3/Gemm", "node_linear_2", "Gemm", 10, 32, True),
    ],
}
# Module paths the default exporter stores in each layer node's metadata (pkg.torch.onnx.name_scopes).
MODULES = {
    "transformer_gelu": ["patch", "encoder.self_attn", "encoder.self_attn", "encoder.linear1", "encoder.linear2",
                         "head"],
    "cnn_silu": ["conv1", "conv2", "fc"],
    "mlp_tanh": ["fc1", "fc2", "fc3"],
}
# The attention's two MatMuls of activations (scores and weighted values) are skipped.
SKIPPED = {
    "transformer_gelu": {"legacy": ["/encoder/self_attn/MatMul_1", "/encoder/self_attn/MatMul_2"],
                         "dynamo": ["node_MatMul_80", "node_scaled_dot_product_attention"]},
    "cnn_silu": {"legacy": [], "dynamo": []},
    "mlp_tanh": {"legacy": [], "dynamo": []},
}

LAYER_FIGURES = ("units", "inputs", "inputs_kept", "samples", "S_mean", "G_mean", "S_mean_unweighted",
                 "G_mean_unweighted", "activity_mean", "undefined_units", "classifier", "S_mean_centred",
                 "G_mean_centred")


def model(net: str, kind: str) -> Path:
    return MODELS / f"{net}_{kind}.onnx"


def close(a, b, tol: float = TOL) -> bool:
    """Equal within ``tol`` relative (absolute below 1); nulls and exact values must match exactly."""
    if a is None or b is None or isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
        return a == b
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def differences(a: dict, b: dict, tol: float = TOL, fields: tuple[str, ...] = LAYER_FIGURES) -> list[str]:
    """Every figure of report ``a`` that differs from report ``b`` by more than ``tol``."""
    out = []
    if len(a["layers"]) != len(b["layers"]):
        return [f"{len(a['layers'])} layers vs {len(b['layers'])}"]
    for la, lb in zip(a["layers"], b["layers"]):
        out += [f"L{la['index']} {k}: {la[k]} vs {lb[k]}" for k in fields if not close(la[k], lb[k], tol)]
    for section in ("network", "baselines"):
        out += [f"{section}.{k}: {v} vs {b[section][k]}" for k, v in a[section].items() if not close(v, b[section][k], tol)]
    if not close(a["accuracy"], b["accuracy"], tol):
        out.append(f"accuracy: {a['accuracy']} vs {b['accuracy']}")
    return out


@pytest.fixture(scope="module")
def reports() -> dict[tuple[str, str], dict]:
    """The default (relu noise model) report of every export, through the Python API."""
    return {(net, kind): json.loads(snrcli.analyze(model(net, kind), DATA).to_json()) for net in NETS for kind in KINDS}


def test_committed_files_are_small():
    for net in NETS:
        for kind in KINDS:
            assert model(net, kind).stat().st_size < 1_000_000
    assert DATA.stat().st_size < 1_000_000


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("net", NETS)
def test_cli_analyses_the_export(run_cli, net, kind):
    res = run_cli("analyze", model(net, kind), "--data", DATA, "--json")
    d = json.loads(res.stdout)
    assert d["data"]["samples"] == 256
    assert d["accuracy"] == pytest.approx(ACCURACY[net], abs=1e-12)
    assert [(l["op"], l["units"], l["inputs"], l["classifier"]) for l in d["layers"]] == \
        [row[2:] for row in LAYERS[net]]
    assert all(v is not None for v in d["network"].values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("net", NETS)
def test_layers_found(reports, net, kind):
    d = reports[net, kind]
    names = [row[0] if kind == "legacy" else row[1] for row in LAYERS[net]]
    got = [(l["node"] if "node" in l else l["name"], l["op"], l["units"], l["inputs"], l["classifier"])
           for l in d["layers"]]
    assert got == [(n,) + row[2:] for n, row in zip(names, LAYERS[net])]
    assert [s["name"] for s in d["skipped"]] == SKIPPED[net][kind]
    assert all(s["op"] == "MatMul" for s in d["skipped"])
    # the MLP's first layer reads 784 pixels, the CNN's fc the 16 x 7 x 7 pooled map: every sample is one image
    if net != "transformer_gelu":
        assert d["layers"][-1]["samples"] == 256


@pytest.mark.parametrize("net", NETS)
def test_both_exports_give_the_same_figures(reports, net):
    legacy, dynamo = reports[net, "legacy"], reports[net, "dynamo"]
    assert differences(legacy, dynamo) == []
    # and the comparison is not vacuous: every layer has defined figures
    assert all(l["G_mean"] is not None and l["undefined_units"] < l["units"] for l in legacy["layers"])


def test_transformer_samples_are_tokens(reports):
    """Dense layers inside the encoder see one sample per (image, patch): 256 x 49."""
    layers = reports["transformer_gelu", "dynamo"]["layers"]
    assert [l["samples"] for l in layers] == [256 * 49] * 5 + [256]


# --------------------------------------------------------------------------- needs the noise-model work
#
# TODO(noise model): these run once snrcli.analyze takes ``noise_model`` (issue: networks beyond ReLU).

HAS_NOISE_MODEL = "noise_model" in inspect.signature(api.analyze).parameters
needs_noise_model = pytest.mark.skipif(not HAS_NOISE_MODEL, reason="needs --noise-model")

GELU_LEGACY_FORWARD = ["Div", "Erf", "Add", "Mul"]          # x * 0.5 after it is linear: outside the forward site
GELU_LEGACY_BACKWARD = ["Div", "Erf", "Add", "Mul", "Mul"]  # the layer reads the output of Mul(., 0.5)
SILU = ["Sigmoid", "Mul"]

# Per layer: (input_activation, unit_activation) under both noise models.
SITES = {
    ("transformer_gelu", "legacy"): [(None, None), (None, None), (None, None), (None, GELU_LEGACY_FORWARD),
                                     (GELU_LEGACY_BACKWARD, None), (None, None)],
    ("transformer_gelu", "dynamo"): [(None, None), (None, None), (None, None), (None, ["Gelu"]),
                                     (["Gelu"], None), (None, None)],
    # fc reads a MaxPool of the SiLU: no site backward; the first conv reads the graph input
    ("cnn_silu", "legacy"): [(None, SILU), (SILU, SILU), (None, None)],
    ("cnn_silu", "dynamo"): [(None, SILU), (SILU, SILU), (None, None)],
    ("mlp_tanh", "legacy"): [(None, ["Tanh"]), (["Tanh"], ["Tanh"]), (["Tanh"], None)],
    ("mlp_tanh", "dynamo"): [(None, ["Tanh"]), (["Tanh"], ["Tanh"]), (["Tanh"], None)],
}


def test_expected_sites_cover_every_layer():
    """The site table above (used once the noise model exists) has one entry per layer found today."""
    for (net, _kind), sites in SITES.items():
        assert len(sites) == len(LAYERS[net])


@pytest.fixture(scope="module")
def activation_reports() -> dict[tuple[str, str], dict]:
    return {(net, kind): json.loads(snrcli.analyze(model(net, kind), DATA, noise_model="activation").to_json())
            for net in NETS for kind in KINDS}


@needs_noise_model
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("net", NETS)
def test_sites_found(reports, activation_reports, net, kind):
    for d in (reports[net, kind], activation_reports[net, kind]):
        got = [(l["input_activation"], l["unit_activation"]) for l in d["layers"]]
        assert got == SITES[net, kind], d["settings"].get("noise_model")
    assert activation_reports[net, kind]["settings"]["noise_model"] == "activation"


@needs_noise_model
@pytest.mark.parametrize("net", NETS)
def test_both_exports_agree_under_the_activation_model(activation_reports, net):
    legacy, dynamo = activation_reports[net, "legacy"], activation_reports[net, "dynamo"]
    assert differences(legacy, dynamo) == []
    # the sites change the figures: activity is a mean squared slope now, not the fraction of non-zeros
    assert any(l["activity_mean"] < 1 - 1e-6 for l in legacy["layers"] if l["unit_activation"])


@needs_noise_model
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("net", NETS)
def test_relu_model_warns_once(reports, net, kind):
    said = [w for w in reports[net, kind]["warnings"] if "--noise-model activation" in w]
    assert len(said) == 1, reports[net, kind]["warnings"]


@needs_noise_model
@pytest.mark.parametrize("net", NETS)
def test_dynamo_layers_are_named_by_module(reports, net):
    """The default exporter's node names (node_MatMul_93) give way to the module path in the node's metadata.

    The attention's in_proj and out_proj both sit in ``encoder.self_attn`` (MultiheadAttention calls no
    Linear module): a path shared by two layers names neither, so those keep their node names (or get
    the path with something that tells them apart)."""
    layers = reports[net, "dynamo"]["layers"]
    assert [l["node"] for l in layers] == [row[1] for row in LAYERS[net]]
    for layer, module in zip(layers, MODULES[net]):
        if MODULES[net].count(module) == 1:
            assert layer["name"] == module
        else:
            assert layer["name"] == layer["node"] or (layer["name"].startswith(module) and layer["name"] != module)
    legacy = reports[net, "legacy"]["layers"]
    assert [l["name"] for l in legacy] == [row[0] for row in LAYERS[net]]   # no metadata: node names as before
