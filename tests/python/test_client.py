"""ApiClient against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest
from support import USERS, StubApi, free_port

from fluxlit import ApiClient


@pytest.mark.parametrize(
    ("base_suffix", "path", "expected"),
    [
        ("/api", "/users", "/api/users"),
        ("/api/", "/users", "/api/users"),
        ("/api", "users", "/api/users"),
        ("/api", "/users/7?full=1", "/api/users/7?full=1"),
        ("", "/users", "/users"),
        ("/tools/app/api", "/items/", "/tools/app/api/items/"),
    ],
)
def test_paths_join_base_url(stub_api: StubApi, base_suffix: str, path: str, expected: str) -> None:
    with ApiClient(stub_api.url + base_suffix) as client:
        response = client.get(path)
    assert response.status_code == 200
    assert stub_api.requests[-1].path == expected


def test_base_url_from_environment(stub_api: StubApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_API_BASE_URL", f"{stub_api.url}/api")
    with ApiClient() as client:
        assert client.base_url == f"{stub_api.url}/api"
        client.get("/users")
    assert stub_api.requests[-1].path == "/api/users"


def test_explicit_base_url_beats_environment(
    stub_api: StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXLIT_API_BASE_URL", "http://127.0.0.1:9/unused")
    with ApiClient(f"{stub_api.url}/v2") as client:
        client.get("/users")
    assert stub_api.requests[-1].path == "/v2/users"


def test_missing_base_url_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_API_BASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="FLUXLIT_API_BASE_URL"):
        ApiClient()


def test_relative_base_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="'/api'"):
        ApiClient("/api")


def test_absolute_path_is_rejected(stub_api: StubApi) -> None:
    with ApiClient(stub_api.url) as client:
        with pytest.raises(ValueError, match="absolute URL 'http://example.com/x'"):
            client.get("http://example.com/x")
    assert stub_api.requests == []


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_each_method_sends_its_verb(stub_api: StubApi, method: str) -> None:
    with ApiClient(f"{stub_api.url}/api") as client:
        response = getattr(client, method)("/things/1")
    assert response.json()["method"] == method.upper()
    assert stub_api.requests[-1].method == method.upper()
    assert stub_api.requests[-1].path == "/api/things/1"


def test_post_sends_json_body(stub_api: StubApi) -> None:
    with ApiClient(f"{stub_api.url}/api") as client:
        client.post("/users", json={"name": "Ada"})
    request = stub_api.requests[-1]
    assert request.body == b'{"name": "Ada"}'
    assert request.headers["Content-Type"] == "application/json"


def test_request_takes_any_method(stub_api: StubApi) -> None:
    with ApiClient(stub_api.url) as client:
        response = client.request("POST", "/jobs", content=b"raw")
    assert response.json() == {"method": "POST", "path": "/jobs", "body": "raw"}


def test_default_headers_merge_with_call_headers(stub_api: StubApi) -> None:
    with ApiClient(stub_api.url, headers={"X-Team": "blue", "X-Mode": "default"}) as client:
        client.get("/h", headers={"X-Mode": "call"})
    headers = stub_api.requests[-1].headers
    assert headers["X-Team"] == "blue"
    assert headers["X-Mode"] == "call"


def test_error_status_is_returned(stub_api: StubApi) -> None:
    with ApiClient(stub_api.url) as client:
        response = client.get("/missing")
    assert response.status_code == 404


def test_get_json_decodes_body(stub_api: StubApi) -> None:
    with ApiClient(f"{stub_api.url}/api") as client:
        assert client.get_json("/users") == USERS


def test_get_json_raises_for_status(stub_api: StubApi) -> None:
    with ApiClient(f"{stub_api.url}/api") as client:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            client.get_json("/missing")
    assert caught.value.response.status_code == 404


def test_timeout_applies_to_requests(stub_api: StubApi) -> None:
    client = ApiClient(stub_api.url, timeout=0.25)
    assert client._http.timeout.read == 0.25
    client.close()


def test_close_ends_owned_client(stub_api: StubApi) -> None:
    client = ApiClient(stub_api.url)
    client.close()
    with pytest.raises(RuntimeError):
        client.get("/users")


def test_given_http_client_stays_open(stub_api: StubApi) -> None:
    with httpx.Client() as http_client:
        with ApiClient(stub_api.url, http_client=http_client) as client:
            client.get("/users")
        assert not http_client.is_closed
        assert http_client.get(f"{stub_api.url}/users").status_code == 200


def test_unreachable_server_raises_connect_error() -> None:
    with ApiClient(f"http://127.0.0.1:{free_port()}/api", timeout=2) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("/users")
