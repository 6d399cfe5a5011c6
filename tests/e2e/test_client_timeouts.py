"""Clients that stall. send_timeout_ms: a client that stops reading is cut off once it took no
bytes for the limit, on API and UI routes and on both kinds of WebSocket, while a client that
reads slowly keeps its connection. body_read_timeout_ms: a client that stops sending a request
body gets 408, while a slow upload goes through.

The API routes are those of apps/flow_app.py; the UI routes are the stand-in's.
"""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest

import harness

FLOW_TARGET = f"{harness.APPS_DIR / 'flow_app.py'}:app"
LIMIT_SECONDS = 1.0
TIMEOUT_ENVIRONMENT = {
    "FLUXLIT_SEND_TIMEOUT_MS": str(int(LIMIT_SECONDS * 1000)),
    "FLUXLIT_BODY_READ_TIMEOUT_MS": str(int(LIMIT_SECONDS * 1000)),
}
# A client receive buffer this small keeps most of a response in the server's output.
CLIENT_RECEIVE_BUFFER = 64 * 1024
CLOSED_LINE = re.compile(r"closed: the client took none of the response bytes .* send_timeout_ms")


@pytest.fixture(scope="module")
def api_server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    return module_launcher.start(
        "--no-ui", target=FLOW_TARGET, extra_environment=TIMEOUT_ENVIRONMENT
    )


@pytest.fixture(scope="module")
def ui_server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    return module_launcher.start(extra_environment=TIMEOUT_ENVIRONMENT)


def open_client(server: harness.Fluxlit, request_start: str) -> socket.socket:
    """Connect with a small receive buffer and send `request_start`, the request line and any
    header lines, followed by Host and the end of the head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RECEIVE_BUFFER)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    sock.sendall(f"{request_start}\r\nHost: {server.authority}\r\n\r\n".encode())
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Read what the connection still delivers; return it and whether it ended in a reset."""
    received = b""
    try:
        while piece := sock.recv(1 << 20):
            received += piece
    except ConnectionResetError:
        return received, True
    return received, False


def cut_off_count(server: harness.Fluxlit) -> int:
    return len(CLOSED_LINE.findall(server.stderr_text()))


def expect_cut_off(
    server: harness.Fluxlit, sock: socket.socket, before: int, started: float
) -> int:
    """Wait until the server cuts off the client on `sock`, which has read nothing since
    `started`, and return the bytes that still arrive. `before` is cut_off_count() at the start.
    """
    deadline = started + LIMIT_SECONDS + 10
    while cut_off_count(server) == before:
        assert time.monotonic() < deadline, server.stderr_text()
        time.sleep(0.05)
    waited = time.monotonic() - started
    received, reset = read_until_closed(sock)
    assert waited >= LIMIT_SECONDS, waited
    assert reset, "the connection should end in a reset, which frees the unsent bytes"
    return len(received)


