"""`fluxlit version` and the help text of every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands_support import PACKAGE_DIR, run_fluxlit, run_json

LIBRARIES = ["boost", "spdlog", "fmt", "toml++", "nlohmann_json", "CLI11", "pybind11"]


def test_text_lists_versions(tmp_path: Path) -> None:
    result = run_fluxlit(["version"], tmp_path)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fluxlit 0.")
    assert lines[1].startswith("python 3.11.")
    assert lines[1].endswith(" (linked)")
    assert lines[2] == f"package {PACKAGE_DIR}"
    assert [line.split()[0] for line in lines[3:]] == LIBRARIES


def test_json_has_documented_keys(tmp_path: Path) -> None:
    result, document = run_json(["version", "--json"], tmp_path)
    assert result.returncode == 0
    assert list(document) == ["fluxlit", "python", "package_directory", "libraries"]
    assert document["python"].startswith("3.11.")
    assert document["package_directory"] == str(PACKAGE_DIR)
    assert list(document["libraries"]) == LIBRARIES
    assert document["libraries"]["boost"] == "1.81.0"


def test_package_dir_prints_directory_only(tmp_path: Path) -> None:
    result = run_fluxlit(["version", "--package-dir"], tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"{PACKAGE_DIR}\n"
    assert (Path(result.stdout.strip()) / "fluxlit" / "__init__.py").is_file()


@pytest.mark.parametrize(
    "command",
    [
        ["config"],
        ["doctor"],
        ["pages", "manifest"],
        ["pages", "validate"],
        ["new"],
        ["build"],
        ["version"],
    ],
)
def test_help_documents_exit_status(tmp_path: Path, command: list[str]) -> None:
    result = run_fluxlit([*command, "--help"], tmp_path)
    assert result.returncode == 0
    assert "Exit status: 0" in result.stdout


@pytest.mark.parametrize("command", [["config"], ["doctor"], ["pages", "manifest"]])
def test_help_names_units_of_setting_flags(tmp_path: Path, command: list[str]) -> None:
    result = run_fluxlit([*command, "--help"], tmp_path)
    assert "Unit: milliseconds." in result.stdout
    assert "Unit: bytes." in result.stdout
