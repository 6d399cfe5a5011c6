#!/usr/bin/env bash
# Sets everything up and runs every test: the C++ unit tests, the Python package tests and the
# end-to-end tests that drive the real binary. Extra arguments go to ctest (e.g. -R e2e).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh debug
cd build/debug
ctest --output-on-failure -j "$(nproc)" "$@"