def wait_for_app_event(server: harness.Fluxlit, prefix: str) -> list[str]:
    """Return the flow app's events once one of them starts with `prefix`, or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        events = json.loads(httpx.get(server.api_url("/events")).content)
        if any(event.startswith(prefix) for event in events) or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def access_line(server: harness.Fluxlit, target: str, method: str = "GET") -> str:
    # The log line is JSON text, where the quotes around the request line appear escaped.
    return server.wait_for_log(f'{method} {target}\\" ')


def test_api_stalled_client_cut_off(api_server: harness.Fluxlit) -> None:
    total = 64 * 256 * 1024  # 16 MiB, far more than the socket buffers hold
    target = "/api/flood?count=64&size=262144"
    before = cut_off_count(api_server)
    started = time.monotonic()
    with open_client(api_server, f"GET {target} HTTP/1.1") as sock:
        assert expect_cut_off(api_server, sock, before, started) < total
    line = access_line(api_server, target)
    assert '" 499 ' in line, line
    assert "reason=send_timeout" in line, line
    # The app's send() stops waiting for the client and raises, as ASGI spec 2.4 specifies.
    events = wait_for_app_event(api_server, "flood stopped")
    assert "flood stopped by ClientDisconnected" in events, events


def test_api_slow_reader_kept(api_server: harness.Fluxlit) -> None:
    size = 768 * 1024
    target = f"/api/large?size={size}"
    before = cut_off_count(api_server)
    # With Connection: close the server is done with the response long before the client, and
    # the connection stays open until the client has taken all of it.
    with open_client(api_server, f"GET {target} HTTP/1.1\r\nConnection: close") as sock:
        data = b""
        # Pauses of 0.6 s between reads stay within the limit, though the whole response takes
        # several limits to arrive.
        while piece := sock.recv(128 * 1024):
            data += piece
            time.sleep(0.6)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body == (bytes(range(256)) * (size // 256 + 1))[:size]
    line = access_line(api_server, target)
    assert '" 200 ' in line, line
    assert "send_timeout" not in line, line
    assert cut_off_count(api_server) == before


def test_api_unread_last_response_cut_off(api_server: harness.Fluxlit) -> None:
    # The whole response fits in the socket buffers, and the server closes the connection after
    # it. The bytes must not stay behind in the kernel for a client that reads nothing.
    target = "/api/large?size=2000000"
    before = cut_off_count(api_server)
    started = time.monotonic()
    with open_client(api_server, f"GET {target} HTTP/1.1\r\nConnection: close") as sock:
        expect_cut_off(api_server, sock, before, started)
    line = access_line(api_server, target)
    assert '" 200 2000000 ' in line, line


def test_ui_stalled_client_cut_off(ui_server: harness.Fluxlit) -> None:
    total = 16 * 1024 * 1024
    target = f"/_standin/pieces?bytes={total}"
    before = cut_off_count(ui_server)
    started = time.monotonic()
    with open_client(ui_server, f"GET {target} HTTP/1.1") as sock:
        assert expect_cut_off(ui_server, sock, before, started) < total
    line = access_line(ui_server, target)
    assert "route=ui" in line, line
    assert "reason=send_timeout" in line, line
    # The gateway still serves the UI to other clients.
    assert httpx.get(ui_server.url("/"), timeout=10).status_code == 200


def test_ui_unread_last_response_cut_off(ui_server: harness.Fluxlit) -> None:
    # The response fits in the socket buffers, so the connection waits for the next request
    # when the send check cuts it. That wait must then end without a reply of its own.
    before = cut_off_count(ui_server)
    started = time.monotonic()
    with open_client(ui_server, "GET /_standin/pieces?bytes=1000000 HTTP/1.1") as sock:
        expect_cut_off(ui_server, sock, before, started)
    metrics = httpx.get(ui_server.api_url("/metrics"), timeout=10).text
    assert 'fluxlit_local_replies_total{reason="bad_request"}' not in metrics, metrics


def test_relayed_websocket_stalled_client_cut_off(
    ui_server: harness.Fluxlit,
) -> None:
    before = cut_off_count(ui_server)
    sock, lines, _ = harness.raw_upgrade(ui_server, f"http://{ui_server.authority}")
    with sock:
        assert lines[0].startswith("HTTP/1.1 101 "), lines
        started = time.monotonic()
        # Each command makes the stand-in send 1 MiB, which the client never reads.
        for _ in range(32):
            sock.sendall(harness.masked_frame(0x2, b"send:1048576"))
        expect_cut_off(ui_server, sock, before, started)
    line = access_line(ui_server, "/_stcore/stream")
    assert "reason=send_timeout" in line, line


def test_api_websocket_stalled_client_cut_off(api_server: harness.Fluxlit) -> None:
    before = cut_off_count(api_server)
    started = time.monotonic()
    sock, lines, _ = harness.raw_upgrade(
        api_server, f"http://{api_server.authority}", "/api/ws-flood"
    )
    with sock:
        assert lines[0].startswith("HTTP/1.1 101 "), lines
        expect_cut_off(api_server, sock, before, started)
    # The app's waiting send() returns, and its next send() raises.
    events = wait_for_app_event(api_server, "ws-flood")
    assert "ws-flood stopped by ClientDisconnected" in events, events


def send_and_read_all(server: harness.Fluxlit, request: bytes) -> tuple[bytes, float]:
    """Send `request` and read until the server closes; return what arrived and the seconds."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request)
        received, _ = read_until_closed(sock)
        return received, time.monotonic() - started


