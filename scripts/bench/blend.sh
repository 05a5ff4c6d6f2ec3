#!/usr/bin/env bash
# Poisson against alpha blending (matte --blend) on synthetic frames: median ms per frame, CG iterations,
# the seam error of both (PoissonBlend.SeamError) and the distance of the default answer to a converged one.
# Usage: scripts/bench.sh blend [SIZES=1280x720,1920x1080] [RUNS=5] [THREADS=2] [BAND=auto]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sizes="${1:-1280x720,1920x1080}"; runs="${2:-5}"; threads="${3:-2}"; band="${4:-auto}"
exec dotnet "$root/src/DeepLabTorch.Cli/bin/Release/net10.0/deeplab.dll" bench blend "sizes=$sizes" "runs=$runs" "band=$band" --threads "$threads"
