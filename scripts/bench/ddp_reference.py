#!/usr/bin/python3
"""Python baseline of scripts/bench/ddp.sh: PyTorch's DistributedDataParallel (gloo, the CPU backend of
torch.distributed) on the reference DeepLabV3+ MobileNetV2 of tests/reference/model_deeplab.py, with the
protocol of `deeplab bench ddp`. Started alone (one process, no DDP) or by mpirun, whose environment
gives the rank and size; rank 0 writes one JSON object to out=FILE (and every rank prints it).

ddp_reference.py [crop=257] [batch=4] [steps=6] [warmup=2] [threads=1] [allreduce_reps=10] [port=29517] [out=FILE]
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from model_deeplab import DeepLab  # noqa: E402


def main():
    kv = dict(a.split("=", 1) for a in sys.argv[1:])
    crop, batch = int(kv.get("crop", 257)), int(kv.get("batch", 4))
    steps, warmup, threads = int(kv.get("steps", 6)), int(kv.get("warmup", 2)), int(kv.get("threads", 1))
    reps = int(kv.get("allreduce_reps", 10))
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(1)
    model = DeepLab("mobilenet", 16, 21)
    model.train()
    opt = torch.optim.SGD(model.parameter_groups(0.007), lr=0.007, momentum=0.9, weight_decay=5e-4)
    net = model
    if size > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{kv.get('port', '29517')}", rank=rank, world_size=size)
        # PyTorch's defaults: 25 MB buckets, all-reduce overlapped with backward, initial weights broadcast.
        net = torch.nn.parallel.DistributedDataParallel(model)
    torch.manual_seed(100 + rank)
    x = torch.randn(batch, 3, crop, crop)
    y = torch.randint(0, 21, (batch, crop, crop))
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            if size > 1:
                dist.barrier()
            start = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y, ignore_index=255) / (batch * size)
        loss.backward()
        opt.step()
    step = (time.perf_counter() - start) / steps
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    allreduce_ms = None
    if size > 1:
        t = torch.tensor([step], dtype=torch.float64)
        dist.all_reduce(t)
        step = t.item() / size
        buf = torch.ones(grad_bytes // 4)
        dist.all_reduce(buf)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            dist.all_reduce(buf)
        allreduce_ms = (time.perf_counter() - t0) / reps * 1e3
    ring = 2.0 * (size - 1) / size
    result = {
        "processes": size, "threads_per_process": threads, "batch_per_process": batch, "crop": crop,
        "torch": torch.__version__, "backend": "gloo" if size > 1 else None,
        "gradient_mb": round(grad_bytes / 1e6, 2), "step_ms": round(step * 1e3, 1),
        "images_per_sec": round(batch * size / step, 2),
        "allreduce_gradient_ms": None if allreduce_ms is None else round(allreduce_ms, 2),
        "allreduce_bus_gb_per_s": None if allreduce_ms is None else round(ring * grad_bytes / (allreduce_ms / 1e3) / 1e9, 2),
    }
    if rank == 0 and "out" in kv:
        with open(kv["out"], "w") as f:
            json.dump(result, f)
    print(json.dumps(result))
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
