"""Starting the fluxlit binary for end-to-end tests, and checking what it leaves behind.

Each server runs in its own session, so its process group is known. The Streamlit child runs in
a group of its own, so its process id is taken from the log and from the process tree and its
group is checked as well when the server has exited.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
APPS_DIR = E2E_DIR / "apps"
STANDIN_DIR = REPO_ROOT / "tests" / "standin"
HELLO_TARGET = f"{REPO_ROOT / 'examples' / 'hello' / 'app.py'}:app"

# The Sec-WebSocket-Key of the sample handshake in RFC 6455 section 1.3.
RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

# How long the binary may take to print its listening line after it starts.
LISTEN_TIMEOUT_SECONDS = 20.0
# How long readiness (the Streamlit child passing its health check) may take after listening.
READY_TIMEOUT_SECONDS = 20.0
# How long the binary may take to exit after SIGTERM. The default drain is 20 s, so tests that
# stop a server with requests in flight set a shorter --shutdown-grace-ms.
STOP_TIMEOUT_SECONDS = 30.0
# How long processes of a stopped server may take to disappear before they count as left over.
LEFTOVER_GRACE_SECONDS = 2.0

LISTENING_LINE = re.compile(r"^fluxlit listening on http://(?P<host>\S+):(?P<port>\d+)$")
STREAMLIT_PID = re.compile(r"Started Streamlit \(pid (\d+)")


def load_standin_assets() -> ModuleType:
    """Load the stand-in's generator of static and media bytes, to compare proxied bodies."""
    path = STANDIN_DIR / "streamlit" / "_assets.py"
    spec = importlib.util.spec_from_file_location("standin_assets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def binary_path() -> str:
    """Return the binary under test: FLUXLIT_BINARY, else the debug build of this checkout."""
    return os.environ.get("FLUXLIT_BINARY") or str(REPO_ROOT / "build" / "debug" / "fluxlit")


def base_environment(standin: bool = True) -> dict[str, str]:
    """Return this process's environment without FLUXLIT_* settings or an active virtualenv.

    With `standin`, tests/standin goes first on PYTHONPATH so that `python -m streamlit` runs the
    stand-in. Without it, any tests/standin entry is removed so that streamlit is not importable.
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUXLIT_", "STREAMLIT_")) and name != "VIRTUAL_ENV"
    }
    entries = [
        entry
        for entry in environment.get("PYTHONPATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != STANDIN_DIR
    ]
    if standin:
        entries.insert(0, str(STANDIN_DIR))
    if entries:
        environment["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        environment.pop("PYTHONPATH", None)
    return environment


# --- process table -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    start_ticks: int
    command: str


def read_process(pid: int) -> ProcessInfo | None:
    """Return the /proc entry of `pid`, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace"
        )
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in brackets may contain spaces, so split after its closing bracket.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        state=fields[0],
        start_ticks=int(fields[19]),
        command=command.strip(),
    )


