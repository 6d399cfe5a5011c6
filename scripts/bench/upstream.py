"""Streamlit-like upstream for the proxy benchmark: one Tornado process on 127.0.0.1.

- `GET /_stcore/health` returns `ok`, as Streamlit's health route does.
- `GET /static/bundle.js` is a 300 KiB file served by Tornado's StaticFileHandler.
- `/_stcore/stream` is a WebSocket that accepts the subprotocol `streamlit` and echoes every
  message unchanged.

The benchmark reaches it directly, through nginx, and through FluxLit, which starts it as its
Streamlit child via the `streamlit` package in scripts/bench/standin.

    /usr/bin/python3 scripts/bench/upstream.py --port 8501
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
from pathlib import Path

import tornado.web
import tornado.websocket

STATIC_FILE_NAME = "bundle.js"
STATIC_FILE_BYTES = 300 * 1024
SUBPROTOCOL = "streamlit"


class HealthHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.write("ok")


class EchoSocket(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


def write_static_file(directory: Path) -> None:
    """Write STATIC_FILE_BYTES of JavaScript-like text; the content is the same every run."""
    line = b"function f(a,b){return a+b;} // padding for the benchmark bundle\n"
    repeated = line * (STATIC_FILE_BYTES // len(line) + 1)
    (directory / STATIC_FILE_NAME).write_bytes(repeated[:STATIC_FILE_BYTES])


def make_application(static_directory: Path) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/_stcore/health", HealthHandler),
            (r"/_stcore/stream", EchoSocket),
            (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(static_directory)}),
        ],
        websocket_max_message_size=1 << 20,
    )


async def serve(address: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fluxlit-bench-upstream-") as directory:
        static_directory = Path(directory)
        write_static_file(static_directory)
        server = make_application(static_directory).listen(port, address=address)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        print(f"upstream listening on http://{address}:{port} (pid {os.getpid()})", flush=True)
        await stop.wait()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Streamlit-like upstream for benchmarks.")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args(argv)
    asyncio.run(serve(arguments.address, arguments.port))


if __name__ == "__main__":
    main()
