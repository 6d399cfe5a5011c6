"""`fluxlit doctor`: one PASS/WARN/FAIL row per check, JSON output, exit statuses."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from commands_support import make_project, run_fluxlit, run_json, write

FLUXLIT_APP = """
from fluxlit import FluxLit

app = FluxLit("Doctor Demo")


@app.page("/")
def home(st, client):
    st.title("Home")
"""

ALWAYS_CHECKED = [
    "configuration",
    "interpreter",
    "fastapi",
    "streamlit",
    "target",
    "port",
    "streamlit_config",
    "forwarded_trust",
    "root_path_trust",
    "body_limit",
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, FLUXLIT_APP)


def doctor(project: Path, *arguments: str, **kwargs):
    """Run `doctor --json --port 0` so that no fixed port is needed, and return both results."""
    return run_json(["doctor", "--json", "--port", "0", *arguments], project, **kwargs)


def rows(document: dict, name: str) -> list[dict]:
    return [check for check in document["checks"] if check["name"] == name]


def status_of(document: dict, name: str) -> str:
    found = rows(document, name)
    assert len(found) == 1, found
    return found[0]["status"]


def test_healthy_project_passes(project: Path) -> None:
    result, document = doctor(project)
    assert result.returncode == 0, result.stdout
    assert [check["name"] for check in document["checks"]] == ALWAYS_CHECKED
    assert {check["status"] for check in document["checks"]} == {"PASS"}
    assert document["summary"] == {"pass": 10, "warn": 0, "fail": 0}
    assert document["strict"] is False
    assert document["exit_status"] == 0
    assert "configuration" not in document


def test_json_check_objects_have_documented_keys(project: Path) -> None:
    _, document = doctor(project)
    assert list(document) == ["checks", "summary", "strict", "exit_status"]
    for check in document["checks"]:
        assert list(check) == ["name", "status", "detail"]


def test_text_rows_are_aligned(project: Path) -> None:
    result = run_fluxlit(["doctor", "--port", "0"], project)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    check_lines = lines[: len(ALWAYS_CHECKED)]
    detail_columns = {len(line) - len(line.split(None, 2)[2]) for line in check_lines}
    assert len(detail_columns) == 1, check_lines
    assert all(line.startswith("PASS  ") for line in check_lines)
    assert lines[-1] == "Summary: 10 PASS, 0 WARN, 0 FAIL"


def test_target_details_name_the_app(project: Path) -> None:
    _, document = doctor(project)
    target = rows(document, "target")[0]
    assert target["detail"] == 'app:app is a FluxLit app "Doctor Demo" with 1 page(s)'
    interpreter = rows(document, "interpreter")[0]
    assert "matches the linked libpython 3.11" in interpreter["detail"]


def test_missing_streamlit_warns_with_a_working_install_command(project: Path) -> None:
    # run serves the API without Streamlit, so doctor warns rather than fails. Debian's
    # interpreter refuses a plain pip install (PEP 668), so the command makes a virtualenv.
    result, document = doctor(project, standin=False)
    assert result.returncode == 0, document
    streamlit = rows(document, "streamlit")[0]
    assert streamlit["status"] == "WARN"
    assert "Streamlit is not installed for /usr/bin/python3" in streamlit["detail"]
    assert "serves the API alone" in streamlit["detail"]
    assert (
        "/usr/bin/python3 -m venv --system-site-packages .venv && .venv/bin/pip install "
        "'streamlit>=1.36', then start FluxLit with --python .venv/bin/python"
    ) in streamlit["detail"]
    strict, _ = doctor(project, "--strict", standin=False)
    assert strict.returncode == 1


def test_no_ui_does_not_need_streamlit(project: Path) -> None:
    result, document = doctor(project, "--no-ui", standin=False)
    assert result.returncode == 0, document
    assert status_of(document, "streamlit") == "PASS"
    assert "no_ui" in rows(document, "streamlit")[0]["detail"]


def test_old_streamlit_fails(project: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    write(old, "streamlit/__init__.py", "__version__ = '1.35.0'\n")
    result, document = doctor(project, env={"PYTHONPATH": str(old)}, standin=False)
    assert result.returncode == 1
    detail = rows(document, "streamlit")[0]["detail"]
    assert "Streamlit 1.35.0 is older than 1.36" in detail
    assert "st.navigation" in detail


def test_port_in_use_fails(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, document = run_json(["doctor", "--json", "--port", str(port)], project)
    assert result.returncode == 1
    check = rows(document, "port")[0]
    assert check["status"] == "FAIL"
    assert f"cannot bind 127.0.0.1:{port}" in check["detail"]


def test_import_error_fails_and_other_checks_still_run(project: Path) -> None:
    write(project, "broken.py", "raise RuntimeError('database unreachable')\n")
    result, document = doctor(project, "broken:app")
    assert result.returncode == 1
    target = rows(document, "target")[0]
    assert target["status"] == "FAIL"
    assert "RuntimeError: database unreachable" in target["detail"]
    assert "Traceback" not in target["detail"]
    assert [check["name"] for check in document["checks"]] == ALWAYS_CHECKED


def test_verbose_shows_traceback_of_failed_import(project: Path) -> None:
    write(project, "broken.py", "raise RuntimeError('database unreachable')\n")
    result = run_fluxlit(["doctor", "--verbose", "--port", "0", "broken:app"], project)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stdout
    assert "Effective configuration" in result.stdout


def test_crashing_import_does_not_take_doctor_down(project: Path) -> None:
    write(project, "crash.py", "import os\nos.abort()\n")
    result, document = doctor(project, "crash:app")
    assert result.returncode == 1
    detail = rows(document, "target")[0]["detail"]
    assert "exited with status 134" in detail
    assert status_of(document, "port") == "PASS"


def test_slow_import_times_out(project: Path) -> None:
    write(project, "slow.py", "import time\ntime.sleep(30)\n")
    result, document = doctor(project, "slow:app", "--import-timeout-ms", "1500")
    assert result.returncode == 1
    assert "did not finish in time" in rows(document, "target")[0]["detail"]


def test_missing_module_fails(project: Path) -> None:
    _, document = doctor(project, "nowhere:app")
    assert "module 'nowhere' not found" in rows(document, "target")[0]["detail"]


def test_missing_target_file_fails(project: Path) -> None:
    _, document = doctor(project, "missing.py:app")
    assert 'the file "' in rows(document, "target")[0]["detail"]


def test_non_app_target_fails(project: Path) -> None:
    write(project, "constant.py", "app = 42\n")
    _, document = doctor(project, "constant:app")
    target = rows(document, "target")[0]
    assert target["status"] == "FAIL"
    assert "builtins.int" in target["detail"]


def test_plain_asgi_app_warns_unless_no_ui(project: Path) -> None:
    write(project, "api.py", "from fastapi import FastAPI\napp = FastAPI()\n")
    result, document = doctor(project, "api:app")
    assert result.returncode == 0
    assert status_of(document, "target") == "WARN"
    assert "FluxLit(api=app)" in rows(document, "target")[0]["detail"]
    _, without_ui = doctor(project, "api:app", "--no-ui")
    assert status_of(without_ui, "target") == "PASS"


def test_strict_turns_warnings_into_failure(project: Path) -> None:
    arguments = ("--forwarded-allow-ips", "*")
    relaxed, _ = doctor(project, *arguments)
    assert relaxed.returncode == 0
    strict, document = doctor(project, "--strict", *arguments)
    assert strict.returncode == 1
    assert document["strict"] is True
    assert document["exit_status"] == 1
    from_environment, _ = doctor(project, *arguments, env={"FLUXLIT_STRICT": "1"})
    assert from_environment.returncode == 1


def test_forwarded_trust_and_root_path_warnings(project: Path) -> None:
    _, wildcard = doctor(project, "--forwarded-allow-ips", "*")
    assert status_of(wildcard, "forwarded_trust") == "WARN"
    assert rows(wildcard, "forwarded_trust")[0]["detail"].startswith("W005 ")
    _, root_path = doctor(project, "--root-path", "/app")
    assert status_of(root_path, "root_path_trust") == "WARN"
    assert "trusts only loopback peers" in rows(root_path, "root_path_trust")[0]["detail"]
    _, proxy_off = doctor(project, "--root-path", "/app", "--no-proxy-headers")
    assert "proxy_headers is off" in rows(proxy_off, "root_path_trust")[0]["detail"]


def test_streamlit_config_conflicts_warn(project: Path) -> None:
    write(project, ".streamlit/config.toml", "[server]\nport = 8501\n")
    home = project.parent / f"{project.name}-home"
    write(home, ".streamlit/config.toml", "[server]\nheadless = false\n")
    result, document = doctor(project, env={"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"})
    assert result.returncode == 0
    conflicts = rows(document, "streamlit_config")
    assert [row["status"] for row in conflicts] == ["WARN", "WARN", "WARN"]
    details = " | ".join(row["detail"] for row in conflicts)
    assert "server.port" in details
    assert str(project / ".streamlit/config.toml") in details
    assert "server.headless" in details
    assert str(home / ".streamlit/config.toml") in details
    assert "server.address" in details
    assert "STREAMLIT_SERVER_ADDRESS" in details


def test_invalid_streamlit_config_warns(project: Path) -> None:
    write(project, ".streamlit/config.toml", "[server\n")
    _, document = doctor(project)
    assert status_of(document, "streamlit_config") == "WARN"
    assert "invalid TOML" in rows(document, "streamlit_config")[0]["detail"]


def test_body_limit_below_upload_limit_warns(project: Path) -> None:
    _, low = doctor(project, "--max-request-body-bytes", "1048576")
    assert status_of(low, "body_limit") == "WARN"
    assert "below Streamlit's upload limit of 200 MB" in rows(low, "body_limit")[0]["detail"]
    write(project, ".streamlit/config.toml", "[server]\nmaxUploadSize = 1\n")
    _, raised = doctor(project, "--max-request-body-bytes", "1048576")
    assert status_of(raised, "body_limit") == "PASS"
    _, from_environment = doctor(
        project, env={"STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "1000"}
    )
    detail = rows(from_environment, "body_limit")[0]["detail"]
    assert "STREAMLIT_SERVER_MAX_UPLOAD_SIZE" in detail


def test_configuration_warnings_are_rows(project: Path) -> None:
    write(project, "fluxlit.toml", "prot = 1\n")
    _, document = doctor(project)
    configuration = rows(document, "configuration")
    assert configuration[0]["status"] == "WARN"
    assert configuration[0]["detail"].startswith("W001 unknown key \"prot\"")


def test_invalid_configuration_fails_alone(project: Path) -> None:
    result, document = run_json(["doctor", "--json"], project, {"FLUXLIT_PORT": "eighty"})
    assert result.returncode == 1
    assert [check["name"] for check in document["checks"]] == ["configuration"]
    assert "FLUXLIT_PORT" in document["checks"][0]["detail"]


def test_wrong_python_version_fails(project: Path, tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text(
        "#!/bin/sh\n"
        'echo \'{"version": "3.9.18", "prefix": "/", "exec_prefix": "/", "base_prefix": "/",'
        ' "base_exec_prefix": "/", "path": [], "has_streamlit": false,'
        ' "streamlit_version": ""}\'\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result, document = doctor(project, "--python", str(fake))
    assert result.returncode == 1
    detail = rows(document, "interpreter")[0]["detail"]
    assert "is version 3.9.18" in detail
    assert "embeds Python 3.11" in detail
    assert status_of(document, "target") == "FAIL"


def test_check_pages_reports_problems(project: Path) -> None:
    write(
        project,
        "clash.py",
        """
        import dataclasses
        from fluxlit import FluxLit

        app = FluxLit("Clash")


        @app.page("/a-b")
        def first(st, client):
            pass


        app.pages.append(dataclasses.replace(app.pages[0], path="/a/b"))
        """,
    )
    result, document = doctor(project, "clash:app", "--check-pages")
    assert result.returncode == 1
    pages = rows(document, "pages")
    assert len(pages) == 1
    assert pages[0]["status"] == "FAIL"
    assert pages[0]["detail"].startswith("/a/b: page paths '/a-b' and '/a/b'")


def test_check_pages_passes_for_valid_app(project: Path) -> None:
    result, document = doctor(project, "--check-pages")
    assert result.returncode == 0
    assert rows(document, "pages")[0]["detail"] == "1 page(s), no problems"


def test_verbose_json_adds_configuration(project: Path) -> None:
    secret_url = "postgres://reader:hunter2@db.internal/app"
    result, document = doctor(project, "--verbose", "--pidfile", secret_url)
    assert result.returncode == 0
    assert list(document["configuration"]) == ["settings", "derived", "warnings"]
    assert "hunter2" not in result.stdout
