"""Reports against the shipped JSON Schema ``snr-report/1`` (spec section 8).

Besides these tests, conftest.py validates EVERY report that any test builds (through
``snrcli.analyze`` or the CLI in-process) and fails that test when it breaks the schema or
holds a NaN/Infinity.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest

import snrcli
from conftest import VALIDATED, check_report_dict
from helpers import init, make_model, mlp, node, vi, write
from snrcli.reports.report import SCHEMA, schema

X = np.array([[0, 0], [2, 0], [0, 1], [2, 3]], dtype=np.float32)
W = np.array([[1.0, 1.0], [1.0, -1.0]])

REQUIRED_LAYER_KEYS = ["index", "name", "op", "units", "inputs", "inputs_kept", "samples", "S_mean", "G_mean",
                       "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "undefined_units", "classifier",
                       "S_mean_centred", "G_mean_centred"]


def no_nan_loads(text: str):
    def refuse(token):
        raise AssertionError(f"non-finite token {token} in the JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def reports(tmp_path):
    """Reports of several shapes: hand MLP with labels, a null hidden layer, skipped ops, a conv, no centring."""
    out = {}
    out["hand"] = snrcli.analyze(*write(tmp_path, mlp([W, np.eye(2)]), {"x": X, "labels": np.array([0, 0, 0, 1])},
                                        name="hand"))
    nodes = [node("Gemm", ["x", "W0", "B0"], ["aux"], name="dead", transB=1),
             node("Gemm", ["x", "W1", "B1"], ["y"], name="cls", transB=1),
             node("ConvTranspose", ["img", "Wt"], ["up"], name="deconv")]
    model = make_model(nodes, [vi("x", ["N", 2]), vi("img", ["N", 1, 2, 2])],
                       [vi("y", ["N", 2]), vi("aux", ["N", 3]), vi("up", None)],
                       [init("W0", np.zeros((3, 2))), init("B0", np.ones(3)), init("W1", W), init("B1", np.zeros(2)),
                        init("Wt", np.ones((1, 1, 2, 2)))], check=False)
    out["nulls"] = snrcli.analyze(*write(tmp_path, model, {"x": X, "img": np.ones((4, 1, 2, 2), np.float32)},
                                         name="nulls"))
    from helpers import cnn
    rng = np.random.default_rng(0)
    out["conv"] = snrcli.analyze(*write(tmp_path, cnn([dict(W=rng.normal(size=(3, 1, 3, 3)), pads=[1, 1, 1, 1])],
                                                      (1, 5, 5), dense=[rng.normal(size=(2, 75))]),
                                        {"x": rng.normal(size=(6, 1, 5, 5)).astype(np.float32)}, name="conv"),
                                 centre_classifier=False)
    return out


def test_schema_is_a_valid_draft_2020_12_schema():
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["properties"]["schema"]["const"] == SCHEMA == "snr-report/1"


def test_reports_validate_and_hold_no_nan(reports):
    for name, rep in reports.items():
        d = no_nan_loads(rep.to_json())
        check_report_dict(d)
        jsonschema.validate(d, schema(), cls=jsonschema.Draft202012Validator)
        assert d["schema"] == "snr-report/1"
        for L in d["layers"]:
            assert set(REQUIRED_LAYER_KEYS) <= set(L), name
        assert set(d["network"]) >= {"G_hidden", "G_final", "G_total"}
        for k in ("min_level", "min_activity", "centre_classifier"):
            assert k in d["settings"]
        assert len(d["model"]["sha256"]) == 64 and d["tool"]["version"] == snrcli.__version__
    nulls = reports["nulls"].to_dict()
    assert nulls["layers"][0]["S_mean"] is None and nulls["network"]["G_total"] is None
    assert nulls["skipped"] == [{"name": "deconv", "op": "ConvTranspose", "reason": nulls["skipped"][0]["reason"]}]
    assert reports["hand"].to_dict()["accuracy"] == pytest.approx(0.75)


def test_unit_arrays_with_nan_become_nulls_in_json(reports):
    rep = reports["nulls"]
    assert np.isnan(rep.layers[0].unit_S).all()
    text = rep.to_json()
    assert "NaN" not in text and "Infinity" not in text


@pytest.mark.parametrize("breakage", ["drop-network", "nan-string", "wrong-schema", "negative-samples",
                                      "layer-missing-key"])
def test_schema_rejects_broken_reports(reports, breakage):
    d = copy.deepcopy(reports["hand"].to_dict())
    check_report_dict(d)
    if breakage == "drop-network":
        del d["network"]
    elif breakage == "nan-string":
        d["layers"][0]["S_mean"] = "NaN"
    elif breakage == "wrong-schema":
        d["schema"] = "snr-report/2"
    elif breakage == "negative-samples":
        d["data"]["samples"] = -1
    elif breakage == "layer-missing-key":
        del d["layers"][0]["G_mean"]
    with pytest.raises(AssertionError, match="snr-report/1"):
        check_report_dict(d)


def test_check_refuses_float_nan():
    d = {"schema": "snr-report/1", "x": [1.0, float("nan")]}
    with pytest.raises(AssertionError, match="non-finite"):
        check_report_dict(d)


def test_every_report_built_in_a_test_is_validated(tmp_path):
    before = len(VALIDATED)
    snrcli.analyze(*write(tmp_path, mlp([W]), {"x": X}))
    assert len(VALIDATED) == before + 1
    assert VALIDATED[-1]["layers"][0]["name"] == "fc1"


def test_cli_out_report_validates(run_cli, tmp_path):
    write(tmp_path, mlp([W, np.eye(2)]), {"x": X})
    run_cli("analyze", "m.onnx", "--data", "m.npz", "--out", "run", "--quiet")
    d = no_nan_loads((tmp_path / "run" / "report.json").read_text())
    check_report_dict(d)
    d2 = no_nan_loads(run_cli("analyze", "m.onnx", "--data", "m.npz", "--json").stdout)
    check_report_dict(d2)
