"""ASGI 3.0 conformance of the bridge, one test per message type, key and error case.

Most tests run against apps/conformance_app.py, a raw ASGI app, so they see the exact messages.
The FastAPI tests run apps/conformance_fastapi.py. test_asgi_scope.py covers the rest of the
HTTP scope (path decoding, query string, headers, client, root_path behind a proxy).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
import websockets.exceptions

import harness

ResultT = TypeVar("ResultT")

RAW_TARGET = f"{harness.APPS_DIR / 'conformance_app.py'}:app"
FASTAPI_TARGET = f"{harness.APPS_DIR / 'conformance_fastapi.py'}:app"
NO_LIFESPAN_TARGET = f"{harness.APPS_DIR / 'no_lifespan_app.py'}:app"
FAILING_LIFESPAN_TARGET = f"{harness.APPS_DIR / 'failing_lifespan.py'}:app"

# Log lines of level error that the raw app causes on purpose.
RAW_APP_ERRORS = [
    "conformance: failure after the response started",
    "exception in ASGI app for GET /api/invalid-start/",
]
# A disconnect must reach the app well within a human-noticeable delay.
DISCONNECT_LATENCY_LIMIT_S = 0.1
# Upper bound for a proxied UI request while the API's event loop is blocked. Unloaded, such a
# request takes a few milliseconds; the margin covers a shared two-core machine.
UI_LATENCY_LIMIT_S = 0.5
BLOCK_SECONDS = 5.0
# How long an app computes after its last send() without giving the loop a turn.
BUSY_AFTER_END_S = 2.0


# Every test of the two shared servers runs under both policies of the I/O thread. Under
# SCHED_BATCH the I/O thread wakes the Python thread once per run of its ready handlers instead
# of at once, which changes when each request, body piece and disconnect reaches the app, and
# the Python thread writes the responses that the app ends in one go. The batch servers run on
# one CPU, where the I/O thread runs only while the Python thread sleeps or has used its turn.
IO_SCHEDULING = ["normal", "batch"]


def start_shared(launcher: harness.Launcher, scheduling: str, target: str,
                 expected_errors: Sequence[str] = ()) -> harness.Fluxlit:
    """Start `target` under the I/O policy `scheduling`, on one CPU for the batch policy."""
    arguments = ("--no-ui", "--io-scheduling", scheduling)
    if scheduling == "normal":
        return launcher.start(*arguments, target=target, expected_errors=expected_errors)
    with harness.one_cpu():
        return launcher.start(*arguments, target=target, expected_errors=expected_errors)


@pytest.fixture(scope="module", params=IO_SCHEDULING)
def raw(module_launcher: harness.Launcher, request: pytest.FixtureRequest) -> harness.Fluxlit:
    return start_shared(module_launcher, request.param, RAW_TARGET, RAW_APP_ERRORS)


@pytest.fixture(scope="module", params=IO_SCHEDULING)
def fastapi_server(
    module_launcher: harness.Launcher, request: pytest.FixtureRequest
) -> harness.Fluxlit:
    return start_shared(module_launcher, request.param, FASTAPI_TARGET)


def run(coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=20))


class RawClient(harness.RawClient):
    """A raw connection that also reads chunked bodies and bodies that end with the connection."""

    def request(self, method: str, path: str, extra: str = "", body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.server.authority}\r\n{extra}\r\n"
        self.send(head.encode() + body)

    def fill(self) -> bool:
        """Read more bytes into the buffer; return False at the end of the stream or a reset."""
        try:
            return super().fill()
        except ConnectionResetError:
            return False

    def head(self) -> tuple[int, dict[str, str]]:
        status_line, headers = self.read_head()
        return int(status_line.split(" ")[1]), headers

    def take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            assert self.fill(), f"connection closed after {self.buffer!r}"
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def response(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        status, headers = self.head()
        if method == "HEAD" or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    assert self.fill(), f"connection closed inside chunked body {body!r}"
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                chunk = self.take(size + 2)
                if size == 0:
                    return status, headers, body
                body += chunk[:-2]
        if "content-length" in headers:
            return status, headers, self.take(int(headers["content-length"]))
        # Without Content-Length or chunked framing, the body ends when the connection closes.
        while self.fill():
            pass
        body, self.buffer = self.buffer, b""
        return status, headers, body


def records(server: harness.Fluxlit) -> dict[str, Any]:
    response = httpx.get(server.api_url("/records"), timeout=10)
    assert response.status_code == 200
    return response.json()


def read_then_leave(server: harness.Fluxlit, target: str, byte_count: int = 100_000) -> None:
    """GET `target`, read `byte_count` bytes of its endless response, then close."""
    with RawClient(server) as client:
        client.request("GET", target)
        status, _ = client.head()
        assert status == 200
        while len(client.buffer) < byte_count:
            assert client.fill()


def wait_for_record(server: harness.Fluxlit, name: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(server).get(name)
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the app recorded no {name!r} within {timeout} s")


# ---- scope ----------------------------------------------------------------------------------


def test_scope_asgi_version_and_spec_version(raw: harness.Fluxlit) -> None:
    http_asgi = httpx.get(raw.api_url("/version"), timeout=10).json()["asgi"]
    websocket_asgi = run(websocket_first_message(raw, "/api/ws/echo"))["asgi"]
    for asgi in (http_asgi, websocket_asgi):
        assert asgi["version"] == "3.0"
        # 2.4: send() on a closed connection raises an OSError. 2.5: the disconnect's reason.
        assert asgi["spec_version"] == "2.5"


def test_scope_http_version_10_and_11(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.send(b"GET /api/version HTTP/1.0\r\n\r\n")
        _, _, body = client.response()
    assert json.loads(body)["http_version"] == "1.0"
    with RawClient(raw) as client:
        client.request("GET", "/api/version")
        _, _, body = client.response()
    assert json.loads(body)["http_version"] == "1.1"


def test_scope_non_ascii_path_bytes(launcher: harness.Launcher) -> None:
    scope_target = f"{harness.APPS_DIR / 'scope_app.py'}:app"
    server = launcher.start("--no-ui", target=scope_target)
    with RawClient(server) as client:
        client.send(
            b"GET /api/caf\xc3\xa9/%E2%82%AC HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        status, _, body = client.response()
    assert status == 200
    scope = json.loads(body)
    assert scope["path"] == "/caf\u00e9/\u20ac"
    # raw_path is bytes, returned as latin-1 text: the whole path as sent, API prefix included,
    # with its UTF-8 bytes and its escape.
    assert scope["raw_path"] == "/api/caf\u00c3\u00a9/%E2%82%AC"


def test_scope_forwarded_headers_only_from_trusted_peer(launcher: harness.Launcher) -> None:
    scope_target = f"{harness.APPS_DIR / 'scope_app.py'}:app"
    untrusting = launcher.start(
        "--no-ui", "--forwarded-allow-ips", "192.0.2.1", target=scope_target
    )
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    scope = httpx.get(untrusting.api_url("/inspect"), headers=headers, timeout=10).json()
    assert scope["scheme"] == "http"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", untrusting.port]


def test_scope_server_stays_listener_behind_proxy(launcher: harness.Launcher) -> None:
    scope_target = f"{harness.APPS_DIR / 'scope_app.py'}:app"
    server = launcher.start("--no-ui", target=scope_target)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}
    scope = httpx.get(server.api_url("/inspect"), headers=headers, timeout=10).json()
    assert scope["scheme"] == "https"
    assert scope["server"] == ["127.0.0.1", server.port]


# ---- http.request ---------------------------------------------------------------------------


def test_request_without_body_is_one_message(raw: harness.Fluxlit) -> None:
    parts = httpx.get(raw.api_url("/body-parts"), timeout=10).json()
    assert parts == [{"type": "http.request", "bytes": 0, "more_body": False}]


def test_request_body_arrives_with_more_body(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("POST", "/api/body-parts", "Transfer-Encoding: chunked\r\n")
        client.send(b"5\r\nfirst\r\n")
        time.sleep(0.2)
        client.send(b"6\r\nsecond\r\n0\r\n\r\n")
        status, _, body = client.response()
    assert status == 200
    parts = json.loads(body)
    assert sum(part["bytes"] for part in parts) == 11
    assert all(part["type"] == "http.request" for part in parts)
    assert [part["more_body"] for part in parts][-1] is False
    assert all(part["more_body"] for part in parts[:-1])
    assert len(parts) >= 2


def test_disconnect_reaches_app_within_100_ms(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/wait-disconnect")
        time.sleep(0.3)
        closed_at = time.monotonic()
    record = wait_for_record(raw, "disconnect")
    assert record["type"] == "http.disconnect"
    assert record["at"] - closed_at < DISCONNECT_LATENCY_LIMIT_S


def test_receive_after_response_is_disconnect(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/receive-after-response")
        status, _, _ = client.response()
        assert status == 200
        record = wait_for_record(raw, "after_response")
    assert record["type"] == "http.disconnect"


def test_continue_only_after_first_receive(raw: harness.Fluxlit) -> None:
    expect = "Content-Length: 5\r\nExpect: 100-continue\r\n"
    with RawClient(raw) as client:
        client.request("POST", "/api/no-receive", expect)
        status, _, body = client.response()
        # The app never called receive(), so its final response is the first thing sent.
        assert status == 200
        assert json.loads(body) == {"received": False}
    with RawClient(raw) as client:
        client.request("POST", "/api/body-parts", expect)
        status, _, _ = client.response()
        assert status == 100
        client.send(b"hello")
        status, _, body = client.response()
        assert status == 200
        assert sum(part["bytes"] for part in json.loads(body)) == 5


# ---- http.response.start and http.response.body ---------------------------------------------


def test_head_response_has_no_body(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("HEAD", "/api/version")
        status, head_headers, _ = client.response("HEAD")
        assert status == 200
        # The next response on the connection starts right after the head.
        client.request("GET", "/api/version")
        status, get_headers, body = client.response()
    assert status == 200
    assert json.loads(body)["path"] == "/version"
    assert head_headers["content-length"] == get_headers["content-length"]


def test_no_content_response_has_no_length(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("DELETE", "/api/no-content")
        status, headers, body = client.response()
        assert status == 204
        # RFC 9110 section 8.6: a 204 response carries no Content-Length.
        assert "content-length" not in headers
        assert headers["x-deleted"] == "yes"
        assert body == b""
        client.request("GET", "/api/version")
        status, _, body = client.response()
    assert status == 200
    assert json.loads(body)["path"] == "/version"


# More than a socket takes at once from a client that does not read, so the response is
# written in several steps.
LARGE_BODY_BYTES = 8 * 1024 * 1024


def sized_body(size: int) -> bytes:
    """The body of the app's /sized/<size> route: bytes counting up modulo 251."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def test_large_body_reaches_a_client_that_reads_late(raw: harness.Fluxlit) -> None:
    with RawClient(raw, timeout=20) as client:
        client.request("GET", f"/api/sized/{LARGE_BODY_BYTES}")
        # The server meets a full socket before the client reads anything.
        time.sleep(0.5)
        status, headers, body = client.response()
        assert status == 200
        assert headers["content-length"] == str(LARGE_BODY_BYTES)
        intact = body == sized_body(LARGE_BODY_BYTES)
        assert intact, f"{len(body)} bytes differ from the {LARGE_BODY_BYTES} bytes sent"
        # The connection stays usable, and nothing of the first body is left on it.
        client.request("GET", "/api/sized/10")
        status, _, body = client.response()
        assert (status, body) == (200, sized_body(10))


