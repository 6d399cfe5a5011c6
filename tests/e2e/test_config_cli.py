"""Settings from flags, FLUXLIT_* variables and fluxlit.toml, checked by where the server listens.

Every server here runs with --no-ui, so a path outside the API prefix returns 404 and a request
shows plainly which prefix is in force.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

import harness


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, text: str) -> None:
    (directory / "fluxlit.toml").write_text(text)


def status_of(server: harness.Fluxlit, path: str) -> int:
    return httpx.get(server.url(path)).status_code


def test_bad_port_flag_names_value(tmp_path: Path) -> None:
    finished = harness.run_to_exit(
        ["run", harness.HELLO_TARGET, "--port", "abc"], cwd=tmp_path
    )
    assert finished.status != 0
    assert "abc" in finished.stderr
    assert "port" in finished.stderr
    assert finished.stdout == ""


def test_host_name_is_configuration_error(tmp_path: Path) -> None:
    write_config(tmp_path, 'host = "localhost"\n')
    finished = harness.run_to_exit(["run", harness.HELLO_TARGET, "--no-ui"], cwd=tmp_path)
    assert finished.status == 2
    assert 'host "localhost" is not an IP address' in finished.stderr
    assert "fluxlit.toml" in finished.stderr


def test_address_of_no_interface_names_host(tmp_path: Path) -> None:
    # 192.0.2.1 is reserved for documentation (RFC 5737), so no interface here has it. The bind
    # fails locally and nothing is sent.
    arguments = ["run", harness.HELLO_TARGET, "--no-ui", "--host", "192.0.2.1", "--port", "0"]
    finished = harness.run_to_exit(arguments, cwd=tmp_path)
    assert finished.status == 1
    assert "no network interface of this machine has that address" in finished.stderr
    assert "Choose another --host" in finished.stderr
    assert "choose another --port" not in finished.stderr


@pytest.mark.parametrize(
    ("arguments", "hint"),
    [
        (["run", harness.HELLO_TARGET, "--prot", "8000"],
         "--prot is not an option of 'fluxlit run'; did you mean --port?"),
        (["dev", harness.HELLO_TARGET, "--api-prefx=/v1"],
         "--api-prefx is not an option of 'fluxlit dev'; did you mean --api-prefix?"),
        (["rnu", harness.HELLO_TARGET], "rnu is not a command of 'fluxlit'; did you mean run?"),
        (["pages", "manifst"], "manifst is not a command of 'fluxlit pages'; did you mean manifest?"),
        (["--port", "8000", "run", harness.HELLO_TARGET],
         "--port is not an option of 'fluxlit'; --port is an option of 'fluxlit run', and goes "
         "after 'run'"),
        (["run", harness.HELLO_TARGET, "--PROT", "1"], "did you mean --port?"),
    ],
)
def test_mistyped_name_gets_suggestion(tmp_path: Path, arguments: list[str], hint: str) -> None:
    finished = harness.run_to_exit(arguments, cwd=tmp_path)
    assert finished.status == 2
    assert hint in finished.stderr


def test_repeated_typo_gets_one_suggestion(tmp_path: Path) -> None:
    arguments = ["run", harness.HELLO_TARGET, "--prot", "1", "--prot", "2"]
    finished = harness.run_to_exit(arguments, cwd=tmp_path)
    assert finished.status == 2
    assert finished.stderr.count("did you mean --port?") == 1


def test_unlike_name_gets_no_suggestion(tmp_path: Path) -> None:
    finished = harness.run_to_exit(["run", harness.HELLO_TARGET, "--zzzzzz"], cwd=tmp_path)
    assert finished.status == 2
    assert "--zzzzzz" in finished.stderr
    assert "did you mean" not in finished.stderr


def test_bad_port_variable_names_value(tmp_path: Path) -> None:
    environment = harness.base_environment()
    environment["FLUXLIT_PORT"] = "eighty"
    finished = harness.run_to_exit(["run", harness.HELLO_TARGET], environment, cwd=tmp_path)
    assert finished.status != 0
    assert "eighty" in finished.stderr
    assert "FLUXLIT_PORT" in finished.stderr


def test_port_out_of_range_is_rejected(tmp_path: Path) -> None:
    finished = harness.run_to_exit(
        ["run", harness.HELLO_TARGET, "--port", "65536"], cwd=tmp_path
    )
    assert finished.status != 0
    assert "65536" in finished.stderr


def test_bad_file_value_names_line(tmp_path: Path) -> None:
    write_config(tmp_path, 'api_prefix = "/api"\nport = "http"\n')
    finished = harness.run_to_exit(["run", harness.HELLO_TARGET], cwd=tmp_path)
    assert finished.status != 0
    assert "http" in finished.stderr
    assert "fluxlit.toml:2" in finished.stderr


def test_bad_api_prefix_is_rejected(tmp_path: Path) -> None:
    finished = harness.run_to_exit(
        ["run", harness.HELLO_TARGET, "--port", "0", "--api-prefix", "api/"], cwd=tmp_path
    )
    assert finished.status != 0
    assert "api/" in finished.stderr


def test_overridden_bad_variable_is_not_parsed(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    # Only the winning value is parsed, so a flag rescues a bad FLUXLIT_PORT.
    server = launcher.start(
        "--no-ui", extra_environment={"FLUXLIT_PORT": "abc"}, cwd=tmp_path
    )
    assert status_of(server, "/api/users") == 200


@pytest.mark.parametrize("winner", ["flag", "variable", "file"])
def test_setting_precedence(launcher: harness.Launcher, tmp_path: Path, winner: str) -> None:
    ports = {"flag": free_port(), "variable": free_port(), "file": free_port()}
    prefixes = {"flag": "/from-flag", "variable": "/from-variable", "file": "/from-file"}
    write_config(tmp_path, f'port = {ports["file"]}\napi_prefix = "{prefixes["file"]}"\n')
    extra: list[str] = ["--no-ui"]
    environment = {}
    if winner in ("flag", "variable"):
        environment = {
            "FLUXLIT_PORT": str(ports["variable"]),
            "FLUXLIT_API_PREFIX": prefixes["variable"],
        }
    if winner == "flag":
        extra += ["--port", str(ports["flag"]), "--api-prefix", prefixes["flag"]]

    server = launcher.start(
        *extra,
        port=None,
        extra_environment=environment,
        cwd=tmp_path,
        api_prefix=prefixes[winner],
    )

    assert server.port == ports[winner]
    assert status_of(server, f"{prefixes[winner]}/users") == 200
    for loser, prefix in prefixes.items():
        if loser != winner:
            assert status_of(server, f"{prefix}/users") == 404, f"{loser} prefix answered"


def test_target_from_file(launcher: harness.Launcher, tmp_path: Path) -> None:
    write_config(tmp_path, f'target = "{harness.HELLO_TARGET}"\nno_ui = true\n')
    server = launcher.start(target=None, cwd=tmp_path)
    assert status_of(server, "/api/users") == 200
    assert status_of(server, "/") == 404


def test_pyproject_table_is_read(launcher: harness.Launcher, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.fluxlit]\napi_prefix = "/from-pyproject"\n'
    )
    server = launcher.start("--no-ui", cwd=tmp_path, api_prefix="/from-pyproject")
    assert status_of(server, "/from-pyproject/users") == 200
    assert status_of(server, "/api/users") == 404


def test_unknown_file_key_only_warns(launcher: harness.Launcher, tmp_path: Path) -> None:
    write_config(tmp_path, "prot = 9000\n")
    server = launcher.start("--no-ui", cwd=tmp_path)
    line = server.wait_for_log("prot")
    record = harness.parse_log_line(line)
    assert record.level == "warning"
    assert "port" in record.message.replace("prot", "")


def test_dev_command_logs_text(launcher: harness.Launcher, tmp_path: Path) -> None:
    server = launcher.start("--no-ui", command="dev", cwd=tmp_path)
    httpx.get(server.api_url("/users"))
    server.stop()
    server.finish_output()
    lines = server.log_lines()
    assert lines
    assert all(line.record is None for line in lines), "dev logs are text, not JSON"
    assert server.stdout_lines()[0] == f"fluxlit listening on {server.base_url}"


def test_log_level_warning_hides_access_lines(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    server = launcher.start("--no-ui", "--log-level", "warning", cwd=tmp_path)
    httpx.get(server.api_url("/users"))
    server.stop()
    server.finish_output()
    levels = {line.level for line in server.log_lines()}
    assert levels <= {"warning", "error", "critical"}, levels
