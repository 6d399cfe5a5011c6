"""Start-up, signals and shutdown of the binary and its Streamlit child."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
import websockets
import websockets.exceptions

import harness

IMPORT_ERROR_TARGET = f"{harness.APPS_DIR / 'import_error.py'}:app"
FAILING_LIFESPAN_TARGET = f"{harness.APPS_DIR / 'failing_lifespan.py'}:app"
LIFESPAN_FAILURE = "e2e-lifespan: database at db.invalid:5432 is unreachable"


@dataclass
class StreamReader:
    """Reads GET /api/stream in a thread, noting each piece and how the response ended."""

    url: str
    pieces: list[bytes] = field(default_factory=list)
    error: BaseException | None = None
    first_piece: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        assert self.first_piece.wait(10), f"no piece of {self.url} within 10 s: {self.error!r}"

    def read(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=60) as response:
                for piece in response.iter_raw():
                    self.pieces.append(piece)
                    self.first_piece.set()
        except httpx.HTTPError as error:
            self.error = error
        finally:
            self.first_piece.set()

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.url} still streaming after {timeout} s"

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


def expected_lines(count: int) -> bytes:
    return b"".join(f"chunk {index}\n".encode() for index in range(count))


def test_stdout_is_one_listening_line(launcher: harness.Launcher) -> None:
    server = launcher.start()
    assert server.stop() == 0
    server.finish_output()
    assert server.stdout_lines() == [f"fluxlit listening on {server.base_url}"]


def test_logs_are_json_lines(launcher: harness.Launcher) -> None:
    server = launcher.start()
    httpx.get(server.api_url("/users"))
    server.stop()
    server.finish_output()
    lines = server.log_lines()
    assert lines
    for line in lines:
        assert line.record is not None, f"not a JSON object: {line.text}"
        assert set(line.record) >= {"ts", "level", "source", "msg"}, line.text
    sources = {line.source for line in lines}
    assert {"fluxlit", "access", "streamlit"} <= sources


def test_sigterm_exits_zero_without_children(launcher: harness.Launcher) -> None:
    server = launcher.start()
    streamlit_pid = server.streamlit_pid()
    assert streamlit_pid is not None
    assert harness.is_running(harness.read_process(streamlit_pid))

    assert server.stop() == 0
    assert server.wait_leftovers_gone() == []
    assert not harness.is_running(harness.read_process(streamlit_pid))


def test_sigkill_leaves_no_streamlit_child(launcher: harness.Launcher) -> None:
    server = launcher.start()
    server.send_signal(signal.SIGKILL)
    server.wait_exit()
    left = server.wait_leftovers_gone(grace=3)
    # Kill them here, so that the fixture's own leftover check does not report them again.
    server.kill_leftovers(left)
    assert left == []


def test_streamlit_crash_is_restarted(launcher: harness.Launcher) -> None:
    server = launcher.start()
    first_pid = server.streamlit_pid()
    response = httpx.get(server.url("/_standin/exit?code=3"))
    assert response.status_code == 200

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.streamlit_pid() != first_pid:
            break
        time.sleep(0.1)
    assert server.streamlit_pid() != first_pid, server.stderr_text()
    server.wait_ready()
    assert httpx.get(server.url("/")).status_code == 200
    assert not harness.is_running(harness.read_process(first_pid))


def test_sigterm_lets_stream_finish(launcher: harness.Launcher) -> None:
    server = launcher.start("--shutdown-grace-ms", "10000")
    # Ten lines 200 ms apart: the response takes about 1.8 s after the first line.
    reader = StreamReader(server.api_url("/stream?chunks=10&delay_ms=200"))
    reader.start()

    server.send_signal(signal.SIGTERM)
    reader.join(15)
    status = server.wait_exit()

    assert reader.error is None
    assert reader.body == expected_lines(10)
    assert status == 0
    assert server.wait_leftovers_gone() == []


def test_draining_server_refuses_new_requests(launcher: harness.Launcher) -> None:
    server = launcher.start("--shutdown-grace-ms", "10000")
    reader = StreamReader(server.api_url("/stream?chunks=10&delay_ms=200"))
    reader.start()
    server.send_signal(signal.SIGTERM)
    server.wait_for_log("draining")

    try:
        response = httpx.get(server.api_url("/readyz"), timeout=5)
    except httpx.TransportError:
        response = None
    # A closed listener or a 503 both tell a load balancer to stop sending traffic.
    assert response is None or response.status_code == 503
    reader.join(15)
    assert server.wait_exit() == 0


def stop_with_second_sigint(server: harness.Fluxlit, streamlit_pid: int | None) -> None:
    """Send SIGINT, then a second one once the drain began, and check a quick, clean stop."""
    server.send_signal(signal.SIGINT)
    server.wait_for_log("draining")
    second_signal_at = time.monotonic()
    server.send_signal(signal.SIGINT)
    status = server.wait_exit(timeout=10)
    elapsed = time.monotonic() - second_signal_at

    assert elapsed < 3.0, f"exit took {elapsed:.2f} s after the second SIGINT"
    assert status != 0, "a forced stop must not report success"
    assert server.wait_leftovers_gone() == []
    assert streamlit_pid is not None
    assert not harness.is_running(harness.read_process(streamlit_pid))


def test_second_sigint_stops_at_once(launcher: harness.Launcher) -> None:
    server = launcher.start()
    streamlit_pid = server.streamlit_pid()
    # A stream of 100 lines 100 ms apart keeps the drain busy for about ten seconds.
    reader = StreamReader(server.api_url("/stream?chunks=100&delay_ms=100"))
    reader.start()

    stop_with_second_sigint(server, streamlit_pid)
    reader.join(5)
    assert reader.body != expected_lines(100)


def close_websocket_by_sigterm(server: harness.Fluxlit) -> dict[str, float | int | None]:
    """Open a session, send SIGTERM, and return how long the close took and its code."""
    closed: dict[str, float | int | None] = {}

    async def scenario() -> None:
        uri = f"ws://{server.authority}/_stcore/stream"
        async with websockets.connect(uri, subprotocols=["streamlit"], compression=None) as ws:
            await ws.send(b"hello")
            await ws.recv()
            await ws.recv()
            server.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.exceptions.ConnectionClosed:
                pass
            closed["seconds"] = time.monotonic() - started
            closed["code"] = ws.close_code

    asyncio.run(scenario())
    return closed


def test_sigterm_closes_open_websocket(launcher: harness.Launcher) -> None:
    server = launcher.start()
    closed = close_websocket_by_sigterm(server)
    # An open WebSocket must not hold the drain for the whole 20 s grace period.
    status = server.wait_exit(timeout=15)
    assert status == 0
    assert closed["code"] is not None, "the WebSocket was still open after SIGTERM"
    assert closed["seconds"] < 10


def test_sigterm_sends_websocket_going_away(launcher: harness.Launcher) -> None:
    server = launcher.start()
    closed = close_websocket_by_sigterm(server)
    server.wait_exit(timeout=15)
    assert closed["code"] == 1001


def test_missing_streamlit_page_names_interpreter(launcher: harness.Launcher) -> None:
    server = launcher.start(environment=harness.base_environment(standin=False), ready=False)
    page = httpx.get(server.url("/"))
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "/usr/bin/python3" in page.text
    assert "pip install 'streamlit&gt;=1.36'</code>" in page.text
    # The follow-up step is prose, with only the option itself set as code.
    assert ", then start FluxLit with <code>--python .venv/bin/python</code>" in page.text

    api = httpx.get(server.api_url("/users"))
    assert api.status_code == 200
    assert api.json()[0]["name"] == "Ada Lovelace"


def test_missing_streamlit_readyz_names_reason(launcher: harness.Launcher) -> None:
    server = launcher.start(environment=harness.base_environment(standin=False), ready=False)
    response = httpx.get(server.api_url("/readyz"))
    assert response.status_code == 503
    assert response.json()["checks"]["streamlit"]["ok"] is False


def test_no_ui_answers_404_on_ui_paths(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui")
    assert httpx.get(server.api_url("/readyz")).status_code == 200
    assert httpx.get(server.url("/")).status_code == 404
    assert httpx.get(server.url("/_stcore/health")).status_code == 404
    assert httpx.get(server.api_url("/users")).status_code == 200


def test_no_ui_starts_no_child(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui")
    assert harness.descendants(server.pid) == []
    assert server.streamlit_pid() is None


def test_import_error_exits_with_traceback() -> None:
    finished = harness.run_to_exit(["run", IMPORT_ERROR_TARGET, "--port", "0"])
    assert finished.status != 0
    assert "ModuleNotFoundError" in finished.stderr
    assert "fluxlit_e2e_missing_dependency" in finished.stderr
    assert "Traceback" in finished.stderr
    assert "listening" not in finished.stdout
    assert finished.leftovers == []


def test_lifespan_failure_exits_with_message() -> None:
    finished = harness.run_to_exit(["run", FAILING_LIFESPAN_TARGET, "--port", "0"])
    assert finished.status != 0
    assert LIFESPAN_FAILURE in finished.stderr
    assert "listening" not in finished.stdout
    assert finished.leftovers == []


def test_missing_target_file_exits_nonzero() -> None:
    missing = harness.APPS_DIR / "no_such_app.py"
    finished = harness.run_to_exit(["run", f"{missing}:app", "--port", "0"])
    assert finished.status != 0
    assert "no_such_app.py" in finished.stderr
    assert finished.leftovers == []


def test_interpreter_without_fastapi_named(tmp_path) -> None:
    # A virtual environment made without --system-site-packages cannot see Debian's FastAPI.
    import subprocess

    subprocess.run(
        ["/usr/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    python = str(tmp_path / "venv" / "bin" / "python")
    finished = harness.run_to_exit(
        ["run", harness.HELLO_TARGET, "--port", "0", "--no-ui", "--python", python]
    )
    assert finished.status == 1
    assert f"the interpreter {python} has no module 'fastapi'" in finished.stderr
    assert "--system-site-packages" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not finished.leftovers


DRAIN_APP = (
    "import asyncio\n"
    "from fastapi import FastAPI\n"
    "from fastapi.responses import StreamingResponse\n"
    "app = FastAPI()\n"
    "@app.get('/slow')\n"
    "async def slow():\n"
    "    await asyncio.sleep(3)\n"
    "    return {'slept': 3}\n"
    "@app.get('/events')\n"
    "async def events():\n"
    "    async def lines():\n"
    "        while True:\n"
    "            yield 'data: tick\\n\\n'\n"
    "            await asyncio.sleep(0.2)\n"
    "    return StreamingResponse(lines(), media_type='text/event-stream')\n"
)


def open_mixed_traffic(
    server: harness.Fluxlit,
) -> tuple[dict[str, object], list[threading.Thread]]:
    """Open one WebSocket, one endless event stream and one 3 s request on `server`.

    Returns the results that the threads fill in as each ends, and the threads. The slow
    request has reached the app when this returns.
    """
    results: dict[str, object] = {}

    def slow_request() -> None:
        try:
            results["slow"] = httpx.get(server.api_url("/slow"), timeout=15)
        except httpx.HTTPError as error:
            results["slow"] = repr(error)

    def event_stream() -> None:
        with httpx.stream("GET", server.api_url("/events"), timeout=15) as response:
            try:
                results["events"] = sum(1 for line in response.iter_lines() if line)
                results["events_end"] = "clean"
            except httpx.HTTPError as error:
                results["events_end"] = repr(error)

    async def websocket_close() -> None:
        uri = f"ws://{server.authority}/_stcore/stream"
        async with websockets.connect(uri, subprotocols=["streamlit"], compression=None) as ws:
            await ws.send(b"hello")
            await ws.recv()
            await ws.recv()
            results["websocket_open"] = True
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.exceptions.ConnectionClosed:
                pass
            results["close_code"] = ws.close_code

    threads = [
        threading.Thread(target=slow_request),
        threading.Thread(target=event_stream),
        threading.Thread(target=lambda: asyncio.run(websocket_close())),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while "websocket_open" not in results and time.monotonic() < deadline:
        time.sleep(0.05)
    # Let the slow request reach the app before the signal.
    time.sleep(0.5)
    return results, threads


def start_drain_server(launcher: harness.Launcher, tmp_path) -> harness.Fluxlit:
    """Start the drain app with a grace period of 8 s."""
    app_file = tmp_path / "drain_app.py"
    app_file.write_text(DRAIN_APP)
    return launcher.start("--shutdown-grace-ms", "8000", target=f"{app_file}:app")


def test_sigterm_drains_mixed_traffic(launcher: harness.Launcher, tmp_path) -> None:
    server = start_drain_server(launcher, tmp_path)
    streamlit_pid = server.streamlit_pid()
    results, threads = open_mixed_traffic(server)

    signal_sent = time.monotonic()
    server.send_signal(signal.SIGTERM)
    status = server.wait_exit(timeout=15)
    elapsed = time.monotonic() - signal_sent
    for thread in threads:
        thread.join(5)

    assert status == 0
    assert elapsed < 8.0, f"exit took {elapsed:.2f} s with a grace period of 8 s"
    slow = results.get("slow")
    assert isinstance(slow, httpx.Response), results
    assert slow.status_code == 200
    assert slow.json() == {"slept": 3}
    assert results.get("close_code") == 1001
    assert results.get("events_end") == "clean"
    assert server.wait_leftovers_gone() == []
    assert streamlit_pid is not None
    assert not harness.is_running(harness.read_process(streamlit_pid))


def test_second_sigint_ends_mixed_traffic(launcher: harness.Launcher, tmp_path) -> None:
    # The drain would wait for all three exchanges. A second signal must cut it short and
    # still leave no process behind.
    server = start_drain_server(launcher, tmp_path)
    streamlit_pid = server.streamlit_pid()
    results, threads = open_mixed_traffic(server)

    stop_with_second_sigint(server, streamlit_pid)
    for thread in threads:
        thread.join(10)

    assert not any(thread.is_alive() for thread in threads), results
    slow = results.get("slow")
    assert not (isinstance(slow, httpx.Response) and slow.status_code == 200), results
