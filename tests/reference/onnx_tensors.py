"""Reads a model's initializers with Debian's python3-onnx, external data included, checks the model,
and prints one line per initializer: name, ONNX data type name, dims, where the data was stored
(DEFAULT or EXTERNAL with its keys), and the values. bfloat16 has no numpy type, so its raw 16-bit
words are widened to float32 here (the upper half of a float32). Usage: onnx_tensors.py MODEL"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.external_data_helper import load_external_data_for_model

path = sys.argv[1]
m = onnx.load(path, load_external_data=False)
where = {}
for t in m.graph.initializer:
    loc = TensorProto.DataLocation.Name(t.data_location)
    keys = ",".join(f"{e.key}={e.value}" for e in t.external_data)
    where[t.name] = loc + (f"({keys})" if keys else "")
load_external_data_for_model(m, os.path.dirname(os.path.abspath(path)))
onnx.checker.check_model(m, full_check=True)
for t in m.graph.initializer:
    kind = TensorProto.DataType.Name(t.data_type)
    if t.data_type == TensorProto.BFLOAT16:
        words = np.frombuffer(t.raw_data, dtype="<u2").astype("<u4") << 16
        values = words.view("<f4").tolist()
    else:
        values = numpy_helper.to_array(t).flatten().tolist()
    print(t.name, kind, list(t.dims), where[t.name], " ".join(repr(v) for v in values))
