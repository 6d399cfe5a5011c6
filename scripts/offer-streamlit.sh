#!/usr/bin/env bash
# Offers to install Streamlit into .venv (a virtual environment that can also import Debian's
# FastAPI). Exits 0 when .venv now has Streamlit, 1 when it was not installed; the caller then
# serves the API alone and the UI paths explain how to install Streamlit.
set -uo pipefail
cd "$(dirname "$0")/.."

python=${1:-/usr/bin/python3}
echo "Streamlit is not installed for $python."

# A .venv that this run creates is removed when it gets no Streamlit, also after an interrupt
# during the creation or at the prompt. A half-made one would block the next run.
created=0
trap '[[ $? -ne 0 && $created == 1 ]] && rm -rf .venv' EXIT
trap 'exit 130' INT TERM
if [[ ! -e .venv && ! -L .venv ]]; then
  created=1
  /usr/bin/python3 -m venv --system-site-packages .venv >/dev/null 2>&1 || {
    echo "Could not create .venv; the API is served without the UI."
    exit 1
  }
elif [[ ! -x .venv/bin/pip ]]; then
  # Someone else's environment: it is used as it is, never changed or removed here.
  echo ".venv exists but has no pip, so Streamlit cannot be installed into it. Install pip into"
  echo "it or remove it, then run this again. The API is served without the UI."
  exit 1
fi

# `pip index` queries the configured package index without downloading anything.
if ! timeout 20 .venv/bin/pip index versions streamlit --timeout 5 --retries 0 >/dev/null 2>&1; then
  echo "The Python package index cannot be reached from this machine, so Streamlit cannot be"
  echo "installed now. The API is served; UI paths answer 503 with install instructions."
  exit 1
fi

answer=n
if [[ "${FLUXLIT_INSTALL_STREAMLIT:-}" == 1 ]]; then
  answer=y
elif [[ -t 0 ]]; then
  read -r -p "Install Streamlit into .venv now? [y/N] " answer
else
  echo "Set FLUXLIT_INSTALL_STREAMLIT=1 to install it into .venv without a prompt."
fi
if [[ "$answer" =~ ^[Yy] ]]; then
  .venv/bin/pip install --quiet streamlit && exit 0
  echo "Installing Streamlit failed; the API is served without the UI."
fi
exit 1
