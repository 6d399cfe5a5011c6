"""UI request heads that fit max_header_bytes but not Streamlit's own limit once forwarded.

The stand-in runs on Tornado's HTTP server, as Streamlit does, so it closes the connection
without a response when a request head is larger than Tornado's limit.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

import harness

# Tornado's max_header_size default (Tornado 6.2), which Streamlit keeps. It counts the request
# line, the headers and the blank line that ends them.
STREAMLIT_HEADER_LIMIT = 65536
# The default of max_header_bytes, which the `hello` server keeps.
GATEWAY_HEADER_LIMIT = 65536
REASON = "streamlit_request_header_too_large"
# The cookie of the probe that measures what the gateway adds to a head.
PROBE_COOKIE_BYTES = 100


@pytest.fixture(scope="module")
def server(hello: harness.Fluxlit) -> harness.Fluxlit:
    return hello


def new_request_id() -> str:
    # Every id has the same length, so heads with equal cookies have equal sizes.
    return uuid.uuid4().hex


def request_head(
    server: harness.Fluxlit, upgrade: bool, request_id: str, cookie_bytes: int
) -> bytes:
    """Build a GET head whose `pad` cookie value has `cookie_bytes` bytes.

    With `upgrade`, the head is a WebSocket upgrade of Streamlit's stream, as a browser sends it.
    """
    target = "/_stcore/stream" if upgrade else "/_standin/headers"
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {server.authority}",
        f"X-Request-ID: {request_id}",
        f"Cookie: pad={'c' * cookie_bytes}",
    ]
    if upgrade:
        lines += [
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol: streamlit",
        ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_head(server: harness.Fluxlit, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `head` on a new connection and read one response: status, headers and body."""
    with harness.RawClient(server, timeout=10) as client:
        client.send(head)
        status_line, headers, body = client.response()
    return int(status_line.split(" ", 2)[1]), headers, body


def recorded_request(server: harness.Fluxlit, request_id: str) -> dict[str, Any] | None:
    """Return the stand-in's record of the request that carried `request_id`, if it got one."""
    for entry in server.record()["requests"]:
        if ["X-Request-Id", request_id] in entry["headers"]:
            return entry
    return None


def forwarded_head_bytes(entry: dict[str, Any]) -> int:
    """Return the size of the head that the stand-in received, rebuilt from its record."""
    text = f"{entry['method']} {entry['uri']} {entry['version']}\r\n"
    text += "".join(f"{name}: {value}\r\n" for name, value in entry["headers"])
    return len((text + "\r\n").encode("latin-1"))


def cookie_bytes_for(server: harness.Fluxlit, upgrade: bool, forwarded_bytes: int) -> int:
    """Return the cookie size that makes the forwarded head exactly `forwarded_bytes` long."""
    request_id = new_request_id()
    status, _, _ = send_head(server, request_head(server, upgrade, request_id, PROBE_COOKIE_BYTES))
    assert status == (101 if upgrade else 200)
    entry = recorded_request(server, request_id)
    assert entry is not None, "the stand-in did not record the probe"
    return PROBE_COOKIE_BYTES + forwarded_bytes - forwarded_head_bytes(entry)


def assert_rejected_locally(server: harness.Fluxlit, head: bytes, request_id: str) -> None:
    with harness.RawClient(server, timeout=10) as client:
        client.send(head)
        status_line, headers, body = client.response()
        assert status_line.split(" ", 2)[1] == "431"
        assert headers["x-fluxlit-reason"] == REASON
        assert headers["connection"] == "close"
        assert headers["x-request-id"] == request_id
        reply = json.loads(body)
        assert reply["reason"] == REASON
        assert f"at most {STREAMLIT_HEADER_LIMIT} bytes" in reply["detail"]
        assert "fewer or smaller cookies or headers" in reply["detail"]
        assert client.closed_within(5)
    assert recorded_request(server, request_id) is None, "the head reached Streamlit"
    access = re.compile(rf"rid={request_id} .* 431 .*route=local reason={REASON}")
    assert '"source":"access"' in server.wait_for_log(access)


@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket"])
def test_head_under_gateway_limit_gets_431(server: harness.Fluxlit, upgrade: bool) -> None:
    # The client's head is one byte under max_header_bytes, so the parser accepts it, and the
    # forwarding headers push it past Streamlit's limit.
    request_id = new_request_id()
    empty_cookie = request_head(server, upgrade, request_id, 0)
    cookie_bytes = GATEWAY_HEADER_LIMIT - 1 - len(empty_cookie)
    head = request_head(server, upgrade, request_id, cookie_bytes)
    assert len(head) == GATEWAY_HEADER_LIMIT - 1
    assert_rejected_locally(server, head, request_id)


@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket"])
def test_head_one_byte_over_gets_431(server: harness.Fluxlit, upgrade: bool) -> None:
    cookie_bytes = cookie_bytes_for(server, upgrade, STREAMLIT_HEADER_LIMIT + 1)
    request_id = new_request_id()
    head = request_head(server, upgrade, request_id, cookie_bytes)
    assert len(head) < GATEWAY_HEADER_LIMIT
    assert_rejected_locally(server, head, request_id)


def test_upload_gets_431_before_continue(server: harness.Fluxlit) -> None:
    # The client waits for 100 Continue before it sends the body, and must get the 431 instead.
    request_id = new_request_id()

    def head_with(cookie_bytes: int) -> bytes:
        return (
            f"PUT /_stcore/upload_file/s/f HTTP/1.1\r\nHost: {server.authority}\r\n"
            f"X-Request-ID: {request_id}\r\nCookie: pad={'c' * cookie_bytes}\r\n"
            "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        ).encode()

    head = head_with(GATEWAY_HEADER_LIMIT - 1 - len(head_with(0)))
    assert len(head) == GATEWAY_HEADER_LIMIT - 1
    assert_rejected_locally(server, head, request_id)


@pytest.mark.parametrize(
    "forwarded_bytes", [48 * 1024, STREAMLIT_HEADER_LIMIT], ids=["well_below", "at_limit"]
)
@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket"])
def test_head_within_limit_is_forwarded(
    server: harness.Fluxlit, upgrade: bool, forwarded_bytes: int
) -> None:
    cookie_bytes = cookie_bytes_for(server, upgrade, forwarded_bytes)
    request_id = new_request_id()
    status, headers, _ = send_head(server, request_head(server, upgrade, request_id, cookie_bytes))
    assert status == (101 if upgrade else 200)
    assert "x-fluxlit-reason" not in headers
    entry = recorded_request(server, request_id)
    assert entry is not None, "the stand-in did not record the request"
    assert forwarded_head_bytes(entry) == forwarded_bytes


def test_api_head_skips_streamlit_limit(server: harness.Fluxlit) -> None:
    # API routes never go to Streamlit, so only max_header_bytes applies to them.
    def head_with(cookie_bytes: int) -> bytes:
        return (
            f"GET /api/users/1 HTTP/1.1\r\nHost: {server.authority}\r\n"
            f"Cookie: pad={'c' * cookie_bytes}\r\nConnection: close\r\n\r\n"
        ).encode()

    head = head_with(GATEWAY_HEADER_LIMIT - len(head_with(0)))
    assert len(head) == GATEWAY_HEADER_LIMIT
    status, _, body = send_head(server, head)
    assert status == 200
    assert b"Ada Lovelace" in body
