"""The stand-in's WebSocket at /_stcore/stream: subprotocols, origins, frames and closing."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from support import USERS, Standin, StubApi, raw_upgrade

SUBPROTOCOLS = ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]
# The RFC 6455 sample key and its accept value.
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def connect(standin: Standin, subprotocols: list[str] = SUBPROTOCOLS, **kwargs: Any) -> Any:
    return websockets.connect(
        standin.url.replace("http://", "ws://") + "/_stcore/stream",
        subprotocols=subprotocols,  # type: ignore[arg-type]
        max_size=None,
        compression=None,
        **kwargs,
    )


async def first_exchange(standin: Standin, message: bytes) -> tuple[dict, bytes]:
    async with connect(standin) as socket:
        await socket.send(message)
        summary = json.loads(await asyncio.wait_for(socket.recv(), 20))
        echo = await asyncio.wait_for(socket.recv(), 5)
    return summary, echo


def test_upgrade_answers_first_subprotocol(standin: Standin) -> None:
    offered = [*SUBPROTOCOLS, "1b4e28ba-2fa1-11d2-883f-0016d3cca427"]
    response = raw_upgrade(
        standin.port, "/_stcore/stream", {"Sec-WebSocket-Protocol": ", ".join(offered)}
    )
    response.sock.close()
    assert response.status == 101
    assert response.header("Sec-WebSocket-Accept") == ACCEPT
    assert response.header("Sec-WebSocket-Protocol") == "streamlit"
    assert standin.record()["subprotocols"][-1] == offered


def test_upgrade_sets_xsrf_cookie(standin: Standin) -> None:
    response = raw_upgrade(standin.port, "/_stcore/stream", {})
    response.sock.close()
    assert response.status == 101
    cookies = [value for name, value in response.headers if name.lower() == "set-cookie"]
    assert any(cookie.startswith("_xsrf=") for cookie in cookies)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        (None, None),
        (None, "http://localhost:3000"),
        (None, "http://127.0.0.1:1"),
        (None, "http://0.0.0.0:8080"),
        ("app.example.com", "https://app.example.com"),
        ("app.example.com:8443", "https://app.example.com:8443"),
    ],
)
def test_origin_is_accepted(standin: Standin, host: str | None, origin: str | None) -> None:
    headers = {}
    if host is not None:
        headers["Host"] = host
    if origin is not None:
        headers["Origin"] = origin
    response = raw_upgrade(standin.port, "/_stcore/stream", headers)
    response.sock.close()
    assert response.status == 101


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        (None, "https://evil.example"),
        ("app.example.com", "https://other.example.com"),
        ("app.example.com", "https://app.example.com:8443"),
    ],
)
def test_origin_is_rejected(standin: Standin, host: str | None, origin: str) -> None:
    headers = {"Origin": origin}
    if host is not None:
        headers["Host"] = host
    response = raw_upgrade(standin.port, "/_stcore/stream", headers)
    response.sock.close()
    assert response.status == 403
    assert b"Cross origin websockets not allowed" in response.rest
    rejection = standin.record()["origin_rejections"][-1]
    assert rejection["origin"] == origin


def test_nothing_sent_before_first_message(standin: Standin) -> None:
    async def scenario() -> None:
        async with connect(standin) as socket:
            assert socket.subprotocol == "streamlit"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(socket.recv(), 0.5)

    asyncio.run(scenario())


def test_summary_then_echo(standin: Standin, module_stub_api: StubApi) -> None:
    message = b"\x00\x01binary\xff"
    summary, echo = asyncio.run(first_exchange(standin, message))
    assert echo == message
    assert summary["type"] == "summary"
    assert summary["resumed"] is False
    assert summary["subprotocols"] == SUBPROTOCOLS
    assert [page["url_path"] for page in summary["pages"]] == ["", "add"]
    run = summary["run"]
    assert run["error"] is None
    assert [call["name"] for call in run["calls"]] == ["navigation", "title", "dataframe"]
    assert run["calls"][2]["args"] == [USERS]
    assert module_stub_api.requests[-1].path == "/api/users"


def test_every_message_is_echoed(standin: Standin) -> None:
    async def scenario() -> list[bytes]:
        async with connect(standin) as socket:
            await socket.send(b"one")
            await socket.recv()
            replies = [await socket.recv()]
            for payload in (b"two", b"", bytes(range(256))):
                await socket.send(payload)
                replies.append(await asyncio.wait_for(socket.recv(), 5))
            return replies

    assert asyncio.run(scenario()) == [b"one", b"two", b"", bytes(range(256))]


def test_close_code_on_request(standin: Standin) -> None:
    async def scenario() -> tuple[int, str]:
        async with connect(standin) as socket:
            await socket.send(b"close:4404:page gone")
            await socket.recv()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code, socket.close_reason

    assert asyncio.run(scenario()) == (4404, "page gone")


def test_text_frame_closes_1003(standin: Standin) -> None:
    async def scenario() -> int:
        async with connect(standin) as socket:
            await socket.send("text is not allowed")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code

    assert asyncio.run(scenario()) == 1003


def test_large_message_arrives_whole(standin: Standin) -> None:
    size = 30 * (1 << 20)

    async def scenario() -> tuple[bytes, bytes]:
        async with connect(standin) as socket:
            await socket.send(b"send:%d" % size)
            await socket.recv()
            large = await asyncio.wait_for(socket.recv(), 30)
            upload = bytes(range(256)) * 8192
            await socket.send(upload)
            return large, await asyncio.wait_for(socket.recv(), 30)

    large, echo = asyncio.run(scenario())
    assert len(large) == size
    assert echo == bytes(range(256)) * 8192


def test_run_command_runs_named_page(standin: Standin) -> None:
    async def scenario() -> dict:
        async with connect(standin) as socket:
            await socket.send(b"run:add")
            await socket.recv()
            return json.loads(await asyncio.wait_for(socket.recv(), 20))

    run = asyncio.run(scenario())
    assert run["page"] == "add"
    assert run["trigger"] == "websocket"


def test_session_resumes_with_old_id(standin: Standin) -> None:
    async def scenario() -> tuple[dict, dict]:
        async with connect(standin) as socket:
            await socket.send(b"hello")
            first = json.loads(await socket.recv())
        resumed_subprotocols = [*SUBPROTOCOLS, first["session_id"]]
        async with connect(standin, resumed_subprotocols) as socket:
            await socket.send(b"hello again")
            second = json.loads(await socket.recv())
        return first, second

    first, second = asyncio.run(scenario())
    assert second["resumed"] is True
    assert second["session_id"] == first["session_id"]


def test_unknown_session_id_starts_new(standin: Standin) -> None:
    async def scenario() -> dict:
        async with connect(standin, [*SUBPROTOCOLS, "no-such-session"]) as socket:
            await socket.send(b"x")
            return json.loads(await socket.recv())

    summary = asyncio.run(scenario())
    assert summary["resumed"] is False
    assert summary["session_id"] != "no-such-session"


def test_compression_follows_option(launch_standin: Callable[..., Standin]) -> None:
    extension = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    plain = launch_standin()
    compressed = launch_standin(["--server.enableWebsocketCompression", "true"])
    without = raw_upgrade(plain.port, "/_stcore/stream", extension)
    with_compression = raw_upgrade(compressed.port, "/_stcore/stream", extension)
    without.sock.close()
    with_compression.sock.close()
    assert without.header("Sec-WebSocket-Extensions") is None
    assert "permessage-deflate" in (with_compression.header("Sec-WebSocket-Extensions") or "")


def test_sigterm_closes_sockets_with_1001(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin()

    async def scenario() -> int:
        async with connect(process) as socket:
            process.process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 10)
            return socket.close_code

    assert asyncio.run(scenario()) == 1001
    assert process.process.wait(10) == 0


@pytest.mark.parametrize("command", [b"close:abc:x", b"close:", b"send:lots"])
def test_malformed_command_closes_1008(standin: Standin, command: bytes) -> None:
    async def scenario() -> int:
        async with connect(standin) as socket:
            await socket.send(command)
            await socket.recv()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code

    assert asyncio.run(scenario()) == 1008
