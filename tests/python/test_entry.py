"""The Streamlit entry script, driven in-process with a minimal fake `st`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import USERS, StubApi

from fluxlit import ApiClient, FluxLit
from fluxlit._streamlit_entry import build_pages, main, make_page_callable

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakePage:
    target: Any
    options: dict[str, Any]
    runs: int = 0

    def run(self) -> None:
        self.runs += 1
        self.target()


@dataclass
class FakeStreamlit:
    """What the entry script and the example's users page use."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    navigated: list[list[FakePage]] = field(default_factory=list)
    drawn: list[Any] = field(default_factory=list)

    def Page(self, target: Any, **options: Any) -> FakePage:  # noqa: N802 - Streamlit's name
        return FakePage(target, options)

    def navigation(self, pages: list[FakePage]) -> FakePage:
        self.navigated.append(pages)
        return next(page for page in pages if page.options.get("default"))

    def error(self, message: str) -> None:
        self.messages.append(("error", message))

    def warning(self, message: str) -> None:
        self.messages.append(("warning", message))

    def title(self, text: str) -> None:
        self.drawn.append(text)

    def dataframe(self, rows: Any) -> None:
        self.drawn.append(rows)


def make_app() -> FluxLit:
    app = FluxLit()

    @app.page("/settings/profile", icon="⚙️")
    def profile(st, client):
        """Edit the profile."""

    @app.page("/", "Home")
    def home(st, client):
        st.dataframe(client.get_json("/users"))

    return app


def test_default_page_gets_empty_url_path() -> None:
    st = FakeStreamlit()
    pages = build_pages(st, make_app())
    assert [page.options for page in pages] == [
        {"title": "Profile", "icon": "⚙️", "url_path": "settings-profile"},
        {"title": "Home", "icon": None, "url_path": "", "default": True},
    ]


def test_url_paths_never_start_with_slash() -> None:
    pages = build_pages(FakeStreamlit(), make_app())
    assert all(not page.options["url_path"].startswith("/") for page in pages)


def test_page_callable_passes_st_and_client(
    stub_api: StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUXLIT_API_BASE_URL", f"{stub_api.url}/api")
    received: list[Any] = []
    app = FluxLit()

    @app.page("/")
    def home(st, client):
        received.extend([st, client])

    st = FakeStreamlit()
    run = make_page_callable(st, app.pages[0])
    run()
    assert received[0] is st
    assert isinstance(received[1], ApiClient)
    assert received[1].base_url == f"{stub_api.url}/api"
    assert run.__name__ == "home"


def test_main_runs_default_page(stub_api: StubApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_API_BASE_URL", f"{stub_api.url}/api")
    monkeypatch.setenv("FLUXLIT_TARGET", "examples/hello/app.py:app")
    monkeypatch.setenv("FLUXLIT_APP_DIR", str(REPO_ROOT))
    st = FakeStreamlit()
    main(st)
    assert st.messages == []
    assert [page.options["url_path"] for page in st.navigated[0]] == ["", "add"]
    assert st.navigated[0][0].runs == 1
    assert st.drawn == ["Users", USERS]
    assert stub_api.requests[-1].path == "/api/users"


def test_main_shows_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TARGET", "missing_module_for_entry:app")
    monkeypatch.setenv("FLUXLIT_APP_DIR", str(REPO_ROOT))
    st = FakeStreamlit()
    main(st)
    assert len(st.messages) == 1
    kind, message = st.messages[0]
    assert kind == "error"
    assert "'missing_module_for_entry' not found" in message
    assert st.navigated == []


def test_main_rejects_non_fluxlit_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TARGET", "examples/hello/app.py:logger")
    monkeypatch.setenv("FLUXLIT_APP_DIR", str(REPO_ROOT))
    st = FakeStreamlit()
    main(st)
    assert st.messages[0][0] == "error"
    assert "not a fluxlit.FluxLit object" in st.messages[0][1]


def test_main_warns_without_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = "from fluxlit import FluxLit\napp = FluxLit()\n"
    (tmp_path / "pageless_entry_app.py").write_text(source)
    monkeypatch.setenv("FLUXLIT_TARGET", "pageless_entry_app.py:app")
    monkeypatch.setenv("FLUXLIT_APP_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    st = FakeStreamlit()
    main(st)
    assert st.messages[0][0] == "warning"
    assert "has no pages" in st.messages[0][1]
