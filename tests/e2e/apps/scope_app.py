"""A raw ASGI app that returns the HTTP scope it received as JSON.

Lifespan startup stores a value in the lifespan state, so tests can check that each request's
scope carries a copy of it. Bytes in the scope are returned as latin-1 text.
"""

from __future__ import annotations

import json
from typing import Any

LIFESPAN_GREETING = "stored by lifespan startup"


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = LIFESPAN_GREETING
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return

    body = b""
    more_body = True
    while more_body:
        message = await receive()
        body += message.get("body", b"")
        more_body = message.get("more_body", False)

    reply = {key: to_json(value) for key, value in scope.items() if key != "asgi"}
    reply["asgi"] = scope.get("asgi")
    reply["body_bytes"] = len(body)
    payload = json.dumps(reply).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
