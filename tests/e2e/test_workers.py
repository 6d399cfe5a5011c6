"""`fluxlit run --workers N`: worker processes that share the port and one Streamlit child."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

import harness

WORKERS_TARGET = f"{harness.APPS_DIR / 'workers_app.py'}:app"
FAILING_LIFESPAN_TARGET = f"{harness.APPS_DIR / 'failing_lifespan.py'}:app"
LIFESPAN_FAILURE = "e2e-lifespan: database at db.invalid:5432 is unreachable"
# Fresh connections sent until every worker has served one. The kernel picks a worker's socket
# by a hash of the connection's addresses and ports, so by estimate a few dozen reach each worker.
MAX_ATTEMPTS = 200


def worker_pids(server: harness.Fluxlit) -> list[int]:
    """Return the worker processes of `server`: the children of its parent that run the binary."""
    return [
        info.pid
        for info in harness.descendants(server.pid)
        if info.ppid == server.pid and harness.is_running(info) and harness.runs_binary(info.pid)
    ]


def test_workers_share_port_and_lifespans(
    launcher: harness.Launcher,
) -> None:
    server = launcher.start("--workers", "3", target=WORKERS_TARGET)
    children = set(worker_pids(server))
    assert len(children) == 3, harness.descendants(server.pid)

    seen: set[int] = set()
    for _ in range(MAX_ATTEMPTS):
        body = httpx.get(server.api_url("/pid"), timeout=10).json()
        # Each worker ran the startup handler once, in its own process.
        assert body["started_in"] == [body["pid"]]
        seen.add(body["pid"])
        if len(seen) == 3:
            break
    assert seen == children

    # UI paths go through the workers to the one Streamlit child.
    assert any("streamlit" in info.command for info in harness.descendants(server.pid))
    page = httpx.get(server.url("/"), timeout=10)
    assert page.status_code == 200
    ready = httpx.get(server.api_url("/readyz"), timeout=10).json()
    assert ready["checks"]["streamlit"] == {"ok": True, "state": "ready"}
    assert server.wait_for_log("3 workers serving")


def test_workers_replace_killed_worker(launcher: harness.Launcher) -> None:
    server = launcher.start(
        "--workers", "2", "--no-ui", target=WORKERS_TARGET, expected_errors=["starting a replacement"]
    )
    before = set(worker_pids(server))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    # Connections that the kernel queues for the dead worker's socket wait for its replacement.
    failures: list[str] = []
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            response = httpx.get(server.api_url("/pid"), timeout=10)
        except httpx.HTTPError as error:
            failures.append(repr(error))
            continue
        if response.status_code != 200:
            failures.append(f"{response.status_code} {response.text}")
            continue
        seen.add(response.json()["pid"])
        if len(seen - before) == 1 and len(seen) >= 2:
            break
    assert not failures, failures
    replacement = seen - before
    assert len(replacement) == 1, seen
    assert victim not in seen
    assert server.wait_for_log(f"(pid {victim}) exited with signal 9")
    server.remember_processes()


def test_sigterm_drains_every_worker_and_runs_each_shutdown(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    shutdown_log = tmp_path / "shutdown.log"
    server = launcher.start(
        "--workers",
        "2",
        "--shutdown-grace-ms",
        "10000",
        target=WORKERS_TARGET,
        extra_environment={"WORKERS_APP_SHUTDOWN_LOG": str(shutdown_log)},
    )
    workers = set(worker_pids(server))
    assert len(workers) == 2

    # Slow requests on fresh connections until both workers hold at least one.
    results: list[tuple[int, int]] = []
    errors: list[str] = []

    def slow_request() -> None:
        try:
            response = httpx.get(server.api_url("/slow?seconds=3"), timeout=30)
            results.append((response.status_code, response.json()["pid"]))
        except httpx.HTTPError as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=slow_request) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    server.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert server.wait_exit() == 0
    assert not errors, errors
    assert len(results) == 12
    assert {status for status, _ in results} == {200}
    assert {pid for _, pid in results} == workers
    stopped = shutdown_log.read_text(encoding="utf-8").split()
    assert sorted(int(pid) for pid in stopped) == sorted(workers)
    for pid in workers:
        assert server.wait_for_log(f"(pid {pid}) stopped (exit code 0)")
    assert server.wait_for_log("Streamlit") is not None


def test_workers_stop_the_server_when_one_cannot_start() -> None:
    finished = harness.run_to_exit(
        ["run", FAILING_LIFESPAN_TARGET, "--port", "0", "--workers", "2"], timeout=60
    )
    assert finished.status == 1, finished.stderr
    assert LIFESPAN_FAILURE in finished.stderr
    assert "while starting, and no other worker can serve without it; stopping" in finished.stderr
    assert "fluxlit listening on" not in finished.stdout
    assert not finished.leftovers, finished.leftovers


def test_workers_and_reload_are_refused_with_the_fix() -> None:
    finished = harness.run_to_exit(["dev", WORKERS_TARGET, "--port", "0", "--workers", "2"])
    assert finished.status == 2
    assert "workers = 2 (set by --workers) cannot be combined with fluxlit dev's reload" in (
        finished.stderr
    )
    assert "--no-reload" in finished.stderr
    assert "fluxlit run --workers 2" in finished.stderr

    environment = harness.base_environment()
    environment.update({"FLUXLIT_WORKERS": "3", "FLUXLIT_RELOAD": "true"})
    for command in (["run", WORKERS_TARGET, "--port", "0"], ["config", WORKERS_TARGET]):
        finished = harness.run_to_exit(command, environment)
        assert finished.status == 2, (command, finished.stdout, finished.stderr)
        assert (
            "workers = 3 (set by FLUXLIT_WORKERS) cannot be combined with reload = true "
            "(set by FLUXLIT_RELOAD)" in finished.stderr
        )


def test_workers_exit_with_killed_parent(launcher: harness.Launcher) -> None:
    server = launcher.start("--workers", "2", target=WORKERS_TARGET)
    children = harness.descendants(server.pid)
    assert len(children) >= 3, children
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 15
    alive = children
    while time.monotonic() < deadline:
        alive = [
            info
            for info in children
            if (now := harness.read_process(info.pid)) is not None
            and now.start_ticks == info.start_ticks
            and harness.is_running(now)
        ]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, alive
    server.expected_errors.append("parent process")


def test_streamlit_state_reaches_every_worker(launcher: harness.Launcher) -> None:
    server = launcher.start(
        "--workers",
        "2",
        target=WORKERS_TARGET,
        expected_errors=["Streamlit", "exited"],
    )
    first = server.streamlit_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)

    # Every worker reports the restart, then the new child; both show in readyz and UI paths.
    saw_not_ready = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = httpx.get(server.api_url("/readyz"), timeout=10)
        if response.status_code == 503:
            saw_not_ready = True
            assert response.json()["checks"]["streamlit"]["ok"] is False
        elif saw_not_ready and server.streamlit_pid() not in (None, first):
            break
        time.sleep(0.02)
    assert saw_not_ready
    for _ in range(20):
        assert httpx.get(server.url("/"), timeout=10).status_code == 200
        assert httpx.get(server.api_url("/readyz"), timeout=10).status_code == 200


@pytest.mark.parametrize("value", ["0", "two", "513"])
def test_workers_flag_names_a_bad_count(value: str) -> None:
    finished = harness.run_to_exit(["run", WORKERS_TARGET, "--port", "0", "--workers", value])
    assert finished.status == 2
    assert value in finished.stderr
    assert "workers" in finished.stderr


def test_workers_keep_serving_while_a_replacement_cannot_start(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    flag = tmp_path / "broken.flag"
    server = launcher.start(
        "--workers",
        "2",
        "--no-ui",
        target=f"{harness.APPS_DIR / 'flag_guarded_app.py'}:app",
        extra_environment={"FLAG_GUARDED_APP_FLAG": str(flag)},
        expected_errors=["e2e-flag", "starting a replacement", "while starting"],
    )
    first, second = sorted(worker_pids(server))
    flag.write_text("broken\n", encoding="utf-8")
    os.kill(first, signal.SIGKILL)

    # Once a replacement failed, its socket is closed: the remaining worker serves every
    # request, and none waits for the replacements that keep failing.
    assert server.wait_for_log("e2e-flag")
    assert server.wait_for_log(re.compile(r"worker \d \(pid \d+\) exited with exit code 1; "))
    for _ in range(40):
        response = httpx.get(server.api_url("/pid"), timeout=5)
        assert response.status_code == 200
        assert response.json()["pid"] == second

    # With no worker serving and none able to start, the server stops instead of hanging.
    os.kill(second, signal.SIGKILL)
    assert server.wait_exit(30) != 0
    assert server.wait_for_log("while starting, and no other worker is serving; stopping")
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.api_url("/pid"), timeout=5)


def test_workers_refuse_a_port_in_use() -> None:
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = harness.run_to_exit(
            ["run", WORKERS_TARGET, "--port", str(port), "--workers", "2"]
        )
    assert finished.status == 1
    assert f"cannot listen on 127.0.0.1:{port}" in finished.stderr
    assert "Address already in use" in finished.stderr
    assert not finished.leftovers


@pytest.mark.parametrize("workers", ["1", "2"])
def test_group_sigterm_keeps_one_streamlit(
    launcher: harness.Launcher, workers: str
) -> None:
    server = launcher.start(
        "--workers", workers, target=WORKERS_TARGET, expected_errors=["exited unexpectedly"]
    )
    child = server.streamlit_pid()
    assert child is not None
    # What a service manager does when it stops a whole control group: everyone gets SIGTERM.
    server.send_signal(signal.SIGTERM)
    # On a busy machine the server can stop and reap the child before this line runs.
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGTERM)
    assert server.wait_exit() == 0
    server.finish_output()
    # The child may exit before the server handles its own signal, but no second child starts.
    assert len(server.logged_child_pids()) == 1, server.stderr_text()


def api_successes_by_worker(server: harness.Fluxlit) -> dict[str, int]:
    """Return fluxlit_requests_total for API routes with status 2xx, by worker label."""
    text = httpx.get(server.api_url("/metrics"), timeout=10).text
    found = {}
    for match in re.finditer(
        r'^fluxlit_requests_total\{worker="(\d+)",route="api",status="2xx"\} (\S+)$', text, re.M
    ):
        found[match.group(1)] = int(float(match.group(2)))
    return found


def test_metrics_cover_every_worker(launcher: harness.Launcher) -> None:
    server = launcher.start("--workers", "2", "--no-ui", target=WORKERS_TARGET)
    served: dict[int, int] = {}
    for _ in range(MAX_ATTEMPTS):
        pid = httpx.get(server.api_url("/pid"), timeout=10).json()["pid"]
        served[pid] = served.get(pid, 0) + 1
        if len(served) == 2 and sum(served.values()) >= 20:
            break
    assert len(served) == 2, served

    # Each worker publishes its counters at least once a second, and the worker that serves a
    # scrape reads every worker's. Scrapes are native requests, so the API counts stay put.
    deadline = time.monotonic() + 5
    while True:
        counts = api_successes_by_worker(server)
        if sorted(counts.values()) == sorted(served.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(counts.values()) == sorted(served.values()), (counts, served)
    assert set(counts) == {"1", "2"}

    # One HELP and TYPE line per family, and each worker's gauges.
    text = httpx.get(server.api_url("/metrics"), timeout=10).text
    assert text.count("# TYPE fluxlit_requests_total counter") == 1, text
    assert re.search(r'^fluxlit_open_connections\{worker="1"\} \d+$', text, re.M), text
    assert re.search(r'^fluxlit_open_connections\{worker="2"\} \d+$', text, re.M), text
