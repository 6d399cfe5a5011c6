"""The example app's API routes, through fluxlit.testing.TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app import app

from fluxlit.testing import TestClient


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_startup_seeds_users(client: TestClient) -> None:
    response = client.get("/users")
    assert response.status_code == 200
    assert [user["name"] for user in response.json()] == ["Ada Lovelace", "Alan Turing"]


def test_get_user_by_id(client: TestClient) -> None:
    assert client.get("/users/2").json() == {
        "id": 2,
        "name": "Alan Turing",
        "email": "alan@example.com",
    }


def test_missing_user_is_404(client: TestClient) -> None:
    response = client.get("/users/99")
    assert response.status_code == 404
    assert response.json() == {"detail": "user 99 not found"}


def test_create_user_returns_201(client: TestClient) -> None:
    response = client.post("/users", json={"name": "Grace Hopper", "email": "grace@example.com"})
    assert response.status_code == 201
    assert response.json() == {"id": 3, "name": "Grace Hopper", "email": "grace@example.com"}
    assert client.get("/users/3").status_code == 200


def test_invalid_user_is_422(client: TestClient) -> None:
    response = client.post("/users", json={"name": "", "email": "x@example.com"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def test_echo_returns_bytes_unchanged(client: TestClient) -> None:
    body = bytes(range(256)) * 64
    response = client.post("/echo", content=body, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "application/octet-stream"


def test_echo_of_empty_body(client: TestClient) -> None:
    response = client.post("/echo")
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_stream_sends_requested_chunks(client: TestClient) -> None:
    response = client.get("/stream", params={"chunks": 3, "delay_ms": 1})
    assert response.status_code == 200
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert response.headers["content-type"].startswith("text/plain")


def test_stream_defaults_to_five_chunks(client: TestClient) -> None:
    assert client.get("/stream").text.count("\n") == 5


def test_stream_rejects_negative_count(client: TestClient) -> None:
    assert client.get("/stream", params={"chunks": -1}).status_code == 422


def test_boom_is_500(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500


def test_boom_raises_runtime_error() -> None:
    with TestClient(app) as strict_client:
        with pytest.raises(RuntimeError, match="boom"):
            strict_client.get("/boom")


def test_openapi_lists_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/users", "/users/{user_id}", "/echo", "/stream", "/boom"}


def test_example_registers_two_pages() -> None:
    assert app.title == "Hello FluxLit"
    assert [(page.path, page.title) for page in app.pages] == [
        ("/", "Users"),
        ("/add", "Add a user"),
    ]
