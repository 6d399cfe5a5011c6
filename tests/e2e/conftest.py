"""Fixtures that start the fluxlit binary; see harness.py for what teardown checks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402


@pytest.fixture
def launcher() -> Iterator[harness.Launcher]:
    """Servers for one test, stopped and checked when the test ends."""
    servers = harness.Launcher()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def module_launcher() -> Iterator[harness.Launcher]:
    """Servers shared by the tests of one module, stopped and checked after the last one."""
    servers = harness.Launcher()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def hello(module_launcher: harness.Launcher) -> harness.Fluxlit:
    """The example app with the stand-in UI, ready, shared by one module."""
    return module_launcher.start()
