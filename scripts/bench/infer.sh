#!/usr/bin/env bash
# Inference latency and throughput: DeepLabV3+ MobileNetV2 OS16, 21 classes, eval + inference mode,
# batch 1 at SIZE² and batch BATCH at SIZE², C# vs PyTorch (same threads, same run).
# Usage: scripts/bench.sh infer [SIZE] [BATCH] [ITERS_B1] [ITERS_BATCH] [THREADS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-513}"; batch="${2:-8}"; iters1="${3:-10}"; itersb="${4:-3}"; threads="${5:-2}"
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench infer \
  "size=$size" "batch=$batch" "iters_b1=$iters1" "iters_batch=$itersb" --threads "$threads")
python=$(/usr/bin/python3 "$root/scripts/bench/infer_reference.py" "$size" "$batch" "$iters1" "$itersb" "$threads")
/usr/bin/python3 - "$ours" "$python" <<'PY'
import json, sys
ours, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = lambda k: round(ours[k] / py[k], 3)
print(json.dumps({
    "benchmark": "infer",
    "model": "deeplabv3plus-mobilenet-os16-21",
    "csharp": ours,
    "python": py,
    "ratio_csharp_over_python": {
        "b1_latency_ms_median": ratio("b1_latency_ms_median"),
        "batch_ms_median": ratio("batch_ms_median"),
        "batch_images_per_s": ratio("batch_images_per_s"),
    },
    "note": "latency ratios below 1 and throughput ratios above 1 favour C#",
}, indent=2))
PY
