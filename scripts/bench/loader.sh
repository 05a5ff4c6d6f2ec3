#!/usr/bin/env bash
# Loader throughput: training-augmented images/s at crop 513 on synthetic VOC-format JPEGs (500x375),
# ours (deeplab data bench) against a torch DataLoader + PIL with the same transforms, at 1, 2 and 4
# workers, in the same run. Prints one JSON document. Options: --batches N (default 10), --no-blur.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
batches=10; blur=1; workers="1,2,4"; batch=4; crop=513
while [ $# -gt 0 ]; do
  case "$1" in
    --batches) batches="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --no-blur) blur=0; shift ;;
    *) echo "loader.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
data="$root/build/bench/loader-voc"
if [ ! -f "$data/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt" ]; then
  dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" data synth --out "$data" --count 60 --seed 1 >&2
fi
blur_ours=(); blur_py=()
if [ $blur = 1 ]; then blur_py=(--blur); fi
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" data bench --dataset pascal --data-root "$data" \
  --workers "$workers" --crop-size $crop --base-size $crop --batch-size $batch --batches "$batches" $([ $blur = 1 ] && echo --blur))
python=$(/usr/bin/python3 "$root/scripts/bench/loader_reference.py" "$data" --workers "$workers" --crop $crop --base $crop \
  --batch $batch --batches "$batches" "${blur_py[@]}")
/usr/bin/python3 - "$ours" "$python" "$blur" "$batch" "$crop" <<'PY'
import json, os, sys
ours, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({
    "benchmark": "loader",
    "unit": "training-augmented images per second",
    "setup": {"crop": int(sys.argv[5]), "base": int(sys.argv[5]), "batch": int(sys.argv[4]), "images": "synthetic VOC JPEG 500x375",
              "gaussian_blur": sys.argv[3] == "1", "cpus": os.cpu_count()},
    "ours": ours,
    "python": py,
    "ratio": {w: round(ours[w] / py[w], 2) for w in ours if w in py and py[w] > 0},
    "goal": ">= 1.5 at equal workers",
}, indent=2))
PY
