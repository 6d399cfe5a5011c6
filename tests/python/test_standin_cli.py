"""The stand-in's command line and its base URL path behaviour."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
import websockets
from support import (
    ENTRY_SCRIPT,
    REPO_ROOT,
    Standin,
    free_port,
    standin_environment,
    start_standin,
)


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamlit", *arguments],
        cwd=REPO_ROOT,
        env=standin_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_unknown_command_exits_2() -> None:
    result = run_cli("serve", str(ENTRY_SCRIPT))
    assert result.returncode == 2
    assert "no such command 'serve'" in result.stderr


def test_no_command_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "Usage:" in result.stderr


def test_option_without_section_exits_2() -> None:
    result = run_cli("run", str(ENTRY_SCRIPT), "--port", "8501")
    assert result.returncode == 2
    assert "unknown option '--port'" in result.stderr


def test_option_without_value_exits_2() -> None:
    result = run_cli("run", str(ENTRY_SCRIPT), "--server.port")
    assert result.returncode == 2
    assert "--server.port needs a value" in result.stderr


def test_bad_integer_exits_2() -> None:
    result = run_cli("run", str(ENTRY_SCRIPT), "--server.port", "eighty")
    assert result.returncode == 2
    assert "invalid value 'eighty' for --server.port" in result.stderr


def test_missing_script_exits_2() -> None:
    result = run_cli("run", "no/such/script.py", "--server.port", str(free_port()))
    assert result.returncode == 2
    assert "script file not found" in result.stderr


def test_development_mode_rejects_port() -> None:
    result = run_cli(
        "run", str(ENTRY_SCRIPT), "--global.developmentMode", "true", "--server.port", "8501"
    )
    assert result.returncode == 2
    assert "STREAMLIT_GLOBAL_DEVELOPMENT_MODE=false" in result.stderr


def test_version_is_printed() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("Streamlit, version 1.39.0")


def test_unknown_options_and_script_args_are_kept(
    launch_standin: Callable[..., Standin],
) -> None:
    process = launch_standin(["--theme.base=dark", "--logger.level", "debug", "--", "-x", "y"])
    record = process.record()
    assert record["options"]["theme.base"] == "dark"
    assert record["options"]["logger.level"] == "debug"
    assert record["script_args"] == ["-x", "y"]


def test_sigterm_exits_0(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin()
    assert process.stop() == 0


@pytest.fixture(scope="module")
def prefixed() -> Iterator[Standin]:
    process = start_standin(["--server.baseUrlPath=/ui/"], base_path="/ui")
    yield process
    process.kill()


def test_base_without_slash_redirects(prefixed: Standin) -> None:
    response = httpx.get(f"{prefixed.origin}/ui")
    assert response.status_code == 301
    assert response.headers["location"] == "/ui/"


def test_base_with_slash_serves_index(prefixed: Standin) -> None:
    response = httpx.get(f"{prefixed.origin}/ui/")
    assert response.status_code == 200
    assert "./static/js/main." in response.text


def test_prefixed_health_cookie_path_is_root(prefixed: Standin) -> None:
    response = httpx.get(f"{prefixed.origin}/ui/_stcore/health")
    assert response.status_code == 200
    for line in response.headers.get_list("set-cookie"):
        assert "Path=/" in line
        assert "Path=/ui" not in line


@pytest.mark.parametrize("path", ["/", "/_stcore/health", "/_stcore/host-config", "/index.html"])
def test_unprefixed_paths_are_404(prefixed: Standin, path: str) -> None:
    assert httpx.get(prefixed.origin + path).status_code == 404


def test_prefixed_bundle_is_served(prefixed: Standin) -> None:
    index = httpx.get(f"{prefixed.origin}/ui/").text
    start = index.index("./static/js/") + 2
    path = index[start : index.index('"', start)]
    assert httpx.get(f"{prefixed.origin}/ui/{path}").status_code == 200
    assert httpx.get(f"{prefixed.origin}/{path}").status_code == 404


def test_prefixed_websocket_answers(prefixed: Standin) -> None:
    async def scenario() -> str | None:
        url = f"ws://127.0.0.1:{prefixed.port}/ui/_stcore/stream"
        subprotocols = ["streamlit"]
        async with websockets.connect(url, subprotocols=subprotocols) as socket:  # type: ignore
            return socket.subprotocol

    assert asyncio.run(scenario()) == "streamlit"


def test_unprefixed_websocket_is_404(prefixed: Standin) -> None:
    async def scenario() -> None:
        url = f"ws://127.0.0.1:{prefixed.port}/_stcore/stream"
        async with websockets.connect(url):
            pass

    with pytest.raises(websockets.InvalidStatusCode) as caught:
        asyncio.run(scenario())
    assert caught.value.status_code == 404
