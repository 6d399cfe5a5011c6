"""Malformed requests and upstream connection reuse, checked against the real binary.

Most tests send one exact request over a raw socket and check the status line.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

import harness

# A token that is well formed but does not match the `_xsrf` cookie that the stand-in set.
WRONG_XSRF_TOKEN = "2|00000000|" + "0" * 32 + "|1700000000"


@pytest.fixture(scope="module")
def server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    # /api/echo raises ClientDisconnect when a body is cut off, and the app logs it.
    return module_launcher.start(expected_errors=["ClientDisconnect"])


def exchange(server: harness.Fluxlit, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` on a new connection and return the bytes received until close or `timeout`."""
    received = b""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            while piece := sock.recv(65536):
                received += piece
        except TimeoutError:
            pass
        except ConnectionResetError:
            pass
    return received


def status_code(response: bytes) -> int | None:
    """Return the status code of the first response in `response`, or None when it is empty."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


def test_invalid_chunk_size_gets_400(server: harness.Fluxlit) -> None:
    head = f"POST /api/echo HTTP/1.1\r\nHost: {server.authority}\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = exchange(server, head.encode() + b"zz\r\nabc\r\n0\r\n\r\n")
    assert status_code(response) == 400, response[:200]


def test_invalid_chunk_size_to_ui_gets_400(server: harness.Fluxlit) -> None:
    head = (
        f"POST /_standin/headers HTTP/1.1\r\nHost: {server.authority}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    response = exchange(server, head.encode() + b"zz\r\nabc\r\n0\r\n\r\n")
    assert status_code(response) == 400, response[:200]


def test_duplicate_host_gets_400(server: harness.Fluxlit) -> None:
    request = b"GET /_standin/headers HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n"
    response = exchange(server, request)
    assert status_code(response) == 400, response[:200]


def test_http11_without_host_gets_400(server: harness.Fluxlit) -> None:
    response = exchange(server, b"GET /api/users/1 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_code(response) == 400, response[:200]


def test_http10_without_host_is_served(server: harness.Fluxlit) -> None:
    response = exchange(server, b"GET /api/users/1 HTTP/1.0\r\n\r\n")
    assert status_code(response) == 200, response[:200]
    assert b"Ada Lovelace" in response


def test_unknown_transfer_coding_is_rejected(server: harness.Fluxlit) -> None:
    # The gateway cannot undo gzip, so it must not hand the still-compressed body to the app.
    head = (
        f"POST /api/echo HTTP/1.1\r\nHost: {server.authority}\r\n"
        "Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
    )
    response = exchange(server, head.encode() + b"3\r\nabc\r\n0\r\n\r\n")
    assert status_code(response) in (400, 501), response[:200]


def test_crlf_in_app_header_is_not_sent(launcher: harness.Launcher, tmp_path) -> None:
    app_file = tmp_path / "crlf_app.py"
    app_file.write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    headers = [(b'x-bad', b'a\\r\\nx-injected: yes')]\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': headers})\n"
        "    await send({'type': 'http.response.body', 'body': b'body'})\n"
    )
    server = launcher.start(
        "--no-ui", target=f"{app_file}:app", expected_errors=["exception in ASGI app"]
    )
    response = exchange(server, f"GET /api/x HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
    assert status_code(response) == 500, response[:200]
    assert b"x-injected" not in response.lower()


def test_post_after_early_upload_rejection(server: harness.Fluxlit) -> None:
    # The stand-in rejects a wrong XSRF token before it reads the body. The next request with a
    # body must still reach Streamlit, not fail with 502 (upstream_response_invalid).
    with httpx.Client() as client:
        assert client.get(server.url("/_stcore/health")).status_code == 200
        cookie = f"_xsrf={client.cookies['_xsrf']}"
    head = (
        f"PUT /_stcore/upload_file/s/f HTTP/1.1\r\nHost: {server.authority}\r\n"
        f"Cookie: {cookie}\r\nX-Xsrftoken: {WRONG_XSRF_TOKEN}\r\n"
        "Content-Length: 10\r\nConnection: close\r\n\r\n"
    )
    rejected = exchange(server, head.encode() + b"x" * 10, timeout=2)
    assert status_code(rejected) == 403, rejected[:200]

    response = httpx.post(server.url("/_standin/headers"), content=b"abc", timeout=10)
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["body_bytes"] == 3
