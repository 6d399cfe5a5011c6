"""`fluxlit dev` reloads and Streamlit supervision, driven through the real binary."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import httpx

import harness

APP_SOURCE = textwrap.dedent(
    """
    from fluxlit import FluxLit

    app = FluxLit("reload")

    @app.api.get("/version")
    def version():
        return {"version": VERSION}

    @app.page("/", title="Version")
    def page(st, client):
        st.write(client.get_json("/version"))

    VERSION = 1
    """
)


def write_app(directory: Path, version: int, broken: bool = False) -> None:
    text = APP_SOURCE.replace("VERSION = 1", f"VERSION = {version}")
    if broken:
        text += "\ndef broken(:\n"
    harness.replace_app_file(directory, text)


class RequestLoop:
    """Requests the API in a loop on a thread and records every failure to connect."""

    def __init__(self, server: harness.Fluxlit) -> None:
        self.server = server
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self.stop.is_set():
                try:
                    self.statuses.append(client.get(self.server.api_url("/version")).status_code)
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                time.sleep(0.02)

    def __enter__(self) -> RequestLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def test_reload_changes_api_and_page(launcher: harness.Launcher, tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    server = launcher.start(
        "--reload-debounce-ms", "100", target="app:app", command="dev", cwd=tmp_path
    )
    harness.wait_for_version(server, 1)
    first_streamlit = server.streamlit_pid()

    with RequestLoop(server) as loop:
        write_app(tmp_path, 2)
        harness.wait_for_version(server, 2)
    assert loop.errors == []
    assert set(loop.statuses) == {200}

    server.wait_ready()
    assert server.streamlit_pid() != first_streamlit
    page = httpx.get(server.url("/_standin/run?page="), timeout=20)
    assert page.status_code == 200
    assert "'version': 2" in page.text or '"version": 2' in page.text


def test_reload_into_syntax_error_and_back(launcher: harness.Launcher, tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    server = launcher.start(
        "--reload-debounce-ms",
        "100",
        "--no-ui",
        target="app:app",
        command="dev",
        cwd=tmp_path,
        expected_errors=["reload of app:app failed"],
    )
    harness.wait_for_version(server, 1)

    write_app(tmp_path, 2, broken=True)
    deadline = time.monotonic() + 15
    response = None
    while time.monotonic() < deadline:
        response = httpx.get(server.api_url("/version"), timeout=5)
        if response.status_code == 500:
            break
        time.sleep(0.1)
    assert response is not None
    assert response.status_code == 500
    assert "SyntaxError" in response.text
    assert server.process.poll() is None

    write_app(tmp_path, 3)
    harness.wait_for_version(server, 3)


def test_run_does_not_reload_by_default(launcher: harness.Launcher, tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    server = launcher.start("--no-ui", target="app:app", cwd=tmp_path)
    harness.wait_for_version(server, 1)
    write_app(tmp_path, 2)
    time.sleep(1.5)
    assert httpx.get(server.api_url("/version"), timeout=5).json() == {"version": 1}


def test_killed_streamlit_comes_back(launcher: harness.Launcher) -> None:
    server = launcher.start()
    first = server.streamlit_pid()
    assert first is not None

    with httpx.Client(timeout=10) as client:
        os.kill(first, signal.SIGKILL)
        saw_unavailable = False
        api_statuses = []
        deadline = time.monotonic() + 20
        recovered = False
        while time.monotonic() < deadline:
            api_statuses.append(client.get(server.api_url("/users")).status_code)
            ui = client.get(server.url("/_stcore/host-config"))
            if ui.status_code == 503:
                saw_unavailable = True
                assert ui.headers.get("retry-after") is not None
            elif ui.status_code == 200 and saw_unavailable:
                recovered = True
                break
            time.sleep(0.05)

    assert saw_unavailable
    assert recovered
    assert set(api_statuses) == {200}
    assert server.streamlit_pid() != first


def test_crash_loop_turns_readiness_off(launcher: harness.Launcher, tmp_path: Path) -> None:
    # A `streamlit` package whose server exits at once, every time.
    package = tmp_path / "crashing" / "streamlit"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\nprint('ERROR crashing stand-in', flush=True)\nsys.exit(3)\n"
    )
    environment = harness.base_environment(standin=False)
    environment["PYTHONPATH"] = str(tmp_path / "crashing")
    server = launcher.start(
        "--streamlit-restart-initial-delay-ms",
        "50",
        "--streamlit-restart-max-delay-ms",
        "200",
        "--streamlit-crash-loop-count",
        "3",
        environment=environment,
        ready=False,
        expected_errors=["crash loop", "crashing stand-in"],
    )
    server.wait_for_log("crash loop", timeout=20)
    ready = httpx.get(server.api_url("/readyz"), timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["streamlit"]["state"] == "crash_loop"
    assert httpx.get(server.api_url("/users"), timeout=5).status_code == 200
    ui = httpx.get(server.url("/"), timeout=5)
    assert ui.status_code == 503
