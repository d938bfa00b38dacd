"""The session over the augmented model (``snrcli.analysis.runner``), made from the model file's own bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from snrcli.analysis.accumulate import needed_outputs
from snrcli.model.graph import discover
from snrcli.model.modelfile import load_model_bytes
from snrcli.analysis.runner import Runner, augmented, augmented_bytes, extra_outputs

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def test_augmented_bytes_parse_to_the_augmented_model():
    """A trailing ModelProto that holds only graph outputs appends them (protobuf merges the graph)."""
    path = SAMPLES / "digits_cnn.onnx"
    model, raw = load_model_bytes(path)
    assert raw == path.read_bytes()
    needed = needed_outputs(discover(model, output=None, centre_classifier=True))
    extra = extra_outputs(model, needed)
    assert extra and model.graph.output[0].name not in extra and model.graph.input[0].name not in extra
    merged = onnx.load_model_from_string(augmented_bytes(raw, model, needed))
    assert merged == augmented(model, needed)
    assert [o.name for o in merged.graph.output] == [o.name for o in model.graph.output] + extra
    assert len(model.graph.output) == 1          # the loaded model is left as it was


def test_a_session_from_the_file_bytes_runs_like_one_from_the_model():
    path = SAMPLES / "digits_cnn.onnx"
    model, raw = load_model_bytes(path)
    needed = needed_outputs(discover(model, output=None, centre_classifier=True))
    x = np.load(SAMPLES / "digits_test.npz")["input"][:7].astype(np.float32)
    a = Runner(model, needed, source=raw)
    b = Runner(model, needed)
    assert a.output_names == b.output_names and len(a.output_names) == 1 + len(extra_outputs(model, needed))
    feeds = {model.graph.input[0].name: x}
    for name, v in a.run(feeds).items():
        np.testing.assert_array_equal(v, b.run(feeds)[name])


def test_a_model_with_external_data_gives_no_bytes(tmp_path):
    model = onnx.load(SAMPLES / "digits_mlp.onnx")
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    loaded, raw = load_model_bytes(tmp_path / "m.onnx")
    assert raw is None
    assert {t.name for t in loaded.graph.initializer} == {t.name for t in model.graph.initializer}


def test_the_report_records_each_files_sha256(tmp_path):
    import hashlib
    import shutil

    import snrcli

    samples = Path(__file__).resolve().parent.parent / "sample_models"
    model, data = tmp_path / "m.onnx", tmp_path / "d.npz"
    shutil.copy(samples / "digits_mlp.onnx", model)
    shutil.copy(samples / "digits_test.npz", data)
    from snrcli.model.modelfile import file_sha256

    assert file_sha256(data, chunk=1000) == hashlib.sha256(data.read_bytes()).hexdigest()   # many chunks
    d = snrcli.analyze(model, data).to_dict()
    assert d["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert d["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
