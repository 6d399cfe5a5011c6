"""Paths outside /api, proxied to the Streamlit stand-in that fluxlit starts as a child."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

import harness

MEBIBYTE = 1 << 20
MEDIA_NAME = "clip-1048576.mp4"
MEDIA_SIZE = 1048576
# Tornado's XSRF cookie value: version 2, mask, masked token and timestamp.
XSRF_COOKIE = re.compile(r"^(_xsrf|_streamlit_xsrf)=2\|[0-9a-f]{8}\|[0-9a-f]{32}\|\d+; Path=/$")

ASSETS = harness.load_standin_assets()


@pytest.fixture(scope="module")
def server(hello: harness.Fluxlit) -> harness.Fluxlit:
    return hello


def header_lines(lines: list[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(prefix)]


def bundle_path(server: harness.Fluxlit) -> str:
    page = httpx.get(server.url("/")).text
    match = re.search(r'src="\./(static/js/main\.[0-9a-f]+\.js)"', page)
    assert match is not None, page
    return "/" + match.group(1)


def test_root_page_is_proxied(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html"
    assert "<title>Streamlit</title>" in response.text


def test_unknown_path_gets_index(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/add"))
    assert response.status_code == 200
    assert "<title>Streamlit</title>" in response.text


def test_head_root_has_no_body(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        lines, rest = harness.read_response_head(sock)
        assert lines[0].startswith("HTTP/1.1 200 ")
        assert rest == b""
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(65536)


def test_health_cookies_arrive_separately(server: harness.Fluxlit) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        request = f"GET /_stcore/health HTTP/1.1\r\nHost: {server.authority}\r\n\r\n"
        sock.sendall(request.encode())
        lines, _ = harness.read_response_head(sock)
    assert lines[0].startswith("HTTP/1.1 200 ")
    cookies = header_lines(lines, "Set-Cookie")
    assert len(cookies) == 2, lines
    for cookie in cookies:
        assert XSRF_COOKIE.match(cookie), cookie
    names = sorted(cookie.split("=", 1)[0] for cookie in cookies)
    assert names == ["_streamlit_xsrf", "_xsrf"]
    values = {cookie.split(";", 1)[0].split("=", 1)[1] for cookie in cookies}
    assert len(values) == 1, "the stand-in sets both cookies to the same token"


def upload(client: httpx.Client, server: harness.Fluxlit, body: bytes, token: str) -> int:
    response = client.put(
        server.url("/_stcore/upload_file/s/f"),
        content=body,
        headers={"X-Xsrftoken": token, "Content-Type": "application/octet-stream"},
        timeout=60,
    )
    return response.status_code


def test_upload_with_matching_xsrf_token(server: harness.Fluxlit) -> None:
    body = os.urandom(4096)
    with httpx.Client() as client:
        health = client.get(server.url("/_stcore/health"))
        assert health.status_code == 200
        token = client.cookies["_xsrf"]
        assert upload(client, server, body, token) == 204
    uploads = server.record()["uploads"]
    assert uploads[-1]["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_with_wrong_xsrf_token(server: harness.Fluxlit) -> None:
    with httpx.Client() as client:
        client.get(server.url("/_stcore/health"))
        wrong = "2|00000000|" + "0" * 32 + "|1700000000"
        assert upload(client, server, b"payload", wrong) == 403


def test_upload_of_five_mebibytes(server: harness.Fluxlit) -> None:
    body = os.urandom(5 * MEBIBYTE)
    with httpx.Client() as client:
        client.get(server.url("/_stcore/health"))
        assert upload(client, server, body, client.cookies["_xsrf"]) == 204
    recorded = server.record()["uploads"][-1]
    assert recorded["bytes"] == 5 * MEBIBYTE
    assert recorded["sha256"] == hashlib.sha256(body).hexdigest()


def resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS line for process {pid}")


def test_large_chunked_upload_streams_through(server: harness.Fluxlit) -> None:
    # 96 MiB in chunks with pauses, as a browser on a slow link sends a big file: it must
    # arrive whole while the gateway keeps only a relay buffer's worth of it at a time.
    block = os.urandom(MEBIBYTE)
    blocks = 96
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(block)
    peak = [0]

    def body():
        for index in range(blocks):
            for offset in range(0, MEBIBYTE, 256 * 1024):
                yield block[offset:offset + 256 * 1024]
            peak[0] = max(peak[0], resident_bytes(server.pid))
            if index % 8 == 7:
                time.sleep(0.05)

    with httpx.Client() as client:
        client.get(server.url("/_stcore/health"))
        before = resident_bytes(server.pid)
        response = client.put(
            server.url("/_stcore/upload_file/s/large"),
            content=body(),
            headers={"X-Xsrftoken": client.cookies["_xsrf"],
                     "Content-Type": "application/octet-stream"},
            timeout=120,
        )
    assert response.status_code == 204
    recorded = server.record()["uploads"][-1]
    assert recorded["bytes"] == blocks * MEBIBYTE
    assert recorded["sha256"] == digest.hexdigest()
    assert peak[0] - before < 16 * MEBIBYTE, f"the gateway grew by {peak[0] - before} bytes"


def test_media_range_answers_206(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url(f"/media/{MEDIA_NAME}"), headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 100-199/{MEDIA_SIZE}"
    expected = ASSETS.media_bytes(MEDIA_NAME, MEDIA_SIZE)[100:200]
    assert response.content == expected


def test_media_range_past_end_answers_416(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url(f"/media/{MEDIA_NAME}"), headers={"Range": "bytes=2000000-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{MEDIA_SIZE}"


def test_media_whole_file_is_intact(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url(f"/media/{MEDIA_NAME}"), timeout=30)
    assert response.status_code == 200
    assert response.content == ASSETS.media_bytes(MEDIA_NAME, MEDIA_SIZE)


def test_static_asset_revalidates_with_304(server: harness.Fluxlit) -> None:
    path = bundle_path(server)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", path)
        first = connection.getresponse()
        body = first.read()
        assert first.status == 200
        etag = first.getheader("ETag")
        assert etag
        assert len(body) == MEBIBYTE
        assert connection.sock is not None
        local_port = connection.sock.getsockname()[1]

        connection.request("GET", path, headers={"If-None-Match": etag})
        revalidated = connection.getresponse()
        assert revalidated.status == 304
        assert revalidated.read() == b""

        # A body sent after the 304 would be read as the next status line and fail here.
        connection.request("GET", "/api/users/1")
        after = connection.getresponse()
        after.read()
        assert after.status == 200
        assert connection.sock.getsockname()[1] == local_port
    finally:
        connection.close()


def test_gzip_asset_passes_unchanged(server: harness.Fluxlit) -> None:
    path = bundle_path(server)
    response = httpx.get(server.url(path), headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert len(response.content) == MEBIBYTE
    assert hashlib.sha256(response.content).hexdigest()[:8] in path


def forwarded_headers(server: harness.Fluxlit, headers: dict[str, str]) -> dict[str, str]:
    """Return the headers that reached the stand-in, with names in lower case."""
    response = httpx.get(server.url("/_standin/headers"), headers=headers)
    assert response.status_code == 200
    return {name.lower(): value for name, value in response.json()["headers"]}


def test_forwarded_for_is_peer_address(server: harness.Fluxlit) -> None:
    seen = forwarded_headers(server, {})
    assert seen.get("x-forwarded-for") == "127.0.0.1"


def test_forwarded_for_appends_peer(server: harness.Fluxlit) -> None:
    seen = forwarded_headers(server, {"X-Forwarded-For": "203.0.113.7"})
    assert seen.get("x-forwarded-for") == "203.0.113.7, 127.0.0.1"


def test_forwarded_proto_and_host_are_set(server: harness.Fluxlit) -> None:
    seen = forwarded_headers(server, {})
    assert seen.get("x-forwarded-proto") == "http"
    assert seen.get("x-forwarded-host") == server.authority


def test_request_id_on_ui_response(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/_stcore/host-config"))
    assert response.status_code == 200
    assert len(response.headers.get("x-request-id", "")) == 32


def test_client_request_id_reaches_streamlit(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/_standin/headers"), headers={"X-Request-ID": "e2e-ui-19"})
    assert response.headers.get("x-request-id") == "e2e-ui-19"
    seen = {name.lower(): value for name, value in response.json()["headers"]}
    assert seen.get("x-request-id") == "e2e-ui-19"


def test_unsafe_request_id_is_replaced_upstream(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/_standin/headers"), headers={"X-Request-ID": "a b"})
    returned = response.headers.get_list("x-request-id")
    assert len(returned) == 1, returned
    assert returned[0] != "a b"
    seen = [value for name, value in response.json()["headers"] if name.lower() == "x-request-id"]
    assert seen == returned


def test_sse_events_arrive_one_by_one(server: harness.Fluxlit) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    body = b""
    with httpx.stream("GET", server.url("/_standin/sse?count=4&interval_ms=300"), timeout=20) as r:
        assert r.status_code == 200
        for piece in r.iter_raw():
            arrivals.append(time.monotonic() - started)
            body += piece
    assert body.count(b"event: tick") == 4
    # The events are 300 ms apart, so buffering would make them arrive together at the end.
    assert arrivals[-1] - arrivals[0] > 0.6, arrivals


def test_page_calls_api_through_gateway(server: harness.Fluxlit) -> None:
    response = httpx.get(server.url("/_standin/run?page="), timeout=30)
    assert response.status_code == 200
    run = response.json()
    assert run["error"] is None
    tables = [call["args"][0] for call in run["calls"] if call["name"] == "dataframe"]
    assert len(tables) == 1
    assert "Ada Lovelace" in [user["name"] for user in tables[0]]


def test_streamlit_child_gets_gateway_url(server: harness.Fluxlit) -> None:
    environment = server.record()["env"]
    assert environment.get("FLUXLIT_API_BASE_URL") == f"{server.base_url}/api"


def pattern_bytes(size: int, offset: int = 0) -> bytes:
    """The bytes that the stand-in's /_standin/pieces route sends, as its docstring defines."""
    return bytes((offset + index) % 251 for index in range(size))


