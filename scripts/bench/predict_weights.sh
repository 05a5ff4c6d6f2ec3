#!/usr/bin/env bash
# The weights that the predict and serve benchmarks time: MobileNetV2 OS16, 21 classes, 60 iterations at crop 129 on
# the synthetic set. Made once, in build/bench/predict/weights.safetensors; prints that path.
# Usage: scripts/bench/predict_weights.sh [THREADS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-2}"
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
work="$root/build/bench/predict"
weights="$work/weights.safetensors"
if [ ! -f "$weights" ]; then
  mkdir -p "$work"
  data="$root/build/bench/learn-voc"
  [ -f "$data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt" ] || "${deeplab[@]}" data synth --out "$data" --count 300 --seed 1 >&2
  echo "bench: training the benchmark's weights (60 iterations at crop 129) ..." >&2
  rm -rf "$work/train"
  "${deeplab[@]}" train --dataset synthetic --data-root "$data" --backbone mobilenet --lr 0.01 --crop-size 129 --base-size 160 \
    --batch-size 8 --workers 2 --threads "$threads" --max-iters 60 --no-val --output "$work/train" > "$work/train.log" 2>&1 \
    || { tail -5 "$work/train.log" >&2; exit 1; }
  cp "$work/train/last.safetensors" "$weights"
fi
echo "$weights"
