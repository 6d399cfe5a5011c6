"""The runtime's table of request tasks in flight."""

from __future__ import annotations

import asyncio
from typing import Any

from fluxlit._asgi_runtime import _Runtime


class Control:
    """The parts of the binary's control object that the runtime calls here."""

    def heartbeat(self) -> None:
        pass


async def trivial_app(scope: dict, receive: Any, send: Any) -> None:
    pass


def make_runtime(loop: asyncio.AbstractEventLoop) -> _Runtime:
    return _Runtime(loop, Control(), trivial_app, "app:app", ".")


def test_unstarted_task_forgotten() -> None:
    async def scenario() -> None:
        runtime = make_runtime(asyncio.get_running_loop())
        never_started = asyncio.ensure_future(asyncio.sleep(1))
        never_started.cancel()
        running = asyncio.ensure_future(asyncio.sleep(1))
        runtime.tasks["cancelled"] = never_started
        runtime.tasks["running"] = running
        await asyncio.sleep(0)  # the cancellation takes effect on the next step
        runtime.forget_ended_tasks()
        assert list(runtime.tasks) == ["running"]
        running.cancel()

    asyncio.run(scenario())


def test_finished_request_removes_task() -> None:
    class Exchange:
        def client_gone(self) -> bool:
            return False

    class Send:
        def __init__(self) -> None:
            self.finished: list[str] = []

        def finish(self, error: str) -> None:
            self.finished.append(error)

    async def scenario() -> None:
        runtime = make_runtime(asyncio.get_running_loop())
        exchange, send = Exchange(), Send()
        scope = {"type": "http", "root_path": "", "path": "/"}
        task = asyncio.ensure_future(runtime.run_http(exchange, scope, None, send))
        runtime.tasks[exchange] = task
        await task
        assert send.finished == [""]
        assert exchange not in runtime.tasks

    asyncio.run(scenario())
