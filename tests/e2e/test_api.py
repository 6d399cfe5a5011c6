"""The example FastAPI app served under /api by the embedded interpreter."""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

import harness

MEBIBYTE = 1 << 20
BOOM_TRACEBACK = "RuntimeError: boom"


@pytest.fixture(scope="module")
def server(hello: harness.Fluxlit) -> harness.Fluxlit:
    # GET /api/boom logs the app's traceback at level error on purpose.
    hello.expect_error(BOOM_TRACEBACK)
    return hello


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response head from `sock`; return it and any bytes that came after it."""
    lines, rest = harness.read_response_head(sock)
    return "\r\n".join(lines).encode("latin-1"), rest


def header_value(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        field, _, value = line.decode("latin-1").partition(":")
        if field.strip().lower() == name.lower():
            return value.strip()
    return None


def test_users_list_is_json(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/users"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    names = [user["name"] for user in response.json()]
    assert "Ada Lovelace" in names


def test_user_create_answers_201(server: harness.Fluxlit) -> None:
    created = httpx.post(
        server.api_url("/users"), json={"name": "Grace Hopper", "email": "grace@example.com"}
    )
    assert created.status_code == 201
    user_id = created.json()["id"]

    fetched = httpx.get(server.api_url(f"/users/{user_id}"))
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "Grace Hopper"


def test_user_create_rejects_invalid_body(server: harness.Fluxlit) -> None:
    response = httpx.post(server.api_url("/users"), json={"name": ""})
    assert response.status_code == 422


def test_echo_returns_random_mebibyte(server: harness.Fluxlit) -> None:
    body = os.urandom(MEBIBYTE)
    response = httpx.post(server.api_url("/echo"), content=body, timeout=30)
    assert response.status_code == 200
    assert len(response.content) == MEBIBYTE
    assert response.content == body


def test_echo_accepts_chunked_upload(server: harness.Fluxlit) -> None:
    pieces = [os.urandom(64 * 1024) for _ in range(16)]

    def upload() -> Iterator[bytes]:
        yield from pieces

    request = httpx.Request("POST", server.api_url("/echo"), content=upload())
    assert request.headers.get("transfer-encoding") == "chunked"
    with httpx.Client(timeout=30) as client:
        response = client.send(request)
    assert response.status_code == 200
    assert response.content == b"".join(pieces)


def test_stream_arrives_in_pieces(server: harness.Fluxlit) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("GET", server.api_url("/stream?chunks=5&delay_ms=300"), timeout=30) as r:
        assert r.status_code == 200
        for piece in r.iter_raw():
            arrivals.append((time.monotonic() - started, piece))

    body = b"".join(piece for _, piece in arrivals)
    assert body == b"".join(f"chunk {index}\n".encode() for index in range(5))
    first_at = arrivals[0][0]
    last_at = arrivals[-1][0]
    # The app sleeps 300 ms between lines, so 1.2 s pass between the first and the last line.
    assert first_at < 0.6, f"first chunk after {first_at:.3f} s"
    assert last_at - first_at > 0.9, f"arrivals: {[round(at, 3) for at, _ in arrivals]}"
    assert len(arrivals) >= 4, f"arrivals: {arrivals}"


def test_boom_then_new_connection_works(server: harness.Fluxlit) -> None:
    failed = httpx.get(server.api_url("/boom"))
    assert failed.status_code == 500

    after = httpx.get(server.api_url("/users/1"))
    assert after.status_code == 200
    assert after.json()["id"] == 1


def test_boom_keeps_connection_usable(server: harness.Fluxlit) -> None:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", "/api/boom")
        failed = connection.getresponse()
        failed.read()
        assert failed.status == 500
        assert connection.sock is not None, "the server closed the connection after the 500"
        local_port = connection.sock.getsockname()[1]

        connection.request("GET", "/api/users/2")
        after = connection.getresponse()
        after.read()
        assert after.status == 200
        assert connection.sock.getsockname()[1] == local_port
    finally:
        connection.close()


def test_boom_is_logged_with_traceback(server: harness.Fluxlit) -> None:
    httpx.get(server.api_url("/boom"))
    line = server.wait_for_log(BOOM_TRACEBACK)
    record = harness.parse_log_line(line)
    assert record.level == "error"
    assert record.source == "app"


def test_head_on_api_route_has_no_body(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"HEAD /api/users HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 ")
        assert rest == b""
        # Bytes of a body would arrive right after the head; wait a moment for them.
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(65536)

        # The connection stays in step: the next response starts with a status line.
        sock.settimeout(5)
        sock.sendall(f"GET /api/users/1 HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        next_head, _ = read_head(sock)
        assert next_head.startswith(b"HTTP/1.1 200 ")


def test_redirect_keeps_api_prefix(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/users/"))
    assert response.status_code == 307
    location = urlsplit(response.headers["location"])
    assert location.path == "/api/users"
    assert location.netloc == server.authority


def test_redirect_follows_forwarded_proto(server: harness.Fluxlit) -> None:
    response = httpx.get(
        server.api_url("/users/"),
        headers={"X-Forwarded-Proto": "https", "Host": "app.example.com"},
    )
    assert response.status_code == 307
    assert response.headers["location"] == "https://app.example.com/api/users"


def test_redirect_keeps_root_path(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", "--root-path", "/edge", api_prefix="/edge/api")
    response = httpx.get(server.url("/edge/api/users/"))
    assert response.status_code == 307
    assert urlsplit(response.headers["location"]).path == "/edge/api/users"


def test_untrusted_forwarded_proto_is_ignored(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", "--forwarded-allow-ips", "192.0.2.1")
    response = httpx.get(
        server.api_url("/users/"),
        headers={"X-Forwarded-Proto": "https", "Host": "app.example.com"},
    )
    assert response.status_code == 307
    assert response.headers["location"] == "http://app.example.com/api/users"


def test_request_id_is_returned(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/users"))
    request_id = response.headers.get("x-request-id", "")
    assert len(request_id) == 32
    assert all(character in "0123456789abcdef" for character in request_id)


def test_request_id_from_client_is_kept(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/users"), headers={"X-Request-ID": "e2e-trace_0042.a"})
    assert response.headers.get("x-request-id") == "e2e-trace_0042.a"


def test_unsafe_request_id_is_replaced(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/users"), headers={"X-Request-ID": "bad id<script>"})
    request_id = response.headers.get("x-request-id", "")
    assert request_id != "bad id<script>"
    assert len(request_id) == 32


def test_healthz_is_json(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/healthz"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


def test_readyz_reports_checks(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/readyz"))
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["streamlit"]["ok"] is True


def test_metrics_are_prometheus_text(server: harness.Fluxlit) -> None:
    httpx.get(server.api_url("/users"))
    response = httpx.get(server.api_url("/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE " in response.text