def test_last_send_waits_for_a_late_reader(raw: harness.Fluxlit) -> None:
    with RawClient(raw, timeout=20) as client:
        client.request("GET", f"/api/sized/{LARGE_BODY_BYTES}?record=late_reader")
        time.sleep(1.0)
        reading_from = time.monotonic()
        status, _, body = client.response()
    assert status == 200
    assert len(body) == LARGE_BODY_BYTES
    # Most of the body could not leave before the client read, so the app's send() waited.
    sent_at = wait_for_record(raw, "late_reader")["at"]
    assert sent_at >= reading_from - 0.05


def test_client_leaving_mid_body_keeps_server_up(raw: harness.Fluxlit) -> None:
    for attempt in range(3):
        with socket.socket() as client:
            # A small receive window keeps most of the body on the server's side.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.settimeout(10)
            client.connect((raw.host, raw.port))
            target = f"/api/sized/{LARGE_BODY_BYTES}?left={attempt}"
            client.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
        # Whichever thread wrote the response, the access log records that it was cut short.
        line = raw.wait_for_log(re.compile(re.escape(target) + r'\\" (\d{3}) '))
        assert re.search(re.escape(target) + r'\\" 499 ', line), line
    response = httpx.get(raw.api_url("/sized/10"), timeout=10)
    assert response.status_code == 200
    assert response.content == sized_body(10)


