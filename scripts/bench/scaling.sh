#!/usr/bin/env bash
# How cost grows with the work: MobileNetV2 OS16 train-step time and inference latency against crop
# (257, 321, 513), batch (1, 2, 4, 8) and threads (1, 2), C# only (`deeplab bench scaling`). Prints one
# JSON document with each point's fraction of the machine's float32 peak, and writes the plot
# (scaling_plot.py, hand-written SVG) to docs/images/scaling.svg, or to SVG if given.
# PyTorch (tests/reference/model_bench.py, 2 threads, denormals flushed) is timed at a subset: forward at
# batch 1 and train step at batch 2 for each crop; python=false skips it (about 40 s).
# Usage: scripts/bench.sh scaling [SVG] [python=false] [key=value settings of `deeplab bench scaling`]
# About 3 minutes on a quiet 2-core machine, 4 under load (points over 2×513² batch × pixels are timed once, without a warm-up).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
svg="$root/docs/images/scaling.svg"
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then svg="$1"; shift; fi
python=true; settings=()
for a in "$@"; do
  case "$a" in python=*) python="${a#python=}" ;; *) settings+=("$a") ;; esac
done
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench scaling ${settings[@]+"${settings[@]}"})
tmp=$(mktemp); pytmp=$(mktemp); trap 'rm -f "$tmp" "$pytmp"' EXIT
printf '%s' "$ours" > "$tmp"
echo "[]" > "$pytmp"
if [ "$python" = true ]; then
  runs=()
  for crop in 257 321 513; do
    runs+=("$(/usr/bin/python3 "$root/tests/reference/model_bench.py" threads=2 forward_runs=3 train_steps=2 \
      "forward_size=$crop" "train_size=$crop" train_batch=2 flush_denormal=true)")
  done
  printf '%s\n' "${runs[@]}" | /usr/bin/python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()]))' > "$pytmp"
fi
mkdir -p "$(dirname "$svg")"
/usr/bin/python3 "$root/scripts/bench/scaling_plot.py" "$tmp" "$svg"
/usr/bin/python3 - "$tmp" "$svg" "$pytmp" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
py = json.load(open(sys.argv[3]))
MAC_513, PEAK_PER_CORE = 27.1e9, 190e9  # DESIGN facts; ~380 GFLOP/s float32 on the two cores (performance issue)
for p in ours["points"]:
    flops = 2 * MAC_513 * p["pixels_x_batch"] / (513 * 513)
    p["forward_peak_fraction"] = round(flops / (p["infer_ms_min"] / 1e3) / (PEAK_PER_CORE * p["threads"]), 3)
def python_subset(ours, py):
    """PyTorch 1.13 float32 eager (NCHW) at 2 threads against our point of the same crop and batch."""
    if not py:
        return "not run (python=false)"
    pts = {(p["threads"], p["crop"], p["batch"]): p for p in ours["points"]}
    rows = []
    for r in py:
        crop = int(r["forward_input"].split("x")[-1])
        fwd, step = pts.get((2, crop, 1)), pts.get((2, crop, 2))
        row = {"crop": crop, "python_forward_b1_ms_min": r["forward_ms_min"], "python_train_b2_ms_min": r["train_step_ms_min"]}
        if fwd:
            row["ratio_forward_b1_min"] = round(fwd["infer_ms_min"] / r["forward_ms_min"], 3)
        if step and step["train_step_ms_min"]:
            row["ratio_train_b2_min"] = round(step["train_step_ms_min"] / r["train_step_ms_min"], 3)
        rows.append(row)
    return {"points": rows, "note": "ratio = C# / PyTorch, fastest calls; ours infers channels-last with BatchNorm folded "
            "(as predict), PyTorch eager NCHW; both train NCHW"}
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
    "python": python_subset(ours, py),
}, indent=2))
PY
