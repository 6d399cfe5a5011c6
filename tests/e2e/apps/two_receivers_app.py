"""A raw ASGI app whose response waits on `receive()` in two tasks at once.

Starlette's StreamingResponse listens for `http.disconnect` in a task of its own, while the app
may read from `request.receive()` in another. Both must learn that the client left.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

# The test names a file; each task appends a line once it got http.disconnect.
REPORT = Path(os.environ["TWO_RECEIVERS_REPORT"])


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    await receive()  # the empty body of the GET

    async def wait_for_disconnect(name: str) -> None:
        message = await receive()
        with REPORT.open("a", encoding="utf-8") as report:
            report.write(f"{name} {message['type']}\n")

    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
    await asyncio.gather(wait_for_disconnect("first"), wait_for_disconnect("second"))
