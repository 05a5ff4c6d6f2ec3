#!/usr/bin/env bash
# `deeplab serve` under load on loopback (issue 23): `deeplab bench serve` starts the server (--port 0, --max-batch 8,
# --threads THREADS), POSTs a fixed set of SIZE² synthetic JPEGs to /v1/segment from 1, 4 and 16 concurrent HttpClient
# clients (REQUESTS per level and round, after a warm-up at that level) and reports per level p50/p95/p99 latency, images/s,
# errors, the batches the server formed and its VmRSS before and after; then runs `deeplab predict --batch-size 8` on
# the same images. One JSON document with the CPU, the load average and the goals: at concurrency 16 at least 0.9x
# predict's batched rate, and p99 at most 3x p50 at concurrency 1. The weights are predict.sh's (MobileNetV2 OS16,
# 21 classes, 60 training iterations on the synthetic set; trained here when absent).
# Usage: scripts/bench.sh serve [--quick] [--size 513] [--count 48] [--requests 48] [--levels 1,4,16] [--max-batch 8]
#        [--max-wait-ms 10] [--threads 2] [--precision float32] [--rounds 3] [--predict-batch 8]
# Each round runs the three levels, then predict on a batch's worth of the images and on all of them (the steady rate
# is the difference); the ratio of the goal is each round's c16 over that round's predict, median over the rounds.
# --quick: 16 images, 24 requests per level, 1 round, for a smoke run of a minute or two.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size=513; count=48; requests=48; levels=1,4,16; maxbatch=8; maxwait=10; threads=2; precision=float32; rounds=3; pbatch=8
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) count=16; requests=24; rounds=1; shift ;;
    --size) size="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --levels) levels="$2"; shift 2 ;;
    --max-batch) maxbatch="$2"; shift 2 ;;
    --max-wait-ms) maxwait="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --predict-batch) pbatch="$2"; shift 2 ;;
    *) echo "serve.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
# The weights predict.sh times (the same recipe and file, made once for both).
weights=$("$root/scripts/bench/predict_weights.sh" "$threads")
images="$root/build/bench/serve/images-$size"
jpegs="$images/VOCdevkit/VOC2012/JPEGImages"
if [ ! -d "$jpegs" ] || [ "$(ls "$jpegs" | wc -l)" -lt "$count" ]; then
  rm -rf "$images"
  "${deeplab[@]}" data synth --out "$images" --count "$count" --seed 2 --width "$size" --height "$size" >&2
fi
exec "${deeplab[@]}" bench serve "weights=$weights" "images=$jpegs" "count=$count" "requests=$requests" "levels=$levels" \
  "max_batch=$maxbatch" "max_wait_ms=$maxwait" "precision=$precision" "predict_batch=$pbatch" "rounds=$rounds" --threads "$threads"
