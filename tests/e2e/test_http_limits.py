"""HTTP/1.1 framing, size limits and timeouts of the listener, sent over raw sockets."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

import harness

BODY_LIMIT = 65536
HEADER_LIMIT = 4096
HEADER_TIMEOUT_MS = 500
KEEP_ALIVE_TIMEOUT_MS = 400
# Boost.Beast stores each header field's name and value with 16-bit lengths, so neither can be
# longer than this many bytes, whatever max_header_bytes allows.
MAX_FIELD_BYTES = 65533


@pytest.fixture(scope="module")
def server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    return module_launcher.start(
        "--max-request-body-bytes",
        str(BODY_LIMIT),
        "--max-header-bytes",
        str(HEADER_LIMIT),
        "--header-read-timeout-ms",
        str(HEADER_TIMEOUT_MS),
        "--keep-alive-timeout-ms",
        str(KEEP_ALIVE_TIMEOUT_MS),
        # /api/echo raises ClientDisconnect when a body is cut off, and the app logs it.
        expected_errors=["ClientDisconnect"],
    )


def request(server: harness.Fluxlit, method: str, path: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {server.authority}\r\n{extra}\r\n".encode()


def test_oversized_header_gets_431(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        client.send(request(server, "GET", "/api/users", f"X-Big: {'a' * 2 * HEADER_LIMIT}\r\n"))
        status, _, _ = client.response()
    assert status.startswith("HTTP/1.1 431 ")


@pytest.mark.parametrize("prefix", ["/api/users?q=", "/page?q="], ids=["api", "ui"])
def test_overlong_request_line_gets_414(server: harness.Fluxlit, prefix: str) -> None:
    with harness.RawClient(server) as client:
        client.send(request(server, "GET", prefix + "a" * 2 * HEADER_LIMIT))
        status, headers, _ = client.response()
    assert status.startswith("HTTP/1.1 414 ")
    assert headers["x-fluxlit-reason"] == "uri_too_long"


def test_long_request_line_with_oversized_headers_gets_431(server: harness.Fluxlit) -> None:
    target = "/api/users?q=" + "a" * (HEADER_LIMIT // 2)
    with harness.RawClient(server) as client:
        client.send(request(server, "GET", target, f"X-Big: {'b' * HEADER_LIMIT}\r\n"))
        status, headers, _ = client.response()
    assert status.startswith("HTTP/1.1 431 ")
    assert headers["x-fluxlit-reason"] == "request_header_too_large"


@pytest.fixture(scope="module")
def large_header_server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    """A server whose max_header_bytes leaves room for fields larger than MAX_FIELD_BYTES."""
    return module_launcher.start("--max-header-bytes", str(4 * MAX_FIELD_BYTES))


@pytest.mark.parametrize("part", ["name", "value"])
@pytest.mark.parametrize("path", ["/api/users/1", "/_stcore/health"], ids=["api", "ui"])
def test_field_over_beast_limit_gets_431(large_header_server: harness.Fluxlit, path: str,
                                         part: str) -> None:
    field = f"X{'n' * MAX_FIELD_BYTES}: v" if part == "name" else f"Cookie: {'c' * 70000}"
    with harness.RawClient(large_header_server) as client:
        client.send(request(large_header_server, "GET", path, field + "\r\n"))
        status, headers, body = client.response()
        assert client.closed_within(5)
    assert status.startswith("HTTP/1.1 431 ")
    assert headers["x-fluxlit-reason"] == "request_header_too_large"
    assert headers["connection"] == "close"
    assert f"larger than {MAX_FIELD_BYTES} bytes" in json.loads(body)["detail"]


def test_field_at_beast_limit_is_accepted(large_header_server: harness.Fluxlit) -> None:
    field = f"Cookie: {'c' * MAX_FIELD_BYTES}\r\nConnection: close\r\n"
    with harness.RawClient(large_header_server) as client:
        client.send(request(large_header_server, "GET", "/api/users/1", field))
        status, _, body = client.response()
    assert status.startswith("HTTP/1.1 200 ")
    assert b"Ada Lovelace" in body


@pytest.mark.parametrize("path", ["/api/echo", "/_standin/headers"], ids=["api", "ui"])
def test_trailer_over_beast_limit_gets_400(large_header_server: harness.Fluxlit,
                                           path: str) -> None:
    head = request(large_header_server, "POST", path, "Transfer-Encoding: chunked\r\n")
    body = f"2\r\n{{}}\r\n0\r\nX-Trailer: {'t' * (MAX_FIELD_BYTES + 1)}\r\n\r\n"
    with harness.RawClient(large_header_server) as client:
        client.send(head + body.encode())
        status, headers, _ = client.response()
        assert client.closed_within(5)
    assert status.startswith("HTTP/1.1 400 ")
    assert headers["x-fluxlit-reason"] == "bad_request_body"


@pytest.mark.parametrize("path", ["/api/echo", "/_standin/headers"], ids=["api", "ui"])
def test_endless_chunk_extension_gets_400(server: harness.Fluxlit, path: str) -> None:
    # The parser keeps a chunk-size line whole in the read buffer, so the buffer's own limit
    # must stop one that never ends.
    head = request(server, "POST", path, "Transfer-Encoding: chunked\r\n")
    with harness.RawClient(server) as client:
        client.send(head + b"2\r\n{}\r\n1;x=")
        with pytest.raises(OSError):
            # The server stops reading and responds long before all of this has gone out.
            for _ in range(64):
                client.send(b"a" * (1 << 20))
        status, headers, _ = client.response()
    assert status.startswith("HTTP/1.1 400 ")
    assert headers["x-fluxlit-reason"] == "bad_request_body"


def test_oversized_body_gets_413(server: harness.Fluxlit) -> None:
    size = BODY_LIMIT + 1
    with harness.RawClient(server) as client:
        client.send(request(server, "POST", "/api/echo", f"Content-Length: {size}\r\n"))
        status, _, body = client.response()
    assert status.startswith("HTTP/1.1 413 ")
    # The reply names the limit for the client, and the log line tells the operator how to
    # raise it.
    detail = f"declared request body larger than max_request_body_bytes ({BODY_LIMIT} bytes)"
    assert json.loads(body)["detail"] == detail
    line = server.wait_for_log("declared request body larger than max_request_body_bytes")
    assert "--max-request-body-bytes, FLUXLIT_MAX_REQUEST_BODY_BYTES" in line


def test_oversized_upload_to_ui_gets_413(server: harness.Fluxlit) -> None:
    size = BODY_LIMIT + 1
    path = "/_stcore/upload_file/s/f"
    with harness.RawClient(server) as client:
        client.send(request(server, "PUT", path, f"Content-Length: {size}\r\n"))
        status, _, _ = client.response()
    assert status.startswith("HTTP/1.1 413 ")


def test_body_at_limit_is_accepted(server: harness.Fluxlit) -> None:
    body = b"z" * BODY_LIMIT
    with harness.RawClient(server) as client:
        head = request(server, "POST", "/api/echo", f"Content-Length: {BODY_LIMIT}\r\n")
        client.send(head + body)
        status, _, received = client.response()
    assert status.startswith("HTTP/1.1 200 ")
    assert received == body


@pytest.mark.parametrize("path", ["/api/echo", "/_standin/headers"], ids=["api", "ui"])
def test_oversized_chunked_body_gets_413(server: harness.Fluxlit, path: str) -> None:
    piece = b"y" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(10))
    with harness.RawClient(server) as client:
        client.send(request(server, "POST", path, "Transfer-Encoding: chunked\r\n"))
        client.send(chunks + b"0\r\n\r\n")
        status, _, body = client.response()
    assert status.startswith("HTTP/1.1 413 ")
    assert json.loads(body)["detail"] == (
        f"request body larger than max_request_body_bytes ({BODY_LIMIT} bytes)"
    )
    line = server.wait_for_log("request body larger than max_request_body_bytes")
    assert "max_request_body_bytes in fluxlit.toml" in line


def test_slow_header_is_cut_off(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        started = time.monotonic()
        # The blank line that ends the head never comes.
        client.send(f"GET /api/users HTTP/1.1\r\nHost: {server.authority}\r\n".encode())
        assert client.closed_within(5)
        elapsed = time.monotonic() - started
    assert elapsed >= HEADER_TIMEOUT_MS / 1000 * 0.8, elapsed
    assert elapsed < HEADER_TIMEOUT_MS / 1000 + 2, elapsed


@pytest.mark.parametrize("path", ["/api/users/1", "/_stcore/health"], ids=["api", "ui"])
def test_idle_keep_alive_is_closed(server: harness.Fluxlit, path: str) -> None:
    with harness.RawClient(server) as client:
        client.send(request(server, "GET", path))
        status, _, _ = client.response()
        assert status.startswith("HTTP/1.1 200 ")
        started = time.monotonic()
        assert client.closed_within(5)
        elapsed = time.monotonic() - started
    assert elapsed >= KEEP_ALIVE_TIMEOUT_MS / 1000 * 0.8, elapsed


def test_ui_keep_alive_serves_next_request(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        for _ in range(3):
            client.send(request(server, "GET", "/_stcore/health"))
            status, _, body = client.response()
            assert status.startswith("HTTP/1.1 200 ")
            assert body == b"ok"
            time.sleep(KEEP_ALIVE_TIMEOUT_MS / 1000 / 2)


def test_pipelined_requests_answered_in_order(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        client.send(
            request(server, "GET", "/api/users/1")
            + request(server, "GET", "/_stcore/host-config")
            + request(server, "GET", "/api/users/2")
        )
        first = client.response()
        second = client.response()
        third = client.response()
    assert b"Ada Lovelace" in first[2]
    assert b"allowedOrigins" in second[2]
    assert b"Alan Turing" in third[2]


def test_malformed_request_gets_400(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        client.send(b"NOT A REQUEST\r\n\r\n")
        status, _, _ = client.response()
    assert status.startswith("HTTP/1.1 400 ")


def test_conflicting_body_lengths_get_400(server: harness.Fluxlit) -> None:
    # Content-Length next to Transfer-Encoding is the classic request smuggling shape.
    extra = "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    with harness.RawClient(server) as client:
        client.send(request(server, "POST", "/api/echo", extra) + b"5\r\nhello\r\n0\r\n\r\n")
        status, _, _ = client.response()
        assert status.startswith("HTTP/1.1 400 ")
        assert client.closed_within(2)


def test_http10_request_is_answered_and_closed(server: harness.Fluxlit) -> None:
    with harness.RawClient(server) as client:
        client.send(b"GET /api/users/1 HTTP/1.0\r\n\r\n")
        status, _, body = client.response()
        assert status.split(" ")[1] == "200"
        assert b"Ada Lovelace" in body
        assert client.closed_within(2)


def test_expect_continue_gets_interim_response(server: harness.Fluxlit) -> None:
    extra = "Content-Length: 5\r\nExpect: 100-continue\r\n"
    with harness.RawClient(server) as client:
        client.send(request(server, "POST", "/api/echo", extra))
        interim, _, _ = client.response()
        assert interim.startswith("HTTP/1.1 100 ")
        client.send(b"hello")
        status, _, body = client.response()
    assert status.startswith("HTTP/1.1 200 ")
    assert body == b"hello"


def test_trickled_headers_cut_while_others_served(server: harness.Fluxlit) -> None:
    # 200 connections send one header byte every 100 ms, so each stays busy but never finishes.
    # The deadline counts from the start of the connection, so every one must close soon after
    # HEADER_TIMEOUT_MS, while ordinary requests, an open WebSocket and a long stream go on.
    async def scenario() -> tuple[list[float], list[float], bool, int]:
        request = f"GET /api/users HTTP/1.1\r\nHost: {server.authority}\r\nX-Pad: ".encode()
        request += b"a" * 200

        async def trickle() -> float:
            started = time.monotonic()
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                for index in range(len(request)):
                    writer.write(request[index : index + 1])
                    await writer.drain()
                    try:
                        data = await asyncio.wait_for(reader.read(65536), 0.1)
                    except asyncio.TimeoutError:
                        continue
                    if not data or data.startswith(b"HTTP/1.1 408"):
                        break
            except ConnectionError:
                pass
            finally:
                writer.close()
            return time.monotonic() - started

        async def ordinary_requests() -> list[float]:
            latencies = []
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(10):
                    started = time.monotonic()
                    response = await client.get(server.api_url("/healthz"))
                    assert response.status_code == 200
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.1)
            return latencies

        async def stream_events() -> int:
            async with httpx.AsyncClient(timeout=10) as client:
                url = server.url("/_standin/sse?count=8&interval_ms=200")
                count = 0
                async with client.stream("GET", url) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            count += 1
                return count

        uri = f"ws://{server.authority}/_stcore/stream"
        async with websockets.connect(uri, subprotocols=["streamlit"], compression=None) as ws:
            await ws.send(b"hello")
            await ws.recv()
            await ws.recv()
            cut_after, latencies, events = await asyncio.gather(
                asyncio.gather(*(trickle() for _ in range(200))),
                ordinary_requests(),
                stream_events(),
            )
            await ws.send(b"still open")
            websocket_alive = await asyncio.wait_for(ws.recv(), 5) == b"still open"
        return list(cut_after), latencies, websocket_alive, events

    cut_after, latencies, websocket_alive, events = asyncio.run(scenario())
    assert max(cut_after) < HEADER_TIMEOUT_MS / 1000 + 2, max(cut_after)
    assert min(cut_after) >= HEADER_TIMEOUT_MS / 1000 * 0.8, min(cut_after)
    assert max(latencies) < 0.5, latencies
    assert websocket_alive
    assert events == 8
