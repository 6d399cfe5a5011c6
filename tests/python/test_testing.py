"""fluxlit.testing: running pages without a server."""

from __future__ import annotations

import pytest
from app import app
from support import USERS, StubApi

from fluxlit import ApiClient, FluxLit
from fluxlit.testing import RecordedCall, RecordingStreamlit, run_page


def test_users_page_lists_users() -> None:
    st = run_page(app, "/")
    assert st.names() == ["title", "dataframe"]
    assert st.find("title")[0].args == ("Users",)
    rows = st.find("dataframe")[0].args[0]
    assert [row["name"] for row in rows] == ["Ada Lovelace", "Alan Turing"]


def test_add_page_shows_form_only() -> None:
    st = run_page(app, "/add")
    assert st.names() == ["header", "form", "text_input", "text_input", "form_submit_button"]
    assert [call.container for call in st.calls[2:]] == ["form:add_user"] * 3


def test_add_page_submits_user() -> None:
    st = RecordingStreamlit(
        widget_values={"Name": "Grace Hopper", "Email": "grace@example.com", "Create": True}
    )
    run_page(app, "/add", st=st)
    assert st.find("success")[0].args == ("Created user 3.",)
    assert st.find("error") == []


def test_add_page_shows_api_rejection() -> None:
    st = RecordingStreamlit(widget_values={"Name": "", "Email": "x@example.com", "Create": True})
    run_page(app, "/add", st=st)
    assert st.find("success") == []
    message = st.find("error")[0].args[0]
    assert message.startswith("The API rejected the user (422)")


def test_explicit_client_is_used(stub_api: StubApi) -> None:
    with ApiClient(f"{stub_api.url}/api") as client:
        st = run_page(app, "/", client=client)
    assert st.find("dataframe")[0].args == (USERS,)
    assert stub_api.requests[-1].path == "/api/users"


def test_unknown_page_is_reported() -> None:
    with pytest.raises(KeyError, match="'/missing'"):
        run_page(app, "/missing")


def test_page_errors_propagate() -> None:
    broken = FluxLit()

    @broken.api.get("/data")
    def data() -> None:
        raise RuntimeError("data failed")

    @broken.page("/")
    def home(st, client):
        client.get_json("/data")

    # The default client is a TestClient, which re-raises the route's exception.
    with pytest.raises(RuntimeError, match="data failed"):
        run_page(broken, "/")


def test_any_st_call_is_recorded() -> None:
    st = RecordingStreamlit()
    st.caption("small", help="tip")
    st.sidebar.button("Go", key="go")
    with st.sidebar:
        st.markdown("**side**")
    left, right = st.columns(2)
    right.metric("Users", 2)
    assert st.calls == [
        RecordedCall("caption", ("small",), {"help": "tip"}, "main"),
        RecordedCall("button", ("Go",), {"key": "go"}, "sidebar"),
        RecordedCall("markdown", ("**side**",), {}, "sidebar"),
        RecordedCall("columns", (2,), {}, "main"),
        RecordedCall("metric", ("Users", 2), {}, "column:1"),
    ]


def test_widget_defaults_and_overrides() -> None:
    st = RecordingStreamlit(widget_values={"by-key": "from key", "Age": 42})
    assert st.button("Press") is False
    assert st.text_input("Name", "Ada") == "Ada"
    assert st.text_input("Ignored label", key="by-key") == "from key"
    assert st.number_input("Count", 5) == 5
    assert st.number_input("Zero") == 0.0
    assert st.number_input("Age") == 42
    assert st.selectbox("Pick", ["a", "b"], index=1) == "b"
    assert st.checkbox("Agree") is False


def test_session_state_allows_attributes() -> None:
    st = RecordingStreamlit()
    st.session_state.counter = 1
    st.session_state["counter"] += 1
    assert st.session_state.counter == 2
    with pytest.raises(AttributeError, match="'missing'"):
        st.session_state.missing
