"""A tiny "backbone + classifier" network shared by the checkpoint tests (mirrors TinyNet in
tests/DeepLabTorch.Tests/Checkpoints/TinyNet.cs: same state_dict keys and shapes)."""
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.classifier = nn.Conv2d(4, classes, 1)

    def forward(self, x):
        return self.classifier(self.backbone(x))


def make(seed=0, classes=5):
    torch.manual_seed(seed)
    net = TinyNet(classes)
    bn = net.backbone[1]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(17)
    return net.eval()


def read_safetensors(path):
    """A minimal safetensors reader written for the tests (Debian has no python3-safetensors)."""
    import json
    import struct
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = bytearray(data[b:end])
        t = torch.frombuffer(raw, dtype=dtypes[e["dtype"]]) if end > b else torch.empty(0, dtype=dtypes[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta
