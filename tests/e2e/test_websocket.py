"""WebSocket traffic on /_stcore/stream, tunnelled to the Streamlit stand-in.

The stand-in sends nothing until the client's first binary message. It then sends a JSON summary
frame and echoes every binary frame, except `close:<code>:<reason>` and `send:<n>` commands.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
import websockets
import websockets.exceptions

import harness

ResultT = TypeVar("ResultT")

ASSETS = harness.load_standin_assets()
MEBIBYTE = 1 << 20
# The sample handshake key of RFC 6455 and its accept value, base64(SHA-1(key + WEBSOCKET_GUID)).
RFC_SAMPLE_KEY = harness.RFC_SAMPLE_KEY
RFC_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8


@pytest.fixture(scope="module")
def server(hello: harness.Fluxlit) -> harness.Fluxlit:
    return hello


def run(coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def stream_url(server: harness.Fluxlit) -> str:
    return f"ws://{server.authority}/_stcore/stream"


def streamlit_subprotocols() -> list[str]:
    """Return the list Streamlit's front end offers: name, auth placeholder, session id."""
    return ["streamlit", "PLACEHOLDER_AUTH_TOKEN", str(uuid.uuid4())]


def connect(server: harness.Fluxlit, **options: Any) -> Any:
    options.setdefault("max_size", 64 * MEBIBYTE)
    options.setdefault("compression", None)
    return websockets.connect(stream_url(server), **options)


async def start_session(socket_: Any, first: bytes = b"hello") -> dict[str, Any]:
    """Send the first binary message; return the summary frame, then check the echo."""
    await socket_.send(first)
    summary = json.loads(await socket_.recv())
    assert await socket_.recv() == first
    return summary


def test_selected_subprotocol_is_first_entry(server: harness.Fluxlit) -> None:
    offered = streamlit_subprotocols()

    async def scenario() -> tuple[str | None, list[str]]:
        async with connect(server, subprotocols=offered) as socket_:
            return socket_.subprotocol, socket_.response_headers.get_all("Sec-WebSocket-Protocol")

    selected, header_values = run(scenario())
    assert selected == "streamlit"
    assert header_values == ["streamlit"]


def test_subprotocol_list_reaches_streamlit(server: harness.Fluxlit) -> None:
    offered = streamlit_subprotocols()

    async def scenario() -> dict[str, Any]:
        async with connect(server, subprotocols=offered) as socket_:
            return await start_session(socket_)

    summary = run(scenario())
    assert summary["subprotocols"] == offered
    assert offered in server.record()["subprotocols"]


@pytest.mark.parametrize(
    "size", [1, 125, 126, 65535, 65536, MEBIBYTE, 2 * MEBIBYTE], ids=lambda size: f"{size}B"
)
def test_binary_frame_round_trip(server: harness.Fluxlit, size: int) -> None:
    payload = os.urandom(size)

    async def scenario() -> bytes:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            await start_session(socket_)
            await socket_.send(payload)
            return await socket_.recv()

    assert run(scenario()) == payload


def test_many_frames_keep_order(server: harness.Fluxlit) -> None:
    payloads = [f"frame {index}".encode() * (index + 1) for index in range(200)]

    async def scenario() -> list[bytes]:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            await start_session(socket_)
            for payload in payloads:
                await socket_.send(payload)
            return [await socket_.recv() for _ in payloads]

    assert run(scenario()) == payloads


def test_large_frame_from_streamlit(server: harness.Fluxlit) -> None:
    size = 30 * MEBIBYTE

    async def scenario() -> bytes:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            await start_session(socket_)
            await socket_.send(f"send:{size}".encode())
            return await socket_.recv()

    received = run(scenario())
    assert len(received) == size
    assert received == ASSETS.media_bytes("websocket", size)


