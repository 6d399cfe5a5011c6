"""Puts the package and the example on sys.path and provides the shared fixtures."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
for directory in (HERE, REPO_ROOT / "python", REPO_ROOT / "examples" / "hello"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

import support  # noqa: E402


@pytest.fixture
def stub_api() -> Iterator[support.StubApi]:
    stub = support.StubApi()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def module_stub_api() -> Iterator[support.StubApi]:
    stub = support.StubApi()
    yield stub
    stub.close()


@pytest.fixture
def launch_standin() -> Iterator[Callable[..., support.Standin]]:
    """Start stand-ins with `support.start_standin` arguments; all are killed at teardown."""
    started: list[support.Standin] = []

    def launch(*args: object, **kwargs: object) -> support.Standin:
        standin = support.start_standin(*args, **kwargs)  # type: ignore[arg-type]
        started.append(standin)
        return standin

    yield launch
    for standin in started:
        standin.kill()


@pytest.fixture(scope="module")
def standin(module_stub_api: support.StubApi) -> Iterator[support.Standin]:
    """One stand-in for a test module, whose pages call the stub API."""
    environment = support.standin_environment(
        extra={"FLUXLIT_API_BASE_URL": f"{module_stub_api.url}/api"}
    )
    process = support.start_standin(environment=environment)
    yield process
    process.kill()
