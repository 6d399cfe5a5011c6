"""The ASGI scope that the gateway builds for a request under the API prefix.

apps/scope_app.py returns its scope as JSON, with bytes decoded as latin-1.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import httpx
import pytest

import harness

SCOPE_TARGET = f"{harness.APPS_DIR / 'scope_app.py'}:app"
LIFESPAN_GREETING = "stored by lifespan startup"


@pytest.fixture(scope="module")
def server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    return module_launcher.start("--no-ui", target=SCOPE_TARGET)


@pytest.fixture(scope="module")
def proxied_server(module_launcher: harness.Launcher) -> harness.Fluxlit:
    """The scope app published by a reverse proxy under /edge."""
    return module_launcher.start(
        "--no-ui", "--root-path", "/edge", target=SCOPE_TARGET, api_prefix="/edge/api"
    )


def fetch_scope(
    server: harness.Fluxlit, target: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Send GET `target` on a new connection; return the scope and the client's local port."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.connect()
        assert connection.sock is not None
        local_port = connection.sock.getsockname()[1]
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
    finally:
        connection.close()
    scope = json.loads(body)
    scope["test_local_port"] = local_port
    return scope


def header_pairs(scope: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in scope["headers"]]


def test_scope_type_and_version(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["type"] == "http"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["asgi"]["version"] == "3.0"


def test_root_path_is_api_prefix(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/inspect"


def test_path_is_percent_decoded(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect/a%20b%2Fc/%C3%A9")
    assert scope["path"] == "/inspect/a b/c/\u00e9"


def test_raw_path_keeps_percent_encoding(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect/a%20b%2Fc/%C3%A9")
    assert scope["raw_path"] == "/api/inspect/a%20b%2Fc/%C3%A9"


def test_query_string_is_raw(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect?name=a%20b&tag=x&tag=y")
    assert scope["query_string"] == "name=a%20b&tag=x&tag=y"


def test_query_string_empty_without_query(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["query_string"] == ""


def test_header_names_are_lower_case(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect", headers={"X-Mixed-Case": "Value Kept"})
    assert ("x-mixed-case", "Value Kept") in header_pairs(scope)
    names = [name for name, _ in header_pairs(scope)]
    assert names == [name.lower() for name in names]


def test_repeated_header_lines_are_kept(server: harness.Fluxlit) -> None:
    request = (
        "GET /api/inspect HTTP/1.1\r\n"
        f"Host: {server.authority}\r\n"
        "X-Repeated: first\r\n"
        "X-Repeated: second\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        data = b""
        while piece := sock.recv(65536):
            data += piece
    _, _, body = data.partition(b"\r\n\r\n")
    values = [value for name, value in header_pairs(json.loads(body)) if name == "x-repeated"]
    assert values == ["first", "second"]


def test_client_is_peer_address(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["client"] == ["127.0.0.1", scope["test_local_port"]]


def test_client_from_trusted_forwarded_for(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect", headers={"X-Forwarded-For": "203.0.113.9"})
    assert scope["client"][0] == "203.0.113.9"


def test_server_is_listening_address(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["server"] == ["127.0.0.1", server.port]


def test_scheme_is_http(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["scheme"] == "http"


def test_scheme_from_trusted_forwarded_proto(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect", headers={"X-Forwarded-Proto": "https"})
    assert scope["scheme"] == "https"


def test_state_comes_from_lifespan(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect")
    assert scope["state"] == {"greeting": LIFESPAN_GREETING}


def test_request_id_header_reaches_app(server: harness.Fluxlit) -> None:
    scope = fetch_scope(server, "/api/inspect", headers={"X-Request-ID": "e2e-scope-7"})
    values = [value for name, value in header_pairs(scope) if name == "x-request-id"]
    assert values == ["e2e-scope-7"]


def test_post_body_reaches_app(server: harness.Fluxlit) -> None:
    response = httpx.post(server.api_url("/inspect"), content=b"x" * 100_000)
    assert response.status_code == 200
    scope = response.json()
    assert scope["method"] == "POST"
    assert scope["body_bytes"] == 100_000


def test_head_drops_body_app_sent(server: harness.Fluxlit) -> None:
    # The raw app writes its JSON body for every method; the gateway must not send it on HEAD.
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(f"HEAD /api/inspect HTTP/1.1\r\nHost: {server.authority}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            assert piece, data
            data += piece
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert rest == b""
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(65536)


def test_root_path_includes_proxy_prefix(proxied_server: harness.Fluxlit) -> None:
    scope = fetch_scope(proxied_server, "/edge/api/inspect")
    assert scope["root_path"] == "/edge/api"
    assert scope["path"] == "/inspect"
    assert scope["raw_path"] == "/edge/api/inspect"


def test_stripped_request_keeps_root_path(proxied_server: harness.Fluxlit) -> None:
    # A proxy may strip /edge before forwarding; URLs the app builds must still carry it.
    scope = fetch_scope(proxied_server, "/api/inspect")
    assert scope["path"] == "/inspect"
    assert scope["root_path"] == "/edge/api"
    # raw_path stays what this server received.
    assert scope["raw_path"] == "/api/inspect"
