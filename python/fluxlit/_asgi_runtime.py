"""Event-loop side of the ASGI bridge.

The fluxlit binary runs :func:`serve` on its dedicated Python thread. Requests arrive through
``control``: its file descriptor becomes readable when the network threads queued work, and
``control.drain()`` returns that work as ``(kind, exchange)`` pairs, and a new HTTP request as
``(NEW_HTTP_REQUEST, exchange, scope, receive, send)`` with native ``receive`` and ``send``
callables: when they can complete at once (the body is there, the output is below its
high-water mark) they return an awaitable that finishes without suspending, and otherwise the
coroutine of :func:`_receive_later` or :func:`_drain_later`. Nothing here blocks the loop;
waiting happens on futures that the network side resolves through ``kind == WAKE``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import traceback
from typing import Any

from fluxlit._errors import ClientDisconnected

NEW_REQUEST, WAKE, STOP, RELOAD, NEW_HTTP_REQUEST = 0, 1, 2, 3, 4
# How long a reload lets requests that started before it finish with the old app. Requests
# that run longer (streams, WebSockets) keep the old app; new requests wait for the new one.
RELOAD_DRAIN_S = 5.0

logger = logging.getLogger("fluxlit.app")


class LifespanFailed(Exception):
    """The app sent ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``."""


def _freeze_heap() -> None:
    """Move every object alive after start-up out of the garbage collector's reach.

    The app's modules, routes and models live as long as the app, yet each full collection
    walks all of them, which stalls every request in flight for milliseconds. Frozen objects
    are still freed by reference counting; only cycles among them stay until the process ends.
    """
    gc.collect()
    gc.freeze()


class _NativeLogHandler(logging.Handler):
    """Sends Python log records to the binary's log, with the logger name."""

    def __init__(self, control: Any) -> None:
        super().__init__()
        self._control = control

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._control.log(record.levelno, record.name, self.format(record))
        except Exception:  # noqa: BLE001 - a logging failure must not break the request
            self.handleError(record)


def _install_logging(control: Any, level: str) -> None:
    root = logging.getLogger()
    if root.handlers:
        return  # the app configured logging itself
    root.addHandler(_NativeLogHandler(control))
    root.setLevel(level.upper() if level.upper() != "TRACE" else "DEBUG")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _resolve_app(target: Any) -> Any:
    from fluxlit import FluxLit

    if isinstance(target, FluxLit):
        return target.api
    if not callable(target):
        raise TypeError(
            f"the target is a {type(target).__name__}, not an ASGI app; point it at a FluxLit "
            "object or an ASGI 3 callable such as a FastAPI app"
        )
    return target


class _Lifespan:
    """Runs the ASGI lifespan protocol for one app."""

    def __init__(self, app: Any, state: dict) -> None:
        self._app = app
        self._state = state
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._startup: asyncio.Future | None = None
        self._shutdown: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self.supported = True

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._startup

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._shutdown

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }
        try:
            await self._app(scope, self._inbox.get, self._send)
        except BaseException as error:  # noqa: BLE001 - any failure means "no lifespan"
            if not self._startup.done():
                # An app that raises before it completes startup does not implement lifespan.
                self.supported = False
                logger.debug("the app does not support lifespan: %r", error)
                self._startup.set_result(None)
            elif not self._shutdown.done():
                self._shutdown.set_exception(LifespanFailed(repr(error)))
        finally:
            for future in (self._startup, self._shutdown):
                if not future.done():
                    future.set_result(None)

    async def _send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._startup.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._startup.set_exception(LifespanFailed(message.get("message", "")))
        elif kind == "lifespan.shutdown.complete":
            self._shutdown.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self._shutdown.set_exception(LifespanFailed(message.get("message", "")))
        else:
            raise RuntimeError(f"unexpected lifespan message type {kind!r}")


def _forget_app_modules(app_directory: str) -> None:
    """Drop the modules loaded from the app's directory, so the next import reads them anew."""
    root = os.path.realpath(app_directory) + os.sep
    for name, module in list(sys.modules.items()):
        if name == "fluxlit" or name.startswith("fluxlit."):
            continue  # the runtime itself, even when the app lives next to the package
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        if real.startswith(root) and "site-packages" not in real:
            del sys.modules[name]


def _error_app(description: str) -> Any:
    """Build an ASGI app that responds with 500 and a short page naming a load error."""
    page = (
        "FluxLit could not load the app after a code change:\n\n"
        f"{description}\n\nFix the code and save; the app reloads by itself.\n"
    ).encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(page)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": page})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
        # A lifespan scope returns at once: the error app has no startup or shutdown.

    return app


