#!/usr/bin/env bash
# Learning at equal wall time: DeepLabV3+ MobileNetV2 OS16 trained on the synthetic VOC-format set
# (300 images of 500x375, 240 train / 60 val) at crop 257, batch 8, lr 0.007 (poly over the time
# budget, head at 10x), then evaluated on the val split at full image size. Ours (deeplab train
# --time-budget) against the project's own PyTorch script tests/reference/train_learn.py (same
# recipe, Debian's torch 1.13, 2 threads), one after the other on the same data. Prints one JSON.
# Options: --budget SECONDS (default 600), --quick (120 s), --crop N, --batch N, --max-val-images N,
# --seed N (both sides, default 1), --precision float32|bf16 (ours: train --precision), --no-python (ours only;
# the document then has no python side or ratio).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
budget=600; crop=257; batch=8; workers=2; threads=2; maxval=0; seed=1; precision=float32; python_side=1
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget="$2"; shift 2 ;;
    --quick) budget=120; shift ;;
    --crop) crop="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --max-val-images) maxval="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --no-python) python_side=0; shift ;;
    *) echo "learn.sh: unknown option $1 (use --budget S, --quick, --crop N, --batch N, --max-val-images N, --seed N, --precision P, --no-python)" >&2; exit 2 ;;
  esac
done
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
data="$root/build/bench/learn-voc"
if [ ! -f "$data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt" ]; then
  "${deeplab[@]}" data synth --out "$data" --count 300 --seed 1 >&2
fi
run="$root/build/bench/learn-run"
rm -rf "$run"
valflag=(); pyval=()
if [ "$maxval" != 0 ]; then valflag=(--max-val-images "$maxval"); pyval=(--max-val-images "$maxval"); fi

echo "learn: ours ($precision, seed $seed), ${budget}s of training ..." >&2
"${deeplab[@]}" train --dataset synthetic --data-root "$data" --backbone mobilenet --out-stride 16 --lr 0.007 \
  --crop-size "$crop" --base-size "$crop" --batch-size "$batch" --workers "$workers" --threads "$threads" \
  --time-budget "$budget" --eval-interval 1000000 --log-interval 1 --seed "$seed" --precision "$precision" \
  --output "$run" ${valflag[@]+"${valflag[@]}"} > "$run.log" 2>&1 \
  || { tail -5 "$run.log" >&2; exit 1; }

python="{}"
if [ "$python_side" = 1 ]; then
  echo "learn: python reference (seed $seed), ${budget}s of training ..." >&2
  python=$(OMP_NUM_THREADS=$threads /usr/bin/python3 "$root/tests/reference/train_learn.py" --data-root "$data" --budget "$budget" \
    --crop-size "$crop" --base-size "$crop" --batch-size "$batch" --workers "$workers" --threads "$threads" --seed "$seed" ${pyval[@]+"${pyval[@]}"})
fi

/usr/bin/python3 - "$run/metrics.jsonl" "$python" "$budget" "$crop" "$batch" "$seed" "$precision" <<'PY'
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
summary = [l for l in lines if l["type"] == "summary"][-1]
ev = [l for l in lines if l["type"] == "eval"][-1]
train = [l for l in lines if l["type"] == "train"]
ours = {
    "miou": ev["miou"], "pixel_acc": ev["pixel_acc"], "iterations": summary["iterations"],
    "images_per_sec": summary["images_per_sec"], "eval_seconds": ev["seconds"], "val_images": ev["images"],
    "precision": sys.argv[7], "data_wait_seconds": summary.get("data_wait_seconds"),
    # Means of the first and last 10 iterations' losses, as the Python side reports them.
    "first_loss": sum(t["loss"] for t in train[:10]) / len(train[:10]) if train else None,
    "last_loss": sum(t["loss"] for t in train[-10:]) / len(train[-10:]) if train else None,
}
py = json.loads(sys.argv[2])
r = lambda k: round(ours[k] / py[k], 3) if py.get(k) else None
print(json.dumps({
    "benchmark": "learn",
    "setup": {"model": "DeepLabV3+ MobileNetV2 OS16, 21 classes, from scratch", "data": "synthetic VOC 300 images 500x375 (240 train / 60 val)",
              "crop": int(sys.argv[4]), "batch": int(sys.argv[5]), "lr": 0.007, "schedule": "poly over the time budget, head 10x",
              "budget_seconds": float(sys.argv[3]), "threads": 2, "cpus": os.cpu_count(), "eval": "full image size, batch 1, float32",
              "seed": int(sys.argv[6]), "load_average_at_end": os.getloadavg()},
    "ours": ours,
    "python": py,
    "ratio": {"miou": r("miou"), "images_per_sec": r("images_per_sec"), "iterations": r("iterations")} if py else None,
    "goal": "ours reaches a higher mIoU than the Python pipeline at equal wall time",
}, indent=2))
PY
