"""WebSocket load client for the proxy benchmark.

`load` opens CONNECTIONS WebSockets and on each one sends a binary message, waits for its echo
and sends the next, for DURATION seconds. It prints one JSON line: messages echoed per second,
round-trip p50 and p99 in microseconds, and the share of one CPU that this client used, which
shows whether the client or the server is the limit.

`idle` opens CONNECTIONS WebSockets, prints one JSON line once all are open, keeps them open
until a line arrives on standard input, then closes them.

    /usr/bin/python3 scripts/bench/ws_load.py load ws://127.0.0.1:8000/_stcore/stream
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import uvloop
import websockets

SUBPROTOCOL = "streamlit"
# Opening many sockets at once makes a listen backlog overflow, so opens run in batches.
OPEN_BATCH = 50


async def open_connection(url: str, max_size: int) -> websockets.WebSocketClientProtocol:
    return await websockets.connect(
        url,
        subprotocols=[SUBPROTOCOL],
        compression=None,
        max_size=max_size,
        ping_interval=None,
        open_timeout=30,
    )


async def open_connections(url: str, count: int, max_size: int) -> list:
    sockets = []
    for start in range(0, count, OPEN_BATCH):
        size = min(OPEN_BATCH, count - start)
        sockets += await asyncio.gather(*(open_connection(url, max_size) for _ in range(size)))
    for socket in sockets:
        if socket.subprotocol != SUBPROTOCOL:
            raise RuntimeError(f"the server chose subprotocol {socket.subprotocol!r}")
    return sockets


def percentile(sorted_values: list[int], fraction: float) -> int:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def echo_loop(socket, payload: bytes, warmup_end: float, end: float,
                    round_trips_ns: list[int]) -> None:
    while True:
        started = time.perf_counter_ns()
        if started >= end:
            return
        await socket.send(payload)
        reply = await socket.recv()
        finished = time.perf_counter_ns()
        if reply != payload:
            raise RuntimeError("the echo differs from the message sent")
        if started >= warmup_end:
            round_trips_ns.append(finished - started)


async def run_load(arguments: argparse.Namespace) -> dict:
    payload = os.urandom(arguments.size)
    sockets = await open_connections(arguments.url, arguments.connections, arguments.size * 2)
    round_trips_ns: list[int] = []
    now = time.perf_counter_ns()
    warmup_end = now + int(arguments.warmup * 1e9)
    end = warmup_end + int(arguments.duration * 1e9)
    cpu_start = None
    wall_start = None

    async def start_clock() -> None:
        nonlocal cpu_start, wall_start
        await asyncio.sleep(arguments.warmup)
        cpu_start = time.process_time()
        wall_start = time.perf_counter()

    clock = asyncio.ensure_future(start_clock())
    await asyncio.gather(
        *(echo_loop(socket, payload, warmup_end, end, round_trips_ns) for socket in sockets)
    )
    await clock
    cpu_seconds = time.process_time() - cpu_start
    wall_seconds = time.perf_counter() - wall_start
    await asyncio.gather(*(socket.close() for socket in sockets))
    round_trips_ns.sort()
    return {
        "messages": len(round_trips_ns),
        "messages_per_second": len(round_trips_ns) / arguments.duration,
        "p50_us": percentile(round_trips_ns, 0.50) / 1000,
        "p99_us": percentile(round_trips_ns, 0.99) / 1000,
        "client_cpu_fraction": cpu_seconds / wall_seconds,
    }


async def run_idle(arguments: argparse.Namespace) -> None:
    sockets = await open_connections(arguments.url, arguments.connections, 1 << 20)
    print(json.dumps({"opened": len(sockets)}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="WebSocket echo load and idle connections.")
    parser.add_argument("mode", choices=["load", "idle"])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    arguments = parser.parse_args()

    uvloop.install()
    if arguments.mode == "load":
        print(json.dumps(asyncio.run(run_load(arguments))), flush=True)
    else:
        asyncio.run(run_idle(arguments))


if __name__ == "__main__":
    main()
