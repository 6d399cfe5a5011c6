"""A raw ASGI app whose routes exercise how receive() and send() complete or wait.

Bodies are a repeating byte pattern, so that a test can check every byte it gets.
``/events`` returns what the other routes recorded (such as a disconnect they saw) as JSON.
Every WebSocket path floods the client with binary messages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import anyio

PATTERN = bytes(range(256))
events: list[str] = []


def pattern_bytes(size: int, offset: int = 0) -> bytes:
    """Return `size` bytes of the repeating pattern, starting at `offset` in it."""
    start = offset % len(PATTERN)
    repeats = (start + size) // len(PATTERN) + 1
    return (PATTERN * repeats)[start : start + size]


async def start(send: Any, status: int = 200, length: int | None = None) -> None:
    headers = [(b"content-type", b"application/octet-stream")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def read_body(receive: Any) -> tuple[bytes, bool]:
    """Return the request body and whether the client went away before it ended."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body, True
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, False


async def websocket_flood(receive: Any, send: Any) -> None:
    """Sends 64 binary messages of 1 MiB as fast as send() lets it, and records how it ended."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    try:
        for _ in range(64):
            await send({"type": "websocket.send", "bytes": pattern_bytes(1 << 20)})
    except OSError as error:
        events.append(f"ws-flood stopped by {type(error).__name__}")
        raise
    message = await receive()
    events.append(f"ws-flood got {message['type']}")


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await websocket_flood(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    parsed_query = parse_qs(scope["query_string"].decode())
    query = {key: int(values[0]) for key, values in parsed_query.items()}

    if path == "/pieces":
        # A body in several send() calls, with a Content-Length.
        parts = [pattern_bytes(10), pattern_bytes(20_000, 10), pattern_bytes(5, 20_010), b""]
        await start(send, length=sum(len(part) for part in parts))
        for index, part in enumerate(parts):
            await send(
                {"type": "http.response.body", "body": part, "more_body": index < len(parts) - 1}
            )
    elif path == "/large":
        size = query["size"]
        await start(send, length=size)
        await send({"type": "http.response.body", "body": pattern_bytes(size)})
    elif path == "/stream":
        # Chunked: no Content-Length, `count` pieces of `size` bytes, then an empty last one.
        await start(send)
        for index in range(query["count"]):
            piece = pattern_bytes(query["size"], index * query["size"])
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/flood":
        # Sends `count` pieces of `size` bytes as fast as send() lets it, and records progress.
        await start(send, length=query["count"] * query["size"])
        try:
            for index in range(query["count"]):
                piece = pattern_bytes(query["size"], index * query["size"])
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                events.append(f"flood sent {index + 1}")
            await send({"type": "http.response.body", "body": b""})
        except OSError as error:
            events.append(f"flood stopped by {type(error).__name__}")
            raise
        events.append("flood done")
    elif path == "/upload":
        body, gone = await read_body(receive)
        events.append(f"upload {'disconnect' if gone else 'complete'} after {len(body)} bytes")
        if gone:
            return
        await start(send, length=len(body))
        await send({"type": "http.response.body", "body": body})
    elif path == "/read-later":
        # Reads the body only after `ms` milliseconds, then returns its size.
        await asyncio.sleep(query["ms"] / 1000)
        body, _ = await read_body(receive)
        payload = str(len(body)).encode()
        await start(send, length=len(payload))
        await send({"type": "http.response.body", "body": payload})
    elif path == "/wait-disconnect":
        # After the (empty) body, the next message can only be the disconnect.
        await read_body(receive)
        message = await receive()
        events.append(f"wait-disconnect got {message['type']}")
    elif path == "/endless":
        # Streams until the client leaves, watching for that as a streaming response does.
        await start(send)
        await read_body(receive)
        watcher = asyncio.ensure_future(receive())
        while not watcher.done():
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.01)
        events.append(f"endless got {watcher.result()['type']}")
    elif path == "/late-body":
        # The head goes out while the app waits before its body.
        await start(send)
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"late"})
    elif path == "/thread":
        # anyio's thread helper looks up the current asyncio task.
        value = await anyio.to_thread.run_sync(lambda: 6 * 7)
        payload = str(value).encode()
        await start(send, length=len(payload))
        await send({"type": "http.response.body", "body": payload})
    elif path == "/bad-send":
        await send(["not", "a", "dict"])
    elif path == "/bad-receive":
        await receive("unexpected")
    elif path == "/body-messages":
        # How many http.request messages a body took, and the largest one.
        sizes = []
        while True:
            message = await receive()
            sizes.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        payload = json.dumps({"messages": len(sizes), "largest": max(sizes)}).encode()
        await start(send, length=len(payload))
        await send({"type": "http.response.body", "body": payload})
    elif path == "/events":
        payload = json.dumps(events).encode()
        await start(send, length=len(payload))
        await send({"type": "http.response.body", "body": payload})
    else:
        await start(send, status=404, length=0)
        await send({"type": "http.response.body", "body": b""})
