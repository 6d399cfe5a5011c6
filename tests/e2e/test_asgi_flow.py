"""How the ASGI callables complete at once or wait: bodies in pieces, large bodies, streams,
backpressure from a slow client, and a client that leaves in the middle of its upload.

apps/flow_app.py serves the routes; its bodies are a repeating byte pattern.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

import harness

FLOW_TARGET = f"{harness.APPS_DIR / 'flow_app.py'}:app"
PATTERN = bytes(range(256))
SEND_HIGH_WATER_BYTES = 256 * 1024


def pattern_bytes(size: int, offset: int = 0) -> bytes:
    start = offset % len(PATTERN)
    repeats = (start + size) // len(PATTERN) + 1
    return (PATTERN * repeats)[start : start + size]


@pytest.fixture(scope="module")
def server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    return module_launcher.start(
        "--no-ui",
        target=FLOW_TARGET,
        extra_environment={"FLUXLIT_ASGI_SEND_HIGH_WATER_BYTES": str(SEND_HIGH_WATER_BYTES)},
        expected_errors=["TypeError: an ASGI message must be a dict", "takes 0 positional arguments"],
    )


def recorded_events(server: harness.Fluxlit) -> list[str]:
    response = httpx.get(server.api_url("/events"))
    assert response.status_code == 200
    return json.loads(response.content)


def wait_for_event(server: harness.Fluxlit, prefix: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [event for event in recorded_events(server) if event.startswith(prefix)]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"the app recorded no event starting with {prefix!r}")


def test_body_in_several_sends_arrives_whole(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/pieces"))
    assert response.status_code == 200
    assert response.headers["content-length"] == "20015"
    assert response.content == pattern_bytes(20_015)


@pytest.mark.parametrize("size", [1, 16 * 1024 - 1, 16 * 1024, 100 * 1024, 3 * 1024 * 1024])
def test_large_body_arrives_intact(server: harness.Fluxlit, size: int) -> None:
    with httpx.Client() as client:
        for _ in range(3):  # on one keep-alive connection
            response = client.get(server.api_url(f"/large?size={size}"))
            assert response.status_code == 200
            assert len(response.content) == size
            assert response.content == pattern_bytes(size)


def test_chunked_stream_of_large_pieces(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/stream?count=6&size=70000"))
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == pattern_bytes(6 * 70_000)


def test_slow_client_holds_back_app(server: harness.Fluxlit) -> None:
    count, size = 128, 256 * 1024  # 32 MiB, far above what the socket buffers hold
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(30)
        sock.connect((server.host, server.port))
        sock.sendall(
            f"GET /api/flood?count={count}&size={size} HTTP/1.1\r\n"
            f"Host: {server.authority}\r\n\r\n".encode()
        )
        time.sleep(1.0)  # the client reads nothing meanwhile
        events = recorded_events(server)
        sent = [event for event in events if event.startswith("flood sent")]
        assert "flood done" not in events
        assert len(sent) < count // 2
        _, body = harness.read_response(sock)
    assert len(body) == count * size
    assert body == pattern_bytes(count * size)
    assert wait_for_event(server, "flood done") == "flood done"


def test_disconnect_mid_body_reaches_app(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            f"POST /api/upload HTTP/1.1\r\nHost: {server.authority}\r\n"
            "X-Request-ID: flow-mid-body-gone\r\nContent-Length: 100000\r\n\r\n".encode()
            + b"x" * 1000
        )
        time.sleep(0.3)
    assert wait_for_event(server, "upload disconnect") == "upload disconnect after 1000 bytes"
    # A body cut short by the client leaving is no malformed body: 499, not 400.
    line = server.wait_for_log("rid=flow-mid-body-gone ")
    assert '" 499 ' in line, line


def test_disconnect_after_body_reaches_app(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            f"GET /api/wait-disconnect HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode()
        )
        time.sleep(0.3)
    assert wait_for_event(server, "wait-disconnect") == "wait-disconnect got http.disconnect"


def test_disconnect_during_stream_reaches_app(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"GET /api/endless HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        received = b""
        while received.count(b"tick") < 3:
            piece = sock.recv(65536)
            assert piece, received
            received += piece
    assert wait_for_event(server, "endless") == "endless got http.disconnect"


def test_head_arrives_before_late_body(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(f"GET /api/late-body HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        head_seconds = time.monotonic() - started
        while not data.endswith(b"0\r\n\r\n"):
            piece = sock.recv(65536)
            assert piece, data
            data += piece
    assert data.startswith(b"HTTP/1.1 200 ")
    assert head_seconds < 0.8
    assert b"4\r\nlate\r\n" in data


def test_buffered_upload_is_echoed(server: harness.Fluxlit) -> None:
    body = pattern_bytes(1000)
    response = httpx.post(server.api_url("/upload"), content=body)
    assert response.status_code == 200
    assert response.content == body


def test_upload_sent_later_reaches_app(server: harness.Fluxlit) -> None:
    # The app calls receive() before the body arrives, so it has to wait for it.
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            f"POST /api/upload HTTP/1.1\r\nHost: {server.authority}\r\n"
            "Content-Length: 10\r\n\r\n".encode()
        )
        time.sleep(0.3)
        sock.sendall(b"0123456789")
        head, body = harness.read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"0123456789"


def test_anyio_thread_call_works(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/thread"))
    assert response.status_code == 200
    assert response.text == "42"


def test_send_of_non_dict_is_500(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/bad-send"))
    assert response.status_code == 500
    server.wait_for_log("an ASGI message must be a dict, not list")


def test_receive_with_argument_is_500(server: harness.Fluxlit) -> None:
    response = httpx.get(server.api_url("/bad-receive"))
    assert response.status_code == 500
    server.wait_for_log("takes 0 positional arguments")


def test_receive_and_send_work_from_tasks_and_threads(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", target=f"{harness.APPS_DIR / 'task_callables_app.py'}:app")
    for body in (b"", b"x" * 10, b"y" * 100_000):
        response = httpx.post(server.api_url("/any"), content=body, timeout=10)
        assert response.status_code == 200
        assert response.headers["x-path"] == "task"
        assert response.content == b"got " + body[: len(response.content) - 4]


def test_body_arrives_in_large_messages(server: harness.Fluxlit) -> None:
    # Reads follow the body chunk size, not the few hundred bytes left after the head.
    body = b"z" * (1024 * 1024)
    report = httpx.post(server.api_url("/body-messages"), content=body, timeout=30).json()
    assert report["largest"] > 16 * 1024, report
    assert report["messages"] <= 64, report
