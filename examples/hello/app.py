"""A small FluxLit app: a users API under /api and two Streamlit pages that call it.

Run it with `fluxlit run app:app` from this directory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from fluxlit import ApiClient, FluxLit

logger = logging.getLogger("hello")

app = FluxLit("Hello FluxLit")


class UserCreate(BaseModel):
    """The fields a client sends to create a user."""

    name: str = Field(..., min_length=1, max_length=100)
    email: str = Field(..., min_length=3, max_length=254)


class User(UserCreate):
    """A stored user."""

    id: int


@app.api.on_event("startup")
async def seed_users() -> None:
    """Start with two users, kept in memory for the life of the process."""
    app.api.state.users = {
        1: User(id=1, name="Ada Lovelace", email="ada@example.com"),
        2: User(id=2, name="Alan Turing", email="alan@example.com"),
    }


def stored_users(request: Request) -> dict[int, User]:
    return request.app.state.users


@app.api.get("/users", response_model=list[User])
async def list_users(request: Request) -> list[User]:
    return list(stored_users(request).values())


@app.api.get("/users/{user_id}", response_model=User)
async def get_user(user_id: int, request: Request) -> User:
    user = stored_users(request).get(user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"user {user_id} not found")
    return user


@app.api.post("/users", response_model=User, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, request: Request) -> User:
    users = stored_users(request)
    user = User(id=max(users, default=0) + 1, **body.dict())
    users[user.id] = user
    return user


@app.api.post("/echo")
async def echo(request: Request) -> Response:
    """Return the request body unchanged."""
    return Response(await request.body(), media_type="application/octet-stream")


@app.api.get("/stream")
async def stream(
    chunks: int = Query(5, ge=0, le=10_000),
    delay_ms: int = Query(100, ge=0, le=60_000),
) -> StreamingResponse:
    """Send `chunks` lines, one every `delay_ms` milliseconds."""

    async def lines() -> AsyncIterator[str]:
        sent = 0
        try:
            for index in range(chunks):
                if index:
                    await asyncio.sleep(delay_ms / 1000)
                yield f"chunk {index}\n"
                sent += 1
        finally:
            logger.info("stream ended after %d of %d chunks", sent, chunks)

    return StreamingResponse(lines(), media_type="text/plain")


@app.api.get("/boom")
async def boom() -> None:
    """Fail on purpose, to show how the server reports an application error."""
    raise RuntimeError("boom")


@app.page("/", title="Users", icon="👥")
def users_page(st: Any, client: ApiClient) -> None:
    """List the users that the API stores."""
    st.title("Users")
    st.dataframe(client.get_json("/users"))


@app.page("/add", title="Add a user", icon="➕")
def add_user_page(st: Any, client: ApiClient) -> None:
    """Create a user through the API."""
    st.header("Add a user")
    with st.form("add_user"):
        name = st.text_input("Name")
        email = st.text_input("Email")
        submitted = st.form_submit_button("Create")
    if not submitted:
        return
    response = client.post("/users", json={"name": name, "email": email})
    if response.status_code == status.HTTP_201_CREATED:
        st.success(f"Created user {response.json()['id']}.")
    else:
        st.error(f"The API rejected the user ({response.status_code}): {response.text}")
