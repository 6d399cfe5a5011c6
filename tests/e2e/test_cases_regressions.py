"""Malformed requests and upstream connection reuse, checked against the real binary.

Most tests send one exact request over a raw socket and check the status line.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path

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


def serve_app_source(
    launcher: harness.Launcher,
    directory: Path,
    file_name: str,
    source: str,
    expected_errors: Sequence[str] = (),
) -> harness.Fluxlit:
    """Write `source` to `directory`/`file_name` and serve its `app` without a UI."""
    app_file = directory / file_name
    app_file.write_text(source)
    return launcher.start("--no-ui", target=f"{app_file}:app", expected_errors=expected_errors)


def get_api_x(server: harness.Fluxlit) -> bytes:
    """Send GET /api/x on a new connection and return the raw response."""
    request = f"GET /api/x HTTP/1.1\r\nHost: {server.authority}\r\n\r\n"
    return exchange(server, request.encode())


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
    server = serve_app_source(
        launcher,
        tmp_path,
        "crlf_app.py",
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    headers = [(b'x-bad', b'a\\r\\nx-injected: yes')]\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': headers})\n"
        "    await send({'type': 'http.response.body', 'body': b'body'})\n",
        expected_errors=["exception in ASGI app"],
    )
    response = get_api_x(server)
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


def test_forwarded_for_lines_are_read_as_one_list(launcher: harness.Launcher) -> None:
    # Proxies may add their hop as a line of its own, and together the lines are one list. The
    # client is the rightmost untrusted entry over both lines, and the whole chain goes on.
    scope_target = f"{harness.APPS_DIR / 'scope_app.py'}:app"
    server = launcher.start("--forwarded-allow-ips", "127.0.0.1,::1,10.0.0.0/8", target=scope_target)
    request = (
        b"GET /api/inspect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Forwarded-For: 198.51.100.66\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.2\r\n\r\n"
    )
    response = exchange(server, request)
    assert status_code(response) == 200
    scope = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert scope["client"][0] == "203.0.113.7"

    ui = exchange(server, request.replace(b"/api/inspect", b"/_standin/headers"))
    assert status_code(ui) == 200
    headers = json.loads(ui.split(b"\r\n\r\n", 1)[1])["headers"]
    forwarded = [value for name, value in headers if name.lower() == "x-forwarded-for"]
    assert forwarded == ["198.51.100.66, 203.0.113.7, 10.0.0.2, 127.0.0.1"]


def test_every_waiting_receive_gets_the_disconnect(launcher: harness.Launcher, tmp_path) -> None:
    report = tmp_path / "report.txt"
    server = launcher.start(
        "--no-ui",
        target=f"{harness.APPS_DIR / 'two_receivers_app.py'}:app",
        extra_environment={"TWO_RECEIVERS_REPORT": str(report)},
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /api/wait HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"started" in sock.recv(65536)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if report.exists() and len(report.read_text(encoding="utf-8").splitlines()) == 2:
            break
        time.sleep(0.02)
    assert sorted(report.read_text(encoding="utf-8").splitlines()) == [
        "first http.disconnect",
        "second http.disconnect",
    ]


def test_websocket_close_1009_reaches_the_client_mid_message(
    launcher: harness.Launcher,
) -> None:
    # Streamlit closes with 1009 while the client is still sending the message. The close frame
    # then waits in the child's socket when the gateway's write to it fails.
    import asyncio

    import websockets

    server = launcher.start(extra_environment={"STREAMLIT_SERVER_MAX_MESSAGE_SIZE": "1"})

    async def send_too_much() -> int | None:
        url = f"ws://{server.authority}/_stcore/stream"
        async with websockets.connect(url, subprotocols=["streamlit"], max_size=None) as socket_:
            try:
                await socket_.send(b"x" * (2 * 1024 * 1024))
                await asyncio.wait_for(socket_.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    for _ in range(3):
        assert asyncio.run(send_too_much()) == 1009


@pytest.mark.parametrize(
    "headers",
    [
        "[(b'content-length', b'5'), (b'content-length', b'58')]",
        "[(b'x-nul', b'a\\x00b')]",
        "[(b'x\\tname', b'value')]",
        "[(b'x(name)', b'value')]",
    ],
)
def test_splitting_app_headers_get_500(
    launcher: harness.Launcher, tmp_path, headers: str
) -> None:
    server = serve_app_source(
        launcher,
        tmp_path,
        "header_app.py",
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        f"    headers = {headers}\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': headers})\n"
        "    await send({'type': 'http.response.body', 'body': b'hello' + b'.' * 53})\n",
        expected_errors=["exception in ASGI app"],
    )
    response = get_api_x(server)
    assert status_code(response) == 500, response[:200]
    assert b"hello" not in response


def test_app_header_values_may_hold_tabs(launcher: harness.Launcher, tmp_path) -> None:
    server = serve_app_source(
        launcher,
        tmp_path,
        "tab_app.py",
        "async def app(scope, receive, send):\n"
        "    headers = [(b'x-tab', b'a\\tb'), (b'content-length', b'2'), (b'Content-Length', b'2')]\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': headers})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n",
    )
    response = httpx.get(server.api_url("/x"), timeout=10)
    assert response.status_code == 200
    assert response.headers["x-tab"] == "a\tb"
    assert response.content == b"ok"


def response_head(response: bytes) -> tuple[int | None, dict[str, list[str]]]:
    """Return the status and the header lines (lower-case names) of the first response."""
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status_code(response), headers


@pytest.mark.parametrize("query", ["", "?a=1&b=%2F"])
def test_root_path_without_slash_redirects(launcher: harness.Launcher, query: str) -> None:
    server = launcher.start("--root-path", "/tools/app")
    redirect = httpx.get(server.url(f"/tools/app{query}"), timeout=10)
    assert redirect.status_code in (301, 308)
    assert redirect.headers["location"] == f"/tools/app/{query}"
    page = httpx.get(server.url(f"/tools/app/{query}"), timeout=10)
    assert page.status_code == 200
    assert "<html" in page.text


@pytest.mark.parametrize(
    "path", ["/", "/_stcore/health", "/api/healthz", "/media/clip-5000.mp4"]
)
def test_head_matches_get_without_body(server: harness.Fluxlit, path: str) -> None:
    # HEAD and then GET on one connection: a body after the HEAD would corrupt the GET.
    head_request = f"HEAD {path} HTTP/1.1\r\nHost: {server.authority}\r\n\r\n"
    get_request = f"GET {path} HTTP/1.1\r\nHost: {server.authority}\r\nConnection: close\r\n\r\n"
    received = exchange(server, (head_request + get_request).encode())
    head_response, _, rest = received.partition(b"\r\n\r\n")
    head_status, head_headers = response_head(head_response + b"\r\n\r\n")
    get_status, get_headers = response_head(rest)
    assert head_status == 200
    assert rest.startswith(b"HTTP/1.1 200 "), f"bytes after the HEAD response: {rest[:80]!r}"
    assert get_status == 200
    assert head_headers.get("content-length") == get_headers.get("content-length")
    assert "transfer-encoding" not in head_headers


def test_media_range_head_has_no_body(server: harness.Fluxlit) -> None:
    response = exchange(
        server,
        f"HEAD /media/clip-5000.mp4 HTTP/1.1\r\nHost: {server.authority}\r\n"
        "Range: bytes=0-1023\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n".encode(),
    )
    status, headers = response_head(response)
    assert status == 206
    assert headers["content-range"] == ["bytes 0-1023/5000"]
    assert headers["content-length"] == ["1024"]
    assert "content-encoding" not in headers
    assert response.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("size", [20_000, 60_000])
def test_large_cookie_reaches_streamlit_intact(server: harness.Fluxlit, size: int) -> None:
    cookie = "big=" + "c" * (size - 4)
    response = httpx.get(server.url("/_standin/headers"), headers={"Cookie": cookie}, timeout=10)
    assert response.status_code == 200
    assert ["Cookie", cookie] in response.json()["headers"]


def test_api_sse_is_neither_buffered_nor_compressed(launcher: harness.Launcher, tmp_path) -> None:
    server = serve_app_source(
        launcher,
        tmp_path,
        "sse_app.py",
        "import asyncio\n"
        "from fastapi import FastAPI\n"
        "from fastapi.responses import StreamingResponse\n"
        "app = FastAPI()\n"
        "@app.get('/events')\n"
        "async def events():\n"
        "    async def lines():\n"
        "        for number in range(4):\n"
        "            yield f'data: {number}\\n\\n'\n"
        "            await asyncio.sleep(0.5)\n"
        "    return StreamingResponse(lines(), media_type='text/event-stream')\n",
    )
    arrivals: list[float] = []
    with httpx.stream(
        "GET", server.api_url("/events"), headers={"Accept-Encoding": "gzip, br"}, timeout=10
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-encoding" not in response.headers
        started = time.monotonic()
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    # Each event is sent 0.5 s after the one before, so it must arrive about then, not at the end.
    assert arrivals[0] < 0.1
    for earlier, later in zip(arrivals, arrivals[1:]):
        assert 0.35 < later - earlier < 0.8, arrivals


def xsrf_token(server: harness.Fluxlit) -> str:
    """Return the `_xsrf` cookie value that the stand-in sets on its health path."""
    with httpx.Client() as client:
        assert client.get(server.url("/_stcore/health"), timeout=10).status_code == 200
        return client.cookies["_xsrf"]


def test_default_header_limit_gets_431_and_close(server: harness.Fluxlit) -> None:
    # 70,000 bytes of cookies are above the default max_header_bytes of 64 KiB.
    cookie = "big=" + "c" * 70_000
    request = f"GET / HTTP/1.1\r\nHost: {server.authority}\r\nCookie: {cookie}\r\n\r\n"
    status, headers = response_head(exchange(server, request.encode()))
    assert status == 431
    assert headers["connection"] == ["close"]
    assert headers["x-fluxlit-reason"] == ["request_header_too_large"]
    line = server.wait_for_log("larger than max_header_bytes")
    assert "(65536 bytes)" in line
    assert "raise it with --max-header-bytes, FLUXLIT_MAX_HEADER_BYTES or max_header_bytes" in line
    # Raising it does not help this request: UI requests must fit Streamlit's own limit.
    assert "API routes only" in line


def test_upload_204_keeps_connection_usable(server: harness.Fluxlit) -> None:
    token = xsrf_token(server)
    upload = (
        f"PUT /_stcore/upload_file/s/f HTTP/1.1\r\nHost: {server.authority}\r\n"
        f"Cookie: _xsrf={token}\r\nX-Xsrftoken: {token}\r\nContent-Length: 3\r\n\r\nabc"
    )
    follow_up = f"GET /api/users/1 HTTP/1.1\r\nHost: {server.authority}\r\nConnection: close\r\n\r\n"
    response = exchange(server, (upload + follow_up).encode())
    upload_head, _, rest = response.partition(b"\r\n\r\n")
    status, headers = response_head(upload_head + b"\r\n\r\n")
    assert status == 204
    assert "transfer-encoding" not in headers
    assert headers.get("content-length", ["0"]) == ["0"]
    # A body or a chunk terminator after the 204 would come before this status line.
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
    assert b"Ada Lovelace" in rest


def test_expect_continue_on_ui_upload(server: harness.Fluxlit) -> None:
    token = xsrf_token(server)
    head = (
        f"PUT /_stcore/upload_file/s/expect HTTP/1.1\r\nHost: {server.authority}\r\n"
        f"Cookie: _xsrf={token}\r\nX-Xsrftoken: {token}\r\n"
        "Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        interim, _ = harness.read_response_head(sock)
        assert interim[0].startswith("HTTP/1.1 100 "), interim
        sock.sendall(b"hello")
        final, _ = harness.read_response_head(sock)
    assert final[0].startswith("HTTP/1.1 204 "), final
    recorded = server.record()["uploads"][-1]
    assert recorded["bytes"] == 5


def test_upload_over_streamlit_limit_gets_413(launcher: harness.Launcher) -> None:
    # The default max_request_body_bytes (256 MiB) is above Streamlit's limit, so the 413 and its
    # message must come from Streamlit and not from the gateway.
    server = launcher.start(extra_environment={"STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "1"})
    token = xsrf_token(server)
    with httpx.Client(timeout=30) as client:
        client.cookies.set("_xsrf", token)
        response = client.put(
            server.url("/_stcore/upload_file/s/f"),
            content=b"u" * (2 * 1024 * 1024),
            headers={"X-Xsrftoken": token},
        )
    assert response.status_code == 413
    assert "x-fluxlit-reason" not in response.headers
    assert "server.maxUploadSize" in response.text


def test_forwarded_proto_list_gives_first_scheme(server: harness.Fluxlit) -> None:
    # The peer is 127.0.0.1, which forwarded_allow_ips trusts by default.
    forwarded = {"X-Forwarded-Proto": "https, http", "Host": "app.example.com"}
    ui = httpx.get(server.url("/_standin/headers"), headers=forwarded, timeout=10)
    assert ui.status_code == 200
    seen = [value for name, value in ui.json()["headers"] if name.lower() == "x-forwarded-proto"]
    assert seen == ["https"]
    redirect = httpx.get(server.api_url("/users/"), headers=forwarded, timeout=10)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "https://app.example.com/api/users"


def test_api_304_keeps_connection_usable(launcher: harness.Launcher, tmp_path) -> None:
    server = serve_app_source(
        launcher,
        tmp_path,
        "not_modified_app.py",
        "from fastapi import FastAPI, Response\n"
        "app = FastAPI()\n"
        "@app.get('/cached')\n"
        "async def cached():\n"
        "    return Response(status_code=304, headers={'ETag': '\"v1\"'})\n"
        "@app.get('/after')\n"
        "async def after():\n"
        "    return {'after': True}\n",
    )
    requests = (
        f"GET /api/cached HTTP/1.1\r\nHost: {server.authority}\r\nIf-None-Match: \"v1\"\r\n\r\n"
        f"GET /api/after HTTP/1.1\r\nHost: {server.authority}\r\nConnection: close\r\n\r\n"
    )
    response = exchange(server, requests.encode())
    first_head, _, rest = response.partition(b"\r\n\r\n")
    status, headers = response_head(first_head + b"\r\n\r\n")
    assert status == 304
    assert headers["etag"] == ['"v1"']
    assert "transfer-encoding" not in headers
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
    assert rest.endswith(b'{"after":true}')
