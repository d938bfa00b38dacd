"""Running the model with the tensors the statistics need exposed (docs/metrics.md, How the model is run).

An in-memory copy of the model gets extra graph outputs; the user's file is
never touched. The session runs at ``ORT_ENABLE_BASIC`` or lower, so quantised
weight patterns keep their float semantics.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

from ..errors import ModelError, RuntimeFailure, UsageError

PROTOBUF_LIMIT = 2_000_000_000
ort.set_default_logger_severity(4)


def extra_outputs(model: onnx.ModelProto, needed: list[str]) -> list[str]:
    """The names in ``needed`` that are not yet graph outputs (nor graph inputs), in order."""
    have = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    return [n for n in dict.fromkeys(needed) if n not in have]


def augmented(model: onnx.ModelProto, needed: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs also include every name in ``needed``."""
    m = copy.deepcopy(model)
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra_outputs(model, needed))
    return m


def augmented_bytes(source: bytes, model: onnx.ModelProto, needed: list[str]) -> bytes:
    """The augmented model's bytes from the bytes ``model`` was parsed from: protobuf merges a message
    field that appears twice and appends to repeated fields, so a trailing ModelProto holding only the
    extra graph outputs adds them. No copy of the model, no serialisation (ResNet-18: 85 ms)."""
    tail = onnx.ModelProto(graph=onnx.GraphProto(output=[onnx.ValueInfoProto(name=n)
                                                         for n in extra_outputs(model, needed)]))
    return source + tail.SerializeToString()


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


class Runner:
    """One onnxruntime session over the augmented model; ``run(feeds)`` returns every output by name."""

    def __init__(self, model: onnx.ModelProto, needed: list[str], *, providers: list[str] | None = None,
                 threads: int | None = None, custom_op_library: str | None = None, source: bytes | None = None):
        """``source``: the bytes ``model`` was parsed from, when they hold all of it (``load_model_bytes``)."""
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.log_severity_level = 4  # onnxruntime's own log lines stay off stderr; its errors reach us as exceptions
        # onnxruntime and the statistics take turns on the same cores: onnxruntime's threads spin while
        # a run lasts (faster than sleeping between its parallel sections) and stop when it returns, so
        # they do not spin into the statistics' time (nor does the BLAS: see ``snrcli.stats.blas``).
        so.add_session_config_entry("session.force_spinning_stop", "1")
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        if custom_op_library:
            try:
                so.register_custom_ops_library(custom_op_library)
            except Exception as e:
                raise ModelError(f"cannot load --custom-op-library {custom_op_library}: {_one_line(e)}") from e
        wanted = providers or ["CPUExecutionProvider"]
        unknown = [p for p in wanted if p not in available_providers()]
        if unknown:
            raise UsageError(f"execution provider {', '.join(unknown)} is not available "
                             f"(available: {', '.join(available_providers())})")
        self._tmp = None
        try:
            if source is not None:
                serialized = augmented_bytes(source, model, needed)
            else:
                aug = augmented(model, needed)
                serialized = _serialize(aug)
            if serialized is not None:
                self.session = ort.InferenceSession(serialized, so, providers=wanted)
            else:  # > 2 GB: save with external data in a private temporary folder
                self._tmp = tempfile.TemporaryDirectory(prefix="snr-")
                path = os.path.join(self._tmp.name, "model.onnx")
                onnx.save_model(aug, path, save_as_external_data=True, location="weights.bin")
                self.session = ort.InferenceSession(path, so, providers=wanted)
            del serialized
        except UsageError:
            raise
        except Exception as e:
            hint = ""
            if _uses_bfloat16(model):
                hint = " (the model uses bfloat16, for which onnxruntime's CPU provider has few kernels: " \
                       "convert it to float32 or float16)"
            raise ModelError(f"onnxruntime cannot load the model: {_one_line(e)}{hint}") from e
        self.providers = self.session.get_providers()
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(None, feeds)
        except Exception as e:
            raise RuntimeFailure(f"onnxruntime failed while running the model: {_one_line(e)}") from e
        return dict(zip(self.output_names, values))


def _serialize(model: onnx.ModelProto) -> bytes | None:
    """The model as bytes, or None past protobuf's 2 GB limit (``ByteSize`` alone costs as much as
    serialising, so the weights' sizes decide when they are clearly small)."""
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    if weights < PROTOBUF_LIMIT // 2:
        try:
            return model.SerializeToString()
        except ValueError:   # other tensor encodings can still pass the limit
            return None
    return model.SerializeToString() if model.ByteSize() < PROTOBUF_LIMIT else None


def _uses_bfloat16(model: onnx.ModelProto) -> bool:
    g = model.graph
    return any(t.data_type == onnx.TensorProto.BFLOAT16 for t in g.initializer) or any(
        v.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for v in list(g.input) + list(g.output))


_SOURCE_LOCATION = re.compile(r"/onnxruntime_src/\S+:\d+ .*?\)\s(?=[A-Z])")


def _one_line(e: BaseException, limit: int = 400) -> str:
    """onnxruntime's message on one line, without its C++ source location and function signature."""
    text = _SOURCE_LOCATION.sub("", " ".join(str(e).split()))
    return text[:limit] + ("..." if len(text) > limit else "")
