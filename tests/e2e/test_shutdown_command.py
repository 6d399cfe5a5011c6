"""`fluxlit shutdown` and the pid file that `run --pidfile` writes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

import harness

# A FastAPI app with an endpoint that responds after a minute. It creates a marker file in the
# working directory when a request starts, so a test knows the request is in flight.
SLOW_APP = """
import asyncio
from pathlib import Path

from fastapi import FastAPI

app = FastAPI()


@app.get("/slow")
async def slow():
    Path("slow-request-started").touch()
    await asyncio.sleep(60)
    return {"done": True}


@app.get("/own-cancel")
async def own_cancel(after: float):
    # A bug of the app's own: it awaits a future that it cancelled itself.
    Path("slow-request-started").touch()
    await asyncio.sleep(after)
    cancelled = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    await cancelled


@app.on_event("shutdown")
async def slow_shutdown():
    if Path("slow-shutdown").exists():
        await asyncio.sleep(1.5)
"""
SLOW_REQUEST_MARKER = "slow-request-started"


def shutdown(
    *arguments: str,
    cwd: Path,
    extra_environment: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `fluxlit shutdown <arguments>` and return its exit status and output."""
    environment = harness.base_environment()
    environment.update(extra_environment or {})
    return subprocess.run(
        [harness.binary_path(), "shutdown", *arguments],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not created within {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def slow_app(tmp_path: Path) -> str:
    app_file = tmp_path / "slow_app.py"
    app_file.write_text(SLOW_APP)
    return f"{app_file}:app"


def hold_request(server: harness.Fluxlit, directory: Path) -> None:
    """Start a request that keeps the server's drain busy, and wait until the app has it."""

    def request() -> None:
        try:
            httpx.get(server.api_url("/slow"), timeout=90)
        except httpx.HTTPError:
            pass  # the server closes or loses the connection when it stops

    threading.Thread(target=request, daemon=True).start()
    wait_for_file(directory / SLOW_REQUEST_MARKER)


def start_draining_server(
    launcher: harness.Launcher, directory: Path, slow_app: str, *extra: str
) -> harness.Fluxlit:
    """Start the slow app with a pid file and hold a request, so SIGTERM leaves it draining."""
    server = launcher.start("--pidfile", "fluxlit.pid", *extra, target=slow_app, cwd=directory)
    wait_for_file(directory / "fluxlit.pid")
    hold_request(server, directory)
    return server


# Each case: files to create, arguments, extra environment, and the expected error.
NO_SERVER_CASES = {
    "missing_default_file": ({}, [], {}, "no pid file at fluxlit.pid"),
    "unreadable_file": (
        {"fluxlit.pid": "not a pid\n"},
        [],
        {},
        "cannot read the pid file fluxlit.pid: Invalid argument",
    ),
    # The pid of this test process is alive but is not fluxlit.
    "other_program": (
        {"other.pid": f"{os.getpid()}\n"},
        ["--pidfile", "other.pid"],
        {},
        "which is not a running fluxlit process",
    ),
    "file_from_environment": (
        {},
        [],
        {"FLUXLIT_PIDFILE": "from-env.pid"},
        "no pid file at from-env.pid",
    ),
    "file_from_configuration": (
        {"fluxlit.toml": 'pidfile = "run/server.pid"\n'},
        [],
        {},
        "no pid file at run/server.pid",
    ),
}


@pytest.mark.parametrize("case", NO_SERVER_CASES)
def test_no_running_server_exits_2(tmp_path: Path, case: str) -> None:
    files, arguments, environment, expected = NO_SERVER_CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    finished = shutdown(*arguments, cwd=tmp_path, extra_environment=environment)
    assert finished.returncode == 2, finished
    assert expected in finished.stderr


def test_help_documents_exit_statuses(tmp_path: Path) -> None:
    finished = shutdown("--help", cwd=tmp_path)
    assert finished.returncode == 0, finished
    for fragment in ("--pidfile", "--wait", "--timeout-ms", "--force", "Exit status: 0"):
        assert fragment in finished.stdout


def test_run_writes_and_removes_pid_file(launcher: harness.Launcher, tmp_path: Path) -> None:
    pid_file = tmp_path / "fluxlit.pid"
    server = launcher.start("--pidfile", str(pid_file), cwd=tmp_path)
    wait_for_file(pid_file)
    assert pid_file.read_text() == f"{server.pid}\n"

    assert server.stop() == 0
    assert not pid_file.exists()


def test_second_server_with_same_pid_file_is_rejected(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    pid_file = tmp_path / "fluxlit.pid"
    server = launcher.start("--no-ui", "--pidfile", str(pid_file), cwd=tmp_path)
    wait_for_file(pid_file)

    second = harness.run_to_exit(
        ["run", harness.HELLO_TARGET, "--no-ui", "--port", "0", "--pidfile", str(pid_file)],
        cwd=tmp_path,
    )
    assert second.status == 1, second.stderr
    assert f"names fluxlit process {server.pid}, which is running" in second.stderr
    assert pid_file.read_text() == f"{server.pid}\n"


def test_stale_pid_file_is_replaced(launcher: harness.Launcher, tmp_path: Path) -> None:
    pid_file = tmp_path / "fluxlit.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not fluxlit
    server = launcher.start("--no-ui", "--pidfile", str(pid_file), cwd=tmp_path)
    wait_for_file(pid_file)
    assert pid_file.read_text() == f"{server.pid}\n"
    server.wait_for_log("Replaced the stale pid file")


def test_shutdown_wait_stops_server(launcher: harness.Launcher, tmp_path: Path) -> None:
    server = launcher.start("--pidfile", "fluxlit.pid", cwd=tmp_path)
    wait_for_file(tmp_path / "fluxlit.pid")
    server.remember_processes()

    finished = shutdown("--wait", cwd=tmp_path)
    assert finished.returncode == 0, finished
    assert f"sent SIGTERM to fluxlit (pid {server.pid})" in finished.stdout
    assert f"fluxlit (pid {server.pid}) stopped" in finished.stdout
    assert server.wait_exit(5) == 0
    assert not (tmp_path / "fluxlit.pid").exists()


def test_shutdown_without_wait_returns_at_once(
    launcher: harness.Launcher, tmp_path: Path, slow_app: str
) -> None:
    server = start_draining_server(
        launcher, tmp_path, slow_app, "--no-ui", "--shutdown-grace-ms", "1500"
    )

    started = time.monotonic()
    finished = shutdown(cwd=tmp_path)
    assert finished.returncode == 0, finished
    assert time.monotonic() - started < 1.0
    assert server.process.poll() is None  # still draining
    assert server.wait_exit() == 0


def test_request_past_grace_cancelled_quietly(
    launcher: harness.Launcher, tmp_path: Path, slow_app: str
) -> None:
    server = start_draining_server(
        launcher, tmp_path, slow_app, "--no-ui", "--shutdown-grace-ms", "1000"
    )
    assert shutdown(cwd=tmp_path).returncode == 0
    assert server.wait_exit() == 0
    server.finish_output()
    messages = [line.message for line in server.log_lines()]
    # The app's request outlasted the grace period, so the shutdown cancelled it. That is
    # expected, and one info line records it, with no traceback.
    assert any("GET /api/slow was cancelled because the server stopped" in m for m in messages)
    assert not [m for m in messages if "CancelledError" in m or "Traceback" in m], messages


def test_own_cancel_during_shutdown_logged(
    launcher: harness.Launcher, tmp_path: Path, slow_app: str
) -> None:
    # The drain gives up on the request after 2 s and the lifespan shutdown then takes 1.5 s.
    # The request's own CancelledError comes 3 s after it started, within that shutdown and
    # before the stopped loop cancels anything, so it is the app's error, not the shutdown's.
    (tmp_path / "slow-shutdown").touch()
    server = launcher.start(
        "--no-ui", "--shutdown-grace-ms", "2000", "--pidfile", "fluxlit.pid",
        target=slow_app, cwd=tmp_path,
    )

    def request() -> None:
        try:
            httpx.get(server.api_url("/own-cancel?after=3"), timeout=30)
        except httpx.HTTPError:
            pass  # the drain closes the connection

    threading.Thread(target=request, daemon=True).start()
    wait_for_file(tmp_path / SLOW_REQUEST_MARKER)
    assert shutdown(cwd=tmp_path).returncode == 0
    assert server.wait_exit() == 0
    server.finish_output()
    messages = [line.message for line in server.log_lines()]
    logged = [m for m in messages if "GET /api/own-cancel" in m and "Traceback" in m]
    assert logged, messages
    assert "CancelledError" in logged[0]
    assert not [m for m in messages if "own-cancel was cancelled because the server" in m]


def test_shutdown_timeout_exits_1(
    launcher: harness.Launcher, tmp_path: Path, slow_app: str
) -> None:
    server = start_draining_server(
        launcher, tmp_path, slow_app, "--no-ui", "--shutdown-grace-ms", "3000"
    )

    finished = shutdown("--wait", "--timeout-ms", "300", cwd=tmp_path)
    assert finished.returncode == 1, finished
    assert f"fluxlit (pid {server.pid}) is still running after 300 ms" in finished.stderr
    assert server.process.poll() is None
    assert server.wait_exit() == 0


def test_force_kills_server_and_streamlit(
    launcher: harness.Launcher, tmp_path: Path, slow_app: str
) -> None:
    server = start_draining_server(launcher, tmp_path, slow_app, "--shutdown-grace-ms", "60000")
    streamlit_pid = server.streamlit_pid()
    assert streamlit_pid is not None
    server.remember_processes()

    finished = shutdown("--force", "--timeout-ms", "500", cwd=tmp_path)
    assert finished.returncode == 0, finished
    assert f"sending SIGKILL to process group {streamlit_pid}" in finished.stdout
    assert f"fluxlit (pid {server.pid}) killed" in finished.stdout
    assert server.wait_exit(5) == -signal.SIGKILL
    # Launcher.close() fails the test when the Streamlit process group outlived the server.
