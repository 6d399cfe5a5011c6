"""A FastAPI app whose lifespan startup fails, as an app does when its database is down."""

from __future__ import annotations

from fastapi import FastAPI

STARTUP_FAILURE = "e2e-lifespan: database at db.invalid:5432 is unreachable"

app = FastAPI()


# A startup handler, because FastAPI 0.92 accepts `FastAPI(lifespan=...)` but never runs it.
@app.on_event("startup")
async def connect_database() -> None:
    raise RuntimeError(STARTUP_FAILURE)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "never served"}