async def _wait_for_wake(exchange: Any, ready: Any, woken_first: bool = False) -> None:
    """Wait until ``ready()`` is true, sleeping on a future that a WAKE event resolves.

    Several tasks may wait on one exchange (an app that awaits ``receive()`` in two tasks, as
    Starlette's streaming responses do to notice a disconnect), so each gets its own future
    and a WAKE resolves them all, in list order. A waiter with ``woken_first`` goes to the
    front of that list.
    """
    loop = asyncio.get_running_loop()
    waiters = getattr(exchange, "waiters", None)
    if waiters is None:
        waiters = exchange.waiters = []
    while not ready():
        waiter = loop.create_future()
        if woken_first:
            waiters.insert(0, waiter)
        else:
            waiters.append(waiter)
        try:
            exchange.set_waiting(True)
            # Look again: the network side may have acted before set_waiting took effect.
            if ready():
                break
            await waiter
        finally:
            waiters.remove(waiter)
            if not waiters:
                exchange.set_waiting(False)


def _wake_waiters(exchange: Any) -> None:
    """Wake every task that waits on `exchange` and still sleeps."""
    for waiter in getattr(exchange, "waiters", ()):
        if not waiter.done():
            waiter.set_result(None)


def _drop_send_after_disconnect(exchange: Any) -> bool:
    """Return whether a send() on the ended connection should be dropped instead of raising.

    Only the first such send() is dropped, and only while another task of the request waits on
    the exchange, woken here if it still sleeps. That task reads the disconnect before the
    sender's next await, so a framework that watches for it (Starlette's StreamingResponse)
    cancels the sender inside the app's own code, where its cleanup runs at once. The waiter
    may be woken already but not yet run, because a WAKE for drained output wakes every waiter.
    """
    if not getattr(exchange, "waiters", None) or getattr(exchange, "send_dropped", False):
        return False
    exchange.send_dropped = True
    _wake_waiters(exchange)
    return True


async def _receive_later(exchange: Any) -> dict:
    """Return the next receive message once the network side has queued it."""
    box: list = []

    def ready() -> bool:
        if not box:
            got = exchange.receive_nowait()
            if got is not None:
                box.append(got)
        return bool(box)

    await _wait_for_wake(exchange, ready)
    return box[0]


async def _drain_later(exchange: Any) -> None:
    """Return once the unsent output is below the high-water mark."""
    # When the client leaves, the sender resumes before the tasks in receive(). It returns from
    # send() and runs on to its next await inside the app, such as a streaming generator's,
    # which is where a framework's cancellation then lands and runs the app's cleanup.
    await _wait_for_wake(exchange, lambda: not exchange.must_wait(), woken_first=True)


