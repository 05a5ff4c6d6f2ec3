"""Loads a safetensors weight file written by DeepLabTorch into the PyTorch TinyNet (strict) and writes
its logits for an input. Usage: ckpt_load_safetensors.py WEIGHTS INPUT.bin N,C,H,W OUT.bin"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ckpt_tiny import TinyNet, read_safetensors  # noqa: E402

weights, inp, dims, out = sys.argv[1:5]
sd, meta = read_safetensors(weights)
net = TinyNet(sd["classifier.weight"].shape[0])
net.load_state_dict(sd, strict=True)
net.eval()
x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape([int(d) for d in dims.split(",")]))
with torch.no_grad():
    net(x).numpy().astype("<f4").tofile(out)
print("metadata", meta)
