#!/usr/bin/env bash
# Profiles fluxlit under load with callgrind or perf, or counts its system calls with strace.
# See profile.py for the arguments. fluxlit runs on CPU 0 and the load on CPU 1, on 127.0.0.1.
#   bash scripts/bench/profile.sh callgrind api /trivial
#   bash scripts/bench/profile.sh syscalls proxy /static/bundle.js
#   bash scripts/bench/profile.sh cpu api /items
#   bash scripts/bench/profile.sh app api /trivial
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/install-deps.sh --bench
case "${1:-}" in
  callgrind) tool=valgrind package=valgrind ;;
  syscalls) tool=strace package=strace ;;
  cpu) tool=perf package=linux-perf ;;
  *) tool="" ;;  # profile.py reports the bad mode
esac
if [[ -n "$tool" ]] && ! command -v "$tool" >/dev/null; then
  echo "error: $tool is not installed. Install it with: apt-get install -y $package" >&2
  exit 1
fi
if [[ " $* " != *" --binary "* && " $* " != *" --binary="* ]]; then
  bash scripts/build.sh release
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec taskset -c 1 /usr/bin/python3 scripts/bench/profile.py "$@"
