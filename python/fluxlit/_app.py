"""The FluxLit application object: a FastAPI app plus the Streamlit pages registered on it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI

PageHandler = Callable[[Any, Any], Any]
HandlerT = TypeVar("HandlerT", bound=PageHandler)

# One path segment: letters, digits, "_" and "-". Streamlit uses the page's URL path as part of
# the browser URL, so anything that would need escaping is rejected at registration.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class PageParameter:
    """One parameter of a page handler: its name and its annotation as source text."""

    name: str
    annotation: str | None


@dataclass(frozen=True)
class PageRecord:
    """A page registered with `FluxLit.page`."""

    path: str
    title: str
    icon: str | None
    tags: tuple[str, ...]
    dependencies: tuple[str, ...]
    description: str | None
    handler: PageHandler
    parameters: tuple[PageParameter, ...]

    @property
    def is_default(self) -> bool:
        """Whether this is the page served at the UI's root URL."""
        return self.path == "/"

    @property
    def url_path(self) -> str:
        """The Streamlit URL path: the page path without its leading slash, "/" joined by "-".

        The default page has the empty URL path.
        """
        return self.path.strip("/").replace("/", "-")

    def to_dict(self) -> dict[str, Any]:
        """Describe the page as JSON-serialisable data (everything except the handler object)."""
        return {
            "path": self.path,
            "url_path": self.url_path,
            "title": self.title,
            "icon": self.icon,
            "tags": list(self.tags),
            "dependencies": list(self.dependencies),
            "description": self.description,
            "default": self.is_default,
            "handler": f"{self.handler.__module__}:{self.handler.__qualname__}",
            "parameters": [
                {"name": parameter.name, "annotation": parameter.annotation}
                for parameter in self.parameters
            ],
        }


class FluxLit:
    """A FastAPI app served under the API prefix and the Streamlit pages that use it.

    The object is an ASGI 3 application that delegates to `api`, so ASGI servers can run it
    directly.
    """

    def __init__(
        self, title: str = "FluxLit", *, api: FastAPI | None = None, **fastapi_kwargs: Any
    ) -> None:
        if api is not None and fastapi_kwargs:
            names = ", ".join(sorted(fastapi_kwargs))
            raise TypeError(
                f"FluxLit got FastAPI keyword arguments ({names}) together with api=; "
                "configure the FastAPI app you pass instead"
            )
        self.title = title
        self.api: FastAPI = api if api is not None else FastAPI(title=title, **fastapi_kwargs)
        self.pages: list[PageRecord] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.api(scope, receive, send)

    def __repr__(self) -> str:
        return f"FluxLit(title={self.title!r}, pages={[page.path for page in self.pages]!r})"

    def page(
        self,
        path: str,
        title: str | None = None,
        *,
        icon: str | None = None,
        tags: Sequence[str] = (),
        dependencies: Sequence[str] = (),
    ) -> Callable[[HandlerT], HandlerT]:
        """Register the decorated function `handler(st, client)` as the page at `path`.

        `path` starts with "/" and "/" is the default page. The title defaults to one derived
        from the path, or from the function name for the default page. Raises ValueError for
        an invalid or already registered path.
        """
        _check_path(path)
        if any(page.path == path for page in self.pages):
            raise ValueError(f"page path {path!r} is already registered")
        tag_tuple = _string_tuple("tags", tags)
        dependency_tuple = _string_tuple("dependencies", dependencies)

        def register(handler: HandlerT) -> HandlerT:
            _check_handler(path, handler)
            record = PageRecord(
                path=path,
                title=title if title is not None else _default_title(path, handler),
                icon=icon,
                tags=tag_tuple,
                dependencies=dependency_tuple,
                description=_first_docstring_line(handler),
                handler=handler,
                parameters=_parameters_of(handler),
            )
            clash = next((page for page in self.pages if page.url_path == record.url_path), None)
            if clash is not None:
                raise ValueError(
                    f"page path {path!r} maps to the URL path {record.url_path!r}, "
                    f"which page {clash.path!r} already uses"
                )
            self.pages.append(record)
            return handler

        return register

    def get_page(self, path: str) -> PageRecord:
        """Return the page registered at `path`; raise KeyError naming the known paths."""
        for page in self.pages:
            if page.path == path:
                return page
        known = ", ".join(repr(page.path) for page in self.pages) or "none"
        raise KeyError(f"no page is registered at {path!r}; registered paths: {known}")


def _check_path(path: str) -> None:
    if not isinstance(path, str):
        raise TypeError(f"page path must be a string, got {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError(f"page path {path!r} must start with '/', for example '/{path}'")
    if path == "/":
        return
    if path.endswith("/"):
        raise ValueError(f"page path {path!r} must not end with '/'; use {path.rstrip('/')!r}")
    for segment in path[1:].split("/"):
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"page path {path!r} is invalid: each segment must be non-empty and contain "
                "only letters, digits, '_' and '-'"
            )


def _string_tuple(name: str, values: Sequence[str]) -> tuple[str, ...]:
    # A bare string is a Sequence[str] too, and would silently become one entry per character.
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of strings, not a string: use ({values!r},)")
    result = tuple(values)
    for value in result:
        if not isinstance(value, str):
            raise TypeError(f"{name} must contain strings, got {value!r}")
    return result


def _check_handler(path: str, handler: Any) -> None:
    if not callable(handler):
        raise TypeError(f"page {path!r}: the handler must be callable, got {handler!r}")
    try:
        inspect.signature(handler).bind(None, None)
    except TypeError as error:
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(
            f"page {path!r}: handler {name} must accept two positional arguments "
            f"(st, client): {error}"
        ) from None
    except ValueError:
        # Some builtins have no introspectable signature; accept them and let the call decide.
        pass


def _default_title(path: str, handler: Any) -> str:
    if path == "/":
        source = getattr(handler, "__name__", "") or "Home"
    else:
        source = path.rsplit("/", 1)[-1]
    words = re.sub(r"[_-]+", " ", source).strip()
    return words[:1].upper() + words[1:] if words else "Home"


def _first_docstring_line(handler: Any) -> str | None:
    doc = inspect.getdoc(handler)
    if not doc:
        return None
    return doc.strip().splitlines()[0].strip()


def _parameters_of(handler: Any) -> tuple[PageParameter, ...]:
    try:
        signature = inspect.signature(handler)
    except ValueError:
        return ()
    parameters = []
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if annotation is inspect.Parameter.empty:
            text = None
        elif isinstance(annotation, str):
            text = annotation
        else:
            text = inspect.formatannotation(annotation)
        parameters.append(PageParameter(parameter.name, text))
    return tuple(parameters)
