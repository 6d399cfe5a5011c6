"""Helpers for testing a FluxLit app without a server: a test client and a page runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.testclient import TestClient as _StarletteTestClient

from ._app import FluxLit
from ._client import ApiClient

__all__ = ["RecordedCall", "RecordingStreamlit", "TestClient", "run_page"]


class TestClient(_StarletteTestClient):
    """Starlette's TestClient over the app's FastAPI app; accepts a FluxLit or any ASGI app.

    Use it as a context manager to run the app's startup and shutdown handlers.
    """

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app.api if isinstance(app, FluxLit) else app, **kwargs)


@dataclass(frozen=True)
class RecordedCall:
    """One call that a page made on the recording `st` object."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    container: str = "main"


class SessionState(dict):  # type: ignore[type-arg]
    """A dict that also allows attribute access, like `st.session_state`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"session_state has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"session_state has no key {name!r}") from None


class _Container:
    """A layout block (sidebar, form, column): calls made on it or inside `with` are tagged."""

    def __init__(self, recorder: RecordingStreamlit, name: str) -> None:
        self._recorder = recorder
        self._name = name

    def __enter__(self) -> _Container:
        self._recorder._containers.append(self._name)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._recorder._containers.pop()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._recorder, name)
        if not callable(method):
            return method

        def call_inside(*args: Any, **kwargs: Any) -> Any:
            with self:
                return method(*args, **kwargs)

        return call_inside


@dataclass
class RecordingStreamlit:
    """A stand-in for the `streamlit` module that records the calls a page makes.

    Widgets return the value set in `widget_values` under their `key` or their label, else
    their default: buttons False, text inputs their `value`, number inputs their `value` or
    `min_value` or 0.0. Any other public attribute is a display call that is recorded and
    returns None.
    """

    widget_values: Mapping[str, Any] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    session_state: SessionState = field(default_factory=SessionState)
    _containers: list[str] = field(default_factory=lambda: ["main"], repr=False)

    def __post_init__(self) -> None:
        self.sidebar = _Container(self, "sidebar")

    def names(self) -> list[str]:
        """Return the names of the recorded calls, in call order."""
        return [call.name for call in self.calls]

    def find(self, name: str) -> list[RecordedCall]:
        """Return the recorded calls named `name`."""
        return [call for call in self.calls if call.name == name]

    def _record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(RecordedCall(name, args, dict(kwargs), self._containers[-1]))

    def _widget_value(self, label: str, kwargs: Mapping[str, Any], default: Any) -> Any:
        key = kwargs.get("key")
        if key is not None and key in self.widget_values:
            return self.widget_values[key]
        return self.widget_values.get(label, default)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)

        def display(*args: Any, **kwargs: Any) -> None:
            self._record(name, args, kwargs)

        return display

    def button(self, label: str, *args: Any, **kwargs: Any) -> bool:
        self._record("button", (label, *args), kwargs)
        return bool(self._widget_value(label, kwargs, False))

    def form_submit_button(self, label: str = "Submit", *args: Any, **kwargs: Any) -> bool:
        self._record("form_submit_button", (label, *args), kwargs)
        return bool(self._widget_value(label, kwargs, False))

    def checkbox(self, label: str, value: bool = False, *args: Any, **kwargs: Any) -> bool:
        self._record("checkbox", (label, value, *args), kwargs)
        return bool(self._widget_value(label, kwargs, value))

    def text_input(self, label: str, value: str = "", *args: Any, **kwargs: Any) -> str:
        self._record("text_input", (label, value, *args), kwargs)
        return str(self._widget_value(label, kwargs, value))

    def text_area(self, label: str, value: str = "", *args: Any, **kwargs: Any) -> str:
        self._record("text_area", (label, value, *args), kwargs)
        return str(self._widget_value(label, kwargs, value))

    def number_input(self, label: str, *args: Any, **kwargs: Any) -> Any:
        self._record("number_input", (label, *args), kwargs)
        min_value = args[0] if len(args) > 0 else kwargs.get("min_value")
        value = args[2] if len(args) > 2 else kwargs.get("value", "min")
        if value == "min":
            value = min_value if min_value is not None else 0.0
        return self._widget_value(label, kwargs, value)

    def selectbox(
        self, label: str, options: Sequence[Any], index: int | None = 0, *args: Any, **kwargs: Any
    ) -> Any:
        self._record("selectbox", (label, list(options), index, *args), kwargs)
        default = None if index is None or not options else list(options)[index]
        return self._widget_value(label, kwargs, default)

    def form(self, key: str, *args: Any, **kwargs: Any) -> _Container:
        self._record("form", (key, *args), kwargs)
        return _Container(self, f"form:{key}")

    def container(self, *args: Any, **kwargs: Any) -> _Container:
        self._record("container", args, kwargs)
        return _Container(self, self._containers[-1])

    def expander(self, label: str, *args: Any, **kwargs: Any) -> _Container:
        self._record("expander", (label, *args), kwargs)
        return _Container(self, f"expander:{label}")

    def columns(self, spec: int | Sequence[float], *args: Any, **kwargs: Any) -> list[_Container]:
        self._record("columns", (spec, *args), kwargs)
        count = spec if isinstance(spec, int) else len(spec)
        return [_Container(self, f"column:{index}") for index in range(count)]

    def tabs(self, labels: Sequence[str], *args: Any, **kwargs: Any) -> list[_Container]:
        self._record("tabs", (list(labels), *args), kwargs)
        return [_Container(self, f"tab:{label}") for label in labels]

    @contextmanager
    def spinner(self, text: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        self._record("spinner", (text, *args), kwargs)
        yield


def run_page(
    app: FluxLit,
    path: str,
    st: Any = None,
    client: Any = None,
) -> Any:
    """Run the handler of the page at `path` once and return the `st` object it was given.

    `st` defaults to a new RecordingStreamlit. `client` defaults to an ApiClient that sends
    requests to the app in-process through TestClient, with the app's startup and shutdown
    handlers run around the page. Exceptions from the handler propagate.
    """
    page = app.get_page(path)
    recorder = st if st is not None else RecordingStreamlit()
    if client is not None:
        page.handler(recorder, client)
        return recorder
    with TestClient(app) as test_client:
        with ApiClient(str(test_client.base_url), http_client=test_client) as api_client:
            page.handler(recorder, api_client)
    return recorder
