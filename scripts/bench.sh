#!/usr/bin/env bash
# Benchmarks, each printing one JSON document on stdout: scripts/bench.sh NAME [args]
# Names: the files in scripts/bench/ (overhead, model, loader, learn, infer, ddp). Python baselines
# run in the same process tree with Debian's /usr/bin/python3 (torch 1.13) and the same threads.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
if [ -z "$name" ] || [ ! -f "$root/scripts/bench/$name.sh" ]; then
  echo "usage: scripts/bench.sh NAME [args]   NAME is one of: $(ls "$root/scripts/bench" | sed 's/\.sh$//' | tr '\n' ' ')" >&2
  exit 2
fi
shift
"$root/scripts/bootstrap.sh" --quiet
exec bash "$root/scripts/bench/$name.sh" "$@"
