"""The benchmark app, wrapped to measure the CPU time of its own calls, for `profile.py app`.

Each call of the app for a request is timed with the CPU clock of the thread that runs it, so
the time excludes the server's work before and after the call. The server's send() and
receive() run inside the call: uvicorn writes the response to the socket there, while fluxlit
queues it for its I/O thread. Two extra routes report:

- `GET /_app_cpu` returns the median CPU time per call of the requests since the previous
  `GET /_app_cpu`, in µs, as JSON.
- `GET /_loop_cpu?path=/trivial` calls the app in a loop with no sockets, as ceiling.py does,
  inside the server's process and on its event loop, and returns the median CPU time per call.

A call that suspends (to wait for a body or for the output to drain) also counts the CPU time
of whatever the thread ran meanwhile. The median keeps such calls from moving the result, as
long as most calls do not suspend, which holds for the benchmark's routes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asgi_app  # noqa: E402
import ceiling  # noqa: E402

LOOP_WARMUP_CALLS = 2000
LOOP_CALLS = 20000
# Calls kept for the median. A 20 s load at 20,000 requests per second fits.
MAX_SAMPLES = 500_000


class CallTimer:
    """Wraps an ASGI app and records the thread CPU time of each HTTP call, in nanoseconds."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: list[int] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.thread_time_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(time.thread_time_ns() - started)

    def take_median_us(self) -> float:
        """Return the median of the recorded calls in µs and forget them."""
        samples, self.samples = self.samples, []
        if not samples:
            return 0.0
        return statistics.median(samples) / 1000 - CLOCK_COST_US


def _clock_cost_us() -> float:
    """Return the CPU time of one pair of thread-clock reads in µs, which every sample contains."""
    reads = []
    for _ in range(2000):
        started = time.thread_time_ns()
        reads.append(time.thread_time_ns() - started)
    return statistics.median(reads) / 1000


CLOCK_COST_US = _clock_cost_us()
timed = CallTimer(asgi_app.app)


async def _reply(send: Any, result: dict) -> None:
    body = json.dumps(result).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def _loop_cpu(path: str) -> float:
    """Time the app's calls for `path` in a loop with no sockets and return the median in µs."""
    routes = {route_path: (method, sends_body) for _, method, route_path, sends_body
              in asgi_app.ROUTES}
    method, sends_body = routes[path]
    body = asgi_app.make_echo_body() if sends_body else None
    loop_timer = CallTimer(asgi_app.app)
    await ceiling.run_requests(method, path, body, LOOP_WARMUP_CALLS, loop_timer)
    loop_timer.take_median_us()
    await ceiling.run_requests(method, path, body, LOOP_CALLS, loop_timer)
    return loop_timer.take_median_us()


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/_app_cpu":
        await _reply(send, {"median_us": timed.take_median_us()})
    elif scope["type"] == "http" and scope["path"] == "/_loop_cpu":
        path = scope["query_string"].decode().removeprefix("path=")
        await _reply(send, {"median_us": await _loop_cpu(path)})
    else:
        await timed(scope, receive, send)
