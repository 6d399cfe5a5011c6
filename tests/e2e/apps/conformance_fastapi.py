"""A FastAPI app for the cases of the conformance suite that a framework handles differently from
a raw ASGI app: WebSocket routes, lifespan state, URL building, and a route that blocks its
event loop."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

app = FastAPI()
DISCONNECTS: list[dict[str, object]] = []
STREAM_ENDS: list[dict[str, object]] = []


@app.get("/block")
def block_in_thread_pool(seconds: float = 5.0) -> dict[str, float]:
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/block-loop")
async def block_event_loop(seconds: float = 5.0) -> dict[str, float]:
    # time.sleep in an async route blocks the event loop, as a CPU-bound handler does.
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "ok"}


@app.get("/items/", name="items")
async def items(request: Request) -> dict[str, str]:
    return {
        "url_for": str(request.url_for("items")),
        "root_path": request.scope["root_path"],
        "scheme": request.url.scheme,
    }


@app.get("/hello", name="hello")
async def hello(request: Request) -> dict[str, str]:
    return {"url_for": str(request.url_for("hello")), "root_path": request.scope["root_path"]}


@app.get("/endless")
async def endless(delay_ms: int = 100, pause: bool = True) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        sent = 0
        cancelled = False
        try:
            while True:
                yield f"line {sent}\n"
                sent += 1
                # With pause=false the generator never suspends, and neither does send() while
                # the client keeps up, so the loop gets no turn until the stream ends.
                if pause:
                    await asyncio.sleep(delay_ms / 1000)
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            STREAM_ENDS.append({"at": time.monotonic(), "sent": sent, "cancelled": cancelled})

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/collect")
async def collect() -> dict[str, int]:
    # Frees objects that only reference cycles keep, such as a stream whose send() raised.
    return {"unreachable": gc.collect()}


@app.get("/stream-ends")
async def stream_ends() -> list[dict[str, object]]:
    return STREAM_ENDS


@app.get("/disconnects")
async def disconnects() -> list[dict[str, object]]:
    return DISCONNECTS


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(
        subprotocol=offered[0] if offered else None,
        headers=[(b"x-conformance", b"fastapi")],
    )
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                DISCONNECTS.append({"code": message.get("code"), "reason": message.get("reason")})
                return
            if message.get("text") == "close":
                await websocket.close(code=4002, reason="fastapi closing")
                return
            if message.get("text") is not None:
                await websocket.send_text("text:" + message["text"])
            else:
                await websocket.send_bytes(b"bytes:" + message["bytes"])
    except WebSocketDisconnect as error:
        DISCONNECTS.append({"code": error.code, "reason": None})
