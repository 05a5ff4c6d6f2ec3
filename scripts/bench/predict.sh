#!/usr/bin/env bash
# `deeplab predict` over a folder of SIZE² JPEGs: the marginal time per image (decode, forward, write the
# mask PNG), measured as the difference between a folder of N and one of 3N images divided by 2N (start-up
# and model loading cancel), rounds interleaved, against PyTorch's bare eager forward of the same trained
# weights at 1xSIZE² (scripts/bench/predict_reference.py). The weights come from a short training run on the
# synthetic set, made once (trained weights keep eval-mode activations out of denormals on both sides).
# Usage: scripts/bench.sh predict [SIZE=513] [N=6] [ROUNDS=3] [THREADS=2] [PRECISIONS=float32,bf16]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-513}"; n="${2:-6}"; rounds="${3:-3}"; threads="${4:-2}"; precisions="${5:-float32,bf16}"
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
work="$root/build/bench/predict"
mkdir -p "$work"
weights=$("$root/scripts/bench/predict_weights.sh" "$threads")
images="$work/images-$size"
if [ ! -d "$images/VOCdevkit" ] || [ "$(ls "$images/VOCdevkit/VOC2012/JPEGImages" | wc -l)" -lt $((3 * n)) ]; then
  rm -rf "$images"
  "${deeplab[@]}" data synth --out "$images" --count $((3 * n)) --seed 2 --width "$size" --height "$size" >&2
fi
small="$work/in-small"; large="$work/in-large"
rm -rf "$small" "$large"; mkdir -p "$small" "$large"
ls "$images/VOCdevkit/VOC2012/JPEGImages"/*.jpg | sort | head -n $((3 * n)) | while read -r f; do ln -s "$f" "$large/"; done
ls "$large" | head -n "$n" | while read -r f; do ln -s "$(readlink "$large/$f")" "$small/"; done
results=()
for r in $(seq 1 "$rounds"); do
  for p in ${precisions//,/ }; do
    for which in small large; do
      out="$work/out-$which"; rm -rf "$out"
      s=$(date +%s%N)
      "${deeplab[@]}" predict --weights "$weights" --input "$work/in-$which" --output "$out" --threads "$threads" --precision "$p" -q > /dev/null
      e=$(date +%s%N)
      results+=("$p" "$which" "$(( (e - s) / 1000000 ))")
    done
  done
done
python=$(/usr/bin/python3 "$root/scripts/bench/predict_reference.py" "$weights" "$size" 10 "$threads")
/usr/bin/python3 - "$n" "$size" "$threads" "$python" "${results[@]}" <<'PY'
import json, os, statistics, sys
n, size, threads, py = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
rest = sys.argv[5:]
runs = {}
for i in range(0, len(rest), 3):
    runs.setdefault(rest[i], {"small": [], "large": []})[rest[i + 1]].append(float(rest[i + 2]) / 1000)
ours = {}
for p, r in runs.items():
    # Pair each round's two folders: the extra 2N images' time, per image.
    marginal = [1000 * (b - a) / (2 * n) for a, b in zip(r["small"], r["large"])]
    m = statistics.median(marginal)
    ours[p] = {"marginal_ms_per_image_median": round(m, 1), "marginal_ms_per_image": [round(v, 1) for v in marginal],
               "wall_s_small": [round(v, 2) for v in r["small"]], "wall_s_large": [round(v, 2) for v in r["large"]],
               "ratio_to_python_forward": round(m / py["forward_ms_median"], 3)}
print(json.dumps({
    "benchmark": "predict",
    "setup": {"images": f"{size}x{size} synthetic JPEGs", "small_folder": n, "large_folder": 3 * n, "threads": threads,
              "weights": "MobileNetV2 OS16 after 60 training iterations on the synthetic set",
              "ours": "deeplab predict --weights W --input DIR --output OUT (mask PNGs), defaults: BatchNorm folded, channels-last",
              "load_average_at_end": os.getloadavg()},
    "note": "marginal = (time for 3N images - time for N) / 2N: decode, forward and PNG write per image, start-up excluded; "
            "ratio_to_python_forward = marginal / PyTorch's bare forward (float32 eager, no_grad) on the same weights; goal <= 0.5",
    "ours": ours,
    "python": py,
}, indent=2))
PY
