#!/usr/bin/env bash
# Loader workers against libtorch's intra-op pool, and --threads: `deeplab train` on the synthetic VOC
# set (MobileNetV2 OS16, crop 321, batch 4, the model benchmark's train shape, with real decoding and
# augmentation) for a few iterations at each (threads, workers) pair, rounds interleaved. Reports the
# median step time (from the metrics.jsonl running images/s, first two steps left out), the median
# wait for data, the process's CPU seconds per wall second, and the thread count the run reports.
# Usage: scripts/bench.sh threads [ITERS=10] [ROUNDS=2] [PAIRS="2:0 2:1 2:2 1:0 1:2"] [PRECISION=float32]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
iters="${1:-10}"; rounds="${2:-2}"; pairs="${3:-2:0 2:1 2:2 1:0 1:2}"; precision="${4:-float32}"
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
data="$root/build/bench/learn-voc"
if [ ! -f "$data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt" ]; then
  "${deeplab[@]}" data synth --out "$data" --count 300 --seed 1 >&2
fi
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
results=()
for r in $(seq 1 "$rounds"); do
  for p in $pairs; do
    t="${p%%:*}"; w="${p##*:}"; run="$dir/r$r-t$t-w$w"
    echo "threads: round $r, --threads $t --workers $w" >&2
    /usr/bin/time -f "%e %U %S" -o "$run.time" "${deeplab[@]}" train --dataset synthetic --data-root "$data" --backbone mobilenet \
      --crop-size 321 --base-size 321 --batch-size 4 --workers "$w" --threads "$t" --max-iters "$iters" --no-val --log-interval 1 \
      --precision "$precision" --output "$run" > "$run.log" 2>&1 || { tail -5 "$run.log" >&2; exit 1; }
    results+=("$t" "$w" "$run")
  done
done
/usr/bin/python3 - "$iters" "$precision" "${results[@]}" <<'PY'
import json, os, re, statistics, sys
iters, precision, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
runs = {}
for i in range(0, len(args), 3):
    t, w, run = int(args[i]), int(args[i + 1]), args[i + 2]
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    train = [l for l in lines if l["type"] == "train"]
    # images / running images-per-second = seconds since the epoch began, at each logged step.
    clock = [4 * (k + 1) / l["images_per_sec"] for k, l in enumerate(train)]
    steps = [1000 * (b - a) for a, b in zip(clock, clock[1:])][1:]
    waits = [l.get("data_wait_ms", 0) for l in train][2:]
    wall, user, sys_ = (float(v) for v in open(run + ".time").read().split()[-3:])
    reported = re.search(r"\((\w+), (\d+) threads\)", open(run + ".log").read())
    r = runs.setdefault(f"threads={t} workers={w}", {"threads": t, "workers": w, "step_ms": [], "data_wait_ms": [], "cpu_per_wall": [], "reported_threads": []})
    r["step_ms"].append(statistics.median(steps))
    r["data_wait_ms"].append(statistics.median(waits))
    r["cpu_per_wall"].append(round((user + sys_) / wall, 2))
    r["reported_threads"].append(int(reported.group(2)) if reported else None)
for r in runs.values():
    r["step_ms_median"] = round(statistics.median(r["step_ms"]), 1)
    r["step_ms"] = [round(v, 1) for v in r["step_ms"]]
    r["data_wait_ms_median"] = round(statistics.median(r["data_wait_ms"]), 2)
    r["data_wait_ms"] = [round(v, 2) for v in r["data_wait_ms"]]
base = runs.get("threads=2 workers=0")
if base:
    for r in runs.values():
        r["step_ratio_to_threads2_workers0"] = round(r["step_ms_median"] / base["step_ms_median"], 3)
print(json.dumps({
    "benchmark": "threads",
    "setup": {"model": "MobileNetV2 OS16", "crop": 321, "batch": 4, "iterations": iters, "precision": precision,
              "data": "synthetic VOC 500x375 JPEGs, decoded and augmented by the loader", "cpus": os.cpu_count(),
              "load_average_at_end": os.getloadavg()},
    "note": "step_ms: median of each run's per-step times (steps 3..N); cpu_per_wall: the process's CPU seconds per wall second "
            "(start-up included); reported_threads: the thread count the run logs (get_num_threads after --threads)",
    "runs": runs,
}, indent=2))
PY
