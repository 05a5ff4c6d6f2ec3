#!/usr/bin/env bash
# Installs what DeepLabTorch needs on a Debian machine and builds it. Idempotent: every step is
# skipped when it is already done. Usage: scripts/bootstrap.sh [--quiet]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
say() { [ $quiet = 1 ] || echo "bootstrap: $*" >&2; }

# Several copies at once (`mpirun -np N scripts/deeplab ...` starts one per process): one works while
# the others wait for its lock, and then find everything done.
if [ -z "${DEEPLAB_BOOTSTRAP_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  mkdir -p build
  export DEEPLAB_BOOTSTRAP_LOCKED=1
  exec flock build/.bootstrap.lock "$0" "$@"
fi

# 0. The .NET SDK comes first: without it nothing below is of use.
if ! command -v dotnet >/dev/null 2>&1; then
  echo "bootstrap: the .NET SDK (dotnet, version in global.json) is not on PATH; install it first." >&2
  exit 1
fi

# 1. Debian packages. The engine (TorchSharp + libtorch) comes from NuGet, so no compiler or -dev
#    package is needed: ffmpeg serves video; python3-torch and friends make golden files and baselines,
#    with OpenBLAS (OpenMP build) as the BLAS of the Python baselines, as PyTorch users have it; Open MPI
#    (mpirun and libmpi.so.40) runs data-parallel training and its tests; time (/usr/bin/time) times the benchmarks;
#    chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) drive serve's page headless in its
#    browser test (tests/DeepLabTorch.Tests/Serving/PageBrowserTests.cs), which Selenium is never let to download.
packages=(time ffmpeg libopenblas0-openmp python3 python3-torch python3-torchvision python3-numpy python3-pil python3-scipy python3-onnx openmpi-bin libopenmpi3
  chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The .NET solution, when any source is newer than the last build. The first build restores
#    TorchSharp and libtorch for linux-x64, win-x64 and osx-arm64 (a 270 MB download) from NuGet; the build copies
#    this machine's natives and tools/ElfFix then patches them (src/DeepLabTorch/buildTransitive/DeepLabTorch.targets).
stamp=build/.dotnet-stamp
mkdir -p build
if [ ! -f "$stamp" ] || [ -n "$(find src tests tools configs Directory.Build.props Directory.Build.targets Directory.Packages.props -newer "$stamp" -type f -not -path '*/bin/*' -not -path '*/obj/*' -print -quit 2>/dev/null)" ]; then
  [ -f "$stamp" ] || echo "bootstrap: first build: restoring TorchSharp and libtorch (~270 MB download) from NuGet, a few minutes" >&2
  say "building the .NET solution"
  log=$(mktemp)
  if ! dotnet build DeepLabTorch.sln -c Release -nologo -v quiet >"$log" 2>&1; then
    grep -E "error" "$log" | sort -u >&2 || cat "$log" >&2
    rm -f "$log"
    echo "bootstrap: the .NET build failed" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
