"""Reading the ONNX model: the file, constant folding, layers as (units x inputs) weights, conv geometry."""
