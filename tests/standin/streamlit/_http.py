"""HTTP endpoints that imitate Streamlit's: health, the app page, static files, uploads, media."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import tornado.web

from . import _assets
from ._recording import RECORD

logger = logging.getLogger("streamlit.standin")

MEGABYTE = 1 << 20
# Media responses are written in pieces of this size, flushing after each one.
MEDIA_WRITE_BYTES = 64 * 1024
# An upload above the limit is still read and discarded up to this many bytes past the limit,
# so that the client has finished sending when the 413 arrives. Larger bodies are cut off.
UPLOAD_DISCARD_BYTES = 256 * MEGABYTE


@dataclass
class ServerState:
    """Settings and shared objects that every handler of one server uses."""

    options: dict[str, Any]
    script_path: str
    base_path: str
    bundle: _assets.Asset
    index: _assets.Asset
    favicon: _assets.Asset
    executor: ThreadPoolExecutor
    started: float = field(default_factory=time.monotonic)
    sessions: dict[str, Any] = field(default_factory=dict)
    open_sockets: set[Any] = field(default_factory=set)

    @property
    def upload_limit_bytes(self) -> int:
        return int(self.options["server.maxUploadSize"]) * MEGABYTE

    def starting(self) -> bool:
        """Whether the health check still returns 503, per standin.healthDelayMs."""
        elapsed_ms = (time.monotonic() - self.started) * 1000
        return elapsed_ms < int(self.options["standin.healthDelayMs"])

    def serves_static_files(self) -> bool:
        # Streamlit's development mode leaves the front end to a separate server.
        return not self.options["global.developmentMode"]


def record_request(request: Any) -> None:
    """Store the method, URI and every header line of a request for /_standin/record."""
    if "/_standin/record" in request.path:
        return
    RECORD.append(
        "requests",
        {
            "method": request.method,
            "uri": request.uri,
            "version": request.version,
            "remote_ip": request.remote_ip,
            "headers": [[name, value] for name, value in request.headers.get_all()],
        },
    )


def server_state(handler: tornado.web.RequestHandler) -> ServerState:
    """Return the state stored in the application settings.

    Handlers read it from there because Tornado calls set_default_headers before initialize.
    """
    return handler.application.settings["standin_state"]


class BaseHandler(tornado.web.RequestHandler):
    """Records each request before anything, including the XSRF check, can reject it."""

    def initialize(self, **_: Any) -> None:
        record_request(self.request)

    @property
    def state(self) -> ServerState:
        return server_state(self)

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, indent=1))

    def write_index(self) -> None:
        if not self.state.serves_static_files():
            raise tornado.web.HTTPError(404)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Type", "text/html")
        self.finish(self.state.index.body)


class NotFoundHandler(BaseHandler):
    """Paths outside the base URL path."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class SpecialHandler(BaseHandler):
    """Health and host-config: never cached, open to any origin when CORS protection is off."""

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        if not self.state.options["server.enableCORS"]:
            self.set_header("Access-Control-Allow-Origin", "*")

    def options(self, *_: Any) -> None:
        self.set_status(204)
        self.finish()


class HealthHandler(SpecialHandler):
    """`/_stcore/health`, and the older `/healthz` with a deprecation header."""

    def initialize(self, deprecated: bool = False, **_: Any) -> None:
        super().initialize()
        self.deprecated = deprecated

    def get(self) -> None:
        if self.deprecated:
            self.set_header("Deprecation", "True")
            current = f"{self.request.protocol}://{self.request.host}/_stcore/health"
            self.set_header("Link", f'<{current}>; rel="alternate"')
        if self.state.starting():
            self.set_status(503)
            self.finish("starting")
            return
        if self.settings.get("xsrf_cookies"):
            # Reading xsrf_token sets the _xsrf cookie when the request carries none (Tornado
            # 6.2 names it _xsrf); _streamlit_xsrf is set every time, with the same value.
            token = self.xsrf_token
            self.set_cookie("_streamlit_xsrf", token, path="/")
        self.finish("ok")

    head = get


class HostConfigHandler(SpecialHandler):
    def get(self) -> None:
        self.write_json(
            {
                "allowedOrigins": ["https://*.streamlit.app"],
                "useExternalAuthToken": False,
                "enableCustomParentMessages": False,
            }
        )


class MessageHandler(BaseHandler):
    """`/_stcore/message?hash=H`: the stand-in caches no messages, so every hash is unknown."""

    def get(self) -> None:
        message_hash = self.get_argument("hash", "")
        raise tornado.web.HTTPError(404, "no cached message with hash %r", message_hash)


class MetricsHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/openmetrics-text")
        open_sockets = len(self.state.open_sockets)
        self.finish(
            "# TYPE standin_open_websockets gauge\n"
            f"standin_open_websockets {open_sockets}\n"
            "# EOF\n"
        )


