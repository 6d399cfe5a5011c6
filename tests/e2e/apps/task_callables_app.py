"""A raw ASGI app that hands `receive` and `send` to tasks and threads, as apps built on
asyncio or anyio do."""

from __future__ import annotations

import asyncio


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    loop = asyncio.get_running_loop()
    # The body, through a task of its own.
    message = await asyncio.create_task(receive())
    body = message.get("body", b"")
    # The head from a thread, through the loop, and the body through a task.
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-path", b"task")]}
    await asyncio.wrap_future(
        await loop.run_in_executor(
            None, lambda: asyncio.run_coroutine_threadsafe(send(start), loop)
        )
    )
    await asyncio.create_task(send({"type": "http.response.body", "body": b"got " + body}))
