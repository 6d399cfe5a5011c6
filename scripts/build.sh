#!/usr/bin/env bash
# Configures and builds one CMake preset (debug, release or asan), and only the named targets
# when more arguments follow; the binary lands in build/<preset>/fluxlit. Installs missing
# Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-release}
shift $(( $# > 0 ? 1 : 0 ))
bash scripts/install-deps.sh
if [[ ! -f "build/$preset/build.ninja" ]]; then
  cmake --preset "$preset" >/dev/null
fi
# Further arguments name targets, e.g. `fluxlit` alone; by default everything is built.
cmake --build --preset "$preset" ${1:+--target "$@"}
