#!/usr/bin/env bash
# Data-parallel training on this machine: DeepLabV3+ MobileNetV2 (OS16, 21 classes) train steps on
# random batches of BATCH per process at CROP, as 1 process (1 and 2 threads) and as 2 processes of
# 1 thread under mpirun, for C# (`deeplab bench ddp`: Open MPI, 25 MiB gradient buckets reduced after
# backward; also with --sync-bn) and PyTorch 1.13 (scripts/bench/ddp_reference.py: DistributedDataParallel
# over gloo, all-reduce overlapped with backward). Rounds are interleaved; medians are reported.
# Prints one JSON document: step time, all-reduce time per step, images/s, scaling efficiency
# (images/s of 2 processes / (2 × images/s of one 1-thread process)) and the C#/Python ratios.
# Usage: scripts/bench.sh ddp [crop=257] [batch=4] [steps=6] [warmup=2] [rounds=2]
# About 3 minutes per round on a quiet 2-core machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
crop=257; batch=4; steps=6; warmup=2; rounds=2
for a in "$@"; do
  case "$a" in
    crop=*) crop="${a#crop=}" ;; batch=*) batch="${a#batch=}" ;; steps=*) steps="${a#steps=}" ;;
    warmup=*) warmup="${a#warmup=}" ;; rounds=*) rounds="${a#rounds=}" ;;
    *) echo "ddp.sh: unknown setting '$a' (crop, batch, steps, warmup, rounds)" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "ddp.sh: mpirun is missing: apt-get install openmpi-bin libopenmpi3 (scripts/bootstrap.sh installs it)" >&2; exit 1; }
mpirun=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
deeplab=(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench ddp)
python=(/usr/bin/python3 "$root/scripts/bench/ddp_reference.py")
common=("crop=$crop" "batch=$batch" "steps=$steps" "warmup=$warmup")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
results="$tmp/results.jsonl"
run() { # NAME ROUND COMMAND...: appends {"name", "round", "result"} to the results
  local name=$1 round=$2; shift 2
  local out="$tmp/$name-$round.json"
  "$@" "out=$out" >"$tmp/log" 2>&1 || { echo "ddp.sh: $name failed:" >&2; cat "$tmp/log" >&2; exit 1; }
  printf '{"name": "%s", "round": %s, "result": %s}\n' "$name" "$round" "$(cat "$out")" >>"$results"
}
for r in $(seq 1 "$rounds"); do
  run csharp_1x1 "$r" "${deeplab[@]}" "${common[@]}" threads=1
  run python_1x1 "$r" "${python[@]}" "${common[@]}" threads=1
  run csharp_1x2 "$r" "${deeplab[@]}" "${common[@]}" threads=2
  run python_1x2 "$r" "${python[@]}" "${common[@]}" threads=2
  run csharp_2x1 "$r" "${mpirun[@]}" -np 2 "${deeplab[@]}" "${common[@]}" threads=1
  run python_2x1 "$r" "${mpirun[@]}" -np 2 "${python[@]}" "${common[@]}" threads=1
  run csharp_2x1_syncbn "$r" "${mpirun[@]}" -np 2 "${deeplab[@]}" "${common[@]}" threads=1 sync_bn=true
done
/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["name"], []).append(r["result"])
def med(name, key):
    vals = [x[key] for x in by[name] if x.get(key) is not None]
    return round(statistics.median(vals), 3) if vals else None
def best(name, key):
    vals = [x[key] for x in by[name] if x.get(key) is not None]
    return round(min(vals), 3) if vals else None
def side(prefix):
    cfg = {}
    for suffix in ("1x1", "1x2", "2x1", "2x1_syncbn"):
        name = f"{prefix}_{suffix}"
        if name not in by:
            continue
        cfg[suffix] = {k: med(name, k) for k in ("step_ms", "images_per_sec", "allreduce_ms_per_step", "allreduce_fraction",
                                                 "allreduce_gradient_ms", "allreduce_bus_gb_per_s") if med(name, k) is not None}
        cfg[suffix]["step_ms_min"] = best(name, "step_ms")
        if best(name, "allreduce_gradient_ms") is not None:
            cfg[suffix]["allreduce_gradient_ms_min"] = best(name, "allreduce_gradient_ms")
    def ips(k, key):
        c = cfg[k]
        return c["images_per_sec"] if key == "step_ms" else c["images_per_sec"] * c["step_ms"] / c["step_ms_min"]
    out = {"configs": cfg}
    for label, key in (("", "step_ms"), ("_fastest_rounds", "step_ms_min")):
        one, two, threads2 = ips("1x1", key), ips("2x1", key), ips("1x2", key)
        out["scaling_efficiency" + label] = round(two / (2 * one), 3)
        out["two_processes_vs_two_threads" + label] = round(two / threads2, 3)
    return out
cs, py = side("csharp"), side("python")
first = by["csharp_2x1"][0]
print(json.dumps({
    "benchmark": "ddp",
    "setup": {"model": "DeepLabV3+ MobileNetV2 OS16, 21 classes", "crop": first["crop"], "batch_per_process": first["batch_per_process"],
              "gradient_mb": first["gradient_mb"], "buckets": first["buckets"], "mpi": first["mpi"], "rounds": len(by["csharp_2x1"]),
              "configs": "PxT = P processes of T threads; 2x1 runs under mpirun on this machine"},
    "csharp": cs,
    "python": py,
    "ratio_step_time_csharp_over_python": {k: round(cs["configs"][k]["step_ms"] / py["configs"][k]["step_ms"], 3) for k in ("1x1", "1x2", "2x1")},
    "ratio_allreduce_csharp_over_python": round(cs["configs"]["2x1"]["allreduce_gradient_ms"] / py["configs"]["2x1"]["allreduce_gradient_ms"], 3),
    "note": "medians over the rounds; *_min and *_fastest_rounds use each configuration's fastest round (on a loaded machine the least disturbed). "
            "scaling_efficiency = images/s of 2 processes / (2 x images/s of one 1-thread process); both sides share the machine's 2 cores, "
            "so the 1x2 row is the same hardware as 2x1. PyTorch overlaps its all-reduce with backward; ours runs after backward "
            "(allreduce_ms_per_step includes packing the gradients into the bucket and back).",
}, indent=2))
PY