class _Runtime:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        control: Any,
        app: Any,
        target_text: str,
        app_directory: str,
    ) -> None:
        self.loop = loop
        self.control = control
        self.app = app
        self.target_text = target_text
        self.app_directory = app_directory
        self.state: dict = {}
        self.lifespan = _Lifespan(app, self.state)
        # The task of each request in flight, by its exchange. Each task removes its own entry.
        self.tasks: dict[Any, asyncio.Task] = {}
        self.stopping = False
        # Set once the stopped loop cancels the tasks still in flight (see serve()). Only those
        # cancellations are expected, so an app's own CancelledError before that is an error.
        self.cancelled_at_stop = False
        self.reloading = False
        self.ready = asyncio.Event()
        self.ready.set()

    def drain(self) -> None:
        # Each request runs in its own task, as under other ASGI servers: apps and libraries
        # (anyio's cancel scopes, for one) expect asyncio.current_task() to name one per request.
        for event in self.control.drain(self.state):
            kind = event[0]
            if kind == NEW_HTTP_REQUEST:
                self.tasks[event[1]] = self.loop.create_task(self.run_http(*event[1:]))
            elif kind == NEW_REQUEST:
                self.tasks[event[1]] = self.loop.create_task(self.run_exchange(event[1]))
            elif kind == WAKE:
                _wake_waiters(event[1])
            elif kind == STOP and not self.stopping:
                self.stopping = True
                self.loop.create_task(self.stop())
            elif kind == RELOAD and not self.reloading and not self.stopping:
                self.reloading = True
                self.loop.create_task(self.reload())

    async def reload(self) -> None:
        """Replace the app with a fresh import of the target; new requests wait meanwhile.

        A failed import or startup is logged with its traceback, and the API responds with 500 and
        a short page naming the error until the next successful reload.
        """
        in_flight = set(self.tasks.values())
        self.ready.clear()
        try:
            if in_flight:
                await asyncio.wait(in_flight, timeout=RELOAD_DRAIN_S)
            try:
                await self.lifespan.shutdown()
            except LifespanFailed as error:
                logger.error("lifespan shutdown failed during reload: %s", error)
            gc.unfreeze()  # the old app's objects become collectable again
            _forget_app_modules(self.app_directory)
            # Collect the old app before the new import runs. An app that calls gc.freeze() at
            # import would otherwise freeze the old app's reference cycles again, and every
            # reload would leak a whole copy of the app.
            in_flight.clear()
            self.app = _error_app("the app is reloading")
            self.state = {}
            self.lifespan = _Lifespan(self.app, self.state)
            gc.collect()
            from fluxlit._target import load_target

            try:
                app = _resolve_app(load_target(self.target_text, self.app_directory))
                state: dict = {}
                lifespan = _Lifespan(app, state)
                await lifespan.startup()
            except Exception as error:  # noqa: BLE001 - shown to the developer, then served
                logger.error(
                    "reload of %s failed; API requests get a 500 response until the code is fixed\n%s",
                    self.target_text,
                    traceback.format_exc().rstrip(),
                )
                self.app = _error_app(f"{type(error).__name__}: {error}")
                self.state = {}
                self.lifespan = _Lifespan(self.app, self.state)
            else:
                self.app, self.state, self.lifespan = app, state, lifespan
                logger.info("reloaded %s", self.target_text)
        finally:
            _freeze_heap()
            self.reloading = False
            self.ready.set()

    async def heartbeat(self) -> None:
        while True:
            self.control.heartbeat()
            self.forget_ended_tasks()
            # Readiness reports how much later than this interval the next beat comes.
            await asyncio.sleep(self.control.heartbeat_interval)

    def forget_ended_tasks(self) -> None:
        """Drop the table entries of tasks that ended without running their ``finally``.

        A task cancelled before its first step never runs its coroutine, and under an eager task
        factory a request can end before drain() records it.
        """
        ended = [exchange for exchange, task in self.tasks.items() if task.done()]
        for exchange in ended:
            del self.tasks[exchange]

    async def stop(self) -> None:
        # The gateway drained or abandoned in-flight requests before asking to stop.
        try:
            await self.lifespan.shutdown()
        except LifespanFailed as error:
            logger.error("lifespan shutdown failed: %s", error)
        finally:
            self.loop.stop()

    async def run_http(self, exchange: Any, scope: dict, receive: Any, send: Any) -> None:
        """Run the app for one HTTP request, with the scope and callables that drain() built."""
        try:
            if not self.ready.is_set():
                await self.ready.wait()
                scope["state"] = self.state.copy()  # the state of the app that a reload started
            # The native callables return awaitables that may already be finished, which asyncio,
            # anyio and run_coroutine_threadsafe do not accept where they want a coroutine. Apps
            # get coroutine functions, as under other servers, and a message is sent when its
            # send() is awaited, on the loop's thread.
            async def app_receive() -> dict:
                return await receive()

            async def app_send(message: dict) -> None:
                await send(message)

            try:
                await self.app(scope, app_receive, app_send)
            except BaseException as error:  # noqa: BLE001 - every failure becomes a 500 or a reset
                self.report_failure(exchange, scope, error)
                if isinstance(error, (KeyboardInterrupt, SystemExit)):
                    raise
            else:
                send.finish("")  # the native twin of exchange.finish, cheaper to call
        finally:
            # Removed here rather than by a done callback, which the loop would have to
            # schedule for every request.
            self.tasks.pop(exchange, None)

    async def run_exchange(self, exchange: Any) -> None:
        """Run the app for one WebSocket connection."""
        try:
            if not self.ready.is_set():
                await self.ready.wait()
            scope = exchange.scope()
            scope["state"] = self.state.copy()

            async def receive() -> dict:
                message = exchange.receive_nowait()
                if message is not None:
                    return message
                return await _receive_later(exchange)

            async def send(message: dict) -> None:
                try:
                    must_wait = exchange.send(message)
                except ClientDisconnected:
                    if _drop_send_after_disconnect(exchange):
                        return
                    raise
                if must_wait:
                    await _drain_later(exchange)

            try:
                await self.app(scope, receive, send)
            except BaseException as error:  # noqa: BLE001 - every failure becomes a 500 or a reset
                self.report_failure(exchange, scope, error)
                if isinstance(error, (KeyboardInterrupt, SystemExit)):
                    raise
            else:
                exchange.finish("")
        finally:
            self.tasks.pop(exchange, None)  # as in run_http

    def report_failure(self, exchange: Any, scope: dict, error: BaseException) -> None:
        """Log the app's exception and end the exchange with it."""
        if self.cancelled_at_stop and isinstance(error, asyncio.CancelledError):
            # The shutdown cancelled a request that outlasted shutdown_grace_ms, and the gateway
            # has logged how many there were. A traceback per request would add nothing.
            logger.info(
                "%s %s was cancelled because the server stopped",
                scope.get("method", "WebSocket"),
                scope["root_path"] + scope["path"],
            )
            exchange.finish(f"{type(error).__name__}: the server stopped")
            return
        if isinstance(error, ClientDisconnected):
            # The app let send()'s own exception through. The client left, and nothing failed.
            logger.debug(
                "the app stopped at send() for %s %s: %s",
                scope.get("method", "WebSocket"),
                scope["root_path"] + scope["path"],
                error,
            )
            exchange.finish(f"{type(error).__name__}: {error}")
            return
        # After the client went away, an exception is most likely the app noticing it
        # (Starlette's ClientDisconnect): worth a warning, not an error.
        gone = exchange.client_gone()
        (logger.warning if gone else logger.error)(
            "exception in ASGI app for %s %s%s\n%s",
            scope.get("method", "WebSocket"),
            scope["root_path"] + scope["path"],
            " after the client went away" if gone else "",
            traceback.format_exc().rstrip(),
        )
        exchange.finish(f"{type(error).__name__}: {error}")


