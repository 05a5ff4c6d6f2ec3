#!/usr/bin/env bash
# Every benchmark short enough to run together, one after the other, combined into one JSON document:
# overhead, model (MobileNetV2 only), infer (float32 and bf16), loader and scaling. learn is left out
# (it trains both sides for 10 minutes each, ~20 minutes in all): run scripts/bench.sh learn on its own.
# Usage: scripts/bench.sh all [THREADS=2]. About 3–4 minutes on a quiet 2-core machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-2}"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run() {  # NAME FILE ARGS...: one benchmark's JSON into FILE, its progress on stderr
  local name="$1" file="$2"; shift 2
  echo "bench all: $name $*" >&2
  bash "$root/scripts/bench/$name.sh" "$@" > "$dir/$file"
}
run overhead overhead.json 100000 10000 "$threads"
run model model.json backbones=mobilenet "threads=$threads"
run infer infer_float32.json 513 8 10 3 "$threads" float32
run infer infer_bf16.json 513 8 10 3 "$threads" bf16
run loader loader.json
# The plot of this run goes next to the JSON, not over docs/images/scaling.svg.
run scaling scaling.json "$dir/scaling.svg" "threads=1,$threads"
/usr/bin/python3 - "$dir" "$started" "$threads" <<'PY'
import json, os, platform, sys
d, started, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
load = lambda f: json.load(open(os.path.join(d, f)))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(json.dumps({
    "benchmark": "all",
    "started_utc": started,
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "load_average_at_end": os.getloadavg()},
    "note": "each entry is that benchmark's own document (ratios are C# / PyTorch where it has a PyTorch side); "
            "figures on a shared machine are noisy",
    "excluded": {"learn": "trains C# and PyTorch for 10 minutes each (~20 minutes): run scripts/bench.sh learn separately"},
    "overhead": load("overhead.json"),
    "model": load("model.json"),
    "infer": {"float32": load("infer_float32.json"), "bf16": load("infer_bf16.json")},
    "loader": load("loader.json"),
    "scaling": load("scaling.json"),
}, indent=2))
PY
