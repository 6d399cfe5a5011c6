"""`fluxlit config`: resolved settings with sources, derived values, coded warnings, --strict."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands_support import HELLO_DIR, make_project, run_fluxlit, run_json, write

DERIVED_KEYS = {
    "config_file",
    "public_mount",
    "api_base_url",
    "app_directory",
    "interpreter",
    "streamlit_command",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, "from fluxlit import FluxLit\napp = FluxLit('Demo')\n")


def codes(document: dict) -> list[str]:
    return [warning["code"] for warning in document["warnings"]]


def test_text_lists_settings_with_sources(project: Path) -> None:
    result = run_fluxlit(["config", "--port", "9100"], project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    port_line = next(line for line in lines if line.split()[:1] == ["port"])
    assert port_line.split() == ["port", "9100", "--port"]
    host_line = next(line for line in lines if line.split()[:1] == ["host"])
    assert host_line.split() == ["host", "127.0.0.1", "default"]
    assert "Configuration file: none" in result.stdout
    assert "Warnings: none" in result.stdout


def test_json_has_documented_keys(project: Path) -> None:
    result, document = run_json(["config", "--json"], project)
    assert result.returncode == 0, result.stderr
    assert list(document) == ["settings", "derived", "warnings"]
    assert set(document["derived"]) == DERIVED_KEYS
    for name, entry in document["settings"].items():
        assert set(entry) == {"value", "source"}, name
    assert document["warnings"] == []


def test_json_values_are_typed(project: Path) -> None:
    _, document = run_json(["config", "--json"], project)
    settings = document["settings"]
    assert settings["port"]["value"] == 8000
    assert settings["no_ui"]["value"] is False
    assert settings["forwarded_allow_ips"]["value"] == ["127.0.0.1", "::1"]
    assert settings["api_prefix"]["value"] == "/api"


def test_precedence_flag_over_environment_over_file(project: Path) -> None:
    write(project, "fluxlit.toml", "# settings\nport = 7000\n")
    _, from_file = run_json(["config", "--json"], project)
    assert from_file["settings"]["port"] == {"value": 7000, "source": "fluxlit.toml:2"}
    assert from_file["derived"]["config_file"] == str(project / "fluxlit.toml")

    environment = {"FLUXLIT_PORT": "7100"}
    _, from_environment = run_json(["config", "--json"], project, environment)
    assert from_environment["settings"]["port"] == {"value": 7100, "source": "FLUXLIT_PORT"}

    _, from_flag = run_json(["config", "--json", "--port", "7200"], project, environment)
    assert from_flag["settings"]["port"] == {"value": 7200, "source": "--port"}


def test_derived_values_follow_settings(project: Path) -> None:
    arguments = ["config", "--json", "--host", "0.0.0.0", "--port", "9000", "--root-path", "/app"]
    _, document = run_json(arguments, project)
    derived = document["derived"]
    assert derived["public_mount"] == "/app/"
    assert derived["api_base_url"] == "http://127.0.0.1:9000/api"
    assert derived["app_directory"] == str(project)
    assert derived["interpreter"] == "/usr/bin/python3"
    command = derived["streamlit_command"]
    assert command.startswith("/usr/bin/python3 -m streamlit run ")
    assert "_streamlit_entry.py" in command
    assert "--server.baseUrlPath /app" in command
    assert "--server.address 127.0.0.1" in command


def test_streamlit_command_is_null_without_ui(project: Path) -> None:
    _, document = run_json(["config", "--json", "--no-ui"], project)
    assert document["derived"]["streamlit_command"] is None
    assert document["settings"]["no_ui"] == {"value": True, "source": "--no-ui"}


def test_ipv6_host_is_bracketed_in_api_base_url(project: Path) -> None:
    _, document = run_json(["config", "--json", "--host", "::1"], project)
    assert document["derived"]["api_base_url"] == "http://[::1]:8000/api"


def test_unknown_file_key_and_variable_warn(project: Path) -> None:
    write(project, "fluxlit.toml", "prot = 8000\n")
    result, document = run_json(["config", "--json"], project, {"FLUXLIT_PORTT": "1"})
    assert result.returncode == 0
    assert codes(document) == ["W001", "W002"]
    assert "Did you mean port?" in document["warnings"][0]["message"]
    assert "FLUXLIT_PORTT" in document["warnings"][1]["message"]


def test_ignored_pyproject_table_warns(project: Path) -> None:
    write(project, "fluxlit.toml", "port = 8000\n")
    write(project, "pyproject.toml", "[tool.fluxlit]\nport = 9000\n")
    _, document = run_json(["config", "--json"], project)
    assert codes(document) == ["W003"]


def test_proxy_trust_warnings(project: Path) -> None:
    _, wildcard = run_json(["config", "--json", "--forwarded-allow-ips", "*"], project)
    assert codes(wildcard) == ["W005"]
    _, root_path = run_json(["config", "--json", "--root-path", "/app"], project)
    assert codes(root_path) == ["W006"]
    _, trusted = run_json(
        ["config", "--json", "--root-path", "/app", "--forwarded-allow-ips", "10.0.0.0/8"], project
    )
    assert codes(trusted) == []


def test_missing_target_file_warns(project: Path) -> None:
    result, document = run_json(["config", "--json", "missing.py:app"], project)
    assert result.returncode == 0
    assert codes(document) == ["W007"]
    assert document["derived"]["app_directory"] is None


def test_text_shows_warning_codes(project: Path) -> None:
    result = run_fluxlit(["config", "--forwarded-allow-ips", "*"], project)
    assert "  W005  forwarded_allow_ips contains \"*\"" in result.stdout


def test_strict_fails_on_warnings(project: Path) -> None:
    result = run_fluxlit(["config", "--strict", "--forwarded-allow-ips", "*"], project)
    assert result.returncode == 1
    assert "1 warning(s)" in result.stderr


def test_strict_passes_without_warnings(project: Path) -> None:
    assert run_fluxlit(["config", "--strict"], project).returncode == 0


def test_strict_environment_variable(project: Path) -> None:
    arguments = ["config", "--forwarded-allow-ips", "*"]
    assert run_fluxlit(arguments, project, {"FLUXLIT_STRICT": "1"}).returncode == 1
    assert run_fluxlit(arguments, project, {"FLUXLIT_STRICT": "0"}).returncode == 0


def test_invalid_strict_variable_is_usage_error(project: Path) -> None:
    result = run_fluxlit(["config"], project, {"FLUXLIT_STRICT": "maybe"})
    assert result.returncode == 2
    assert 'invalid value "maybe" for FLUXLIT_STRICT' in result.stderr


def test_invalid_value_exits_2_naming_source(project: Path) -> None:
    result = run_fluxlit(["config", "--json"], project, {"FLUXLIT_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert 'invalid value "eighty" for port from FLUXLIT_PORT' in result.stderr


def test_invalid_file_exits_2(project: Path) -> None:
    write(project, "fluxlit.toml", "port = [\n")
    result = run_fluxlit(["config"], project)
    assert result.returncode == 2
    assert "invalid TOML" in result.stderr


def test_unknown_flag_exits_2(project: Path) -> None:
    result = run_fluxlit(["config", "--prot", "1"], project)
    assert result.returncode == 2


def test_url_password_is_redacted(project: Path) -> None:
    secret_url = "postgres://reader:hunter2@db.internal/app"
    arguments = ["config", "--pidfile", secret_url]
    text = run_fluxlit(arguments, project)
    _, document = run_json([*arguments, "--json"], project)
    assert "hunter2" not in text.stdout
    assert "postgres://reader:***@db.internal/app" in text.stdout
    assert document["settings"]["pidfile"]["value"] == "postgres://reader:***@db.internal/app"


def test_example_app_resolves(tmp_path: Path) -> None:
    _, document = run_json(["config", "--json", f"{HELLO_DIR / 'app.py'}:app"], tmp_path)
    assert document["derived"]["app_directory"] == str(HELLO_DIR)
    assert document["settings"]["target"]["source"] == "command line"
