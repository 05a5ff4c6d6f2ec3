#!/usr/bin/env python3
"""PyTorch baseline for `scripts/bench.sh infer`: DeepLabV3+ (reference layout; MobileNetV2, OS16, 21 classes
by default) in eval mode under torch.inference_mode(), random weights, random normalized input.

Usage: infer_reference.py SIZE BATCH ITERS_B1 ITERS_BATCH THREADS [BACKBONE] [OS]  ->  one JSON object on stdout.
The network is the project's independent PyTorch definition, tests/reference/model_deeplab.py (the same one
the model parity tests use); the parameter count is printed so both sides can be checked to match.
"""
import contextlib
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from model_deeplab import DeepLab  # noqa: E402


def timed(model, x, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return times


def main():
    size, batch, iters1, itersb, threads = (int(a) for a in sys.argv[1:6])
    backbone = sys.argv[6] if len(sys.argv) > 6 else "mobilenet"
    output_stride = int(sys.argv[7]) if len(sys.argv) > 7 else 16
    # "levers": what a PyTorch user can switch on by hand (channels_last and bfloat16 autocast), to show
    # whether a C# lead comes from a lever PyTorch also has.
    levers = len(sys.argv) > 8 and sys.argv[8] == "levers"
    torch.set_num_threads(threads)
    # Random weights in eval mode shrink activations into denormals (many times slower than a trained
    # model's); the C# side flushes them too.
    flushed = torch.set_flush_denormal(True)
    torch.manual_seed(0)
    if backbone == "bisenet":
        # The face-parsing references as their users run them: forward computes every head, the first is the answer.
        from model_bisenet import BiSeNet
        model = BiSeNet(21).eval()
    elif backbone in ("stdc1", "stdc2"):
        from model_stdc import StdcSeg
        model = StdcSeg([2, 2, 2] if backbone == "stdc1" else [4, 5, 3], 21).eval()
    else:
        model = DeepLab(backbone, output_stride, 21).eval()
    params = sum(p.numel() for p in model.parameters())
    x1 = torch.randn(1, 3, size, size)
    xb = torch.randn(batch, 3, size, size)
    if levers:
        model = model.to(memory_format=torch.channels_last)
        x1 = x1.contiguous(memory_format=torch.channels_last)
        xb = xb.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if levers else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        timed(model, x1, 1)  # warm-up: oneDNN primitive creation, allocator
        t1 = timed(model, x1, iters1)
        timed(model, xb, 1)
        tb = timed(model, xb, itersb)
    print(json.dumps({
        "size": size, "batch": batch, "threads": torch.get_num_threads(), "backbone": backbone,
        "output_stride": output_stride, "parameters": params, "flush_denormal": flushed,
        "b1_latency_ms_median": round(statistics.median(t1) * 1000, 2),
        "b1_latency_ms_min": round(min(t1) * 1000, 2),
        "batch_ms_median": round(statistics.median(tb) * 1000, 2),
        "batch_images_per_s": round(batch / statistics.median(tb), 3),
        "iters_b1": iters1, "iters_batch": itersb, "torch": torch.__version__,
        "levers": "channels_last + bf16 autocast" if levers else "none",
        # glibc's heap as the environment set it (infer.sh sets it for the levers run).
        "heap": " ".join("%s=%s" % (k, v) for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")) or "glibc defaults",
    }))


if __name__ == "__main__":
    main()
