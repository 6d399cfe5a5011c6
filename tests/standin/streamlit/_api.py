"""The recording imitation of Streamlit's script API: every call is recorded on the current run.

Widgets return their defaults (buttons False, inputs their `value`), so a page runs its
"nothing submitted yet" branch, as it does on a first load in a browser.
"""

from __future__ import annotations

import logging
import runpy
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._recording import current_run
from .errors import StreamlitAPIException

logger = logging.getLogger("streamlit.standin")


class StopScript(Exception):
    """Raised by `stop()` to end the current script run quietly."""


def _record(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    run = current_run()
    if run is None:
        logger.warning("st.%s was called outside a script run; the call is not recorded", name)
        return
    run.record_call(name, args, kwargs)


def _display(name: str) -> Callable[..., None]:
    def element(*args: Any, **kwargs: Any) -> None:
        _record(name, args, kwargs)

    element.__name__ = name
    return element


title = _display("title")
header = _display("header")
subheader = _display("subheader")
caption = _display("caption")
text = _display("text")
code = _display("code")
write = _display("write")
markdown = _display("markdown")
json = _display("json")
dataframe = _display("dataframe")
table = _display("table")
metric = _display("metric")
image = _display("image")
divider = _display("divider")
error = _display("error")
warning = _display("warning")
info = _display("info")
success = _display("success")
exception = _display("exception")
toast = _display("toast")
set_page_config = _display("set_page_config")


def button(label: str, *args: Any, **kwargs: Any) -> bool:
    _record("button", (label, *args), kwargs)
    return False


def form_submit_button(label: str = "Submit", *args: Any, **kwargs: Any) -> bool:
    _record("form_submit_button", (label, *args), kwargs)
    return False


def download_button(label: str, *args: Any, **kwargs: Any) -> bool:
    _record("download_button", (label, *args), kwargs)
    return False


def checkbox(label: str, value: bool = False, *args: Any, **kwargs: Any) -> bool:
    _record("checkbox", (label, value, *args), kwargs)
    return value


def text_input(label: str, value: str | None = "", *args: Any, **kwargs: Any) -> str | None:
    _record("text_input", (label, value, *args), kwargs)
    return value


def text_area(label: str, value: str | None = "", *args: Any, **kwargs: Any) -> str | None:
    _record("text_area", (label, value, *args), kwargs)
    return value


def number_input(
    label: str,
    min_value: float | None = None,
    max_value: float | None = None,
    value: Any = "min",
    *args: Any,
    **kwargs: Any,
) -> Any:
    _record("number_input", (label, min_value, max_value, value, *args), kwargs)
    if value == "min":
        return min_value if min_value is not None else 0.0
    return value


def selectbox(
    label: str, options: Sequence[Any], index: int | None = 0, *args: Any, **kwargs: Any
) -> Any:
    choices = list(options)
    _record("selectbox", (label, choices, index, *args), kwargs)
    return None if index is None or not choices else choices[index]


def file_uploader(label: str, *args: Any, **kwargs: Any) -> None:
    _record("file_uploader", (label, *args), kwargs)


def stop() -> None:
    _record("stop", (), {})
    raise StopScript


class _Block:
    """A layout block: calls made on it, or inside `with block:`, are tagged with its name."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __enter__(self) -> _Block:
        run = current_run()
        if run is not None:
            run.containers.append(self._name)
        return self

    def __exit__(self, *exc_info: object) -> None:
        run = current_run()
        if run is not None and len(run.containers) > 1:
            run.containers.pop()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        function = globals().get(name)
        if not callable(function):
            raise AttributeError(f"the stand-in's {self._name} block has no {name!r}")

        def call_inside(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return call_inside


sidebar = _Block("sidebar")


def form(key: str, *args: Any, **kwargs: Any) -> _Block:
    _record("form", (key, *args), kwargs)
    return _Block(f"form:{key}")


def container(*args: Any, **kwargs: Any) -> _Block:
    _record("container", args, kwargs)
    run = current_run()
    return _Block(run.containers[-1] if run is not None else "main")


def expander(label: str, *args: Any, **kwargs: Any) -> _Block:
    _record("expander", (label, *args), kwargs)
    return _Block(f"expander:{label}")


def columns(spec: int | Sequence[float], *args: Any, **kwargs: Any) -> list[_Block]:
    _record("columns", (spec, *args), kwargs)
    count = spec if isinstance(spec, int) else len(spec)
    return [_Block(f"column:{index}") for index in range(count)]


def tabs(labels: Sequence[str], *args: Any, **kwargs: Any) -> list[_Block]:
    _record("tabs", (list(labels), *args), kwargs)
    return [_Block(f"tab:{label}") for label in labels]


@contextmanager
def spinner(text: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
    _record("spinner", (text, *args), kwargs)
    yield


class _SessionState(MutableMapping[str, Any]):
    """`st.session_state`: the state of the session whose script run is current."""

    def _data(self) -> dict[str, Any]:
        run = current_run()
        if run is None:
            raise RuntimeError("st.session_state is only available during a script run")
        return run.session_state

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data()[key]
        except KeyError:
            raise AttributeError(f"st.session_state has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._data()[key] = value


session_state = _SessionState()


class Page:
    """A page for `navigation`: a callable or a script path, with its title and URL path."""

    def __init__(
        self,
        page: Callable[[], Any] | str | Path,
        *,
        title: str | None = None,
        icon: str | None = None,
        url_path: str | None = None,
        default: bool = False,
    ) -> None:
        if callable(page):
            name = getattr(page, "__name__", "page")
        elif isinstance(page, (str, Path)):
            name = Path(page).stem
        else:
            raise StreamlitAPIException(f"st.Page needs a callable or a script path, got {page!r}")
        # As in Streamlit, the path is inferred from the callable or file name unless given,
        # surrounding slashes are dropped, and navigation checks this path for duplicates even
        # on the default page, whose public URL path is always "".
        self.path_key = name if url_path is None else url_path.strip("/")
        if url_path is not None and not self.path_key.strip() and not default:
            raise StreamlitAPIException(
                "st.Page url_path must not be empty unless the page is the default page"
            )
        if "/" in self.path_key:
            raise StreamlitAPIException(
                f"st.Page url_path {url_path!r} must not contain a nested path"
            )
        self._page = page
        self.title = title if title else name.replace("_", " ")
        if not self.title.strip():
            raise StreamlitAPIException("st.Page title must not be empty")
        self.icon = icon
        self.default = default

    @property
    def url_path(self) -> str:
        """The page's path in the browser URL; "" for the default page."""
        return "" if self.default else self.path_key

    def describe(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "icon": self.icon,
            "url_path": self.url_path,
            "default": self.default,
        }

    def run(self) -> None:
        if callable(self._page):
            self._page()
        else:
            runpy.run_path(str(self._page), run_name="__main__")


def navigation(
    pages: Sequence[Page] | dict[str, Sequence[Page]],
    *,
    position: str = "sidebar",
    expanded: bool = False,
) -> Page:
    """Check the pages, record them, and return the page that the current run asked for."""
    if isinstance(pages, dict):
        flat = [page for group in pages.values() for page in group]
    else:
        flat = list(pages)
    if not flat:
        raise StreamlitAPIException("st.navigation needs at least one page")
    defaults = [page for page in flat if page.default]
    if len(defaults) > 1:
        raise StreamlitAPIException("st.navigation got more than one page with default=True")
    seen: set[str] = set()
    for page in flat:
        if page.path_key in seen:
            raise StreamlitAPIException(
                f"st.navigation got two pages with the URL path {page.path_key!r}; a page "
                "without url_path takes it from its callable or file name"
            )
        seen.add(page.path_key)
    described = [page.describe() for page in flat]
    _record("navigation", (described,), {"position": position, "expanded": expanded})
    default_page = defaults[0] if defaults else flat[0]
    run = current_run()
    if run is None:
        return default_page
    run.pages = described
    selected = default_page
    if run.requested_page:
        match = next((page for page in flat if page.url_path == run.requested_page), None)
        if match is None:
            run.page_not_found = True
        else:
            selected = match
    run.page = selected.url_path
    return selected
