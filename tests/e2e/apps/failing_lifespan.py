"""A FastAPI app whose lifespan startup fails, as an app does when its database is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

STARTUP_FAILURE = "e2e-lifespan: database at db.invalid:5432 is unreachable"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raise RuntimeError(STARTUP_FAILURE)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "never served"}