@pytest.mark.parametrize(
    ("sent_code", "sent_reason"), [(4404, "page not found"), (1001, "going away")]
)
def test_close_code_is_relayed(server: harness.Fluxlit, sent_code: int, sent_reason: str) -> None:
    async def scenario() -> tuple[int, str]:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            await start_session(socket_)
            await socket_.send(f"close:{sent_code}:{sent_reason}".encode())
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await socket_.recv()
            return socket_.close_code, socket_.close_reason

    code, reason = run(scenario())
    assert code == sent_code
    assert reason == sent_reason


def test_client_close_code_reaches_streamlit(server: harness.Fluxlit) -> None:
    async def scenario() -> str:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            summary = await start_session(socket_)
            await socket_.close(4000, "client done")
            return summary["session_id"]

    session_id = run(scenario())
    closes = [
        entry for entry in server.record()["websocket_closes"] if entry["session_id"] == session_id
    ]
    assert len(closes) == 1
    assert closes[0]["code"] == 4000
    assert closes[0]["reason"] == "client done"


def test_text_frame_gets_streamlit_close(server: harness.Fluxlit) -> None:
    async def scenario() -> int:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            await socket_.send("text is not accepted")
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await socket_.recv()
            return socket_.close_code

    assert run(scenario()) == 1003


def test_cross_origin_gets_403(server: harness.Fluxlit) -> None:
    async def scenario() -> None:
        async with connect(server, origin="http://evil.example"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatusCode) as caught:
        run(scenario())
    assert caught.value.status_code == 403
    rejections = server.record()["origin_rejections"]
    assert {"origin": "http://evil.example", "host": server.authority} in rejections


# --- raw socket handshake --------------------------------------------------------------------


