"""FluxLit objects and page registration."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from fluxlit import ApiClient, FluxLit, __version__
from fluxlit.testing import TestClient


def test_version_is_exported() -> None:
    assert __version__ == "0.1.0"


def test_default_app_gets_title() -> None:
    app = FluxLit("Inventory")
    assert app.title == "Inventory"
    assert isinstance(app.api, FastAPI)
    assert app.api.title == "Inventory"
    assert app.pages == []


def test_fastapi_kwargs_reach_api() -> None:
    app = FluxLit("Docs", docs_url=None, version="2.0")
    assert app.api.docs_url is None
    assert app.api.version == "2.0"


def test_given_api_is_kept() -> None:
    api = FastAPI(title="Own")
    app = FluxLit("Wrapper", api=api)
    assert app.api is api
    assert app.title == "Wrapper"


def test_api_with_kwargs_is_rejected() -> None:
    with pytest.raises(TypeError, match="docs_url"):
        FluxLit(api=FastAPI(), docs_url=None)


def test_app_is_asgi_callable() -> None:
    app = FluxLit()

    @app.api.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ping",
        "raw_path": b"/ping",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert messages[0]["status"] == 200
    assert messages[1]["body"] == b'{"pong":"yes"}'


def test_page_record_keeps_metadata() -> None:
    app = FluxLit()

    @app.page("/reports/monthly", icon="📈", tags=["finance"], dependencies=["/reports"])
    def monthly(st: object, client: ApiClient) -> None:
        """Show the monthly report.

        More detail that is not part of the description.
        """

    page = app.pages[0]
    assert page.path == "/reports/monthly"
    assert page.title == "Monthly"
    assert page.icon == "📈"
    assert page.tags == ("finance",)
    assert page.dependencies == ("/reports",)
    assert page.description == "Show the monthly report."
    assert page.handler is monthly
    assert page.url_path == "reports-monthly"
    assert not page.is_default
    assert [(p.name, p.annotation) for p in page.parameters] == [
        ("st", "object"),
        ("client", "ApiClient"),
    ]


def test_root_page_is_default() -> None:
    app = FluxLit()

    @app.page("/")
    def list_orders(st, client):
        pass

    page = app.pages[0]
    assert page.is_default
    assert page.url_path == ""
    assert page.title == "List orders"
    assert page.description is None
    assert [(p.name, p.annotation) for p in page.parameters] == [("st", None), ("client", None)]


def test_explicit_title_wins() -> None:
    app = FluxLit()
    app.page("/a", "Alpha")(lambda st, client: None)
    assert app.pages[0].title == "Alpha"


def test_pages_keep_registration_order() -> None:
    app = FluxLit()
    for path in ("/b", "/", "/a"):
        app.page(path)(lambda st, client: None)
    assert [page.path for page in app.pages] == ["/b", "/", "/a"]


def test_decorator_returns_handler() -> None:
    app = FluxLit()

    def handler(st, client):
        return "ran"

    assert app.page("/x")(handler) is handler


def test_duplicate_path_is_rejected() -> None:
    app = FluxLit()
    app.page("/users")(lambda st, client: None)
    with pytest.raises(ValueError, match="'/users' is already registered"):
        app.page("/users")
    assert len(app.pages) == 1


def test_colliding_url_path_is_rejected() -> None:
    app = FluxLit()
    app.page("/a/b")(lambda st, client: None)
    with pytest.raises(ValueError, match="'/a-b'.*'a-b'.*'/a/b'"):
        app.page("/a-b")(lambda st, client: None)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("users", "'users' must start with '/'"),
        ("", "'' must start with '/'"),
        ("/users/", "must not end with '/'"),
        ("/a//b", "'/a//b' is invalid"),
        ("/with space", "'/with space' is invalid"),
        ("/q?x=1", "'/q\\?x=1' is invalid"),
    ],
)
def test_invalid_path_is_rejected(path: str, message: str) -> None:
    app = FluxLit()
    with pytest.raises(ValueError, match=message):
        app.page(path)
    assert app.pages == []


def test_non_string_path_is_rejected() -> None:
    with pytest.raises(TypeError, match="must be a string"):
        FluxLit().page(3)  # type: ignore[arg-type]


def test_string_tags_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"tags must be a sequence of strings.*\('admin',\)"):
        FluxLit().page("/x", tags="admin")


def test_handler_without_two_parameters_is_rejected() -> None:
    app = FluxLit()
    with pytest.raises(TypeError, match=r"page '/x'.*two positional arguments"):
        app.page("/x")(lambda st: None)
    assert app.pages == []


def test_get_page_names_known_paths() -> None:
    app = FluxLit()
    app.page("/")(lambda st, client: None)
    assert app.get_page("/").path == "/"
    with pytest.raises(KeyError, match=r"'/nope'.*registered paths: '/'"):
        app.get_page("/nope")


def test_to_dict_is_json_ready() -> None:
    app = FluxLit()

    @app.page("/", icon="🏠")
    def home(st, client):
        """Start here."""

    assert app.pages[0].to_dict() == {
        "path": "/",
        "url_path": "",
        "title": "Home",
        "icon": "🏠",
        "tags": [],
        "dependencies": [],
        "description": "Start here.",
        "default": True,
        "handler": f"{__name__}:test_to_dict_is_json_ready.<locals>.home",
        "parameters": [
            {"name": "st", "annotation": None},
            {"name": "client", "annotation": None},
        ],
    }


def test_testclient_accepts_fastapi_app() -> None:
    api = FastAPI()

    @api.get("/hi")
    def hi() -> str:
        return "hi"

    with TestClient(api) as client:
        assert client.get("/hi").json() == "hi"
