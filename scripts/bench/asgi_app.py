"""FastAPI app that the API benchmark serves with fluxlit and with uvicorn.

The routes carry no prefix: fluxlit removes its API prefix (`/api`) from the ASGI `path`, so
`/api/trivial` through fluxlit and `/trivial` through uvicorn reach the same route.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Response
from pydantic import BaseModel

LARGE_BODY_BYTES = 100 * 1024


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


class Document(BaseModel):
    id: int
    title: str
    author: str
    tags: list[str]
    scores: list[float]
    text: str


def _make_large_body() -> bytes:
    """Build a JSON array of exactly LARGE_BODY_BYTES bytes, once at import."""
    rows = []
    size = 2  # the brackets
    index = 0
    while True:
        row = json.dumps({"id": index, "name": f"row-{index:06d}", "value": index * 7 % 1000})
        if size + len(row) + 1 > LARGE_BODY_BYTES - 64:
            break
        rows.append(row)
        size += len(row) + 1
        index += 1
    body = ("[" + ",".join(rows) + "]").encode()
    # Pad with spaces, which JSON allows between tokens, to reach the exact size.
    return body[:-1] + b" " * (LARGE_BODY_BYTES - len(body)) + b"]"


LARGE_BODY = _make_large_body()
ITEMS = [
    Item(id=index, name=f"item {index}", price=index * 1.25, tags=["alpha", "beta"])
    for index in range(10)
]

app = FastAPI()


@app.get("/trivial")
async def trivial() -> dict:
    return {"message": "hello"}


@app.get("/items", response_model=list[Item])
async def items() -> list[Item]:
    return ITEMS


@app.post("/echo", response_model=Document)
async def echo(document: Document) -> Document:
    return document


@app.get("/large")
async def large() -> Response:
    return Response(content=LARGE_BODY, media_type="application/json")


# --- what the benchmark requests ---------------------------------------------------------

ECHO_BODY_BYTES = 1024


def make_echo_body() -> bytes:
    """Return a JSON Document of exactly ECHO_BODY_BYTES bytes for the POST route."""
    document = {
        "id": 42,
        "title": "Benchmark document",
        "author": "FluxLit",
        "tags": ["bench", "json", "pydantic"],
        "scores": [0.5, 1.25, 2.75, 9.0],
        "text": "",
    }
    unpadded = len(json.dumps(document, separators=(",", ":")).encode())
    document["text"] = "x" * (ECHO_BODY_BYTES - unpadded)
    body = json.dumps(document, separators=(",", ":")).encode()
    assert len(body) == ECHO_BODY_BYTES
    return body


# (label, method, path, sends the echo body)
ROUTES = [
    ("trivial JSON", "GET", "/trivial", False),
    ("10 items, response_model", "GET", "/items", False),
    ("1 KiB JSON echo (POST)", "POST", "/echo", True),
    ("100 KiB pre-serialised", "GET", "/large", False),
]