@pytest.mark.parametrize(
    "size, piece",
    [(1, 1), (65535, 65536), (65537, 4096), (300 * 1024, 65536), (1_048_579, 100_000)],
)
def test_body_in_pieces_arrives_whole(server: harness.Fluxlit, size: int, piece: int) -> None:
    expected = pattern_bytes(size)
    url = server.url(f"/_standin/pieces?bytes={size}&piece={piece}")
    # The second request reuses the client's connection and the pooled one to the child, which
    # breaks if the gateway read past the end of the first body.
    with httpx.Client(timeout=30) as client:
        for attempt in range(2):
            response = client.get(url)
            assert response.status_code == 200, attempt
            assert response.headers["content-length"] == str(size)
            assert len(response.content) == size, attempt
            assert response.content == expected, attempt


def test_body_cut_short_by_child_closes_client(server: harness.Fluxlit) -> None:
    declared, sent = 200_000, 100_000
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        request = (
            f"GET /_standin/pieces?bytes={declared}&piece=30000&gap_ms=20&stop_at={sent} "
            f"HTTP/1.1\r\nHost: {server.authority}\r\n\r\n"
        )
        sock.sendall(request.encode())
        lines, body = harness.read_response_head(sock)
        assert lines[0].startswith("HTTP/1.1 200")
        assert header_lines(lines, "content-length") == [str(declared)]
        while piece := sock.recv(65536):
            body += piece
    # The gateway passes on what the child sent and then closes, so the client can tell that
    # the body is incomplete instead of waiting for bytes that never come.
    assert len(body) == sent
    assert body == pattern_bytes(sent)
    assert httpx.get(server.url("/_standin/pieces?bytes=10"), timeout=10).content == pattern_bytes(10)


