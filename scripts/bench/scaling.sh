#!/usr/bin/env bash
# How cost grows with the work: MobileNetV2 OS16 train-step time and inference latency against crop
# (257, 321, 513), batch (1, 2, 4, 8) and threads (1, 2), C# only (`deeplab bench scaling`). Prints one
# JSON document with each point's fraction of the machine's float32 peak, and writes the plot
# (scaling_plot.py, hand-written SVG) to docs/images/scaling.svg, or to SVG if given.
# Usage: scripts/bench.sh scaling [SVG] [key=value settings of `deeplab bench scaling`]
# About 3 minutes on a quiet 2-core machine, 4 under load (points over 2×513² batch × pixels are timed once, without a warm-up).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
svg="$root/docs/images/scaling.svg"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then svg="$1"; shift; fi
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench scaling "$@")
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
printf '%s' "$ours" > "$tmp"
mkdir -p "$(dirname "$svg")"
/usr/bin/python3 "$root/scripts/bench/scaling_plot.py" "$tmp" "$svg"
/usr/bin/python3 - "$tmp" "$svg" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
MAC_513, PEAK_PER_CORE = 27.1e9, 190e9  # DESIGN facts; ~380 GFLOP/s float32 on the two cores (performance issue)
for p in ours["points"]:
    flops = 2 * MAC_513 * p["pixels_x_batch"] / (513 * 513)
    p["forward_peak_fraction"] = round(flops / (p["infer_ms_min"] / 1e3) / (PEAK_PER_CORE * p["threads"]), 3)
best = max(ours["points"], key=lambda p: p["forward_peak_fraction"])
at513 = [p for p in ours["points"] if p["crop"] == 513 and p["batch"] == 1]
print(json.dumps({
    "benchmark": "scaling",
    "csharp": ours,
    "peak": {"forward_gmac_at_513": 27.1, "float32_peak_gflops_per_core": 190,
             "note": "forward_peak_fraction = 2 x MACs / best time / (190 GFLOP/s x threads); the MACs scale with pixels x batch",
             "forward_513_batch1": {str(p["threads"]): p["forward_peak_fraction"] for p in at513},
             "best": {k: best[k] for k in ("threads", "crop", "batch", "forward_peak_fraction")}},
    "plot": sys.argv[2],
    "python": "not run (C# only; PyTorch's scaling would double the run time)",
}, indent=2))
PY
