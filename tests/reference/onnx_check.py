"""Validates an exported model with onnx.checker (full check, with shape inference) and prints a summary.
Usage: onnx_check.py MODEL"""
import sys

import onnx

m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
ops = sorted({n.op_type for n in m.graph.node})
print("opset", m.opset_import[0].version, "ir", m.ir_version)
print("inputs", [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in m.graph.input])
print("outputs", [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in m.graph.output])
print("ops", " ".join(ops))
