"""`fluxlit new`: each profile creates a project whose own tests pass, and bad input is
rejected with its exit status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from commands_support import PACKAGE_DIR, run_fluxlit

MINIMAL_FILES = {
    "app.py",
    "fluxlit.toml",
    "requirements.txt",
    "conftest.py",
    "README.md",
    ".gitignore",
    "tests/test_app.py",
}


def project_files(directory: Path) -> set[str]:
    return {
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and ".fluxlit" not in path.parts and "__pycache__" not in path.parts
    }


def run_generated_tests(directory: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FLUXLIT_") and name != "PYTHONPATH"
    }
    environment["PYTHONPATH"] = str(PACKAGE_DIR)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("profile", ["minimal", "api-heavy"])
def test_generated_project_tests_pass(tmp_path: Path, profile: str) -> None:
    result = run_fluxlit(["new", "demo-app", "--profile", profile], tmp_path)
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "demo-app"
    assert "created demo-app/app.py" in result.stdout
    tests = run_generated_tests(directory)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_minimal_profile_files(tmp_path: Path) -> None:
    run_fluxlit(["new", "sales-report"], tmp_path)
    directory = tmp_path / "sales-report"
    assert project_files(directory) == MINIMAL_FILES
    assert 'app = FluxLit("Sales Report")' in (directory / "app.py").read_text()


def test_api_heavy_profile_adds_router_and_models(tmp_path: Path) -> None:
    run_fluxlit(["new", "shop", "--profile", "api-heavy"], tmp_path)
    directory = tmp_path / "shop"
    assert project_files(directory) == MINIMAL_FILES | {
        "models.py",
        "routers/__init__.py",
        "routers/items.py",
    }


def test_generated_project_passes_doctor_and_validate(tmp_path: Path) -> None:
    run_fluxlit(["new", "shop", "--profile", "api-heavy"], tmp_path)
    directory = tmp_path / "shop"
    validate = run_fluxlit(["pages", "validate", "--strict"], directory)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert validate.stdout == "2 page(s) checked with handler signatures, no problems\n"
    doctor = run_fluxlit(["doctor", "--strict", "--check-pages", "--port", "0"], directory)
    assert doctor.returncode == 0, doctor.stdout


def test_deploy_profile_adds_docker_and_kubernetes_files(tmp_path: Path) -> None:
    result = run_fluxlit(["new", "Deploy_Me", "--profile", "deploy"], tmp_path)
    assert result.returncode == 0, result.stderr
    directory = tmp_path / "Deploy_Me"
    assert project_files(directory) == MINIMAL_FILES | {
        "Dockerfile",
        ".dockerignore",
        "k8s/deployment.yaml",
    }
    dockerfile = (directory / "Dockerfile").read_text()
    assert "docker build -t deploy_me ." in dockerfile
    assert "RUN pip install --no-cache-dir -r /tmp/requirements.txt" in dockerfile
    assert "image: deploy-me:latest" in (directory / "k8s/deployment.yaml").read_text()
    copied = directory / ".fluxlit" / "bin" / "fluxlit"
    assert os.access(copied, os.X_OK)
    package = directory / ".fluxlit" / "share" / "fluxlit" / "python" / "fluxlit"
    assert (package / "__init__.py").is_file()


def test_existing_empty_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_fluxlit(["new", "empty"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "empty" / "app.py").is_file()


def test_non_empty_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "taken"
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me\n")
    result = run_fluxlit(["new", "taken"], tmp_path)
    assert result.returncode == 1
    assert f"{directory} already exists and is not empty" in result.stderr
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt"]


def test_existing_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    result = run_fluxlit(["new", "plain"], tmp_path)
    assert result.returncode == 1
    assert "already exists and is not a directory" in result.stderr


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a/b", "may contain only letters, digits"),
        ("my app", "may contain only letters, digits"),
        ("-x", "must start with a letter or a digit"),
        ("..", "must start with a letter or a digit"),
        ("x" * 65, "1 to 64 characters"),
    ],
)
def test_invalid_name_is_usage_error(tmp_path: Path, name: str, reason: str) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = run_fluxlit(["new", "--", name], workspace)
    assert result.returncode == 2
    assert reason in result.stderr
    assert list(workspace.iterdir()) == []


NAME_RULE = (
    'A project name has 1 to 64 characters (letters, digits, ".", "_" and "-") and starts with '
    "a letter or a digit, for example my-app"
)


@pytest.mark.parametrize("name", ["a/b", "-x", "..", "x" * 65])
def test_invalid_name_message_names_value_and_rule(tmp_path: Path, name: str) -> None:
    result = run_fluxlit(["new", "--", name], tmp_path)
    assert result.returncode == 2
    assert f'invalid project name "{name}"' in result.stderr
    assert NAME_RULE in result.stderr


@pytest.mark.parametrize("name", ["-bad", "--bad", "-b"])
def test_flag_like_name_is_named_with_rule(tmp_path: Path, name: str) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = run_fluxlit(["new", name], workspace)
    assert result.returncode == 2
    assert f'invalid project name "{name}"' in result.stderr
    assert "is read as an option" in result.stderr
    assert NAME_RULE in result.stderr
    assert "name is required" not in result.stderr
    assert list(workspace.iterdir()) == []


@pytest.mark.parametrize("arguments", [[], ["--", ""]])
def test_missing_name_is_usage_error(tmp_path: Path, arguments: list[str]) -> None:
    result = run_fluxlit(["new", *arguments], tmp_path)
    assert result.returncode == 2
    assert "missing project name" in result.stderr
    assert NAME_RULE in result.stderr


@pytest.mark.parametrize(
    ("arguments", "unexpected"),
    [(["x", "y"], "y"), (["--profil", "minimal"], "--profil"), (["x", "--force"], "--force")],
)
def test_unexpected_argument_is_named(
    tmp_path: Path, arguments: list[str], unexpected: str
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = run_fluxlit(["new", *arguments], workspace)
    assert result.returncode == 2
    assert f'unexpected argument "{unexpected}"' in result.stderr
    assert list(workspace.iterdir()) == []


def test_unknown_profile_is_usage_error(tmp_path: Path) -> None:
    result = run_fluxlit(["new", "x", "--profile", "huge"], tmp_path)
    assert result.returncode == 2
    assert 'unknown profile "huge"; the profiles are minimal, api-heavy and deploy' in result.stderr
    assert "Did you mean" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_misspelled_profile_gets_suggestion(tmp_path: Path) -> None:
    result = run_fluxlit(["new", "x", "--profile", "deplyo"], tmp_path)
    assert result.returncode == 2
    assert "Did you mean deploy?" in result.stderr
    assert not (tmp_path / "x").exists()
