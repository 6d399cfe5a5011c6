#!/usr/bin/env bash
# Profiles fluxlit under load with callgrind, or counts its system calls with strace; see
# profile.py for the arguments. fluxlit runs on CPU 0 and the load on CPU 1, on 127.0.0.1.
#   bash scripts/bench/profile.sh callgrind api /trivial
#   bash scripts/bench/profile.sh syscalls proxy /static/bundle.js
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/install-deps.sh --bench
for tool in valgrind strace; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool is not installed; install it with: apt-get install -y $tool" >&2
    exit 1
  fi
done
if [[ " $* " != *" --binary "* && " $* " != *" --binary="* ]]; then
  bash scripts/build.sh release
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec taskset -c 1 /usr/bin/python3 scripts/bench/profile.py "$@"
