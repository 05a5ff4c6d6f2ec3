#!/usr/bin/env bash
# DeepLabV3+ forward latency (1x3x513x513, eval), train-step time (4x3x321x321: forward, loss,
# backward, SGD step) and peak RSS per backbone at output stride 16: C# (`deeplab bench model`, over
# DeepLabTorch.Models.ModelBenchmark) vs the PyTorch reference (tests/reference/model_bench.py),
# each backbone in its own process, both at the same thread count; prints one JSON document.
# Usage: scripts/bench.sh model [backbones=NAME,NAME (default: every backbone of the catalogue, as deeplab info lists them)] [threads=2] [forward_runs=5]
#        [train_steps=3] [warmup=1] [channels_last=true|false] [os=16] [precision=float32|bf16]
#        [grad_to_none=true|false] [flush_denormal=true|false]
# Denormals are flushed on both sides unless flush_denormal=false (random weights push eval-mode
# activations into them). precision=bf16 is our mixed precision against PyTorch's CPU autocast.
# Our side keeps freed native memory (NativeHeap, as every deeplab command does). PyTorch runs with glibc's
# defaults ("python"), and again with the same heap setting through the environment ("python_heap",
# MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647: what a PyTorch user can switch on too), so a lead
# that comes from that lever shows; python_heap=false skips the second run. With precision=bf16 the PyTorch
# run (autocast + channels_last) is PyTorch with its levers, so it gets the heap setting too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
backbones=""
settings=("threads=2" "flush_denormal=true")
python_heap=true; bf16=false
heap_env=(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647)
for a in "$@"; do
  case "$a" in
    backbones=*) backbones="${a#backbones=}" ;;
    python_heap=*) python_heap="${a#python_heap=}" ;;
    precision=bf16) bf16=true; settings+=("$a") ;;
    *=*) settings+=("$a") ;;
    *) echo "model.sh: settings are key=value, got '$a'" >&2; exit 2 ;;
  esac
done
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
# The catalogue names its backbones (Models/ModelCatalog); a new one is benchmarked without editing this script.
[ -n "$backbones" ] || backbones=$("${deeplab[@]}" info | sed -n 's/^backbones: //p' | tr -d ' ')
[ -n "$backbones" ] || { echo "model.sh: deeplab info listed no backbones" >&2; exit 1; }
results=()
for b in ${backbones//,/ }; do
  cs=$("${deeplab[@]}" bench model "backbone=$b" "${settings[@]}")
  if [ "$bf16" = true ]; then
    py=$(env "${heap_env[@]}" /usr/bin/python3 "$root/tests/reference/model_bench.py" "backbone=$b" "${settings[@]}")
  else
    py=$(/usr/bin/python3 "$root/tests/reference/model_bench.py" "backbone=$b" "${settings[@]}")
  fi
  pyheap="{}"
  if [ "$python_heap" = true ] && [ "$bf16" = false ]; then
    pyheap=$(env "${heap_env[@]}" /usr/bin/python3 "$root/tests/reference/model_bench.py" "backbone=$b" "${settings[@]}")
  fi
  results+=("$b" "$cs" "$py" "$pyheap")
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
out = {"benchmark": "model", "note": "ratio = C# / Python; medians (and minima) of the timed runs; below 1 means C# is faster",
       "backbones": {}}
def ratios(cs, py):
    r = lambda k: round(cs[k] / py[k], 3) if py[k] else None
    return {"forward_median": r("forward_ms_median"), "forward_min": r("forward_ms_min"),
            "train_step_median": r("train_step_ms_median"), "train_step_min": r("train_step_ms_min"),
            "peak_rss": r("peak_rss_mb")}
for i in range(0, len(args), 4):
    name, cs, py, pyheap = args[i], json.loads(args[i + 1]), json.loads(args[i + 2]), json.loads(args[i + 3])
    entry = {"csharp": cs, "python": py, "ratio_csharp_over_python": ratios(cs, py)}
    if pyheap:
        entry["python_heap"] = pyheap
        entry["ratio_csharp_over_python_heap"] = ratios(cs, pyheap)
    out["backbones"][name] = entry
print(json.dumps(out, indent=2))
PY
