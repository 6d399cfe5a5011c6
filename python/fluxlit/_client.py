"""A synchronous HTTP client that Streamlit pages use to call the FluxLit API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

BASE_URL_ENV = "FLUXLIT_API_BASE_URL"


class ApiClient:
    """Calls the FluxLit API with paths relative to its base URL.

    `client.get("/users")` requests `<base_url>/users`. The base URL defaults to the
    FLUXLIT_API_BASE_URL environment variable, which the fluxlit binary sets for the Streamlit
    child. Methods return the `httpx.Response` whatever its status; `get_json` raises for
    non-2xx statuses instead.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        """Create a client.

        `timeout` is in seconds and applies to connect, read, write and pool waits. Pass
        `http_client` to send through an existing httpx client (for example a test client);
        ApiClient then does not close it.
        """
        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV)
        if not base_url:
            raise RuntimeError(
                f"ApiClient has no base URL: pass base_url= or set the {BASE_URL_ENV} "
                "environment variable (the fluxlit binary sets it for Streamlit pages)"
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"invalid API base URL {base_url!r}: expected an absolute http:// or https:// "
                "URL such as 'http://127.0.0.1:8000/api'"
            )
        self.base_url = base_url.rstrip("/")
        self._owns_http_client = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._headers = dict(headers or {})

    def url_for(self, path: str) -> str:
        """Return the absolute URL of the API-relative `path` (which may carry a query)."""
        if urlsplit(path).scheme:
            raise ValueError(
                f"ApiClient takes paths relative to the API base URL, got the absolute URL "
                f"{path!r}; use httpx directly for other servers"
            )
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; keyword arguments are those of `httpx.Client.request`."""
        headers = {**self._headers, **(kwargs.pop("headers", None) or {})}
        return self._http.request(method, self.url_for(path), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        """Send a PUT request."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        """Send a PATCH request."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        """Send a DELETE request."""
        return self.request("DELETE", path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """Send a GET request and decode its JSON body.

        Raises httpx.HTTPStatusError for a non-2xx status.
        """
        response = self.get(path, **kwargs)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        """Close the connections that this client opened."""
        if self._owns_http_client:
            self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r})"
