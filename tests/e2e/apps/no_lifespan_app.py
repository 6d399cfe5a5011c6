"""A raw ASGI app without lifespan support: it raises on the lifespan scope, as the ASGI
specification allows, and the server must then serve requests without startup or shutdown."""

from __future__ import annotations

from typing import Any


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError(f"no support for the {scope['type']} scope")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served without lifespan"})