@pytest.mark.parametrize(
    ("size", "delay_ms"), [(5, 0), (5, 200), (100_000, 0), (100_000, 200), (1_000_000, 200)]
)
def test_bytes_past_content_length_go_nowhere(
    server: harness.Fluxlit, size: int, delay_ms: int
) -> None:
    # The child sends a whole second response after the declared body. The gateway must not
    # keep that connection for the next request, whose client would receive it.
    with httpx.Client(timeout=10) as client:
        overlong = client.get(server.url(f"/_standin/overlong?bytes={size}&delay_ms={delay_ms}"))
        assert overlong.status_code == 200
        assert overlong.content == pattern_bytes(size)
        time.sleep(delay_ms / 1000 + 0.2)
        for _ in range(3):
            following = client.get(server.url("/_standin/pieces?bytes=10"))
            assert following.content != b"unrequested"
            assert following.content == pattern_bytes(10)


def test_download_left_while_child_pauses_is_499(server: harness.Fluxlit) -> None:
    # The child pauses 300 ms after each piece, so the client closes while the gateway waits for
    # the child, not while it writes to the client.
    target = "/_standin/pieces?bytes=100000&piece=1000&gap_ms=300"
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        lines, body = harness.read_response_head(sock)
        assert lines[0].startswith("HTTP/1.1 200")
        while len(body) < 1000:
            body += sock.recv(65536)
    line = server.wait_for_log(f'GET {target}\\" ')
    assert f'{target}\\" 499 1000 ' in line, line
    tag = re.search(r"\[C\d+\]", line)
    assert tag is not None, line
    warnings = [entry.text for entry in server.log_lines() if "body read failed" in entry.message]
    assert not [text for text in warnings if tag.group(0) in text], warnings
    # The child notices the closed connection at its next write. Until then its handler sleeps,
    # and a stop of the server would cancel it, which Tornado logs as an error.
    time.sleep(0.6)