class FrameReader:
    """Reads unmasked server frames from a socket, starting with bytes already received."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.pending = pending

    def take(self, count: int) -> bytes:
        while len(self.pending) < count:
            piece = self.sock.recv(65536)
            assert piece, "connection closed in the middle of a frame"
            self.pending += piece
        data, self.pending = self.pending[:count], self.pending[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self.take(2)
        assert second & 0x80 == 0, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.take(8))
        return first & 0x0F, self.take(length)


def header_values(lines: list[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(prefix)]


def test_sample_accept_value_is_correct() -> None:
    digest = hashlib.sha1((RFC_SAMPLE_KEY + WEBSOCKET_GUID).encode()).digest()
    assert base64.b64encode(digest).decode() == RFC_SAMPLE_ACCEPT


def test_handshake_accepts_rfc_sample_key(server: harness.Fluxlit) -> None:
    sock, lines, rest = harness.raw_upgrade(server, f"http://{server.authority}")
    with sock:
        assert lines[0].startswith("HTTP/1.1 101 ")
        assert header_values(lines, "Sec-WebSocket-Accept") == [RFC_SAMPLE_ACCEPT]
        assert [value.lower() for value in header_values(lines, "Upgrade")] == ["websocket"]
        assert header_values(lines, "Sec-WebSocket-Protocol") == ["streamlit"]

        # The tunnel carries frames both ways after the 101.
        sock.sendall(harness.masked_frame(OPCODE_BINARY, b"raw hello"))
        reader = FrameReader(sock, rest)
        summary_opcode, summary = reader.frame()
        assert summary_opcode == OPCODE_BINARY
        assert json.loads(summary)["type"] == "summary"
        assert reader.frame() == (OPCODE_BINARY, b"raw hello")

        sock.sendall(harness.masked_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
        opcode, payload = reader.frame()
        assert opcode == OPCODE_CLOSE
        assert struct.unpack("!H", payload[:2]) == (1000,)


def test_handshake_with_foreign_origin_gets_403(server: harness.Fluxlit) -> None:
    sock, lines, _ = harness.raw_upgrade(server, "https://attacker.example")
    sock.close()
    assert lines[0].startswith("HTTP/1.1 403 ")
    assert header_values(lines, "Sec-WebSocket-Accept") == []



def upgrade_status(server: harness.Fluxlit, path: str) -> tuple[str, list[str]]:
    """Send a browser-like upgrade for `path` and return the status line and the header lines."""
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {server.authority}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {RFC_SAMPLE_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n"
        f"Origin: http://{server.authority}\r\n"
        "\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        lines, _ = harness.read_response_head(sock)
    return lines[0], lines


@pytest.mark.parametrize("path", ["/_stcore/nonexistent", "/some/page", "/"])
def test_upgrade_answered_with_page_gets_502(server: harness.Fluxlit, path: str) -> None:
    # The stand-in serves its index page with 200 for any unknown path, also to an upgrade
    # request. A browser cannot use that page as a handshake, so the gateway must not relay it.
    status_line, lines = upgrade_status(server, path)
    assert status_line.startswith("HTTP/1.1 502 "), status_line
    assert header_values(lines, "X-FluxLit-Reason") == ["upstream_upgrade_not_accepted"]
    assert header_values(lines, "Sec-WebSocket-Accept") == []


def test_upgrade_refusal_keeps_streamlit_status(server: harness.Fluxlit) -> None:
    # The stand-in returns 404 for paths that end in _stcore/health under a foreign prefix.
    status_line, lines = upgrade_status(server, "/other/_stcore/health")
    assert status_line.startswith("HTTP/1.1 404 "), status_line
    assert header_values(lines, "Sec-WebSocket-Accept") == []


def test_session_resumes_after_reconnect(server: harness.Fluxlit) -> None:
    async def resume() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(server, subprotocols=streamlit_subprotocols()) as socket_:
            first = await start_session(socket_)
            # Cut the TCP connection without a close frame, as a dropped network does.
            socket_.transport.abort()
        offered = ["streamlit", "PLACEHOLDER_AUTH_TOKEN", first["session_id"]]
        async with connect(server, subprotocols=offered) as socket_:
            assert socket_.subprotocol == "streamlit"
            second = await start_session(socket_)
        return first, second

    first, second = run(resume())
    assert first["resumed"] is False
    assert second["resumed"] is True
    assert second["session_id"] == first["session_id"]


@pytest.mark.parametrize("child_compression", ["true", "false"])
@pytest.mark.parametrize("client_compression", ["deflate", None])
def test_deflate_offer_keeps_payloads_intact(
    module_launcher: harness.Launcher, child_compression: str, client_compression: str | None
) -> None:
    compressing = module_launcher.start(
        extra_environment={"STREAMLIT_SERVER_ENABLE_WEBSOCKET_COMPRESSION": child_compression}
    )
    payload = os.urandom(MEBIBYTE) + b"a" * MEBIBYTE

    async def round_trip() -> tuple[bytes, bytes]:
        async with connect(
            compressing, subprotocols=["streamlit"], compression=client_compression
        ) as socket_:
            await start_session(socket_)
            await socket_.send(payload)
            echoed = await socket_.recv()
            await socket_.send(b"send:3000000")
            generated = await socket_.recv()
        return echoed, generated

    echoed, generated = run(round_trip())
    assert echoed == payload
    assert generated == ASSETS.media_bytes("websocket", 3000000)


def open_websockets(server: harness.Fluxlit) -> int:
    text = httpx.get(server.api_url("/metrics"), timeout=10).text
    for line in text.splitlines():
        if line.startswith("fluxlit_open_websockets "):
            return int(float(line.split()[1]))
    raise AssertionError(f"fluxlit_open_websockets missing from /api/metrics:\n{text}")


def test_abrupt_disconnects_free_tunnels(server: harness.Fluxlit) -> None:
    before = open_websockets(server)
    sockets = []
    for _ in range(5):
        sock, lines, rest = harness.raw_upgrade(server, f"http://{server.authority}")
        assert lines[0].startswith("HTTP/1.1 101 ")
        sock.sendall(harness.masked_frame(OPCODE_BINARY, b"hello"))
        reader = FrameReader(sock, rest)
        reader.frame()
        reader.frame()
        sockets.append(sock)
    assert open_websockets(server) == before + 5

    for sock in sockets:
        # A zero linger time makes close() send a reset instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # The gateway notices the resets asynchronously, so give it up to 5 s.
    for _ in range(50):
        if open_websockets(server) == before:
            break
        time.sleep(0.1)
    assert open_websockets(server) == before