def serve(control: Any, target_text: str, app_directory: str, log_level: str) -> None:
    """Import the target, run lifespan startup, then serve until the binary requests a stop.

    ``control.startup_complete(ok, message)`` reports the outcome of the start-up to the
    binary, which exits with the message when it failed.
    """
    from fluxlit._target import TargetError, load_target

    from _fluxlit_native import set_runtime_objects

    _install_logging(control, log_level)
    loop = _new_event_loop()
    asyncio.set_event_loop(loop)
    set_runtime_objects(
        _receive_later,
        _drain_later,
        loop.call_soon,
        ClientDisconnected,
        _drop_send_after_disconnect,
    )
    try:
        target = load_target(target_text, app_directory)
        app = _resolve_app(target)
    except (TargetError, TypeError) as error:
        # The target itself is wrong, and the message names the part; a traceback adds nothing.
        control.startup_complete(
            False,
            f"{error}. Check the target (module:attribute or path/to/file.py:attribute) and "
            f"the working directory {os.getcwd()}.",
        )
        loop.close()
        return
    except ModuleNotFoundError as error:
        control.startup_complete(
            False,
            f"{traceback.format_exc().rstrip()}\nThe interpreter {sys.executable} has no module "
            f"{error.name!r}: install it into that environment, or pass --python with an "
            "interpreter that has it.",
        )
        loop.close()
        return
    except BaseException:  # noqa: BLE001 - reported to the binary with the traceback
        control.startup_complete(False, traceback.format_exc().rstrip())
        loop.close()
        return

    runtime = _Runtime(loop, control, app, target_text, app_directory)
    # This frame lives as long as the server, so it must not keep the first app alive after a
    # reload replaced it.
    del target, app
    try:
        loop.run_until_complete(runtime.lifespan.startup())
    except LifespanFailed as error:
        control.startup_complete(False, f"the app's lifespan startup failed: {error}")
        loop.close()
        return
    except BaseException:  # noqa: BLE001
        control.startup_complete(False, traceback.format_exc().rstrip())
        loop.close()
        return

    _freeze_heap()
    loop.add_reader(control.fileno(), runtime.drain)
    heartbeat = loop.create_task(runtime.heartbeat())
    control.startup_complete(True, "")
    try:
        loop.run_forever()
    finally:
        heartbeat.cancel()
        in_flight = list(runtime.tasks.values())
        runtime.cancelled_at_stop = True
        for task in in_flight:
            task.cancel()
        loop.run_until_complete(asyncio.gather(heartbeat, *in_flight, return_exceptions=True))
        loop.remove_reader(control.fileno())
        loop.close()
