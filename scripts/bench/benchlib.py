"""Helpers shared by the benchmark drivers: processes, /proc sampling, wrk, machine facts and
Markdown tables.

Every server these helpers start listens on 127.0.0.1 and every load goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parents[1]
WRK_SCRIPT = BENCH_DIR / "wrk_report.lua"
# Debian's interpreter, which has the FastAPI, uvicorn and Tornado that the benchmarks use. The
# `python3` on PATH may be another build without them.
PYTHON = "/usr/bin/python3"
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
LISTENING_LINE = re.compile(rb"fluxlit listening on http://\S+:(\d+)")

SERVER_CPU = "0"
LOAD_CPU = "1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- processes -----------------------------------------------------------------------------


class Server:
    """A child process pinned to one CPU, in its own session so it can be stopped as a group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        environment: dict[str, str] | None = None,
        cpu: str = SERVER_CPU,
        working_directory: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", cpu, *command],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=working_directory,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        # taskset execs the command, so the child's pid is the server's pid.
        return self.process.pid

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with status {self.process.returncode}; its log "
                f"{self.log_path} ends with:\n{self.log_text()[-2000:]}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """Send SIGTERM to the server, then SIGKILL to its process group if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # A child of the server (the Streamlit stand-in) may outlive it; its group is ours.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()


@contextlib.contextmanager
def stop_on_failure(server: Server) -> Iterator[Server]:
    """Stop `server` if the block raises, Ctrl-C included.

    Wrap the wait for a server that has just started: until its start function returns, no
    caller has the server to stop it.
    """
    try:
        yield server
    except BaseException:
        server.stop()
        raise


def wait_for_port_line(server: Server, timeout: float = 30.0) -> int:
    """Wait for fluxlit's `listening on` line in the server's log and return its port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        match = LISTENING_LINE.search(server.log_path.read_bytes())
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise TimeoutError(f"{server.name} printed no listening line within {timeout} s")


def wait_for_http(url: str, server: Server, timeout: float = 60.0) -> None:
    """Poll `url` until it returns 200 or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_error = "no response"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"status {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = str(error)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not return 200 within {timeout} s: {last_error}")


def descendant_pids(root_pid: int) -> list[int]:
    """Return the pids of every live process below `root_pid`."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        for child in children.get(pid, []):
            found.append(child)
            pending.append(child)
    return found


def start_nginx(
    name: str, work_directory: Path, template: str, fields: dict[str, str], ready_path: str
) -> tuple[Server, str, int]:
    """Start nginx with one worker from the template file `template` in this directory.

    The template's @PREFIX@, @NOFILE@, @WORKER_CONNECTIONS@ and @LISTEN_PORT@ are filled here and
    the other @NAME@ fields from `fields`. Returns the server (the master process), its base
    URL once `ready_path` returns 200, and the pid of its worker.
    """
    prefix = work_directory / name
    prefix.mkdir()
    # nginx's worker runs as `nobody` when started by root and must reach its files.
    for directory in (work_directory, prefix):
        directory.chmod(0o755)
    port = free_port()
    _, hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = min(65536, hard_limit if hard_limit != resource.RLIM_INFINITY else 65536)
    config = (
        (BENCH_DIR / template).read_text()
        .replace("@PREFIX@", str(prefix))
        .replace("@NOFILE@", str(nofile))
        .replace("@WORKER_CONNECTIONS@", str(min(8192, nofile // 2)))
        .replace("@LISTEN_PORT@", str(port))
    )
    for field_name, value in fields.items():
        config = config.replace(f"@{field_name}@", value)
    (prefix / "nginx.conf").write_text(config)
    server = Server(
        name,
        ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
         str(prefix / "error.log")],
        work_directory / f"{name}.log",
    )
    base = f"http://127.0.0.1:{port}"
    with stop_on_failure(server):
        wait_for_http(base + ready_path, server)
        workers = descendant_pids(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one nginx worker below pid {server.pid}, found {workers}")
    return server, base, workers[0]


# --- /proc sampling ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return user plus system CPU time of every thread of `pid`, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of the full line, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def rss_bytes(pid: int) -> int:
    """Return the resident set size of `pid` (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line for pid {pid}")


def busy_cpu_seconds() -> float:
    """Return the CPU time that all CPUs spent busy since boot, from /proc/stat, in seconds."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields) - idle) / CLOCK_TICKS_PER_SECOND


class OtherLoad:
    """Measure, over a `with` block, the CPU time used by processes other than the benchmark's.

    The benchmark's share is the CPU time of `pids`, of this driver and of the children it
    reaped inside the block (wrk, the WebSocket client). What is left of the machine's busy time
    is other load, which skews the run; `cpu_fraction` gives it as a share of one CPU.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.cpu_fraction = 0.0

    @staticmethod
    def _own_seconds() -> float:
        total = 0.0
        for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(scope)
            total += usage.ru_utime + usage.ru_stime
        return total

    def __enter__(self) -> "OtherLoad":
        self._busy = busy_cpu_seconds()
        self._own = self._own_seconds()
        self._pids = sum(cpu_seconds(pid) for pid in self.pids)
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exception: object) -> None:
        busy = busy_cpu_seconds() - self._busy
        own = self._own_seconds() - self._own
        pids = sum(cpu_seconds(pid) for pid in self.pids) - self._pids
        wall = time.monotonic() - self._wall
        self.cpu_fraction = max(0.0, busy - own - pids) / wall if wall > 0 else 0.0


