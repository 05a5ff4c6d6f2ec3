#!/usr/bin/env bash
# Quantised deployment (issue 24): the learn benchmark's model (DeepLabV3+ MobileNetV2 OS16, synthetic VOC set, crop 257,
# batch 8, lr 0.007, seeds 1-3) deployed five ways: our TorchSharp float32 and bf16 paths, ONNX Runtime float32, and
# ONNX Runtime int8 (export --quantize int8, calibrated on 32 train images, uint8 activations; int8 activations are
# timed too, to pick the faster). For each seed: file size and mIoU on the 60 val images (full size, eval's
# protocol); for seed 1: latency at batch 1 and time per batch of 8 at 513², throughput, and each process's peak RSS
# (/usr/bin/time). Prints one JSON document with the ratios and the issue's goals.
# The checkpoints are trained only when absent (build/bench/quant/seedN/run/last.safetensors): --budget SECONDS of
# training each (default 120, learn.sh's --quick; learn.sh's own 600 s is --budget 600), so a first run costs about
# 3 x (budget + 1 min) more. Options: --budget S, --seeds "1 2 3", --calibration-count N, --calibration-method M,
# --iters-b1 N, --iters-batch N, --threads N, --retrain.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
budget=120; seeds="1 2 3"; calib=32; method=minmax; iters1=10; itersb=3; threads=2; retrain=0
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --calibration-count) calib="$2"; shift 2 ;;
    --calibration-method) method="$2"; shift 2 ;;
    --iters-b1) iters1="$2"; shift 2 ;;
    --iters-batch) itersb="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --retrain) retrain=1; shift ;;
    *) echo "quant.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
data="$root/build/bench/learn-voc"
voc="$data/VOCdevkit/VOC2012"
if [ ! -f "$voc/ImageSets/Segmentation/train.txt" ]; then
  "${deeplab[@]}" data synth --out "$data" --count 300 --seed 1 >&2
fi
work="$root/build/bench/quant"
mkdir -p "$work"
# Calibration images: the first train images (never val), linked into a folder of their own.
rm -rf "$work/calibration"; mkdir -p "$work/calibration"
head -n "$calib" "$voc/ImageSets/Segmentation/train.txt" | while read -r id; do ln -s "$voc/JPEGImages/$id.jpg" "$work/calibration/$id.jpg"; done

results="$work/results.jsonl"; : > "$results"
record() { echo "$1" >> "$results"; }
evaluate() { # seed engine weights [precision]
  local json
  json=$("${deeplab[@]}" eval --weights "$3" --dataset synthetic --data-root "$data" --split val --threads "$threads" --workers 1 \
    --precision "${4:-float32}" --json --log-level warning --quiet | tr '\n' ' ')
  record "{\"kind\": \"miou\", \"seed\": $1, \"engine\": \"$2\", \"metrics\": $json}"
}
first="$work/seed$(echo $seeds | cut -d' ' -f1)"
timed() { # name, bench infer settings...
  local name="$1"; shift
  echo "quant: timing $name ..." >&2
  local out; out=$(/usr/bin/time -f "%M" -o "$work/rss.txt" "${deeplab[@]}" bench infer size=513 batch=8 "iters_b1=$iters1" "iters_batch=$itersb" --threads "$threads" "$@" | tr '\n' ' ')
  record "{\"kind\": \"speed\", \"engine\": \"$name\", \"peak_rss_kb\": $(tail -1 "$work/rss.txt"), \"bench\": $out}"
}
speed() { # the first seed: five engines at 513², batch 1 and 8; int8 activations exported to time them against uint8
"${deeplab[@]}" export --weights "$first/run/last.safetensors" --format onnx --output "$first/int8-s8.onnx" --quantize int8 \
  --calibration "$work/calibration" --calibration-count "$calib" --calibration-method "$method" --activations int8 --log-level warning >&2
  timed torch_float32 "weights=$first/run/last.safetensors"
timed torch_bf16 "weights=$first/run/last.safetensors" precision=bf16
timed ort_float32 "onnx=$first/float32.onnx"
timed ort_int8 "onnx=$first/int8.onnx"
timed ort_int8_s8 "onnx=$first/int8-s8.onnx"
}
for seed in $seeds; do
  dir="$work/seed$seed"; ckpt="$dir/run/last.safetensors"
  if [ ! -f "$ckpt" ] || [ "$retrain" = 1 ]; then
    rm -rf "$dir/run"; mkdir -p "$dir"
    echo "quant: training seed $seed for ${budget}s (learn benchmark recipe) ..." >&2
    start=$(date +%s)
    "${deeplab[@]}" train --dataset synthetic --data-root "$data" --backbone mobilenet --out-stride 16 --lr 0.007 \
      --crop-size 257 --base-size 257 --batch-size 8 --workers 2 --threads "$threads" --time-budget "$budget" \
      --eval-interval 1000000 --log-interval 10 --seed "$seed" --output "$dir/run" > "$dir/train.log" 2>&1 \
      || { tail -5 "$dir/train.log" >&2; exit 1; }
    echo "{\"seconds\": $(( $(date +%s) - start )), \"budget\": $budget}" > "$dir/trained.json"
  fi
  record "{\"kind\": \"trained\", \"seed\": $seed, \"info\": $(cat "$dir/trained.json")}"
  echo "quant: seed $seed: exports ..." >&2
  "${deeplab[@]}" export --weights "$ckpt" --format onnx --output "$dir/float32.onnx" --log-level warning >&2
  "${deeplab[@]}" export --weights "$ckpt" --format onnx --output "$dir/int8.onnx" --quantize int8 \
    --calibration "$work/calibration" --calibration-count "$calib" --calibration-method "$method" 2> "$dir/int8.log" >&2
  "${deeplab[@]}" export --weights "$ckpt" --format onnx --output "$dir/fp16.onnx" --quantize fp16 --log-level warning >&2
  record "{\"kind\": \"size\", \"seed\": $seed, \"checkpoint\": $(stat -c %s "$ckpt"), \"float32_onnx\": $(stat -c %s "$dir/float32.onnx"), \"int8_onnx\": $(stat -c %s "$dir/int8.onnx"), \"fp16_onnx\": $(stat -c %s "$dir/fp16.onnx")}"
  echo "quant: seed $seed: mIoU ..." >&2
  evaluate "$seed" torch_float32 "$ckpt" float32
  evaluate "$seed" torch_bf16 "$ckpt" bf16
  evaluate "$seed" ort_float32 "$dir/float32.onnx"
  evaluate "$seed" ort_int8 "$dir/int8.onnx"
  [ "$seed" = "$(echo $seeds | cut -d' ' -f1)" ] && speed
done

/usr/bin/python3 "$root/scripts/bench/quant_report.py" "$results" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
  "$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" "$budget" "$calib" "$method" "$threads"
