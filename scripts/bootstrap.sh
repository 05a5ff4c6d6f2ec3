#!/usr/bin/env bash
# Installs what DeepLabTorch needs on a Debian machine and builds it. Idempotent: every step is
# skipped when it is already done. Usage: scripts/bootstrap.sh [--quiet]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
say() { [ $quiet = 1 ] || echo "bootstrap: $*" >&2; }

# 1. Debian packages. libtorch (CPU, 1.13) is the engine; libopenblas0-openmp is the BLAS that shares
#    libtorch's OpenMP thread pool instead of fighting it (see docs/performance.md); the codecs and
#    ffmpeg serve data and video; python3-torch and friends produce golden files and baselines.
packages=(cmake g++ make pkg-config libtorch-dev libopenblas0-openmp libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev
          ffmpeg python3 python3-torch python3-torchvision python3-numpy python3-pil python3-scipy python3-onnx)
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

if ! command -v dotnet >/dev/null 2>&1; then
  echo "bootstrap: the .NET SDK (dotnet, version in global.json) is not on PATH; install it first." >&2
  exit 1
fi

# ONNX Runtime for the export tests comes from the npm registry (binaries ship inside the package;
# its download script is skipped). Without npm the ONNX Runtime tests report themselves skipped.
if [ ! -d tests/reference/node_modules/onnxruntime-node ] && command -v npm >/dev/null 2>&1; then
  say "installing onnxruntime-node for the ONNX export tests"
  (cd tests/reference && npm install --ignore-scripts --no-audit --no-fund >/dev/null 2>&1) \
    || echo "bootstrap: npm registry unreachable; ONNX Runtime tests will be skipped" >&2
fi

# 2. The native shim (C++ over libtorch). make rebuilds only what changed.
if [ ! -f build/native/CMakeCache.txt ]; then
  say "configuring the native library"
  cmake -S src/Native -B build/native -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
say "building the native library"
cmake --build build/native -j"$(nproc)" 2>&1 | { [ $quiet = 1 ] && grep -E "error|warning" || cat; } >&2 || true
test -f build/native/libdeeplabtorch_native.so || { echo "bootstrap: native build failed" >&2; exit 1; }

# 3. The .NET solution, when any source is newer than the last build.
stamp=build/.dotnet-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src tests configs Directory.Build.props Directory.Packages.props build/native/libdeeplabtorch_native.so -newer "$stamp" -type f -print -quit 2>/dev/null)" ]; then
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