# --- wrk -----------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    p50_us: int
    p99_us: int
    errors: int
    load_cpu_fraction: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s


def run_wrk(
    url: str,
    duration_s: int,
    connections: int,
    post_body_file: Path | None = None,
) -> WrkResult:
    """Run one wrk thread on the load CPU against `url` and parse the script's result line."""
    environment = dict(os.environ)
    environment["BENCH_POST_BODY_FILE"] = str(post_body_file) if post_body_file else ""

    command = [
        "taskset", "-c", LOAD_CPU, "wrk",
        "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s",
        "-s", str(WRK_SCRIPT), url,
    ]
    # The driver reaps no other child while wrk runs, so the children's usage delta is wrk's.
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=duration_s + 60
    )
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_cpu = (usage_after.ru_utime + usage_after.ru_stime) - (
        usage_before.ru_utime + usage_before.ru_stime
    )

    match = re.search(r"^WRK_RESULT (.*)$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(
            f"wrk failed on {url} (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    values = dict(pair.split("=") for pair in match.group(1).split())
    errors = sum(
        int(values[key])
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return WrkResult(
        requests=int(values["requests"]),
        duration_s=int(values["duration_us"]) / 1e6,
        p50_us=int(values["p50_us"]),
        p99_us=int(values["p99_us"]),
        errors=errors,
        load_cpu_fraction=load_cpu / (int(values["duration_us"]) / 1e6),
    )


# --- machine facts -------------------------------------------------------------------------


def _first_line(command: Sequence[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    output = (completed.stdout or completed.stderr).strip()
    return output.splitlines()[0] if output else "unavailable"


def _python_versions(modules: Sequence[str]) -> str:
    code = (
        "import importlib, json, sys\n"
        "found = {'python': sys.version.split()[0]}\n"
        f"for name in {list(modules)!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    found[name] = getattr(module, '__version__', None) or getattr(module, 'VERSION', None)"
        " or getattr(module, 'version', '?')\n"
        "print(json.dumps(found))\n"
    )
    found = json.loads(subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                                      check=True).stdout)
    return ", ".join(f"{name} {version}" for name, version in found.items())


def machine_facts(
    fluxlit_binary: Path, python_modules: Sequence[str], tools: Sequence[str]
) -> dict:
    """Collect the CPU model, core count, kernel and the versions of every program measured."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    binary_time = datetime.fromtimestamp(fluxlit_binary.stat().st_mtime, timezone.utc)
    binary_time = binary_time.strftime("%Y-%m-%d %H:%M")
    facts = {
        "CPU": model,
        "Cores": str(os.cpu_count()),
        "Memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "Kernel": platform.release(),
        "Checkout": _first_line(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"]),
        "FluxLit": _first_line([str(fluxlit_binary), "version"]),
        "Binary": f"{fluxlit_binary}, modified {binary_time} UTC",
        "Python packages": _python_versions(python_modules),
    }
    tool_commands = {"wrk": ["wrk", "-v"], "nginx": ["nginx", "-v"]}
    for tool in tools:
        facts[tool] = _first_line(tool_commands[tool])
    return facts


def facts_markdown(facts: dict) -> str:
    return "\n".join(f"- {name}: {value}" for name, value in facts.items())


# --- results -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.2f}"


def format_ratio(value: float) -> str:
    return f"{value:.2f}x"


def write_report(text: str, output: Path | None, append: Path | None) -> None:
    """Print the report, and write it to `output` and/or append it to `append`."""
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    if append is not None:
        with open(append, "a") as file:
            file.write("\n" + text + "\n")
