"""A raw ASGI 3 app with one route per case of the conformance suite (test_asgi_conformance.py).

It uses no framework, so each test receives exactly the messages that the gateway sends and
checks what the gateway does with the messages this app sends. What the app observes
(exceptions from send(), the time a disconnect arrived) is kept in RECORDS and returned by
GET /records.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

RECORDS: dict[str, Any] = {}
LIFESPAN_GREETING = "stored by lifespan startup"
SLOW_RESPONSE_S = 0.3


async def send_json(send: Any, value: Any, status: int = 200) -> None:
    payload = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Any) -> list[dict[str, Any]]:
    """Receive until more_body is false; return what each message carried."""
    messages = []
    while True:
        message = await receive()
        messages.append(
            {
                "type": message["type"],
                "bytes": len(message.get("body", b"")),
                "more_body": message.get("more_body", False),
            }
        )
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def note_lifespan_event(event: str) -> None:
    """Append `event` to the file named by CONFORMANCE_LIFESPAN_LOG, when it is set."""
    path = os.environ.get("CONFORMANCE_LIFESPAN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(event + "\n")


async def lifespan(scope: dict, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        note_lifespan_event(message["type"])
        if message["type"] == "lifespan.startup":
            failure = os.environ.get("CONFORMANCE_STARTUP_FAILURE")
            if failure:
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            scope["state"]["greeting"] = LIFESPAN_GREETING
            scope["state"]["shared"] = []
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            failure = os.environ.get("CONFORMANCE_SHUTDOWN_FAILURE")
            if failure:
                await send({"type": "lifespan.shutdown.failed", "message": failure})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return


async def record_send_error(name: str, send: Any, message: dict) -> None:
    try:
        await send(message)
    except Exception as error:  # noqa: BLE001 - the test reads what send() raised
        RECORDS[name] = {"raised": type(error).__name__, "message": str(error)}
    else:
        RECORDS[name] = {"raised": None}


class NestedSendKey:
    """A message key that collides with `collides_with`. Once armed, the next comparison (the
    bridge's lookup of that key while it reads the message) runs a second send() of the same
    connection to its end and records what that send() raised."""

    def __init__(self, collides_with: str, record: str) -> None:
        self.collides_with = collides_with
        self.pending: tuple[Any, dict] | None = None
        self.record = record

    def arm(self, send: Any, message: dict) -> None:
        self.pending = (send, message)

    def __hash__(self) -> int:
        return hash(self.collides_with)

    def __eq__(self, other: object) -> bool:
        if self.pending is not None:
            send, message = self.pending
            self.pending = None
            nested = send(message)
            try:
                nested.send(None)
            except StopIteration:
                RECORDS[self.record] = {"raised": None}
            except Exception as error:  # noqa: BLE001 - the test reads what send() raised
                RECORDS[self.record] = {"raised": type(error).__name__, "message": str(error)}
        return False


async def http(scope: dict, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/records":
        await send_json(send, RECORDS)
    elif path == "/body-parts":
        await send_json(send, await read_body(receive))
    elif path == "/no-receive":
        await send_json(send, {"received": False})
    elif path == "/wait-disconnect":
        await read_body(receive)
        message = await receive()
        RECORDS["disconnect"] = {"type": message["type"], "at": time.monotonic()}
    elif path == "/receive-after-response":
        await read_body(receive)
        await send_json(send, {"sent": True})
        try:
            message = await asyncio.wait_for(receive(), timeout=2.0)
            RECORDS["after_response"] = {"type": message["type"]}
        except asyncio.TimeoutError:
            RECORDS["after_response"] = {"type": "timeout"}
    elif path == "/too-many-bytes":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"5")],
            }
        )
        await record_send_error(
            "too_many_bytes", send, {"type": "http.response.body", "body": b"0123456789"}
        )
    elif path == "/too-few-bytes":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"10")],
            }
        )
        await send({"type": "http.response.body", "body": b"abc"})
    elif path == "/no-content":
        # The app declares a zero length on its 204, which the gateway must not pass on.
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"content-length", b"0"), (b"x-deleted", b"yes")],
            }
        )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/send-after-end":
        await send_json(send, {"done": True})
        await record_send_error(
            "after_end", send, {"type": "http.response.body", "body": b"late"}
        )
    elif path == "/nested-start":
        key = NestedSendKey("status", "nested_start")
        # Armed after the dict is built, since building it compares the keys too.
        message = {key: 0, "type": "http.response.start", "status": 200, "headers": []}
        key.arm(send, {"type": "http.response.start", "status": 201, "headers": []})
        await send(message)
        await send({"type": "http.response.body", "body": b"one response"})
    elif path.startswith("/invalid-start/"):
        await send(invalid_start(path.rsplit("/", 1)[1]))
    elif path == "/raise-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("conformance: failure after the response started")
    elif path.startswith("/sized/"):
        # One body message of the given size, larger than a socket takes at once when big.
        size = int(path.rsplit("/", 1)[1])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        await send({"type": "http.response.body", "body": sized_body(size)})
        # With ?record=NAME, note when the last send() returned.
        query = scope["query_string"].decode()
        if query.startswith("record="):
            RECORDS[query.split("=", 1)[1]] = {"at": time.monotonic()}
    elif path == "/late-end":
        # The whole declared body goes at once, and the empty last event comes later.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b"y" * 1000, "more_body": True})
        await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/endless-sends":
        # Sends body pieces until send() raises, never calling receive(), and notes the error.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"e" * 16384
        try:
            while True:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        except BaseException as error:
            RECORDS["endless_sends"] = {
                "raised": type(error).__name__,
                "oserror": isinstance(error, OSError),
            }
            raise
    elif path == "/respond-then-read":
        # The response starts before the body is read, so a body over the limit can no longer
        # get a 413.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        parts = await read_body(receive)
        await send({"type": "http.response.body", "body": json.dumps(parts).encode()})
    elif path == "/busy-after-end":
        # The response is complete, then the app computes without giving the loop a turn, as
        # a CPU-bound background task would, for ?seconds=N.
        await send_json(send, {"done": True})
        seconds = float(scope["query_string"].decode().split("=", 1)[1])
        busy_until = time.monotonic() + seconds
        while time.monotonic() < busy_until:
            pass
    elif path == "/slow":
        await asyncio.sleep(SLOW_RESPONSE_S)
        await send_json(send, {"path": path})
    elif path == "/state":
        state = scope["state"]
        seen = {"keys": sorted(state), "shared": list(state.get("shared", []))}
        state["added_by_request"] = True
        state.get("shared", []).append(len(seen["shared"]))
        await send_json(send, seen)
    else:
        await send_json(
            send, {"path": path, "http_version": scope["http_version"], "asgi": scope["asgi"]}
        )


def sized_body(size: int) -> bytes:
    """Return `size` bytes that count up modulo 251, so that a lost or repeated piece shows."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def invalid_start(kind: str) -> dict[str, Any]:
    if kind == "status-text":
        return {"type": "http.response.start", "status": "200", "headers": []}
    if kind == "no-status":
        return {"type": "http.response.start", "headers": []}
    if kind == "str-header":
        return {"type": "http.response.start", "status": 200, "headers": [("x-name", "value")]}
    if kind == "no-type":
        return {"status": 200, "headers": []}
    if kind == "bytes-type":
        return {"type": b"http.response.start", "status": 200, "headers": []}
    if kind == "informational":
        return {"type": "http.response.start", "status": 103, "headers": []}
    return {"type": "http.response.sent-by-mistake", "status": 200}


async def websocket(scope: dict, receive: Any, send: Any) -> None:
    path = scope["path"]
    connect = await receive()
    RECORDS["websocket_connect"] = {"type": connect["type"]}
    if path == "/ws/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 418,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"denied by the app"})
        return
    if path == "/ws/close-before-accept":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws/send-until-gone":
        # Sends a message every 20 ms until send() raises, then closes, as a `finally` would.
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "text": "tick"})
                await asyncio.sleep(0.02)
        except OSError as error:
            record = {"raised": type(error).__name__}
        await record_send_error("websocket_close_after_gone", send, {"type": "websocket.close"})
        # A second close, after that one, is the app's mistake.
        await record_send_error("websocket_second_close", send, {"type": "websocket.close"})
        RECORDS["websocket_send_until_gone"] = record
        return
    if path == "/ws/accept-twice":
        # The second accept is a mistake whether or not the client is still there.
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.5)
        await record_send_error("websocket_second_accept", send, {"type": "websocket.accept"})
        RECORDS["websocket_received_after_accepts"] = (await receive())["type"]
        await record_send_error("websocket_third_accept", send, {"type": "websocket.accept"})
        return
    if path == "/ws/nested-accept":
        key = NestedSendKey("subprotocol", "nested_accept")
        message = {key: 0, "type": "websocket.accept"}
        key.arm(send, {"type": "websocket.accept"})
        await send(message)
        await send({"type": "websocket.send", "text": "accepted once"})
        await send({"type": "websocket.close", "code": 1000})
        return

    offered = scope.get("subprotocols", [])
    accept: dict[str, Any] = {
        "type": "websocket.accept",
        "headers": [(b"x-conformance", b"accepted")],
    }
    if offered:
        accept["subprotocol"] = offered[-1]
    await send(accept)
    await send(
        {
            "type": "websocket.send",
            "text": json.dumps(
                {
                    "subprotocols": offered,
                    "asgi": scope["asgi"],
                    "extensions": scope.get("extensions"),
                    "path": scope["path"],
                    "root_path": scope["root_path"],
                    "scheme": scope["scheme"],
                }
            ),
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            RECORDS.setdefault("websocket_disconnects", []).append(
                {"code": message.get("code"), "reason": message.get("reason")}
            )
            return
        text = message.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "closing on request"})
            await record_send_error(
                "websocket_after_close", send, {"type": "websocket.send", "text": "late"}
            )
            return
        if text is not None:
            await send({"type": "websocket.send", "text": "text:" + text})
        else:
            await send({"type": "websocket.send", "bytes": b"bytes:" + message["bytes"]})


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
