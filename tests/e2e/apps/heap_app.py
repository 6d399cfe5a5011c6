"""A raw ASGI app that reports the garbage collector's state and the thread it runs on.

GET / returns JSON: how many objects are frozen, the collector's generation counts, and
the scheduling policy of the thread that runs the app.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from typing import Any


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to start or stop
    body = json.dumps(
        {
            "frozen": gc.get_freeze_count(),
            "counts": gc.get_count(),
            "thread_policy": os.sched_getscheduler(threading.get_native_id()),
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