def test_client_leaving_after_whole_body_is_logged_200(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/late-end?whole=1")
        status, _, body = client.response()
        assert status == 200
        assert body == b"y" * 1000
    # The client closed before the app's empty last event, but it had the whole response.
    line = raw.wait_for_log(re.compile(r'/api/late-end\?whole=1\\" (\d{3}) '))
    assert '/api/late-end?whole=1\\" 200 1000 ' in line, line


def test_response_leaves_during_busy_loop(raw: harness.Fluxlit) -> None:
    started = time.monotonic()
    response = httpx.get(raw.api_url(f"/busy-after-end?seconds={BUSY_AFTER_END_S}"), timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"done": True}
    # The app computes for BUSY_AFTER_END_S after its last send() before it returns.
    assert elapsed < BUSY_AFTER_END_S / 2, f"the response took {elapsed:.2f} s"


def test_body_over_limit_after_start_closes(launcher: harness.Launcher) -> None:
    limit = 1000
    server = launcher.start("--no-ui", "--max-request-body-bytes", str(limit),
                            target=RAW_TARGET)
    piece = b"b" * 2000
    with RawClient(server) as client:
        # Chunked, so that no declared length can be rejected before the app runs.
        client.request("POST", "/api/respond-then-read", "Transfer-Encoding: chunked\r\n")
        status, headers = client.head()
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        client.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(piece), piece))
        assert client.closed_within(5)
    # The chunked body never got its last chunk, so the client can tell it was cut short.
    assert not client.buffer.endswith(b"0\r\n\r\n")
    line = server.wait_for_log("after the response started; closing the connection")
    assert f"request body larger than max_request_body_bytes ({limit} bytes)" in line
    assert "--max-request-body-bytes" in line


