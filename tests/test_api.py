"""The Python API: ``snrcli.analyze`` on models and data held in memory, and the ``Report`` object
(plain accessors, JSON round trip)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest

import snrcli
from conftest import check_report_dict
from helpers import mlp, write
from snrcli.analysis.sources import array_sha256
from snrcli.errors import DataError, ModelError, ReportError, UsageError
from snrcli.reports.report import Report

RNG = np.random.default_rng(7)
WEIGHTS = [RNG.normal(size=(6, 5)), RNG.normal(size=(3, 6))]
X = RNG.normal(size=(40, 5)).astype(np.float32)
LABELS = RNG.integers(0, 3, 40)


@pytest.fixture
def files(tmp_path):
    return write(tmp_path, mlp(WEIGHTS), {"x": X, "labels": LABELS})


@pytest.fixture
def by_file(files):
    return snrcli.analyze(*files, batch_size=7)


def figures(report: Report) -> list:
    d = report.to_dict()
    return [[L[k] for k in ("S_mean", "G_mean", "activity_mean", "inputs_kept")] for L in d["layers"]] + \
        [d["network"], d["accuracy"]]


def same(a: Report, b: Report) -> None:
    fa, fb = figures(a), figures(b)
    assert json.dumps(fa) == json.dumps(fb)   # bitwise: the same items in the same batches


def batches_of(n: int, labels: bool = True):
    for lo in range(0, len(X), n):
        yield (X[lo:lo + n], LABELS[lo:lo + n]) if labels else X[lo:lo + n]


@pytest.mark.parametrize("kind", ["dict", "pairs", "dicts", "list-of-pairs"])
def test_in_memory_data_gives_the_file_figures(files, by_file, kind):
    data = {"dict": {"x": X, "labels": LABELS},
            "pairs": batches_of(7),
            "dicts": ({"x": x, "labels": y} for x, y in batches_of(9)),
            "list-of-pairs": [(X[:25], LABELS[:25]), (X[25:], LABELS[25:])]}[kind]
    rep = snrcli.analyze(files[0], data, batch_size=7)
    same(by_file, rep)
    d = rep.to_dict()
    assert d["data"]["path"] is None and d["data"]["samples"] == 40
    assert d["data"]["sha256"] == array_sha256({"x": X, "labels": LABELS})   # however the arrays were passed
    assert d["model"]["path"] == files[0]


def test_bare_array_feeds_a_one_input_model_without_labels(files):
    rep = snrcli.analyze(files[0], X)
    assert rep.accuracy is None and rep.to_dict()["data"]["arrays"] == {"x": ""}
    assert rep.data["sha256"] == array_sha256({"x": X})
    same(rep, snrcli.analyze(files[0], batches_of(11, labels=False)))


def test_model_proto_and_bytes_give_the_file_figures(files, by_file):
    proto = onnx.load(files[0])
    before = proto.SerializeToString()
    for model in (proto, before, bytearray(before)):
        rep = snrcli.analyze(model, files[1], batch_size=7)
        same(by_file, rep)
        d = rep.to_dict()
        assert d["model"]["path"] is None and d["data"]["path"] == files[1]
        # the sha256 of what onnx.save writes: the same as the file's
        assert d["model"]["sha256"] == by_file.model["sha256"] == hashlib.sha256(before).hexdigest()
    assert proto.SerializeToString() == before   # the caller's proto is not modified


def test_limit_stops_reading_an_endless_iterable(files):
    def endless():
        while True:
            yield X[:8], LABELS[:8]

    rep = snrcli.analyze(files[0], endless(), limit=20)
    assert rep.data["samples"] == 20 and rep.layers[0]["samples"] == 20


def test_equal_arrays_hash_equal_and_any_change_hashes_differently():
    base = array_sha256({"x": X, "labels": LABELS})
    assert array_sha256({"labels": LABELS.copy(), "x": np.asfortranarray(X)}) == base
    for other in ({"x": X, "labels": LABELS[::-1].copy()}, {"x": X.astype(np.float64), "labels": LABELS},
                  {"x": X.reshape(40, 5, 1), "labels": LABELS}, {"y": X, "labels": LABELS}):
        assert array_sha256(other) != base


def test_jobs_with_in_memory_sources_is_refused_before_any_work(files):
    with pytest.raises(UsageError, match="need the model and the data as files"):
        snrcli.analyze(files[0], {"x": X}, jobs=2)
    with pytest.raises(UsageError, match="need the model and the data as files"):
        snrcli.analyze(onnx.load(files[0]), files[1], scheduler="local:1")


@pytest.mark.parametrize("data,error,match", [
    ([], DataError, "yielded no batch"),
    ([X[:5], {"x": X[5:10]}], DataError, "batch 1 holds arrays"),
    ([(X[:5], LABELS[:4])], DataError, "same number of items"),
    ([(X[:5], LABELS[:5], LABELS[:5])], DataError, "pair"),
    ([X[:5], X[5:10, :3]], DataError, "do not stack"),
    ({"x": np.array([object(), object()])}, DataError, "dtype object"),
    ({1: X}, DataError, "must be strings"),
    (b"x.npz", UsageError, "bytes are not a data source"),
    (3.5, UsageError, "expected a path"),
])
def test_bad_in_memory_data_is_one_clear_error(files, data, error, match):
    with pytest.raises(error, match=match):
        snrcli.analyze(files[0], data)


def test_bad_in_memory_models_are_model_errors(files, tmp_path):
    with pytest.raises(ModelError, match="<in-memory model>"):
        snrcli.analyze(b"not a model", files[1])
    with pytest.raises(UsageError, match="onnx.ModelProto"):
        snrcli.analyze(42, files[1])
    big = mlp([np.ones((40, 5)), np.ones((3, 40))])
    onnx.save_model(big, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="w.bin",
                    size_threshold=0)
    proto = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    with pytest.raises(ModelError, match="external data"):
        snrcli.analyze(proto, files[1])


def test_in_memory_mismatch_uses_the_file_messages(files):
    with pytest.raises(DataError, match="wants"):
        snrcli.analyze(files[0], X[:, :3])


# --------------------------------------------------------------------------- Report


def test_report_accessors_are_plain_python(by_file):
    rep = by_file
    plain = (dict, list, str, int, float, bool, type(None))

    def walk(v):
        assert isinstance(v, plain), type(v)
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for name in ("layers", "network", "settings", "accuracy", "labelled", "baselines", "model", "data",
                 "skipped", "warnings", "meta", "units"):
        walk(getattr(rep, name))
    d = rep.to_dict()
    assert rep.layers == d["layers"] and rep.network == d["network"] and rep.settings == d["settings"]
    assert json.loads(json.dumps(rep.layers)) == d["layers"]
    assert len(rep.units) == sum(L["units"] for L in rep.layers) == 9
    u = rep.units[6]
    assert (u["layer_index"], u["layer_name"], u["unit"]) == (2, "fc2", 0)
    assert u["S"] == pytest.approx(float(rep.layers[1].unit_S[0]))
    assert rep.accuracy == pytest.approx(np.mean(np.argmax(
        np.maximum(X @ WEIGHTS[0].T.astype(np.float32), 0) @ WEIGHTS[1].T.astype(np.float32), axis=1) == LABELS))


def test_report_round_trips_through_json(by_file):
    text = by_file.to_json()
    back = Report.from_json(text)
    assert back.to_json() == text
    assert Report.from_dict(json.loads(text)).to_dict() == by_file.to_dict()
    assert back.layers == by_file.layers and back.network == by_file.network
    assert back.units == [] and back.layers[0].unit_S is None      # the JSON holds no per-unit figures
    check_report_dict(back.to_dict())
    assert json.loads(by_file.to_json(indent=None)) == json.loads(text)


@pytest.mark.parametrize("text,match", [("[]", "not a JSON object"), ('{"schema": "snr-compare/1"}', "snr compare"),
                                        ('{"schema": "snr-report/1", "layers": 3}', "not a list"),
                                        ("{", "malformed JSON")])
def test_report_from_json_refuses_what_is_not_a_report(text, match):
    with pytest.raises(ReportError, match=match):
        Report.from_json(text)


def test_report_from_dict_refuses_nan():
    with pytest.raises(ReportError, match="plain JSON"):
        Report.from_dict({"schema": "snr-report/1", "layers": [], "x": float("nan")})


def test_api_doc_notebook_example_runs(monkeypatch, capsys):
    """The first code block of docs/api.md runs as written (from the repository root)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    section = (repo / "docs" / "api.md").read_text().split("## A notebook session", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(repo)
    exec(compile(code, "docs/api.md (A notebook session)", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("1 fc1 0.59") and len(out) == 4
