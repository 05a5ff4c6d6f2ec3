#!/usr/bin/env bash
# Inference latency and throughput: DeepLabV3+ MobileNetV2 OS16 (or BACKBONE, or a face-parsing network), 21 classes, eval + inference mode,
# batch 1 at SIZE² and batch BATCH at SIZE², C# vs PyTorch (same threads, same run).
# Usage: scripts/bench.sh infer [SIZE] [BATCH] [ITERS_B1] [ITERS_BATCH] [THREADS] [PRECISION] [FOLD_BN] [BACKBONE] [ENGINE]
# PRECISION float32 (default) or bf16 (ours with --precision bf16; PyTorch is then also timed with its
# own levers, channels_last + bf16 autocast, as "python_levers"; with float32, python_levers is PyTorch's eager
# float32 with only the heap setting). FOLD_BN true or false: our BatchNorms folded into
# the convs or not (default: folded, as predict does). BACKBONE mobilenet (default), xception, resnet, resnet50, bisenet, stdc1 or stdc2.
# ENGINE torch (default) or onnx: ours is then the exported model in ONNX Runtime (float32).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-513}"; batch="${2:-8}"; iters1="${3:-10}"; itersb="${4:-3}"; threads="${5:-2}"; precision="${6:-float32}"; foldbn="${7:-}"
backbone="${8:-mobilenet}"; engine="${9:-torch}"
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench infer \
  "size=$size" "batch=$batch" "iters_b1=$iters1" "iters_batch=$itersb" "precision=$precision" ${foldbn:+"fold_bn=$foldbn"} "backbone=$backbone" "engine=$engine" --threads "$threads")
python=$(/usr/bin/python3 "$root/scripts/bench/infer_reference.py" "$size" "$batch" "$iters1" "$itersb" "$threads" "$backbone")
# PyTorch with the levers a user can switch on by hand: channels_last and bf16 autocast (with PRECISION bf16),
# and the heap setting that our side makes in-process (NativeHeap) through glibc's environment variables.
heap_env=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647)
levers="{}"
if [ "$precision" = bf16 ]; then
  levers=$(env "${heap_env[@]}" /usr/bin/python3 "$root/scripts/bench/infer_reference.py" "$size" "$batch" "$iters1" "$itersb" "$threads" "$backbone" 16 levers)
elif [ "$engine" = torch ]; then
  levers=$(env "${heap_env[@]}" /usr/bin/python3 "$root/scripts/bench/infer_reference.py" "$size" "$batch" "$iters1" "$itersb" "$threads" "$backbone")
fi
/usr/bin/python3 - "$ours" "$python" "$levers" <<'PY'
import json, sys
ours, py, lev = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
ratio = lambda other, k: round(ours[k] / other[k], 3)
keys = ("b1_latency_ms_median", "batch_ms_median", "batch_images_per_s")
out = {
    "benchmark": "infer",
    "model": (ours["backbone"] if ours["backbone"] in ("bisenet", "stdc1", "stdc2") else "deeplabv3plus-%s-os16" % ours["backbone"]) + "-21",
    "csharp": ours,
    "python": py,
    "ratio_csharp_over_python": {k: ratio(py, k) for k in keys},
    "note": "latency ratios below 1 and throughput ratios above 1 favour C#; python is PyTorch float32 eager",
}
if lev:
    out["python_levers"] = lev
    out["ratio_csharp_over_python_levers"] = {k: ratio(lev, k) for k in keys}
print(json.dumps(out, indent=2))
PY
