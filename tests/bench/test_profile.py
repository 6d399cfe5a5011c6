"""scripts/bench/profile.py: CPU accounting on real perf recordings, and loads that get errors."""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "scripts" / "bench"
PYTHON = "/usr/bin/python3"

needs_perf = pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def load_profile_script() -> ModuleType:
    # The file is named like the standard library's `profile`, so it is loaded by path.
    sys.path.insert(0, str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location("bench_profile", BENCH_DIR / "profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spin(cpu: int, seconds: float) -> subprocess.Popen:
    """Start a `python3` process on `cpu` that keeps it busy for `seconds` of wall time."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    return subprocess.Popen(["taskset", "-c", str(cpu), PYTHON, "-c", code])


@needs_perf
def test_cpu_time_ignores_same_named_process(tmp_path: Path) -> None:
    # Two processes named python3 share one CPU. The other one runs from before the recording
    # and the measured one starts later, so a report that merged processes by command name
    # would credit their shared rows to the other one.
    profile = load_profile_script()
    cpu = max(os.sched_getaffinity(0))
    data = tmp_path / "spin.perf"
    other = spin(cpu, 4.0)
    try:
        recorder = subprocess.Popen(
            ["perf", "record", "-a", "-C", str(cpu), "-e", "cpu-clock", "-F", "1000",
             "-o", str(data), "--", "sleep", "3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(0.8)
        # No other child is reaped meanwhile, so the change is the measured process's CPU time.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        measured = spin(cpu, 1.0)
        measured.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        _, errors = recorder.communicate(timeout=60)
        assert recorder.returncode == 0, errors
    finally:
        other.kill()
        other.wait()

    by_object = profile.perf_cpu_seconds(data, [measured.pid], "comm,dso")
    sampled_seconds = sum(by_object.values())
    used_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if used_seconds < 0.2:
        pytest.skip(f"the measured process ran for {used_seconds:.2f} s of CPU only; other "
                    "processes kept the CPU busy")
    assert sampled_seconds == pytest.approx(used_seconds, rel=0.2)


class NotFoundHandler(BaseHTTPRequestHandler):
    """Request handler that sends an empty 404 for every GET and keeps the connection open."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server looks up)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@needs_wrk
def test_load_of_error_responses_exits(tmp_path: Path) -> None:
    # A mistyped target must stop the profile instead of profiling the 404s.
    profile = load_profile_script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFoundHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(SystemExit) as stopped:
            profile.run_load("proxy", "/missing", base, 1, 2, tmp_path / "echo.json")
    finally:
        server.shutdown()
        server.server_close()
    message = str(stopped.value)
    assert f"{base}/missing" in message
    assert "error responses" in message


needs_uvicorn = pytest.mark.skipif(
    subprocess.run([PYTHON, "-c", "import uvicorn"], capture_output=True).returncode != 0,
    reason="uvicorn is not installed for /usr/bin/python3",
)


@needs_wrk
@needs_uvicorn
def test_app_mode_splits_cpu() -> None:
    binary = Path(os.environ.get("FLUXLIT_BINARY") or
                  BENCH_DIR.parents[1] / "build" / "debug" / "fluxlit")
    completed = subprocess.run(
        [PYTHON, str(BENCH_DIR / "profile.py"), "app", "api", "/trivial", "--seconds", "1",
         "--connections", "4", "--binary", str(binary)],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1]
            for line in completed.stdout.splitlines() if line.startswith("| ")}
    assert set(rows) >= {"fluxlit", "uvicorn"}
    for server in ("fluxlit", "uvicorn"):
        requests_per_second, cpu, in_loop, under_load, _, rest = (
            float(cell.strip().replace(",", "")) for cell in rows[server])
        assert requests_per_second > 0
        assert 0 < in_loop < cpu
        assert 0 < under_load < cpu
        assert rest == pytest.approx(cpu - under_load, abs=0.11)


def test_app_mode_rejects_route_outside_app() -> None:
    # The loop inside the server can run only the benchmark app's routes, so any other route
    # must stop the script before any load runs.
    completed = subprocess.run(
        [PYTHON, str(BENCH_DIR / "profile.py"), "app", "api", "/openapi.json", "--seconds", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode != 0
    assert "/trivial, /items, /echo, /large" in completed.stderr


def test_zero_seconds_rejected() -> None:
    completed = subprocess.run(
        [PYTHON, str(BENCH_DIR / "profile.py"), "cpu", "api", "/trivial", "--seconds", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 2
    assert "0 is not a whole number of 1 or more" in completed.stderr
