"""Assembling the Tornado application and running it until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from . import _assets, _http, _test_routes
from ._recording import RECORD
from ._websocket import StreamHandler, close_all

logger = logging.getLogger("streamlit.standin")

# Maximum concurrent script runs. Each WebSocket message that runs the script uses one worker.
SCRIPT_WORKERS = 8
# Seconds after which the server closes an idle keep-alive connection, for tests of stale
# pooled connections.
IDLE_TIMEOUT_VARIABLE = "FLUXLIT_STANDIN_IDLE_CONNECTION_TIMEOUT_S"

# How long shutdown waits for open connections to finish after closing the listener.
SHUTDOWN_GRACE_SECONDS = 2.0


def make_state(options: dict[str, Any], script_path: str) -> _http.ServerState:
    bundle = _assets.make_bundle(int(options["standin.bundleBytes"]))
    return _http.ServerState(
        options=options,
        script_path=script_path,
        base_path=str(options["server.baseUrlPath"]),
        bundle=bundle,
        index=_assets.make_asset(_assets.make_index(bundle), "text/html"),
        favicon=_assets.make_asset(_assets.FAVICON_PNG, "image/png"),
        executor=ThreadPoolExecutor(SCRIPT_WORKERS, thread_name_prefix="script"),
    )


def make_application(state: _http.ServerState) -> tornado.web.Application:
    """Map every path under the base URL path; anything else is a 404."""
    base = re.escape(state.base_path)
    bundle_path = re.escape(f"/static/js/{_assets.bundle_name(state.bundle)}")
    table: list[tuple[str, type, dict[str, Any]]] = [
        (r"/_stcore/health", _http.HealthHandler, {}),
        (r"/healthz", _http.HealthHandler, {"deprecated": True}),
        (r"/_stcore/host-config", _http.HostConfigHandler, {}),
        (r"/_stcore/message", _http.MessageHandler, {}),
        (r"/_stcore/metrics", _http.MetricsHandler, {}),
        (r"/_stcore/upload_file/([^/]+)/([^/]+)", _http.UploadHandler, {}),
        (r"/_stcore/stream", StreamHandler, {}),
        (r"/media/([^/]+)", _http.MediaHandler, {}),
        (bundle_path, _http.AssetHandler, {"asset_name": "bundle"}),
        (r"/favicon\.png", _http.AssetHandler, {"asset_name": "favicon"}),
        (r"/_standin/record", _test_routes.RecordHandler, {}),
        (r"/_standin/run", _test_routes.RunHandler, {}),
        (r"/_standin/sse", _test_routes.SseHandler, {}),
        (r"/_standin/slow", _test_routes.SlowHandler, {}),
        (r"/_standin/headers", _test_routes.HeadersHandler, {}),
        (r"/_standin/pieces", _test_routes.PiecesHandler, {}),
        (r"/_standin/overlong", _test_routes.OverlongHandler, {}),
        (r"/_standin/exit", _test_routes.ExitHandler, {}),
        (r"/(.*)", _http.FallbackHandler, {}),
    ]
    routes: list[Any] = [(base + pattern, handler, extra) for pattern, handler, extra in table]
    if state.base_path:
        routes.insert(0, (base, _http.BaseRedirectHandler, {}))
    options = state.options
    return tornado.web.Application(
        routes,
        xsrf_cookies=bool(options["server.enableXsrfProtection"]),
        websocket_ping_interval=int(options["server.websocketPingInterval"]) or None,
        websocket_max_message_size=int(options["server.maxMessageSize"]) * _http.MEGABYTE,
        default_handler_class=_http.NotFoundHandler,
        standin_state=state,
    )


def record_startup(options: dict[str, Any], script_path: str, script_args: list[str]) -> None:
    watched = ("FLUXLIT_", "STREAMLIT_")
    RECORD.set_static(
        argv=list(sys.argv[1:]),
        script=script_path,
        script_args=list(script_args),
        options=options,
        env={name: value for name, value in os.environ.items() if name.startswith(watched)},
        cwd=os.getcwd(),
        pid=os.getpid(),
        python=sys.executable,
    )


async def serve(options: dict[str, Any], script_path: str, script_args: list[str]) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    record_startup(options, script_path, script_args)
    # Streamlit runs the script with sys.argv set to the script and its arguments.
    sys.argv = [script_path, *script_args]
    state = make_state(options, script_path)
    idle_timeout = os.environ.get(IDLE_TIMEOUT_VARIABLE)
    server = tornado.httpserver.HTTPServer(
        make_application(state),
        # Uploads set their own limit per request; this bound covers every other body.
        max_body_size=(int(options["server.maxUploadSize"]) + 1) * _http.MEGABYTE,
        # None keeps Tornado's default of one hour.
        idle_connection_timeout=float(idle_timeout) if idle_timeout else None,
    )
    sockets = tornado.netutil.bind_sockets(
        int(options["server.port"]), str(options["server.address"])
    )
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    RECORD.set_static(port=port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    print_startup(str(options["server.address"]), port, state.base_path)
    await stop.wait()

    logger.info("stopping: closing %d WebSocket(s) with 1001", len(state.open_sockets))
    server.stop()
    close_all(state, 1001, "server stopping")
    try:
        await asyncio.wait_for(server.close_all_connections(), SHUTDOWN_GRACE_SECONDS)
    except asyncio.TimeoutError:
        logger.info("connections still open after %.1f s; exiting anyway", SHUTDOWN_GRACE_SECONDS)
    state.executor.shutdown(wait=False, cancel_futures=True)
    return 0


def print_startup(address: str, port: int, base_path: str) -> None:
    # The first line matches Streamlit's, for tools that wait for it.
    print("", flush=True)
    print("  You can now view your Streamlit app in your browser.", flush=True)
    print("", flush=True)
    print(f"  URL: http://{address}:{port}{base_path}", flush=True)
    print("", flush=True)