def process_table() -> dict[int, ProcessInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_process(int(entry))
            if info is not None:
                table[info.pid] = info
    return table


def descendants(root_pid: int) -> list[ProcessInfo]:
    """Return every live process below `root_pid` in the process tree."""
    table = process_table()
    children: dict[int, list[ProcessInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found = []
    pending = [root_pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child.pid)
    return found


def runs_binary(pid: int) -> bool:
    """Return whether process `pid` runs the binary under test."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(binary_path())
    except OSError:
        return False


def is_running(info: ProcessInfo | None) -> bool:
    # A zombie has already exited and only waits for its parent to reap it.
    return info is not None and info.state != "Z"


# --- log capture ---------------------------------------------------------------------------


@dataclass
class LogLine:
    text: str
    record: dict[str, Any] | None

    @property
    def level(self) -> str | None:
        return self.record.get("level") if self.record else None

    @property
    def source(self) -> str | None:
        return self.record.get("source") if self.record else None

    @property
    def message(self) -> str:
        return str(self.record.get("msg", "")) if self.record else self.text


def parse_log_line(text: str) -> LogLine:
    try:
        record = json.loads(text)
    except ValueError:
        return LogLine(text, None)
    return LogLine(text, record if isinstance(record, dict) else None)


class LineCollector:
    """Reads a pipe line by line in a daemon thread and keeps every line."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def snapshot(self) -> list[str]:
        with self.changed:
            return list(self.lines)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float) -> str | None:
        """Return the first line that matches `pattern` (a substring or a regex), or None."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if (pattern in line) if isinstance(pattern, str) else pattern.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self.changed.wait(remaining)


# --- one running server --------------------------------------------------------------------


class StartupError(AssertionError):
    """The binary exited or stayed silent before it printed its listening line."""


@dataclass
class Fluxlit:
    """A started fluxlit process and everything it wrote."""

    process: subprocess.Popen[bytes]
    argv: list[str]
    stdout: LineCollector
    stderr: LineCollector
    host: str = "127.0.0.1"
    port: int = 0
    api_prefix: str = "/api"
    expected_errors: list[str] = field(default_factory=list)
    seen_processes: dict[int, ProcessInfo] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def api_url(self, path: str) -> str:
        return self.base_url + self.api_prefix + path

    # Logs

    def log_lines(self) -> list[LogLine]:
        return [parse_log_line(text) for text in self.stderr.snapshot()]

    def stderr_text(self) -> str:
        return "\n".join(self.stderr.snapshot())

    def stdout_lines(self) -> list[str]:
        return self.stdout.snapshot()

    def wait_for_log(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> str:
        """Return the first stderr line that contains `pattern` or matches it as a regex.

        The lines are raw JSON text, so quotes and line breaks of a message appear escaped.
        """
        line = self.stderr.wait_for(pattern, timeout)
        assert line is not None, (
            f"no log line matching {pattern!r} within {timeout} s; stderr:\n{self.stderr_text()}"
        )
        return line

    def expect_error(self, substring: str) -> None:
        """Allow log lines of level error or critical whose message contains `substring`."""
        self.expected_errors.append(substring)

    def unexpected_errors(self) -> list[str]:
        found = []
        for line in self.log_lines():
            if line.level not in ("error", "critical"):
                continue
            if any(expected in line.message for expected in self.expected_errors):
                continue
            found.append(line.text)
        return found

    # Processes

    def remember_processes(self) -> None:
        """Note the server's child processes now, so teardown can check that they are gone."""
        for info in descendants(self.pid):
            self.seen_processes[info.pid] = info
        for pid in self.logged_child_pids():
            info = read_process(pid)
            if info is not None:
                self.seen_processes[info.pid] = info

    def streamlit_pid(self) -> int | None:
        """Return the process id of the latest Streamlit child that the log announced."""
        found = None
        for line in self.stderr.snapshot():
            match = STREAMLIT_PID.search(line)
            if match:
                found = int(match.group(1))
        return found

    def logged_child_pids(self) -> set[int]:
        """Return the Streamlit process ids that the log announced."""
        found = set()
        for line in self.stderr.snapshot():
            match = STREAMLIT_PID.search(line)
            if match:
                found.add(int(match.group(1)))
        return found

    def watched_groups(self) -> set[int]:
        """Return the server's group and the groups of its children.

        The Streamlit child leads a group of its own, so its process id is also a group id.
        """
        seen_groups = {info.pgid for info in self.seen_processes.values()}
        return {self.pid} | seen_groups | self.logged_child_pids()

    def leftover_processes(self) -> list[ProcessInfo]:
        """Return live processes of the server's groups or seen as its children."""
        groups = self.watched_groups()
        left = []
        for info in process_table().values():
            if info.pgid in groups and is_running(info):
                left.append(info)
        for seen in self.seen_processes.values():
            now = read_process(seen.pid)
            same_process = now is not None and now.start_ticks == seen.start_ticks
            if same_process and is_running(now) and now.pgid not in groups:
                left.append(now)
        return left

    def wait_leftovers_gone(self, grace: float = LEFTOVER_GRACE_SECONDS) -> list[ProcessInfo]:
        deadline = time.monotonic() + grace
        while True:
            left = self.leftover_processes()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)

    def kill_leftovers(self, left: Iterable[ProcessInfo]) -> None:
        for group in self.watched_groups():
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for info in left:
            try:
                os.kill(info.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # Control

    def send_signal(self, number: int) -> None:
        if self.process.poll() is None:
            self.remember_processes()
            self.process.send_signal(number)

    def wait_exit(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Wait for the binary to exit and return its status; fail if it does not in time."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"fluxlit (pid {self.pid}) still running {timeout} s later; stderr:\n"
                f"{self.stderr_text()}"
            ) from None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send SIGTERM and return the exit status; SIGKILL the group if it hangs."""
        self.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_leftovers([])
            self.process.wait()
            raise AssertionError(
                f"fluxlit (pid {self.pid}) ignored SIGTERM for {timeout} s and was killed"
            ) from None

    def finish_output(self) -> None:
        """Wait until both pipes are read to their end, after the process has exited."""
        self.stdout.thread.join(5)
        self.stderr.thread.join(5)

    # HTTP

    def wait_ready(self, path: str | None = None, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll the readiness endpoint until it returns 200."""
        url = self.url(path or f"{self.api_prefix}/readyz")
        deadline = time.monotonic() + timeout
        last = "no response"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                response = httpx.get(url, timeout=2)
                if response.status_code == 200:
                    self.remember_processes()
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.1)
        raise AssertionError(
            f"{url} not ready within {timeout} s (last: {last}); stderr:\n{self.stderr_text()}"
        )

    def record(self) -> dict[str, Any]:
        """Return the stand-in's record, fetched through the gateway."""
        response = httpx.get(self.url("/_standin/record"), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Let processes started inside the block run on one CPU only, as `taskset -c N` does."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def spawn(
    arguments: Sequence[str],
    environment: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[subprocess.Popen[bytes], LineCollector, LineCollector]:
    """Start the binary with `arguments` in a new session, with both pipes read by threads."""
    binary = binary_path()
    assert os.access(binary, os.X_OK), (
        f"fluxlit binary not found or not executable at {binary}; build it with "
        "`cmake --build --preset debug --target fluxlit` or set FLUXLIT_BINARY"
    )
    process = subprocess.Popen(
        [binary, *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(environment) if environment is not None else base_environment(),
        cwd=str(cwd or REPO_ROOT),
        start_new_session=True,
    )
    return process, LineCollector(process.stdout), LineCollector(process.stderr)


def read_response_head(sock: socket.socket) -> tuple[list[str], bytes]:
    """Read one response head from `sock`; return its lines and the bytes that came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before the end of the response head: {data!r}"
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), rest


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response with a Content-Length; return its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = sock.recv(1 << 20)
        assert piece, len(body)
        body += piece
    return head, body


class RawClient:
    """One TCP connection with helpers to read whole responses."""

    def __init__(self, server: Fluxlit, timeout: float = 5.0) -> None:
        self.server = server
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def fill(self) -> bool:
        """Read more bytes into the buffer; return False at the end of the stream."""
        piece = self.sock.recv(65536)
        self.buffer += piece
        return bool(piece)

    def read_head(self) -> tuple[str, dict[str, str]]:
        """Read one response head: the status line, and the headers with lower-case names."""
        while b"\r\n\r\n" not in self.buffer:
            assert self.fill(), f"connection closed inside a response head: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return lines[0], headers

    def response(self) -> tuple[str, dict[str, str], bytes]:
        """Read one response with a Content-Length body: status line, headers, body."""
        status_line, headers = self.read_head()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self.fill(), "connection closed inside a response body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status_line, headers, body

    def closed_within(self, seconds: float) -> bool:
        """Return whether the server closes the connection within `seconds`."""
        self.sock.settimeout(seconds)
        try:
            while self.fill():
                pass
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return True


def replace_app_file(directory: Path, text: str) -> None:
    """Write `text` to `directory`/app.py through a temporary file and a rename, so that a
    reload watcher never reads a half-written file."""
    temporary = directory / "app.py.tmp"
    temporary.write_text(text)
    os.replace(temporary, directory / "app.py")


def wait_for_version(server: Fluxlit, expected: int, timeout: float = 15.0) -> None:
    """Wait until GET <api_prefix>/version returns {"version": expected}, or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        response = httpx.get(server.api_url("/version"), timeout=5)
        last = (response.status_code, response.text)
        if response.status_code == 200 and response.json() == {"version": expected}:
            return
        time.sleep(0.1)
    raise AssertionError(
        f"the API did not serve version {expected} within {timeout} s; last: {last}"
    )


class Launcher:
    """Starts servers for a test or a module and checks each one when it is closed."""

    def __init__(self) -> None:
        self.servers: list[Fluxlit] = []

    def start(
        self,
        *extra: str,
        target: str | None = HELLO_TARGET,
        command: str = "run",
        port: str | None = "0",
        environment: Mapping[str, str] | None = None,
        extra_environment: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        api_prefix: str = "/api",
        ready: bool = True,
        expected_errors: Sequence[str] = (),
    ) -> Fluxlit:
        """Start `fluxlit <command> [target] [--port <port>] <extra...>` and wait until it listens.

        `api_prefix` only sets where the helper polls the readiness endpoint, so pass the flag
        in `extra` to change the server's prefix. With `ready`, wait until readiness returns 200.
        """
        arguments = [command]
        if target is not None:
            arguments.append(target)
        if port is not None:
            arguments += ["--port", port]
        arguments += list(extra)
        merged = dict(environment) if environment is not None else base_environment()
        merged.update(extra_environment or {})
        process, stdout, stderr = spawn(arguments, merged, cwd)
        server = Fluxlit(
            process=process,
            argv=arguments,
            stdout=stdout,
            stderr=stderr,
            api_prefix=api_prefix,
            expected_errors=list(expected_errors),
        )
        self.servers.append(server)

        line = stdout.wait_for(LISTENING_LINE, LISTEN_TIMEOUT_SECONDS)
        if line is None:
            status = process.poll()
            state = "still running" if status is None else f"exited with status {status}"
            raise StartupError(
                f"fluxlit {' '.join(arguments)} printed no listening line within "
                f"{LISTEN_TIMEOUT_SECONDS} s ({state}); stdout:\n{chr(10).join(stdout.snapshot())}"
                f"\nstderr:\n{server.stderr_text()}"
            )
        match = LISTENING_LINE.match(line)
        assert match is not None
        server.host = match.group("host")
        server.port = int(match.group("port"))
        server.remember_processes()
        if ready:
            server.wait_ready()
        return server

    def close(self) -> None:
        """Stop every server and fail on leftover processes or unexpected error log lines."""
        problems = []
        for server in self.servers:
            try:
                if server.process.poll() is None:
                    server.stop()
            except AssertionError as error:
                problems.append(str(error))
            left = server.wait_leftovers_gone()
            if left:
                server.kill_leftovers(left)
                listed = ", ".join(f"{info.pid} ({info.command})" for info in left)
                problems.append(f"processes left after fluxlit {server.argv} exited: {listed}")
            server.finish_output()
            errors = server.unexpected_errors()
            if errors:
                problems.append(
                    f"unexpected error log lines from fluxlit {server.argv}:\n" + "\n".join(errors)
                )
        self.servers.clear()
        assert not problems, "\n\n".join(problems)


@dataclass
class Finished:
    """A run of the binary that was expected to exit on its own."""

    status: int
    stdout: str
    stderr: str
    leftovers: list[ProcessInfo]


def run_to_exit(
    arguments: Sequence[str],
    environment: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = LISTEN_TIMEOUT_SECONDS,
) -> Finished:
    """Run the binary until it exits on its own; fail if it is still running after `timeout`."""
    process, stdout, stderr = spawn(arguments, environment, cwd)
    server = Fluxlit(process=process, argv=list(arguments), stdout=stdout, stderr=stderr)
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.remember_processes()
        server.kill_leftovers([])
        process.wait()
        raise AssertionError(
            f"fluxlit {list(arguments)} still running after {timeout} s; stdout:\n"
            f"{chr(10).join(stdout.snapshot())}\nstderr:\n{server.stderr_text()}"
        ) from None
    left = server.wait_leftovers_gone()
    server.kill_leftovers(left)
    server.finish_output()
    return Finished(
        status=status,
        stdout="\n".join(stdout.snapshot()),
        stderr=server.stderr_text(),
        leftovers=left,
    )


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final client frame; clients must mask every frame they send."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def raw_upgrade(
    server: Fluxlit, origin: str, path: str = "/_stcore/stream"
) -> tuple[socket.socket, list[str], bytes]:
    """Send a browser-like upgrade with unusual header case; return the socket and response."""
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {server.authority}\r\n"
        "Upgrade: WebSocket\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        f"Sec-WebSocket-Key: {RFC_SAMPLE_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit, PLACEHOLDER_AUTH_TOKEN\r\n"
        f"Origin: {origin}\r\n"
        "\r\n"
    )
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(request.encode())
    lines, rest = read_response_head(sock)
    return sock, lines, rest
