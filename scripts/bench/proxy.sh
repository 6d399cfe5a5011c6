#!/usr/bin/env bash
# Benchmarks FluxLit's proxy path against nginx and against no proxy, in front of the same
# Tornado upstream: a health route, a 300 KiB file, WebSocket echo, and the memory of 1,000
# idle WebSockets. Servers run on CPU 0 and load on CPU 1, all on 127.0.0.1. A full run takes
# about 6 minutes plus the build. Extra arguments go to proxy_bench.py: --rounds, --duration,
# --connections, --ws-connections, --idle-connections, --binary, --output FILE, --append FILE.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Measure the current sources (see prepare.sh for --binary).
source scripts/bench/prepare.sh "$@"
# 1,000 WebSockets through a gateway hold about 3,000 descriptors across the processes. Ask for
# 65536; where the hard limit is lower, take the hard limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < 4096 )); then
  echo "error: the open-file limit is $(ulimit -n); the idle-WebSocket test needs 4096" >&2
  exit 1
fi
# The driver sleeps while the load runs; keep it off the servers' CPU.
exec taskset -c 1 /usr/bin/python3 scripts/bench/proxy_bench.py "$@"
