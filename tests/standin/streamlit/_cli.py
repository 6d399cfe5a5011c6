"""The command line: `python -m streamlit run SCRIPT [--section.option value ...] [-- ARGS]`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import FrameType
from dataclasses import dataclass, field

from . import __version__
from ._config import ConfigError, is_option_name, resolve

USAGE = (
    "Usage: python -m streamlit run SCRIPT [--section.option VALUE | --section.option=VALUE]... "
    "[-- SCRIPT_ARGS...]\n"
    "       python -m streamlit version"
)

# Exit status for a usage error, as Click-based command lines use.
USAGE_ERROR = 2


class UsageError(Exception):
    """A command line that the stand-in cannot run."""


@dataclass
class RunCommand:
    """The parsed arguments of `run`."""

    script: str
    flags: dict[str, str] = field(default_factory=dict)
    script_args: list[str] = field(default_factory=list)


def parse_run(tokens: list[str]) -> RunCommand:
    """Parse the arguments after `run`: options anywhere, the first positional is the script."""
    script: str | None = None
    flags: dict[str, str] = {}
    script_args: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            script_args.extend(tokens[index:])
            break
        if token.startswith("--"):
            name, has_value, value = token[2:].partition("=")
            if not is_option_name(name):
                raise UsageError(
                    f"unknown option {token!r}; options have the form --section.option"
                )
            if not has_value:
                if index >= len(tokens):
                    raise UsageError(f"option --{name} needs a value")
                value = tokens[index]
                index += 1
            flags[name] = value
        elif script is None:
            script = token
        else:
            script_args.append(token)
    if script is None:
        raise UsageError("missing SCRIPT: the path of the Python file to run")
    return RunCommand(script=script, flags=flags, script_args=script_args)


def exit_on_signal(number: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if arguments else sys.stderr)
        return 0 if arguments else USAGE_ERROR
    command = arguments[0]
    if command in ("version", "--version"):
        print(f"Streamlit, version {__version__} (FluxLit test stand-in)")
        return 0
    if command != "run":
        print(
            f"Error: no such command {command!r}; the stand-in supports run and version.",
            file=sys.stderr,
        )
        print(USAGE, file=sys.stderr)
        return USAGE_ERROR
    try:
        parsed = parse_run(arguments[1:])
        options = resolve(parsed.flags)
    except (UsageError, ConfigError) as error:
        print(f"Error: {error}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return USAGE_ERROR
    # Until the server installs its own handlers, SIGTERM ends start-up with status 0 too.
    signal.signal(signal.SIGTERM, exit_on_signal)
    script_path = os.path.abspath(parsed.script)
    if not os.path.isfile(script_path):
        print(f"Error: script file not found: {script_path}", file=sys.stderr)
        return USAGE_ERROR

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("tornado.access").setLevel(logging.WARNING)

    from ._server import serve

    return asyncio.run(serve(options, script_path, parsed.script_args))
