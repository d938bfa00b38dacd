"""The analysis pipeline: data -> onnxruntime -> streamed statistics -> figures -> report (``api.analyze``)."""
