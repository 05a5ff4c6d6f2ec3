#!/usr/bin/env bash
# Per-call overhead: 100k adds of 1-element tensors and 10k conv2d on 1x8x8x8, C# vs Python.
# Usage: scripts/bench.sh overhead [ADDS] [CONVS] [THREADS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
adds="${1:-100000}"; convs="${2:-10000}"; threads="${3:-2}"
ours=$(dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench overhead "adds=$adds" "convs=$convs" --threads "$threads")
python=$(/usr/bin/python3 "$root/scripts/bench/overhead_reference.py" "$adds" "$convs" "$threads")
/usr/bin/python3 - "$ours" "$python" <<'PY'
import json, sys
ours, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratio = lambda k: round(ours[k] / py[k], 3)
print(json.dumps({"benchmark": "overhead", "csharp": ours, "python": py,
                  "ratio_csharp_over_python": {"add": ratio("add_us_per_call"), "conv2d": ratio("conv2d_us_per_call")}}, indent=2))
PY
