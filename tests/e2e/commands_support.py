"""Running the fluxlit binary's one-shot commands (config, doctor, pages, new, build, version)
in a temporary project directory, with a clean environment."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import harness

# Generous for a cold interpreter on a loaded machine. The commands take well under a second.
COMMAND_TIMEOUT_SECONDS = 60.0

PACKAGE_DIR = harness.REPO_ROOT / "python"
HELLO_DIR = harness.REPO_ROOT / "examples" / "hello"


def run_fluxlit(
    arguments: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    standin: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the binary under test in `cwd` and return its exit status and output.

    The environment has no FLUXLIT_*, STREAMLIT_* or VIRTUAL_ENV variables, HOME is an empty
    directory next to `cwd` (so no ~/.streamlit/config.toml of the machine is read), and with
    `standin` the Streamlit stand-in is importable. `env` is applied last.
    """
    environment = harness.base_environment(standin=standin)
    home = cwd.parent / f"{cwd.name}-home"
    home.mkdir(exist_ok=True)
    environment["HOME"] = str(home)
    environment.update(env or {})
    return subprocess.run(
        [harness.binary_path(), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def run_json(
    arguments: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, **kwargs: Any
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run a command that prints JSON and return the process and the parsed document."""
    result = run_fluxlit(arguments, cwd, env, **kwargs)
    assert result.stdout, f"no output; stderr: {result.stderr}"
    return result, json.loads(result.stdout)


def make_project(parent: Path, app_source: str, name: str = "project") -> Path:
    """Create the directory parent/name with `app_source` as its app.py and return it."""
    directory = parent / name
    directory.mkdir()
    write(directory, "app.py", app_source)
    return directory


def write(directory: Path, name: str, text: str) -> Path:
    """Write `text` (dedented) to directory/name, creating parent directories."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path
