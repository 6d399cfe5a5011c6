"""Parse the `streamlit run` command line that FluxLit passes and start the benchmark upstream."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import upstream  # noqa: E402


def option_value(arguments: list[str], name: str, default: str) -> str:
    """Return the value of `--name VALUE` or `--name=VALUE`, else `default`."""
    for index, argument in enumerate(arguments):
        if argument == name and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return default


def main() -> None:
    arguments = sys.argv[1:]
    if not arguments or arguments[0] != "run":
        sys.exit(f"usage: python -m streamlit run SCRIPT [--server.port PORT] "
                 f"[--server.address ADDRESS] (got {arguments!r})")
    port = option_value(arguments, "--server.port", "8501")
    address = option_value(arguments, "--server.address", "127.0.0.1")
    upstream.main(["--address", address, "--port", port])


main()