def upload_head(server: harness.Fluxlit, target: str, framing: str) -> bytes:
    return f"POST {target} HTTP/1.1\r\nHost: {server.authority}\r\n{framing}\r\n\r\n".encode()


def expect_408(received: bytes, seconds: float) -> None:
    assert seconds >= LIMIT_SECONDS, seconds
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"x-fluxlit-reason: body_read_timeout" in received, received
    assert b"body_read_timeout_ms (1000 ms)" in received, received


@pytest.mark.parametrize(
    "framing,sent,body_bytes",
    [
        ("Content-Length: 1000", b"x" * 10, 10),
        ("Transfer-Encoding: chunked", b"5\r\nhello\r\n", 5),
    ],
)
def test_api_stalled_upload_gets_408(
    api_server: harness.Fluxlit, framing: str, sent: bytes, body_bytes: int
) -> None:
    request = upload_head(api_server, "/api/upload", framing) + sent
    received, seconds = send_and_read_all(api_server, request)
    expect_408(received, seconds)
    # The app's receive() returned the disconnect after the body bytes that did arrive.
    events = wait_for_app_event(api_server, f"upload disconnect after {body_bytes} bytes")
    assert f"upload disconnect after {body_bytes} bytes" in events, events


def test_api_slow_upload_goes_through(api_server: harness.Fluxlit) -> None:
    with socket.create_connection((api_server.host, api_server.port), timeout=10) as sock:
        sock.sendall(upload_head(api_server, "/api/upload", "Content-Length: 50"))
        # Pauses of 0.6 s between pieces stay within the limit, though the whole body takes
        # several limits to arrive.
        for _ in range(5):
            time.sleep(0.6)
            sock.sendall(b"y" * 10)
        _, body = harness.read_response(sock)
    assert body == b"y" * 50


def test_api_trickled_chunk_framing_kept(api_server: harness.Fluxlit) -> None:
    # Framing bytes alone make no body progress for the parser, but they are bytes from the
    # client all the same.
    with socket.create_connection((api_server.host, api_server.port), timeout=10) as sock:
        sock.sendall(upload_head(api_server, "/api/upload", "Transfer-Encoding: chunked"))
        for piece in (b"5\r\nhello", b"\r\n", b"0\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.6)
        head, body = harness.read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body == b"hello"


def test_api_late_reader_not_timed_out(api_server: harness.Fluxlit) -> None:
    # With Expect: 100-continue the client waits for the app's first receive(), which comes
    # only after two limits. That wait is the app's, not the client's.
    with socket.create_connection((api_server.host, api_server.port), timeout=10) as sock:
        framing = "Content-Length: 4\r\nExpect: 100-continue"
        sock.sendall(upload_head(api_server, "/api/read-later?ms=2000", framing))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"abcd")
        head, body = harness.read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body == b"4"


def test_ui_stalled_upload_gets_408(ui_server: harness.Fluxlit) -> None:
    request = upload_head(ui_server, "/_standin/headers", "Content-Length: 1000") + b"x" * 10
    received, seconds = send_and_read_all(ui_server, request)
    expect_408(received, seconds)
    line = access_line(ui_server, "/_standin/headers", method="POST")
    assert "reason=body_read_timeout" in line, line
