"""The proxy when the Streamlit child dies or drops connections, and the WebSocket caps."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import websockets
import websockets.exceptions

import harness

# Idle keep-alive connections that the stand-in closes after this many seconds.
STANDIN_IDLE_SECONDS = 0.3


def test_killed_streamlit_gets_503_never_502(launcher: harness.Launcher) -> None:
    server = launcher.start()
    first = server.streamlit_pid()
    assert first is not None

    statuses: list[int] = []
    missing_retry_after: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.get(server.url("/_stcore/health"))
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 503 and "retry-after" not in response.headers:
                        missing_retry_after.append(response.status_code)

    # Several clients fill the gateway's pool with keep-alive connections to the child, so the
    # kill finds requests in flight on new and on reused connections alike.
    with ThreadPoolExecutor(max_workers=4) as pool:
        workers = [pool.submit(hammer) for _ in range(4)]
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                recovered = 503 in statuses and statuses[-1] == 200
            if recovered and server.streamlit_pid() not in (None, first):
                break
            time.sleep(0.05)
        stop.set()
        for worker in workers:
            worker.result()

    assert 503 in statuses
    assert 502 not in statuses
    assert set(statuses) <= {200, 503}
    assert missing_retry_after == []
    assert statuses[-1] == 200


def test_stale_pooled_connections_are_retried(launcher: harness.Launcher) -> None:
    server = launcher.start(
        extra_environment={"FLUXLIT_STANDIN_IDLE_CONNECTION_TIMEOUT_S": str(STANDIN_IDLE_SECONDS)}
    )

    # Overlapping slow requests leave several idle connections in the gateway's pool.
    def slow(_: int) -> int:
        return httpx.get(server.url("/_standin/slow?ms=300"), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(slow, range(4))) == [200] * 4

    # The child closes every one of them; each request then meets a stale connection first.
    time.sleep(STANDIN_IDLE_SECONDS + 0.7)
    with httpx.Client(timeout=10) as client:
        statuses = [client.get(server.url("/_stcore/health")).status_code for _ in range(4)]
    assert statuses == [200] * 4


def websocket_subprotocols() -> list[str]:
    return ["streamlit", "PLACEHOLDER_AUTH_TOKEN", str(uuid.uuid4())]


async def wait_for_close(server: harness.Fluxlit, send_every: float | None) -> tuple[int, float]:
    """Open a tunnel, optionally keep it busy, and return the close code and the seconds open."""
    url = f"ws://{server.authority}/_stcore/stream"
    async with websockets.connect(url, subprotocols=websocket_subprotocols()) as socket_:
        started = time.monotonic()
        try:
            await socket_.send(b"hello")
            await socket_.recv()  # the stand-in's summary frame
            await socket_.recv()  # the echo
            while True:
                if send_every is None:
                    await asyncio.wait_for(socket_.recv(), 15)
                else:
                    await socket_.send(b"ping")
                    await asyncio.wait_for(socket_.recv(), 15)
                    await asyncio.sleep(send_every)
        except websockets.exceptions.ConnectionClosed:
            pass
        return socket_.close_code, time.monotonic() - started


def test_websocket_idle_timeout_closes_1001(launcher: harness.Launcher) -> None:
    server = launcher.start("--websocket-idle-timeout-ms", "500")
    code, seconds = asyncio.run(asyncio.wait_for(wait_for_close(server, None), 20))
    assert code == 1001
    assert 0.4 <= seconds < 5


def test_websocket_busy_tunnel_outlives_idle_timeout(launcher: harness.Launcher) -> None:
    server = launcher.start(
        "--websocket-idle-timeout-ms", "1000", "--websocket-max-lifetime-ms", "3000"
    )
    code, seconds = asyncio.run(asyncio.wait_for(wait_for_close(server, 0.1), 20))
    # Traffic every 0.1 s keeps the idle timer from firing; the lifetime cap ends it.
    assert code == 1001
    assert 2.9 <= seconds < 7


def test_websocket_has_no_cap_by_default(hello: harness.Fluxlit) -> None:
    async def scenario() -> bool:
        url = f"ws://{hello.authority}/_stcore/stream"
        async with websockets.connect(url, subprotocols=websocket_subprotocols()) as socket_:
            await socket_.send(b"hello")
            await socket_.recv()
            await socket_.recv()
            await asyncio.sleep(1.5)
            await socket_.send(b"still there")
            return await asyncio.wait_for(socket_.recv(), 5) == b"still there"

    assert asyncio.run(asyncio.wait_for(scenario(), 20))



def test_client_leaving_aborts_streamlit_request(hello: harness.Fluxlit) -> None:
    request = f"GET /_standin/slow?ms=4000 HTTP/1.1\r\nHost: {hello.authority}\r\n\r\n"
    with socket.create_connection((hello.host, hello.port), timeout=5) as sock:
        sock.sendall(request.encode())
        time.sleep(1.0)

    # The stand-in records the request once its 4 s have passed or the client has gone.
    time.sleep(4.0)
    record = httpx.get(hello.url("/_standin/record"), timeout=10).json()
    slow = [entry for entry in record["slow_requests"] if entry["ms"] == 4000]
    assert slow, record["slow_requests"]
    assert slow[-1]["closed_by_client"] is True
    assert slow[-1]["completed"] is False
    # The log lines are JSON text, so the quotes around the request line are escaped.
    access = hello.wait_for_log("/_standin/slow?ms=4000").replace('\\"', '"')
    assert '"GET /_standin/slow?ms=4000" 499 ' in access
    assert "route=ui" in access
