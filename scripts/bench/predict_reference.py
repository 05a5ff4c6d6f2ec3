#!/usr/bin/env python3
"""PyTorch yardstick for `scripts/bench.sh predict`: the bare eager forward of the reference DeepLabV3+
(tests/reference/model_deeplab.py) with the benchmark's trained weights, float32, NCHW, no_grad, at
1x3xSIZExSIZE, as a PyTorch user would run it. Timed with and without denormals flushed; the faster is the
yardstick (trained weights should make the two equal).

Usage: predict_reference.py WEIGHTS.safetensors SIZE ITERS THREADS  ->  one JSON object on stdout.
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from ckpt_tiny import read_safetensors  # noqa: E402
from model_deeplab import DeepLab  # noqa: E402


def main():
    weights, size, iters, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    sd, _ = read_safetensors(weights)
    classes = sd["decoder.last_conv.8.weight"].shape[0]
    model = DeepLab("mobilenet", 16, classes).eval()
    own = model.state_dict()
    # The reference also registers MobileNetV2's features as low_level_features / high_level_features: the same
    # modules under a second name, which our checkpoints do not repeat.
    missing, _ = model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    not_alias = [k for k in missing if "_level_features." not in k]
    if not_alias:
        sys.exit("predict_reference.py: %s lacks %s" % (weights, ", ".join(not_alias[:5])))
    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    out = {"size": size, "threads": torch.get_num_threads(), "classes": classes, "torch": torch.__version__}
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        times = []
        with torch.no_grad():
            model(x)
            for _ in range(iters):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1000)
        key = "flushed" if flush else "plain"
        out["forward_ms_median_" + key] = round(statistics.median(times), 2)
        out["forward_ms_min_" + key] = round(min(times), 2)
    out["forward_ms_median"] = min(out["forward_ms_median_plain"], out["forward_ms_median_flushed"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