def test_downloads_cut_by_client_leak_nothing(server: harness.Fluxlit) -> None:
    size = 4 * 1024 * 1024
    request = (
        f"GET /_standin/pieces?bytes={size}&piece=262144 HTTP/1.1\r\n"
        f"Host: {server.authority}\r\n\r\n"
    ).encode()

    def open_descriptors() -> int:
        return len(os.listdir(f"/proc/{server.pid}/fd"))

    # A whole download first, so that the gateway's pool already contains the idle connection to
    # the child that it keeps between requests.
    assert httpx.get(server.url("/_standin/pieces?bytes=100000"), timeout=10).status_code == 200
    before = open_descriptors()
    for _ in range(20):
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(request)
            lines, body = harness.read_response_head(sock)
            assert lines[0].startswith("HTTP/1.1 200")
            assert body == pattern_bytes(len(body))
            # Stop reading until the gateway waits for room to write, then leave with a reset,
            # as load generators do at the end of a run.
            time.sleep(0.1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The client leaves with most of the body unsent.
    # The gateway closes the connection to the child of every cut transfer.
    deadline = time.monotonic() + 5
    while open_descriptors() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_descriptors() <= before
    assert httpx.get(server.url("/_standin/pieces?bytes=100000"), timeout=10).content == (
        pattern_bytes(100_000)
    )


def signal_mask(pid: int, field: str) -> int:
    """Return a signal mask of process `pid` from /proc, such as SigIgn or SigCgt."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} line for process {pid}")


def test_gateway_survives_sigpipe(server: harness.Fluxlit) -> None:
    # A write without MSG_NOSIGNAL to a socket that its peer reset (from the app's C extensions,
    # say) must fail with EPIPE instead of killing the server, as under a Python launcher. The
    # gateway catches SIGPIPE with a handler that does nothing, which exec resets, rather than
    # ignoring it, which programs that the app starts would inherit.
    sigpipe_bit = 1 << (signal.SIGPIPE - 1)
    assert signal_mask(server.pid, "SigCgt") & sigpipe_bit
    assert not signal_mask(server.pid, "SigIgn") & sigpipe_bit
