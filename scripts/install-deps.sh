#!/usr/bin/env bash
# Installs every Debian bookworm package that FluxLit builds, tests and benchmarks with.
# Safe to run again: when everything is present it prints nothing and exits 0.
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev pybind11-dev python3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev prometheus-cpp-dev libcli11-dev libgtest-dev libgmock-dev
)
python_packages=(
  python3-fastapi python3-httpx python3-pytest python3-websockets python3-tornado
  python3-uvloop python3-venv
)
test_packages=(curl procps util-linux)

wanted=("${build_packages[@]}" "${python_packages[@]}" "${test_packages[@]}")
if [[ "${1-}" == "--bench" ]]; then
  wanted+=(wrk nginx-light python3-uvicorn python3-httptools)
fi

missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
