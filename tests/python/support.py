"""Helpers shared by the Python tests: a stub API server, the stand-in process, raw upgrades."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO_ROOT / "python"
STANDIN_DIR = REPO_ROOT / "tests" / "standin"
EXAMPLE_DIR = REPO_ROOT / "examples" / "hello"
ENTRY_SCRIPT = PYTHON_DIR / "fluxlit" / "_streamlit_entry.py"

# How long a stand-in may take to print its URL line after it starts.
STARTUP_TIMEOUT_SECONDS = 20.0
# How long a stopped stand-in may take to exit after SIGTERM.
STOP_TIMEOUT_SECONDS = 10.0

USERS = [{"id": 1, "name": "Stub User", "email": "stub@example.com"}]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class StubApi:
    """A threaded HTTP server on 127.0.0.1 that records requests and returns JSON.

    `GET <any prefix>/users` returns USERS, a path ending in `/missing` returns 404, and
    everything else returns 200 with a description of the request.
    """

    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append(
                    StubRequest(self.command, self.path, dict(self.headers.items()), body)
                )
                path = self.path.split("?", 1)[0]
                if path.endswith("/missing"):
                    self.send_json(404, {"detail": "not found"})
                elif path.endswith("/users") and self.command == "GET":
                    self.send_json(200, USERS)
                else:
                    self.send_json(
                        200, {"method": self.command, "path": self.path, "body": body.decode()}
                    )

            def send_json(self, status: int, value: Any) -> None:
                payload = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Standin:
    """A running stand-in Streamlit process."""

    process: subprocess.Popen[str]
    port: int
    stderr_file: Any
    base_path: str = ""
    stdout_lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_standin/record", timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> int:
        """Send SIGTERM and return the exit status; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr_text(self) -> str:
        """Return what the process wrote to stderr so far (its log)."""
        self.stderr_file.flush()
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def kill(self) -> None:
        """Kill the process if it still runs and release its pipes and log file."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.reader is not None:
            self.reader.join(STOP_TIMEOUT_SECONDS)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr_file.close()


def standin_environment(
    target: str = "examples/hello/app.py:app", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUXLIT_", "STREAMLIT_"))
    }
    environment.update(
        FLUXLIT_TARGET=target,
        FLUXLIT_APP_DIR=str(REPO_ROOT),
        PYTHONPATH=os.pathsep.join([str(STANDIN_DIR), str(PYTHON_DIR)]),
    )
    environment.update(extra or {})
    return environment


def standin_command(
    port: int, extra_args: Sequence[str] = (), script: Path = ENTRY_SCRIPT
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        *extra_args,
    ]


def start_standin(
    extra_args: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
    base_path: str = "",
    script: Path = ENTRY_SCRIPT,
) -> Standin:
    """Start the stand-in on a free port and wait until its first stdout lines are out.

    The caller must call `kill()` (a fixture finaliser does) whatever happens next.
    """
    port = free_port()
    # The log goes to a file because an unread pipe would block the server once it is full.
    stderr_file = tempfile.TemporaryFile()
    process = subprocess.Popen(
        standin_command(port, extra_args, script),
        cwd=REPO_ROOT,
        env=dict(environment if environment is not None else standin_environment()),
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    standin = Standin(process=process, port=port, stderr_file=stderr_file, base_path=base_path)
    try:
        wait_for_url_line(standin)
    except BaseException:
        standin.kill()
        raise
    return standin


def wait_for_url_line(standin: Standin) -> None:
    """Read stdout until the `URL:` line; fail with the process's stderr if it exits first."""
    assert standin.process.stdout is not None
    found = threading.Event()

    def read_lines() -> None:
        assert standin.process.stdout is not None
        for line in standin.process.stdout:
            standin.stdout_lines.append(line)
            if "URL:" in line:
                found.set()

    standin.reader = threading.Thread(target=read_lines, daemon=True)
    standin.reader.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not found.wait(0.05):
        if standin.process.poll() is not None:
            raise AssertionError(
                f"stand-in exited with {standin.process.returncode} before starting:\n"
                f"{standin.stderr_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"stand-in printed no URL line in {STARTUP_TIMEOUT_SECONDS} s")


@dataclass
class UpgradeResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    sock: socket.socket
    rest: bytes  # bytes after the header block that arrived with it

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def raw_upgrade(port: int, path: str, headers: Mapping[str, str]) -> UpgradeResponse:
    """Send a WebSocket upgrade by hand, so tests control Host and Origin exactly."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"GET {path} HTTP/1.1"]
    request_headers = {
        "Host": f"127.0.0.1:{port}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        **headers,
    }
    lines += [f"{name}: {value}" for name, value in request_headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    head = head_bytes.decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    _, status, reason = status_line.split(" ", 2)
    parsed = [tuple(line.split(": ", 1)) for line in header_lines if ": " in line]
    return UpgradeResponse(int(status), reason, parsed, sock, rest)  # type: ignore[arg-type]
