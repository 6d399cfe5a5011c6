"""Measure the in-process ceiling of the benchmark app: ASGI calls with no sockets and no server.

Each request builds an HTTP scope like the one a server passes (the headers that wrk sends),
calls the app with in-memory receive and send callables, and checks the status and body size.
The requests run one after another in one coroutine on a uvloop loop. The output is one JSON
line per route with the request rate and the CPU time per request of this process.

    /usr/bin/python3 scripts/bench/ceiling.py --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asgi_app  # noqa: E402

WARMUP_REQUESTS = 500


def make_scope(method: str, path: str, body: bytes | None) -> dict:
    headers = [(b"host", b"127.0.0.1:8000")]
    if body is not None:
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"content-type", b"application/json"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def run_requests(method: str, path: str, body: bytes | None, count: int,
                       app: Any = None) -> int:
    """Call `app` (the benchmark app by default) `count` times and return the last body's size."""
    app = app or asgi_app.app
    template = make_scope(method, path, body)
    request_message = {"type": "http.request", "body": body or b"", "more_body": False}
    body_size = 0
    for _ in range(count):
        scope = dict(template)
        scope["headers"] = list(template["headers"])
        scope["state"] = {}
        delivered = False
        status = 0
        body_size = 0

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return dict(request_message)
            # A real server returns http.disconnect only when the client goes away.
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal status, body_size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body_size += len(message.get("body", b""))

        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"{method} {path} returned status {status}")
    return body_size


async def measure(method: str, path: str, body: bytes | None, count: int) -> dict:
    await run_requests(method, path, body, WARMUP_REQUESTS)
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    body_size = await run_requests(method, path, body, count)
    cpu_seconds = time.process_time() - cpu_start
    wall_seconds = time.perf_counter() - wall_start
    return {
        "path": path,
        "requests": count,
        "response_bytes": body_size,
        "requests_per_second": count / wall_seconds,
        "cpu_us_per_request": cpu_seconds / count * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per route")
    parser.add_argument("--path", action="append", help="route path to run (default: all)")
    arguments = parser.parse_args()

    echo_body = asgi_app.make_echo_body()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        for _, method, path, sends_body in asgi_app.ROUTES:
            if arguments.path and path not in arguments.path:
                continue
            body = echo_body if sends_body else None
            result = loop.run_until_complete(measure(method, path, body, arguments.requests))
            print(json.dumps(result), flush=True)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
