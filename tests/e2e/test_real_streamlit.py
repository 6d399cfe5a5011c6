"""The example app in front of the real Streamlit, when the interpreter has it.

The package index cannot always be reached, so these tests skip when Streamlit is missing.
Every other end-to-end test uses the stand-in in tests/standin, which imitates the same
surface. FLUXLIT_REAL_STREAMLIT_PYTHON names another interpreter to try.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

import httpx
import pytest
import websockets

import harness

REAL_STREAMLIT_PYTHON = os.environ.get("FLUXLIT_REAL_STREAMLIT_PYTHON", "/usr/bin/python3")


def real_streamlit_version() -> str | None:
    probe = subprocess.run(
        [REAL_STREAMLIT_PYTHON, "-c", "import streamlit; print(streamlit.__version__)"],
        env=harness.base_environment(standin=False),
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


VERSION = real_streamlit_version()
pytestmark = pytest.mark.skipif(
    VERSION is None,
    reason=f"Streamlit is not installed for {REAL_STREAMLIT_PYTHON}; the stand-in tests cover it",
)


def test_real_streamlit_serves_the_page_health_and_socket(launcher: harness.Launcher) -> None:
    server = launcher.start(
        "--python",
        REAL_STREAMLIT_PYTHON,
        environment=harness.base_environment(standin=False),
    )
    page = httpx.get(server.url("/"), timeout=30)
    assert page.status_code == 200
    assert "<noscript>" in page.text
    health = httpx.get(server.url("/_stcore/health"), timeout=30)
    assert (health.status_code, health.text) == (200, "ok")

    async def open_stream() -> str | None:
        url = f"ws://{server.authority}/_stcore/stream"
        async with websockets.connect(url, subprotocols=["streamlit", "PLACEHOLDER"]) as socket:
            return socket.subprotocol

    assert asyncio.run(open_stream()) == "streamlit"
    # The API is served beside it.
    assert httpx.get(server.api_url("/healthz"), timeout=10).status_code == 200
