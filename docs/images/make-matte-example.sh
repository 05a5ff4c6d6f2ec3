#!/usr/bin/env bash
# Rebuilds docs/images/matte-example.png with the project itself: synthetic portraits, a small portrait
# model trained on them, `deeplab matte` over a synthetic VOC scene. Python/PIL only lays out the panels.
# Usage: docs/images/make-matte-example.sh [WORKDIR] [EPOCHS]   (roughly 10 to 30 CPU-minutes with the defaults)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-/tmp/deeplab-matte-example}"; epochs="${2:-12}"
deeplab() { dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" "$@"; }
"$root/scripts/bootstrap.sh" --quiet
mkdir -p "$work"
deeplab data synth --kind portrait --out "$work/portrait" --count 160 --width 160 --height 120 --seed 3
deeplab data synth --kind portrait --out "$work/examples" --count 4 --width 160 --height 120 --seed 77
deeplab data synth --kind voc --out "$work/scenes" --count 2 --width 160 --height 120 --seed 5
[ -f "$work/run/last.safetensors" ] || deeplab train --backbone mobilenet --dataset folder --data-root "$work/portrait" \
  --num-classes 2 --base-size 120 --crop-size 113 --batch-size 8 --epochs "$epochs" --lr 0.02 --eval-interval 8 \
  --workers 1 --output "$work/run"
scene=$(ls "$work"/scenes/VOCdevkit/VOC2012/JPEGImages/*.jpg | head -1)
deeplab matte --weights "$work/run/last.safetensors" --input "$work/examples/images" --background "$scene" \
  --output "$work/matted" --save-alpha --quiet
/usr/bin/python3 - "$work" "$root/docs/images/matte-example.png" <<'PY'
import glob, os, sys
from PIL import Image
work, out = sys.argv[1], sys.argv[2]
stems = [os.path.basename(p)[:-4] for p in sorted(glob.glob(f"{work}/examples/images/*.jpg"))[:3]]
sheet = Image.new("RGB", (160 * len(stems), 360))
for i, s in enumerate(stems):
    sheet.paste(Image.open(f"{work}/examples/images/{s}.jpg").convert("RGB"), (160 * i, 0))
    sheet.paste(Image.open(f"{work}/matted/{s}_alpha.png").convert("RGB"), (160 * i, 120))
    sheet.paste(Image.open(f"{work}/matted/{s}.png").convert("RGB"), (160 * i, 240))
# A 256-colour palette keeps the PNG small for the README.
sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
print(out, os.path.getsize(out), "bytes")
PY
