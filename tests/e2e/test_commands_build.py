"""`fluxlit build`: the Dockerfile and .dockerignore it writes for each way of getting FluxLit,
and its refusals. Docker itself is not run; the tests read the written files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from commands_support import make_project, run_fluxlit, write

import harness


@pytest.fixture
def project(tmp_path: Path) -> Path:
    source = "from fluxlit import FluxLit\napp = FluxLit('Shop')\n"
    return make_project(tmp_path, source, "Shop Front")


def stages(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.splitlines() if line.startswith("FROM ")]


def test_default_copies_running_binary_and_package(project: Path) -> None:
    result = run_fluxlit(["build"], project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Build the image with: docker build -t shop-front ."
    copied = project / ".fluxlit" / "bin" / "fluxlit"
    assert copied.stat().st_size == Path(harness.binary_path()).stat().st_size
    assert os.access(copied, os.X_OK)
    package = project / ".fluxlit" / "share" / "fluxlit" / "python" / "fluxlit"
    assert (package / "_manifest.py").is_file()
    assert not list(package.rglob("__pycache__"))
    dockerfile = (project / "Dockerfile").read_text()
    assert stages(dockerfile) == [
        "FROM debian:bookworm-slim AS fluxlit",
        "FROM debian:bookworm-slim AS app",
        "FROM debian:bookworm-slim",
    ]
    assert "COPY .fluxlit/ /opt/fluxlit/\n" in dockerfile


def test_runtime_stage(project: Path) -> None:
    run_fluxlit(["build"], project)
    runtime = (project / "Dockerfile").read_text().split("\nFROM debian:bookworm-slim\n")[1]
    assert "libpython3.11" in runtime
    assert "RUN python3 -m venv /opt/venv\n" in runtime
    assert 'RUN pip install --no-cache-dir "fastapi>=0.90" "streamlit>=1.36" httpx\n' in runtime
    assert "COPY --from=fluxlit /opt/fluxlit/ /usr/local/\n" in runtime
    assert "USER fluxlit\n" in runtime
    assert "EXPOSE 8000\n" in runtime
    assert runtime.rstrip().endswith(
        'ENTRYPOINT ["/usr/local/bin/fluxlit", "run", "--host", "0.0.0.0"]'
    )
    assert "requirements.txt" not in runtime


def test_dockerignore_keeps_secrets_out(project: Path) -> None:
    run_fluxlit(["build"], project)
    entries = (project / ".dockerignore").read_text().splitlines()
    for entry in [".git", ".venv", "**/__pycache__", ".env", ".streamlit/secrets.toml"]:
        assert entry in entries
    assert ".fluxlit" not in entries


def test_settings_requirements_and_target_shape_the_image(project: Path) -> None:
    write(project, "fluxlit.toml", "port = 9000\n")
    write(project, "requirements.txt", "pandas\n")
    write(project, "src/main.py", "from fluxlit import FluxLit\napp = FluxLit('Shop')\n")
    result = run_fluxlit(["build", "src/main.py:app"], project)
    assert result.returncode == 0, result.stderr
    dockerfile = (project / "Dockerfile").read_text()
    assert "EXPOSE 9000\n" in dockerfile
    assert "docker run --init -p 9000:9000 shop-front" in dockerfile
    assert "RUN pip install --no-cache-dir -r /tmp/requirements.txt\n" in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["src/main.py:app"]')


def test_existing_files_are_not_overwritten(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    result = run_fluxlit(["build"], project)
    assert result.returncode == 1
    assert f"{project / 'Dockerfile'} already exists. Pass --force" in result.stderr
    assert (project / "Dockerfile").read_text() == "FROM scratch\n"
    assert not (project / ".dockerignore").exists()
    assert not (project / ".fluxlit").exists()


def test_existing_dockerignore_is_not_overwritten(project: Path) -> None:
    (project / ".dockerignore").write_text("data\n")
    result = run_fluxlit(["build"], project)
    assert result.returncode == 1
    assert ".dockerignore already exists" in result.stderr


def test_force_overwrites(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    result = run_fluxlit(["build", "--force"], project)
    assert result.returncode == 0, result.stderr
    assert "FROM debian:bookworm-slim AS fluxlit" in (project / "Dockerfile").read_text()


def test_checkout_outside_project_is_named_context(project: Path) -> None:
    result = run_fluxlit(["build", "--fluxlit-dir", str(harness.REPO_ROOT)], project)
    assert result.returncode == 0, result.stderr
    dockerfile = (project / "Dockerfile").read_text()
    assert f"--build-context fluxlit-source={harness.REPO_ROOT} -t shop-front ." in dockerfile
    assert "FROM debian:bookworm AS fluxlit" in dockerfile
    assert "COPY --from=fluxlit-source . ./\n" in dockerfile
    assert "cmake --install build/release --prefix /opt/fluxlit" in dockerfile
    assert not (project / ".fluxlit").exists()
    assert ".fluxlit" in (project / ".dockerignore").read_text().splitlines()


def test_checkout_inside_project_is_copied_from_context(project: Path) -> None:
    checkout = project / "vendor" / "fluxlit"
    write(checkout, "CMakeLists.txt", "project(fluxlit)\n")
    write(checkout, "python/fluxlit/__init__.py", "")
    write(checkout, "scripts/install-deps.sh", "")
    result = run_fluxlit(["build", "--fluxlit-dir", "vendor/fluxlit/"], project)
    assert result.returncode == 0, result.stderr
    dockerfile = (project / "Dockerfile").read_text()
    assert "COPY vendor/fluxlit/scripts/install-deps.sh scripts/\n" in dockerfile
    assert "COPY vendor/fluxlit/ ./\n" in dockerfile
    assert "vendor/fluxlit/build" in (project / ".dockerignore").read_text().splitlines()


def test_invalid_checkout_is_usage_error(project: Path, tmp_path: Path) -> None:
    result = run_fluxlit(["build", "--fluxlit-dir", str(tmp_path)], project)
    assert result.returncode == 2
    assert f"--fluxlit-dir {tmp_path} is not a FluxLit checkout" in result.stderr
    assert not (project / "Dockerfile").exists()


def test_target_outside_project_is_usage_error(project: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "elsewhere.py", "app = None\n")
    result = run_fluxlit(["build", f"{outside}:app"], project)
    assert result.returncode == 2
    assert "is outside the project directory" in result.stderr


def test_invalid_configuration_is_usage_error(project: Path) -> None:
    write(project, "fluxlit.toml", 'port = "eighty"\n')
    result = run_fluxlit(["build"], project)
    assert result.returncode == 2
    assert "invalid value" in result.stderr
    assert not (project / "Dockerfile").exists()