class AssetHandler(BaseHandler):
    """A hashed static file: cacheable, with an entity tag, gzip-encoded on request."""

    def initialize(self, asset_name: str = "bundle", **_: Any) -> None:
        super().initialize()
        self.asset: _assets.Asset = getattr(self.state, asset_name)

    def get(self) -> None:
        if not self.state.serves_static_files():
            raise tornado.web.HTTPError(404)
        self.set_header("Cache-Control", "public")
        self.set_header("Content-Type", self.asset.content_type)
        self.set_header("Etag", self.asset.etag)
        self.set_header("Vary", "Accept-Encoding")
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        body = self.asset.body
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            body = self.asset.gzipped
        self.finish(body)

    head = get


class FallbackHandler(BaseHandler):
    """Every other path under the base: the app page, a slash redirect, or 404 for probes."""

    def get(self, path: str) -> None:
        # The front end finds its base URL by probing these endpoints at its window's path and
        # its parents, so a miss must be a 404 and not the app page.
        if path.endswith("_stcore/health") or path.endswith("_stcore/host-config"):
            raise tornado.web.HTTPError(404)
        if path.endswith("/"):
            # Collapsing leading slashes keeps "//host/" from becoming an off-site redirect.
            target = "/" + self.request.path.strip("/")
            if self.request.query:
                target += "?" + self.request.query
            self.redirect(target, permanent=True)
            return
        self.write_index()

    head = get


class BaseRedirectHandler(BaseHandler):
    """The base URL path without its trailing slash: 301 to the same path with one."""

    def get(self) -> None:
        target = self.request.path + "/"
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(target, permanent=True)

    head = get


@tornado.web.stream_request_body
class UploadHandler(BaseHandler):
    """`PUT|DELETE|OPTIONS /_stcore/upload_file/<session_id>/<file_id>`.

    Tornado checks the XSRF token before `prepare`. The body is streamed and counted; above
    server.maxUploadSize megabytes (of 2**20 bytes) the rest of the body is discarded and the
    status is 413.

    NOTE: whether Streamlit reads an oversized body to its end before answering is not known;
    the stand-in does, so that clients that send the whole body first still see the 413.
    """

    def set_default_headers(self) -> None:
        options = self.state.options
        own_origin = f"http://{options['browser.serverAddress']}:{options['browser.serverPort']}"
        self.set_header("Access-Control-Allow-Origin", own_origin)
        self.set_header("Access-Control-Allow-Credentials", "true")
        self.set_header("Access-Control-Allow-Methods", "PUT, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type, X-Xsrftoken")
        self.set_header("Vary", "Origin")

    def prepare(self) -> None:
        self.received_bytes = 0
        self.digest = hashlib.sha256()
        # Let Tornado read past the limit so that this handler, not Tornado, rejects the body.
        self.request.connection.set_max_body_size(
            self.state.upload_limit_bytes + UPLOAD_DISCARD_BYTES
        )

    def data_received(self, chunk: bytes) -> None:
        self.received_bytes += len(chunk)
        if self.received_bytes <= self.state.upload_limit_bytes:
            self.digest.update(chunk)

    def put(self, session_id: str, file_id: str) -> None:
        if self.received_bytes > self.state.upload_limit_bytes:
            limit_mb = self.state.options["server.maxUploadSize"]
            logger.info(
                "upload %s/%s of %d bytes rejected: above server.maxUploadSize=%s MB",
                session_id,
                file_id,
                self.received_bytes,
                limit_mb,
            )
            self.set_status(413)
            self.finish(f"file too large: the limit is server.maxUploadSize={limit_mb} MB")
            return
        RECORD.append(
            "uploads",
            {
                "session_id": session_id,
                "file_id": file_id,
                "bytes": self.received_bytes,
                "sha256": self.digest.hexdigest(),
                "content_type": self.request.headers.get("Content-Type"),
            },
        )
        self.set_status(204)
        self.finish()

    def delete(self, session_id: str, file_id: str) -> None:
        self.set_status(204)
        self.finish()

    def options(self, *_: Any) -> None:
        self.set_status(204)
        self.finish()


class MediaHandler(BaseHandler):
    """`GET|HEAD /media/<name>`: a generated file with single-range support."""

    async def get(self, name: str) -> None:
        if not _assets.MEDIA_NAME.match(name):
            raise tornado.web.HTTPError(404)
        size = _assets.media_size(name, int(self.state.options["standin.mediaBytes"]))
        if size > _assets.MAX_MEDIA_BYTES:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", _assets.media_type(name))
        self.set_header("Accept-Ranges", "bytes")
        start, end = 0, size
        requested = parse_range(self.request.headers.get("Range"), size)
        if requested == "unsatisfiable":
            self.set_status(416)
            self.set_header("Content-Range", f"bytes */{size}")
            self.finish()
            return
        if requested is not None:
            start, end = requested
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.set_header("Content-Length", str(end - start))
        if self.request.method == "HEAD":
            self.finish()
            return
        block = _assets.media_block(name)
        for position in range(start, end, MEDIA_WRITE_BYTES):
            self.write(_assets.media_slice(block, position, min(position + MEDIA_WRITE_BYTES, end)))
            await self.flush()
        self.finish()

    head = get


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Return the half-open byte range that a Range header requests, "unsatisfiable", or None.

    None means "send the whole file": no header, a malformed one, or several ranges, which
    Tornado's static file handler does not serve either.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end
