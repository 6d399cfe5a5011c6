#!/usr/bin/env bash
# Sets everything up, builds the release binary and serves the example app on port 8000:
# the API at http://127.0.0.1:8000/api, the Streamlit UI at http://127.0.0.1:8000/.
# Extra arguments go to `fluxlit dev` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."

# The example needs the binary only, not the unit tests.
bash scripts/build.sh release fluxlit

python=${FLUXLIT_PYTHON:-}
if [[ -z "$python" && -n "${VIRTUAL_ENV:-}" ]]; then python="$VIRTUAL_ENV/bin/python"; fi
if [[ -z "$python" && -x .venv/bin/python ]] && .venv/bin/python -c 'import streamlit' 2>/dev/null; then
  python="$PWD/.venv/bin/python"
fi
python=${python:-/usr/bin/python3}

if ! "$python" -c 'import streamlit' 2>/dev/null; then
  bash scripts/offer-streamlit.sh "$python" && python="$PWD/.venv/bin/python"
fi

exec build/release/fluxlit dev examples/hello/app.py:app --python "$python" "$@"
