#!/usr/bin/env bash
# Benchmarks FluxLit's API path against uvicorn serving the same FastAPI app, plus the app's
# in-process ceiling. Servers run on CPU 0 and wrk on CPU 1, all on 127.0.0.1. A full run
# takes about 8 minutes plus the build. Extra arguments go to asgi_bench.py: --rounds,
# --duration, --connections, --ceiling-requests, --binary, --output FILE, --append FILE (for
# example --append docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Measure the current sources (see prepare.sh for --binary).
source scripts/bench/prepare.sh "$@"
# Ask for 65536 file descriptors; where the hard limit is lower, take the hard limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The driver sleeps while wrk runs; keep it off the servers' CPU.
exec taskset -c 1 /usr/bin/python3 scripts/bench/asgi_bench.py "$@"
