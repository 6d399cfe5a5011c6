#!/usr/bin/env bash
# Configures and builds one CMake preset (debug, release or asan); the binary lands in
# build/<preset>/fluxlit. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-release}
bash scripts/install-deps.sh
if [[ ! -f "build/$preset/build.ninja" ]]; then
  cmake --preset "$preset" >/dev/null
fi
cmake --build --preset "$preset"
