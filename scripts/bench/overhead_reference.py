"""Python baseline for `scripts/bench.sh overhead`: the same loops as OverheadBenchmark.cs."""
import json
import sys
import time

import torch

adds = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
convs = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
x = torch.ones(1)
y = torch.ones(1)
inp = torch.randn(1, 8, 8, 8)
w = torch.randn(8, 8, 3, 3)
F = torch.nn.functional
with torch.no_grad():
    for _ in range(1000):
        r = x + y
        q = F.conv2d(inp, w, None, 1, 1)
    t0 = time.perf_counter()
    for _ in range(adds):
        r = x + y
    add_us = (time.perf_counter() - t0) * 1e6 / adds
    t0 = time.perf_counter()
    for _ in range(convs):
        r = F.conv2d(inp, w, None, 1, 1)
    conv_us = (time.perf_counter() - t0) * 1e6 / convs
print(json.dumps({"add_us_per_call": round(add_us, 3), "conv2d_us_per_call": round(conv_us, 3),
                  "adds": adds, "convs": convs, "threads": torch.get_num_threads(), "torch": torch.__version__}))