def test_body_beyond_content_length_is_rejected(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/too-many-bytes")
        status, headers = client.head()
        assert status == 200
        assert headers["content-length"] == "5"
        assert client.closed_within(5)
    assert len(client.buffer) <= 5
    record = wait_for_record(raw, "too_many_bytes")
    assert record["raised"] is not None
    assert "Content-Length" in record["message"]


def test_body_short_of_content_length_closes(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/too-few-bytes")
        status, headers = client.head()
        assert status == 200
        assert headers["content-length"] == "10"
        # The response cannot be completed, so the connection must not be reused.
        assert client.closed_within(5)
    assert client.buffer == b"abc"


def test_send_after_client_left_raises_oserror(raw: harness.Fluxlit) -> None:
    read_then_leave(raw, "/api/endless-sends")
    # Every send() of this app completes at once, so without the error it would never let the
    # loop run again, and no other request would get a response.
    record = wait_for_record(raw, "endless_sends")
    assert record == {"raised": "ClientDisconnected", "oserror": True}
    assert httpx.get(raw.api_url("/version"), timeout=5).status_code == 200
    line = raw.wait_for_log('GET /api/endless-sends\\" ')
    assert '\\" 499 ' in line, line
    # The spec directs servers not to log an error that they raised themselves.
    logged = [entry.text for entry in raw.log_lines() if "/api/endless-sends" in entry.message]
    assert logged == [line], logged


def test_send_after_response_end_raises(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/send-after-end")
        status, _, body = client.response()
        assert status == 200
        assert json.loads(body) == {"done": True}
        client.request("GET", "/api/version")
        status, _, body = client.response()
        assert status == 200
        assert b"late" not in body
    record = wait_for_record(raw, "after_end")
    assert record["raised"] == "RuntimeError"
    assert "after the response ended" in record["message"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("status-text", "'status' must be an int"),
        ("no-status", "has no 'status'"),
        ("str-header", "must be bytes"),
        ("wrong-type", "unexpected ASGI message type"),
        ("no-type", "ASGI message has no 'type' key"),
        ("bytes-type", "'type' must be a str, not bytes"),
        ("informational", "'status' 103 is not a final HTTP status code (200-599)"),
    ],
)
def test_invalid_response_start_is_500_with_reason(
    raw: harness.Fluxlit, kind: str, reason: str
) -> None:
    response = httpx.get(raw.api_url(f"/invalid-start/{kind}"), timeout=10)
    assert response.status_code == 500
    line = raw.wait_for_log(f"/api/invalid-start/{kind}")
    assert reason in line


def test_exception_after_start_aborts_connection(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request("GET", "/api/raise-after-start")
        status, headers = client.head()
        assert status == 200
        assert headers.get("transfer-encoding") == "chunked"
        assert client.closed_within(5)
    # The body never gets its terminating zero-size chunk, so the client sees it as cut off.
    assert b"partial" in client.buffer
    assert not client.buffer.endswith(b"0\r\n\r\n")
    line = raw.wait_for_log('GET /api/raise-after-start\\" 200 ')
    assert "reason=app_exception" in line, line


def test_pipelined_requests_keep_order(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        pipelined = b"".join(
            f"GET /api/{name} HTTP/1.1\r\nHost: {raw.authority}\r\n\r\n".encode()
            for name in ("slow", "first-fast", "second-fast")
        )
        client.send(pipelined)
        paths = [json.loads(client.response()[2])["path"] for _ in range(3)]
    assert paths == ["/slow", "/first-fast", "/second-fast"]


# ---- lifespan -------------------------------------------------------------------------------


def test_lifespan_state_is_shallow_copy(raw: harness.Fluxlit) -> None:
    first = httpx.get(raw.api_url("/state"), timeout=10).json()
    second = httpx.get(raw.api_url("/state"), timeout=10).json()
    # A key that one request adds stays in that request's copy...
    assert "added_by_request" not in first["keys"]
    assert "added_by_request" not in second["keys"]
    assert "greeting" in second["keys"]
    # ...while a mutable value from startup is shared by every request.
    assert len(second["shared"]) == len(first["shared"]) + 1


def test_app_without_lifespan_is_served(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", target=NO_LIFESPAN_TARGET)
    response = httpx.get(server.api_url("/anything"), timeout=10)
    assert response.status_code == 200
    assert response.text == "served without lifespan"


def test_lifespan_startup_failure_exits_1() -> None:
    finished = harness.run_to_exit(["run", FAILING_LIFESPAN_TARGET, "--port", "0", "--no-ui"])
    assert finished.status == 1
    assert "lifespan startup failed" in finished.stderr
    assert finished.leftovers == []


def test_lifespan_shutdown_runs_on_sigterm(launcher: harness.Launcher, tmp_path: Path) -> None:
    events = tmp_path / "lifespan.log"
    server = launcher.start(
        "--no-ui",
        target=RAW_TARGET,
        extra_environment={"CONFORMANCE_LIFESPAN_LOG": str(events)},
    )
    assert events.read_text().splitlines() == ["lifespan.startup"]
    assert server.stop() == 0
    assert events.read_text().splitlines() == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_startup_failed_message_exits_1(tmp_path: Path) -> None:
    environment = harness.base_environment()
    environment["CONFORMANCE_STARTUP_FAILURE"] = "conformance: cache server is down"
    finished = harness.run_to_exit(
        ["run", RAW_TARGET, "--port", "0", "--no-ui"], environment=environment
    )
    assert finished.status == 1
    assert "conformance: cache server is down" in finished.stderr
    assert "listening" not in finished.stdout
    assert finished.leftovers == []


def test_lifespan_shutdown_failed_is_logged(launcher: harness.Launcher) -> None:
    server = launcher.start(
        "--no-ui",
        target=RAW_TARGET,
        extra_environment={"CONFORMANCE_SHUTDOWN_FAILURE": "conformance: flush failed"},
        expected_errors=["conformance: flush failed"],
    )
    assert server.stop() == 0
    line = server.wait_for_log("conformance: flush failed")
    assert "lifespan shutdown failed" in line


# ---- websocket ------------------------------------------------------------------------------


async def websocket_first_message(server: harness.Fluxlit, path: str) -> dict[str, Any]:
    async with websockets.connect(f"ws://{server.authority}{path}") as socket_:
        return json.loads(await socket_.recv())


def test_websocket_accept_with_subprotocol_and_headers(raw: harness.Fluxlit) -> None:
    async def scenario() -> tuple[Any, Any, dict[str, Any]]:
        async with websockets.connect(
            f"ws://{raw.authority}/api/ws/echo", subprotocols=["first.v1", "second.v2"]
        ) as socket_:
            first = json.loads(await socket_.recv())
            return socket_.subprotocol, socket_.response_headers, first

    subprotocol, headers, first = run(scenario())
    assert first["subprotocols"] == ["first.v1", "second.v2"]
    assert subprotocol == "second.v2"
    assert headers["x-conformance"] == "accepted"
    assert first["path"] == "/ws/echo"
    assert first["root_path"] == "/api"
    assert first["scheme"] == "ws"
    assert "websocket.http.response" in first["extensions"]
    assert wait_for_record(raw, "websocket_connect") == {"type": "websocket.connect"}


def test_websocket_text_and_bytes_round_trip(raw: harness.Fluxlit) -> None:
    async def scenario() -> list[Any]:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/echo") as socket_:
            await socket_.recv()
            await socket_.send("h\u00e9llo")
            text = await socket_.recv()
            await socket_.send(b"\x00\xffdata")
            data = await socket_.recv()
            return [text, data]

    assert run(scenario()) == ["text:h\u00e9llo", b"bytes:\x00\xffdata"]


def test_websocket_app_close_code_and_reason(raw: harness.Fluxlit) -> None:
    async def scenario() -> tuple[int, str]:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/echo") as socket_:
            await socket_.recv()
            await socket_.send("close")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await socket_.recv()
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(scenario()) == (4001, "closing on request")
    # A send after the app's own close is the app's mistake, not a closed client.
    record = wait_for_record(raw, "websocket_after_close")
    assert record["raised"] == "RuntimeError"
    assert "websocket.send is not allowed unless the connection is open" in record["message"]


def test_websocket_send_after_client_left_raises_oserror(raw: harness.Fluxlit) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/send-until-gone") as socket_:
            assert await socket_.recv() == "tick"

    run(scenario())
    record = wait_for_record(raw, "websocket_send_until_gone")
    assert record == {"raised": "ClientDisconnected"}
    # Closing the connection that the client closed is allowed, once.
    assert wait_for_record(raw, "websocket_close_after_gone") == {"raised": None}
    second = wait_for_record(raw, "websocket_second_close")
    assert second["raised"] == "RuntimeError"
    assert "websocket.close is not allowed after the close" in second["message"]


def test_websocket_mistake_after_client_left(raw: harness.Fluxlit) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/accept-twice"):
            pass  # the client closes at once, before the app's second accept

    run(scenario())
    # Before and after the app received the disconnect, a second accept is the app's mistake.
    for name in ("websocket_second_accept", "websocket_third_accept"):
        record = wait_for_record(raw, name)
        assert record["raised"] == "RuntimeError", name
        assert "websocket.accept is not allowed after the handshake" in record["message"], name
    assert wait_for_record(raw, "websocket_received_after_accepts") == "websocket.disconnect"


def test_websocket_client_close_code_reaches_app(raw: harness.Fluxlit) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/echo") as socket_:
            await socket_.recv()
            await socket_.close(code=4321, reason="client leaving")

    run(scenario())
    deadline = time.monotonic() + 5
    codes: list[Any] = []
    while time.monotonic() < deadline and 4321 not in codes:
        codes = [entry["code"] for entry in records(raw).get("websocket_disconnects", [])]
        time.sleep(0.05)
    assert 4321 in codes


def test_websocket_close_before_accept_is_403(raw: harness.Fluxlit) -> None:
    async def scenario() -> int:
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
            async with websockets.connect(f"ws://{raw.authority}/api/ws/close-before-accept"):
                pass
        return refused.value.status_code

    assert run(scenario()) == 403


def test_send_nested_in_send_raises(raw: harness.Fluxlit) -> None:
    # The app's own code runs inside send() while the bridge reads the message. A second send()
    # from there must not pass the checks, because the client would get two response heads.
    with RawClient(raw) as client:
        client.request("GET", "/api/nested-start")
        status, _, body = client.response()
    assert status == 200
    assert body == b"one response"
    assert b"201" not in client.buffer
    record = wait_for_record(raw, "nested_start")
    assert record["raised"] == "RuntimeError"
    assert "another send() of the same connection" in record["message"]


def test_nested_websocket_accept_raises(raw: harness.Fluxlit) -> None:
    async def exchange() -> list[str]:
        async with websockets.connect(f"ws://{raw.authority}/api/ws/nested-accept") as socket_:
            return [message async for message in socket_]

    assert run(exchange()) == ["accepted once"]
    record = wait_for_record(raw, "nested_accept")
    assert record["raised"] == "RuntimeError"


def test_websocket_denial_response_is_sent(raw: harness.Fluxlit) -> None:
    with RawClient(raw) as client:
        client.request(
            "GET",
            "/api/ws/deny",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        )
        status, headers, body = client.response()
    assert status == 418
    assert headers["content-type"] == "text/plain"
    assert body == b"denied by the app"


# ---- FastAPI --------------------------------------------------------------------------------


def test_fastapi_websocket_subprotocol_and_echo(fastapi_server: harness.Fluxlit) -> None:
    async def scenario() -> tuple[Any, Any, list[Any], tuple[int, str]]:
        async with websockets.connect(
            f"ws://{fastapi_server.authority}/api/ws", subprotocols=["chat.v1"]
        ) as socket_:
            await socket_.send("hi")
            text = await socket_.recv()
            await socket_.send(b"\x01")
            data = await socket_.recv()
            await socket_.send("close")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await socket_.recv()
            close = (closed.value.rcvd.code, closed.value.rcvd.reason)
            return socket_.subprotocol, socket_.response_headers, [text, data], close

    subprotocol, headers, echoed, close = run(scenario())
    assert subprotocol == "chat.v1"
    assert headers["x-conformance"] == "fastapi"
    assert echoed == ["text:hi", b"bytes:\x01"]
    assert close == (4002, "fastapi closing")


def test_fastapi_websocket_disconnect_code(fastapi_server: harness.Fluxlit) -> None:
    async def scenario() -> None:
        async with websockets.connect(f"ws://{fastapi_server.authority}/api/ws") as socket_:
            await socket_.send("hi")
            await socket_.recv()
            await socket_.close(code=4100)

    run(scenario())
    deadline = time.monotonic() + 5
    codes: list[Any] = []
    while time.monotonic() < deadline and 4100 not in codes:
        entries = httpx.get(fastapi_server.api_url("/disconnects"), timeout=10).json()
        codes = [entry["code"] for entry in entries]
        time.sleep(0.05)
    assert 4100 in codes


def test_fastapi_url_for_uses_forwarded_scheme_and_host(fastapi_server: harness.Fluxlit) -> None:
    # A trusted proxy that keeps the client's Host and adds the scheme the client used.
    headers = {"X-Forwarded-Proto": "https", "Host": "app.example.com"}
    found = httpx.get(fastapi_server.api_url("/items/"), headers=headers, timeout=10).json()
    assert found["url_for"] == "https://app.example.com/api/items/"
    assert found["root_path"] == "/api"


def test_fastapi_slash_redirect_uses_forwarded_scheme(fastapi_server: harness.Fluxlit) -> None:
    headers = {"X-Forwarded-Proto": "https", "Host": "app.example.com"}
    response = httpx.get(fastapi_server.api_url("/items"), headers=headers, timeout=10)
    assert response.status_code == 307
    assert response.headers["location"] == "https://app.example.com/api/items/"


def test_fastapi_redirect_keeps_prefix_and_url_for(fastapi_server: harness.Fluxlit) -> None:
    redirect = httpx.get(fastapi_server.api_url("/hello/"), timeout=10)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"http://{fastapi_server.authority}/api/hello"
    found = httpx.get(redirect.headers["location"], timeout=10).json()
    assert found == {
        "url_for": f"http://{fastapi_server.authority}/api/hello",
        "root_path": "/api",
    }


def test_fastapi_docs_name_spec_under_prefix(fastapi_server: harness.Fluxlit) -> None:
    docs = httpx.get(fastapi_server.api_url("/docs"), timeout=10)
    assert docs.status_code == 200
    assert "'/api/openapi.json'" in docs.text or '"/api/openapi.json"' in docs.text
    spec = httpx.get(fastapi_server.api_url("/openapi.json"), timeout=10)
    assert spec.status_code == 200
    # "Try it out" joins the server URL and the path: /api + /hello, never /api/api/hello.
    assert spec.json()["servers"] == [{"url": "/api"}]
    assert "/hello" in spec.json()["paths"]
    assert not any(path.startswith("/api/") for path in spec.json()["paths"])


def test_docs_behind_prefix_name_spec(launcher: harness.Launcher) -> None:
    # Behind a proxy that publishes the app under /tools/app, the browser must fetch the spec
    # through that prefix, or the docs page loads and then fails to find its spec.
    server = launcher.start("--no-ui", "--root-path", "/tools/app", target=FASTAPI_TARGET,
                            api_prefix="/tools/app/api")
    docs = httpx.get(server.url("/tools/app/api/docs"), timeout=10)
    assert docs.status_code == 200
    assert "/tools/app/api/openapi.json" in docs.text
    spec = httpx.get(server.url("/tools/app/api/openapi.json"), timeout=10)
    assert spec.status_code == 200
    assert spec.json()["servers"] == [{"url": "/tools/app/api"}]
    assert "/hello" in spec.json()["paths"]


def test_docs_outside_api_redirects_to_api_docs(launcher: harness.Launcher) -> None:
    server = launcher.start(target=FASTAPI_TARGET)
    response = httpx.get(server.url("/docs"), timeout=10)
    assert response.status_code in (301, 302, 307, 308)
    assert urlsplit(response.headers["location"]).path == "/api/docs"


def test_stream_chunks_arrive_as_produced(fastapi_server: harness.Fluxlit) -> None:
    arrivals = []
    with httpx.Client(timeout=20) as client:
        url = fastapi_server.api_url("/endless?delay_ms=20")
        with client.stream("GET", url) as response:
            started = time.monotonic()
            received = b""
            for piece in response.iter_raw():
                received += piece
                arrivals.append((time.monotonic() - started, received.count(b"\n")))
                if received.count(b"\n") >= 50:
                    break
    # 50 lines 20 ms apart take about a second; they must arrive spread over that time, not
    # in one piece at the end.
    first_time, first_lines = arrivals[0]
    assert first_lines < 10
    assert first_time < 0.5
    assert arrivals[-1][0] >= 0.7
    assert len(arrivals) >= 10


def wait_for_stream_ends(server: harness.Fluxlit, before: int) -> list[dict[str, Any]]:
    """Return the /stream-ends records once there are more than `before`, or after 5 s."""
    deadline = time.monotonic() + 5
    ends: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(ends) <= before:
        ends = httpx.get(server.api_url("/stream-ends"), timeout=10).json()
        time.sleep(0.05)
    return ends


def test_stream_cancelled_after_client_disconnect(fastapi_server: harness.Fluxlit) -> None:
    before = len(httpx.get(fastapi_server.api_url("/stream-ends"), timeout=10).json())
    with RawClient(fastapi_server) as client:
        client.request("GET", "/api/endless?delay_ms=50")
        status, _ = client.head()
        assert status == 200
        while client.buffer.count(b"line ") < 3:
            assert client.fill()
        closed_at = time.monotonic()
    ends = wait_for_stream_ends(fastapi_server, before)
    assert len(ends) == before + 1
    end = ends[-1]
    assert end["cancelled"] is True
    assert end["at"] - closed_at < 1.0
    # The generator stopped: it produced at most a few lines after the close.
    assert end["sent"] < 3 + 1.0 / 0.05


def test_stream_without_pauses_ends_after_client_disconnect(
    fastapi_server: harness.Fluxlit,
) -> None:
    before = len(httpx.get(fastapi_server.api_url("/stream-ends"), timeout=10).json())
    read_then_leave(fastapi_server, "/api/endless?pause=false")
    # Starlette's own watch for the disconnect needs a turn of the loop, which this stream never
    # gives. send() raising is what stops it, and the loop serves other requests again.
    assert httpx.get(fastapi_server.api_url("/ping"), timeout=5).json() == {"pong": "ok"}
    line = fastapi_server.wait_for_log('GET /api/endless?pause=false\\" ')
    assert '\\" 499 ' in line, line
    # Starlette leaves the generator suspended where it yielded, held by the reference cycles of
    # the exception. Python closes it, and runs its `finally`, once it collects them.
    assert httpx.get(fastapi_server.api_url("/collect"), timeout=10).status_code == 200
    ends = wait_for_stream_ends(fastapi_server, before)
    assert len(ends) == before + 1
    assert ends[-1]["cancelled"] is True


def test_busy_stream_cancelled_after_client_disconnect(fastapi_server: harness.Fluxlit) -> None:
    before = len(httpx.get(fastapi_server.api_url("/stream-ends"), timeout=10).json())
    # The generator only yields to the loop between lines, so most send() calls after the client
    # left come before the loop has read the disconnect.
    read_then_leave(fastapi_server, "/api/endless?delay_ms=0")
    closed_at = time.monotonic()
    ends = wait_for_stream_ends(fastapi_server, before)
    # The disconnect reaches Starlette's watch before send() raises, so the generator is
    # cancelled where it waits and runs its `finally` at once, with no garbage collection.
    assert len(ends) == before + 1
    assert ends[-1]["cancelled"] is True
    assert ends[-1]["at"] - closed_at < 1.0


# ---- isolation of the UI from the API -------------------------------------------------------


def timed_get(client: httpx.Client, url: str) -> float:
    started = time.monotonic()
    response = client.get(url)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    return elapsed


def test_blocked_event_loop_does_not_slow_ui(launcher: harness.Launcher) -> None:
    server = launcher.start(target=FASTAPI_TARGET)
    ui_url = server.url("/_stcore/health")
    result: dict[str, Any] = {}

    def call_blocking_route() -> None:
        with httpx.Client(timeout=BLOCK_SECONDS + 10) as api:
            result["response"] = api.get(server.api_url(f"/block-loop?seconds={BLOCK_SECONDS}"))

    with httpx.Client(timeout=10) as ui:
        baseline = [timed_get(ui, ui_url) for _ in range(10)]
        blocked_at = time.monotonic()
        thread = threading.Thread(target=call_blocking_route)
        thread.start()
        time.sleep(0.5)
        latencies = []
        while time.monotonic() - blocked_at < BLOCK_SECONDS - 0.5:
            latencies.append(timed_get(ui, ui_url))
            time.sleep(0.05)
        thread.join(BLOCK_SECONDS + 10)
    assert result["response"].status_code == 200
    # The UI requests above ran while the loop was blocked.
    assert time.monotonic() - blocked_at >= BLOCK_SECONDS
    assert len(latencies) >= 20
    assert max(latencies) < UI_LATENCY_LIMIT_S, (baseline, latencies)
    median = sorted(latencies)[len(latencies) // 2]
    assert median < max(max(baseline) * 3, 0.05), (baseline, latencies)


def test_readiness_lag_of_idle_and_blocked_loop(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", "--readiness-max-loop-lag-ms", "100", target=FASTAPI_TARGET)
    readyz = server.api_url("/readyz")
    # Polls 37 ms apart land at every phase of the loop's heartbeat; an idle loop is never late.
    for _ in range(30):
        response = httpx.get(readyz, timeout=5)
        python = response.json()["checks"]["python"]
        assert response.status_code == 200, python
        assert python["loop_lag_ms"] <= 100, python
        time.sleep(0.037)

    thread = threading.Thread(
        target=lambda: httpx.get(server.api_url("/block-loop?seconds=1.5"), timeout=10)
    )
    thread.start()
    time.sleep(0.9)
    response = httpx.get(readyz, timeout=5)
    thread.join(10)
    python = response.json()["checks"]["python"]
    assert response.status_code == 503
    assert python["ok"] is False
    assert python["loop_lag_ms"] > 100
    # The next beat comes as soon as the loop runs again.
    deadline = time.monotonic() + 2
    while httpx.get(readyz, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "readiness stayed 503 after the loop unblocked"
        time.sleep(0.05)
    assert server.stop() == 0
