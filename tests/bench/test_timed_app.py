"""scripts/bench/timed_app.py: the CPU time of the app's own calls, under load and in a loop."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[2] / "scripts" / "bench"
sys.path.insert(0, str(BENCH_DIR))
import timed_app  # noqa: E402

BURN_SECONDS = 0.004


async def burning_app(scope: dict, receive: Any, send: Any) -> None:
    """Use BURN_SECONDS of CPU time, then respond with an empty 204."""
    end = time.thread_time() + BURN_SECONDS
    while time.thread_time() < end:
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def call(app: Any, path: str, query: bytes = b"") -> list[dict]:
    """Call `app` with a GET scope for `path` and return the messages it sent."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query,
             "headers": []}
    await app(scope, receive, send)
    return sent


def reported_median(messages: list[dict]) -> float:
    assert messages[0]["status"] == 200
    return json.loads(messages[1]["body"])["median_us"]


def test_timer_reports_median() -> None:
    timer = timed_app.CallTimer(burning_app)
    for _ in range(5):
        asyncio.run(call(timer, "/work"))
    median = timer.take_median_us()
    assert BURN_SECONDS * 1e6 <= median < BURN_SECONDS * 1e6 * 1.5


def test_timer_forgets_reported() -> None:
    timer = timed_app.CallTimer(burning_app)
    asyncio.run(call(timer, "/work"))
    timer.take_median_us()
    assert timer.take_median_us() == 0.0


def test_app_cpu_route_resets() -> None:
    timed_app.timed.take_median_us()
    asyncio.run(call(timed_app.app, "/trivial"))
    asyncio.run(call(timed_app.app, "/trivial"))
    median = reported_median(asyncio.run(call(timed_app.app, "/_app_cpu")))
    assert median > 0
    # The report itself is not a call of the benchmark app.
    assert reported_median(asyncio.run(call(timed_app.app, "/_app_cpu"))) == 0.0


def test_loop_route_times_calls() -> None:
    messages = asyncio.run(call(timed_app.app, "/_loop_cpu", b"path=/trivial"))
    median = reported_median(messages)
    # A FastAPI call costs tens of µs on the machines this runs on, far from either bound.
    assert 1 < median < 10_000
    assert timed_app.timed.take_median_us() == 0.0  # the loop's calls are kept apart
