"""Endpoints that only the stand-in has, under `/_standin/`, for tests to inspect and drive it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import traceback

import tornado.ioloop
import tornado.iostream
import tornado.web

from ._http import BaseHandler
from ._recording import RECORD
from ._runner import run_script

logger = logging.getLogger("streamlit.standin")

# Upper bound for /_standin/slow, so a typo cannot park a request for hours.
MAX_SLOW_MS = 600_000


class RecordHandler(BaseHandler):
    """`GET /_standin/record`: everything recorded so far, as JSON."""

    def get(self) -> None:
        self.write_json(RECORD.snapshot())


class RunHandler(BaseHandler):
    """`GET /_standin/run?page=<url_path>`: run the script for one page now.

    The script runs in a worker thread, so its pages can call the API through the gateway
    while this server keeps serving. Returns the run as JSON, with status 500 if it failed.
    """

    async def get(self) -> None:
        page = self.get_argument("page", "")
        loop = asyncio.get_running_loop()
        try:
            run = await loop.run_in_executor(
                self.state.executor,
                lambda: run_script(
                    self.state.script_path, trigger="http", requested_page=page or None
                ),
            )
        except Exception as error:  # noqa: BLE001 - reported to the test as a 500
            logger.exception("script run for page %r could not start", page)
            self.write_json(
                {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()},
                status=500,
            )
            return
        self.write_json(run.to_dict(), status=500 if run.error else 200)


class SseHandler(BaseHandler):
    """`GET /_standin/sse?count=5&interval_ms=200`: Server-Sent Events, flushed one by one."""

    async def get(self) -> None:
        count = int(self.get_argument("count", "5"))
        interval_ms = int(self.get_argument("interval_ms", "200"))
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        started = time.monotonic()
        try:
            for index in range(count):
                if index:
                    await asyncio.sleep(interval_ms / 1000)
                elapsed_ms = round((time.monotonic() - started) * 1000)
                data = json.dumps({"index": index, "elapsed_ms": elapsed_ms})
                self.write(f"id: {index}\nevent: tick\ndata: {data}\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            logger.info("SSE client went away")
            return
        self.finish()


class SlowHandler(BaseHandler):
    """`GET /_standin/slow?ms=N`: respond after N ms, or stop early when the client goes away.

    Each request is recorded under `slow_requests`, with whether it completed or the client
    closed the connection first.
    """

    async def get(self) -> None:
        delay_ms = min(int(self.get_argument("ms", "1000")), MAX_SLOW_MS)
        self.client_gone = asyncio.Event()
        self.entry = {"ms": delay_ms, "completed": False, "closed_by_client": False}
        RECORD.append("slow_requests", self.entry)
        try:
            await asyncio.wait_for(self.client_gone.wait(), delay_ms / 1000)
        except asyncio.TimeoutError:
            RECORD.update(self.entry, completed=True)
            self.finish(f"waited {delay_ms} ms\n")
            return
        logger.info("slow request of %d ms closed by the client first", delay_ms)

    def on_connection_close(self) -> None:
        if hasattr(self, "entry") and not self.entry["completed"]:
            RECORD.update(self.entry, closed_by_client=True)
            self.client_gone.set()


def pattern_bytes(size: int, offset: int) -> bytes:
    """Return `size` bytes of a repeating 0..250 pattern starting at `offset`, so a test can
    check every byte and spot a lost or repeated piece."""
    return bytes((offset + index) % 251 for index in range(size))


class PiecesHandler(BaseHandler):
    """`GET /_standin/pieces?bytes=N&piece=K&gap_ms=D&stop_at=M`: a Content-Length body of N
    pattern bytes, written K bytes at a time with a flush and a pause of D ms after each.

    With `stop_at`, the connection closes after M bytes, so the body ends short of its declared
    length, as when the server dies mid-response.
    """

    async def get(self) -> None:
        size = int(self.get_argument("bytes"))
        piece = max(1, int(self.get_argument("piece", "65536")))
        gap_seconds = int(self.get_argument("gap_ms", "0")) / 1000
        stop_at = int(self.get_argument("stop_at", str(size)))
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(size))
        await self.flush()  # the head leaves on its own, before any body byte
        sent = 0
        while sent < min(size, stop_at):
            count = min(piece, size - sent, stop_at - sent)
            self.write(pattern_bytes(count, sent))
            try:
                await self.flush()
            except tornado.iostream.StreamClosedError:
                return  # the gateway closed the connection because its client left
            sent += count
            if gap_seconds:
                await asyncio.sleep(gap_seconds)
        if sent < size:
            self.request.connection.close()
            return
        self.finish()


class OverlongHandler(BaseHandler):
    """`GET /_standin/overlong?bytes=N&delay_ms=D`: a Content-Length body of N pattern bytes,
    then, D ms later, a complete second response that no request asked for, as a server whose
    framing is broken would send. The connection then stays open until the gateway closes it.
    """

    async def get(self) -> None:
        size = int(self.get_argument("bytes", "5"))
        delay_seconds = int(self.get_argument("delay_ms", "0")) / 1000
        stream = self.detach()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {size}\r\n\r\n"
        ).encode()
        unrequested = OVERLONG_UNREQUESTED_RESPONSE
        try:
            if delay_seconds:
                await stream.write(head + pattern_bytes(size, 0))
                await asyncio.sleep(delay_seconds)
                await stream.write(unrequested)
            else:
                await stream.write(head + pattern_bytes(size, 0) + unrequested)
            await stream.read_until_close()
        except tornado.iostream.StreamClosedError:
            pass


# The bytes that /_standin/overlong sends after its declared body.
OVERLONG_UNREQUESTED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nunrequested"
)


class HeadersHandler(BaseHandler):
    """`ANY /_standin/headers`: the request line, headers and body size as JSON."""

    def handle(self) -> None:
        self.write_json(
            {
                "method": self.request.method,
                "uri": self.request.uri,
                "remote_ip": self.request.remote_ip,
                "headers": [[name, value] for name, value in self.request.headers.get_all()],
                "body_bytes": len(self.request.body or b""),
            }
        )

    def check_xsrf_cookie(self) -> None:
        # This endpoint reports headers for any method, so it skips the XSRF check.
        pass

    get = post = put = delete = patch = options = handle

    def head(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish()


class ExitHandler(BaseHandler):
    """`GET /_standin/exit?code=N`: respond, then exit with status N at once, like a crash."""

    def get(self) -> None:
        code = int(self.get_argument("code", "1"))
        logger.warning("exiting with status %d on request", code)
        self.finish(f"exiting with status {code}\n")
        tornado.ioloop.IOLoop.current().call_later(0.05, os._exit, code)
