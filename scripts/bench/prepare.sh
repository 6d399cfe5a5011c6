# Sourced by the benchmark scripts: installs the benchmark packages, rebuilds the release binary
# unless the arguments name one with --binary, and checks that the machine has 2 CPUs.
bash scripts/install-deps.sh --bench
if [[ " $* " != *" --binary "* && " $* " != *" --binary="* ]]; then
  bash scripts/build.sh release
fi
if (( $(nproc) < 2 )); then
  echo "error: the benchmark needs 2 CPUs (servers on CPU 0, load on CPU 1); nproc is $(nproc)" >&2
  exit 1
fi
