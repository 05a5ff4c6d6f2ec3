#!/usr/bin/env bash
# What the CPU-kernel guard costs (docs/cpu-kernels.md):
#  1. the known-answer check under each configuration, as a first run pays it: one child process,
#     .NET and libtorch start-up included; and a command's whole start (`deeplab info`) with no cached
#     verdict against one with the verdict cached;
#  2. what each configuration costs the network: `deeplab bench model` (forward 1x3x513x513 in eval mode and
#     the train step at 4x3x321x321, channels-last as predict and train run) under DEEPLAB_CPU_KERNELS=CONFIG,
#     in float32 and in bf16, against PyTorch 1.13 (tests/reference/model_bench.py, float32 eager; with bf16,
#     autocast + channels_last) in the same run at the same threads.
# Usage: scripts/bench.sh kernels [THREADS=2] [CONFIGS="default onednn-cache-guesses mkldnn-off isa-avx"]
#        [BACKBONE=mobilenet] [FORWARD_RUNS=5] [TRAIN_STEPS=3]
# onednn-cache-guesses on a machine whose caches oneDNN reads correctly shows what the guesses cost there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-2}"; configs="${2:-default onednn-cache-guesses mkldnn-off isa-avx}"; backbone="${3:-mobilenet}"
runs="${4:-5}"; steps="${5:-3}"
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll")
cache=$(mktemp -d); trap 'rm -rf "$cache"' EXIT
seconds() { local s=$EPOCHREALTIME; "$@" > /dev/null 2>&1 || true; /usr/bin/python3 -c "print($EPOCHREALTIME - $s)"; }
check=()
for c in $configs; do
  check+=("$c" "$(seconds "${deeplab[@]}" __kernel-check "$c" "$threads")")
done
first=$(seconds env XDG_CACHE_HOME="$cache" "${deeplab[@]}" info --threads "$threads")
cached=$(seconds env XDG_CACHE_HOME="$cache" "${deeplab[@]}" info --threads "$threads")
common=("backbone=$backbone" "threads=$threads" "forward_runs=$runs" "train_steps=$steps" "flush_denormal=true")
results=()
for c in $configs; do
  echo "kernels: $c" >&2
  f32=$(env DEEPLAB_CPU_KERNELS="$c" "${deeplab[@]}" bench model "${common[@]}")
  bf16=$(env DEEPLAB_CPU_KERNELS="$c" "${deeplab[@]}" bench model "${common[@]}" precision=bf16)
  results+=("$c" "$f32" "$bf16")
done
py=$(/usr/bin/python3 "$root/tests/reference/model_bench.py" "${common[@]}")
pybf16=$(env MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 /usr/bin/python3 "$root/tests/reference/model_bench.py" "${common[@]}" precision=bf16)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs)
/usr/bin/python3 - "$cpu" "$family" "$threads" "$first" "$cached" "$py" "$pybf16" "${check[@]}" -- "${results[@]}" <<'PY'
import json, sys
a = sys.argv[1:]
cpu, family, threads, first, cached, py, pybf16 = a[0], a[1], int(a[2]), float(a[3]), float(a[4]), json.loads(a[5]), json.loads(a[6])
rest = a[7:]
sep = rest.index("--")
check, res = rest[:sep], rest[sep + 1:]
out = {
    "benchmark": "kernels",
    "cpu": f"{cpu} (cpu family {family})",
    "threads": threads,
    "check_seconds_per_configuration": {check[i]: round(float(check[i + 1]), 2) for i in range(0, len(check), 2)},
    "info_seconds_first_run": round(first, 2),
    "info_seconds_cached": round(cached, 2),
    "python": {"forward_ms_median": py["forward_ms_median"], "train_step_ms_median": py["train_step_ms_median"],
               "bf16_levers_forward_ms_median": pybf16["forward_ms_median"], "bf16_levers_train_step_ms_median": pybf16["train_step_ms_median"]},
    "configurations": {},
    "note": "ratios are ours / PyTorch (float32 eager; bf16 against PyTorch autocast + channels_last + heap setting); below 1 favours ours",
}
for i in range(0, len(res), 3):
    c, f, b = res[i], json.loads(res[i + 1]), json.loads(res[i + 2])
    out["configurations"][c] = {
        "float32_forward_ms": f["forward_ms_median"], "float32_train_step_ms": f["train_step_ms_median"],
        "bf16_forward_ms": b["forward_ms_median"], "bf16_train_step_ms": b["train_step_ms_median"],
        "ratio_float32_forward": round(f["forward_ms_median"] / py["forward_ms_median"], 3),
        "ratio_float32_train_step": round(f["train_step_ms_median"] / py["train_step_ms_median"], 3),
        "ratio_bf16_forward": round(b["forward_ms_median"] / pybf16["forward_ms_median"], 3),
        "ratio_bf16_train_step": round(b["train_step_ms_median"] / pybf16["train_step_ms_median"], 3),
    }
print(json.dumps(out, indent=2))
PY
