#!/usr/bin/python3
"""Python baseline of scripts/bench/model.sh: the reference DeepLabV3+ of model_deeplab.py, measured
with the same protocol as DeepLabTorch.Models.ModelBenchmark. Prints one JSON object.

model_bench.py [backbone=mobilenet|...|bisenet|stdc1|stdc2] [os=16] [threads=2] [forward_runs=5] [train_steps=3]
               [forward_size=513] [forward_batch=1] [train_batch=4] [train_size=321] [warmup=1] [channels_last=false]
               [flush_denormal=false] [precision=float32|bf16] [grad_to_none=false]
precision=bf16 runs forward and train step under torch.autocast("cpu", dtype=torch.bfloat16), the loss on
float32 logits. PyTorch 1.13 has no bfloat16 backward for ReLU6 (hardtanh) on the CPU, so there ReLU6 becomes
clamp(0, 6): the same function, whose backward exists.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_deeplab import DeepLab  # noqa: E402


class Clamp06(torch.nn.Module):
    def forward(self, x):
        return x.clamp(0, 6)


def relu6_to_clamp(net):
    for name, child in net.named_children():
        if isinstance(child, torch.nn.ReLU6):
            setattr(net, name, Clamp06())
        else:
            relu6_to_clamp(child)


def bisenet(classes):
    from model_bisenet import BiSeNet
    return BiSeNet(classes)


def stdc(blocks):
    def build(classes):
        from model_stdc import StdcSeg
        return StdcSeg(blocks, classes)
    return build


# The face-parsing networks, as the references run them: every head in forward, the heads at 10x the context path's lr.
NETWORKS = {"bisenet": bisenet, "stdc1": stdc([2, 2, 2]), "stdc2": stdc([4, 5, 3])}


def face_groups(model, lr):
    context = list(model.cp.parameters())
    ids = {id(p) for p in context}
    return [{"params": context, "lr": lr}, {"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr * 10}]


def main():
    kv = dict(a.split("=", 1) for a in sys.argv[1:])
    backbone = kv.get("backbone", "mobilenet")
    os_ = int(kv.get("os", 16))
    threads = int(kv.get("threads", 2))
    runs, steps, warmup = int(kv.get("forward_runs", 5)), int(kv.get("train_steps", 3)), int(kv.get("warmup", 1))
    fsize, tbatch, tsize = int(kv.get("forward_size", 513)), int(kv.get("train_batch", 4)), int(kv.get("train_size", 321))
    fbatch = int(kv.get("forward_batch", 1))
    channels_last = kv.get("channels_last", "false") == "true"
    bf16 = kv.get("precision", "float32") == "bf16"
    to_none = kv.get("grad_to_none", "false") == "true"
    flushed = False
    if kv.get("flush_denormal", "false") == "true":
        # As the scaling benchmark's C# side does: random eval-mode weights sink activations into denormals.
        flushed = torch.set_flush_denormal(True)
    classes = 21
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    network = backbone in NETWORKS
    model = NETWORKS[backbone](classes) if network else DeepLab(backbone, os_, classes)
    if bf16:
        relu6_to_clamp(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    model.eval()
    forward = []
    x = torch.randn(fbatch, 3, fsize, fsize).contiguous(memory_format=fmt)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(warmup + runs):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                forward.append((time.perf_counter() - t) * 1000)

    model.train()
    groups = face_groups(model, 0.007) if network else model.parameter_groups(0.007)
    opt = torch.optim.SGD(groups, lr=0.007, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(tbatch, 3, tsize, tsize).contiguous(memory_format=fmt)
    target = torch.randint(0, classes, (tbatch, tsize, tsize))
    train, phases = [], {"forward_loss": [], "backward": [], "optimizer": []}
    for i in range(warmup + steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = model(x)
        if network:
            # The references' loss on the main and both auxiliary heads (STDC's detail head runs, unused, on both sides).
            loss = sum(F.cross_entropy(o.float(), target, ignore_index=255) for o in y[:3])
        else:
            loss = F.cross_entropy(y.float(), target, ignore_index=255)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=to_none)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= warmup:
            train.append((t3 - t) * 1000)
            for k, v in zip(phases, (t1 - t, t2 - t1, t3 - t2)):
                phases[k].append(v * 1000)

    print(json.dumps({
        "backbone": backbone, "output_stride": os_, "threads": torch.get_num_threads(), "channels_last": channels_last,
        "precision": "bf16 (autocast)" if bf16 else "float32", "grad_to_none": to_none, "flush_denormal": flushed,
        "heap": " ".join("%s=%s" % (k, v) for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")) or "glibc defaults",
        "forward_input": "%dx3x%dx%d" % (fbatch, fsize, fsize),
        "forward_ms_median": round(statistics.median(forward), 1), "forward_ms_min": round(min(forward), 1),
        "train_input": "%dx3x%dx%d" % (tbatch, tsize, tsize),
        "train_step_ms_median": round(statistics.median(train), 1), "train_step_ms_min": round(min(train), 1),
        "train_phases_ms_median": {k: round(statistics.median(v), 1) for k, v in phases.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }))


if __name__ == "__main__":
    main()
