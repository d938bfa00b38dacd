"""Where a model's external-data entries can hide: every one is found and confined to the model's folder."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from snrcli.errors import ModelError
from snrcli.model.modelfile import check_external_paths, external_tensor_names


def _external(name: str, location: str) -> TensorProto:
    t = numpy_helper.from_array(np.zeros(4, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    return t


def _graph(nodes=(), initializer=(), sparse=()) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    return helper.make_graph(list(nodes) or [helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y],
                             initializer=list(initializer), sparse_initializer=list(sparse))


def _constant(name: str, location: str) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=_external(name, location))


def _models(location: str) -> dict[str, onnx.ModelProto]:
    """One model per hiding place, each holding one external tensor at ``location``."""
    branch = _graph([_constant("c", location), helper.make_node("Identity", ["c"], ["y"])])
    plain = _graph([helper.make_node("Identity", ["x"], ["y"])])
    cond = helper.make_node("If", ["x"], ["y"], then_branch=branch, else_branch=plain)
    sparse = helper.make_sparse_tensor(_external("v", location), numpy_helper.from_array(np.array([1], np.int64), "i"),
                                       [4])
    function = helper.make_function("local", "f", ["a"], ["b"], [_constant("b", location)],
                                    [helper.make_opsetid("", 17)])
    return {
        "initializer": helper.make_model(_graph(initializer=[_external("w", location)])),
        "attribute": helper.make_model(_graph([_constant("y", location)])),
        "subgraph": helper.make_model(_graph([cond])),
        "sparse initializer": helper.make_model(_graph(sparse=[sparse])),
        "function": helper.make_model(_graph(), functions=[function]),
    }


@pytest.mark.parametrize("where", list(_models("w.bin")))
def test_external_tensors_are_found_wherever_they_sit(where, tmp_path):
    model = _models("w.bin")[where]
    (tmp_path / "w.bin").write_bytes(bytes(16))
    assert len(external_tensor_names(model)) == 1
    assert check_external_paths(model, tmp_path) == ["w.bin"]


@pytest.mark.parametrize("where", list(_models("w.bin")))
@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname"])
def test_an_escaping_location_is_refused_wherever_it_sits(where, location, tmp_path):
    with pytest.raises(ModelError, match="outside.bin|hostname"):
        check_external_paths(_models(location)[where], tmp_path)
