"""A FastAPI app that reports which worker process served a request and when its lifespan ran."""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI

app = FastAPI()
started_in: list[int] = []


@app.on_event("startup")
async def note_startup() -> None:
    started_in.append(os.getpid())


@app.on_event("shutdown")
async def note_shutdown() -> None:
    # The test names the file; each worker appends its own process id once its drain ended.
    path = os.environ.get("WORKERS_APP_SHUTDOWN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\n")


@app.get("/pid")
async def pid() -> dict[str, object]:
    return {"pid": os.getpid(), "started_in": started_in}


@app.get("/slow")
async def slow(seconds: float = 2.0) -> dict[str, int]:
    await asyncio.sleep(seconds)
    return {"pid": os.getpid()}
