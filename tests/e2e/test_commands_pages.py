"""`fluxlit pages manifest` and `fluxlit pages validate`: the manifest's exact keys, and every
kind of page problem with its exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands_support import HELLO_DIR, make_project, run_fluxlit, run_json, write

ROOT_KEYS = ["manifest_version", "manifest_stability", "title", "pages"]
PAGE_KEYS = ["path", "title", "tags", "description", "icon", "parameters", "dependencies"]

CATALOG_APP = """
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxlit import ApiClient, FluxLit, PageRecord

print("printed while importing")

app = FluxLit("Catalog")


@app.page("/", title="Overview", icon="📚", tags=["home"], dependencies=["/api/books"])
def overview(st: Any, client: ApiClient, limit: int = 10) -> None:
    '''Show the newest books.

    More text that the manifest leaves out.
    '''


@app.page("/books/detail")
def detail(st, client):
    pass


@dataclass(frozen=True)
class SectionRecord(PageRecord):
    children: tuple[PageRecord, ...] = ()


app.pages[1] = SectionRecord(**vars(app.pages[1]), children=(app.pages[0],))
"""

PROBLEM_APP = """
import dataclasses

from fluxlit import FluxLit

app = FluxLit("Problems")


@app.page("/a-b")
def first(st, client):
    pass


@app.page("/async")
async def asynchronous(st, client):
    pass


def three(st, client, extra):
    pass


app.pages.append(dataclasses.replace(app.pages[0], path="/a/b"))
app.pages.append(dataclasses.replace(app.pages[0]))
app.pages.append(dataclasses.replace(app.pages[0], path="/bad path"))
app.pages.append(dataclasses.replace(app.pages[0], path="/three", handler=three))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = make_project(tmp_path, "")
    write(directory, "catalog.py", CATALOG_APP)
    write(directory, "problems.py", PROBLEM_APP)
    return directory


def test_manifest_has_exact_keys(project: Path) -> None:
    result, manifest = run_json(["pages", "manifest", "catalog:app"], project)
    assert result.returncode == 0, result.stderr
    assert list(manifest) == ROOT_KEYS
    assert manifest["manifest_version"] == 1
    assert manifest["manifest_stability"] == "experimental"
    assert manifest["title"] == "Catalog"
    overview, detail = manifest["pages"]
    assert list(overview) == PAGE_KEYS
    assert list(detail) == [*PAGE_KEYS, "children"]


def test_manifest_page_fields(project: Path) -> None:
    _, manifest = run_json(["pages", "manifest", "catalog:app"], project)
    overview, detail = manifest["pages"]
    assert overview == {
        "path": "/",
        "title": "Overview",
        "tags": ["home"],
        "description": "Show the newest books.",
        "icon": "📚",
        "parameters": [
            {"name": "st", "annotation": "Any"},
            {"name": "client", "annotation": "ApiClient"},
            {"name": "limit", "annotation": "int"},
        ],
        "dependencies": ["/api/books"],
    }
    assert detail["title"] == "Detail"
    assert detail["description"] is None
    assert detail["icon"] is None
    assert detail["parameters"] == [
        {"name": "st", "annotation": None},
        {"name": "client", "annotation": None},
    ]
    assert [child["path"] for child in detail["children"]] == ["/"]
    assert list(detail["children"][0]) == PAGE_KEYS


def test_manifest_stdout_is_only_json(project: Path) -> None:
    result = run_fluxlit(["pages", "manifest", "catalog:app"], project)
    assert result.stdout.lstrip().startswith("{")
    assert "printed while importing" not in result.stdout
    assert "printed while importing" in result.stderr


def test_manifest_of_example_app(tmp_path: Path) -> None:
    result, manifest = run_json(["pages", "manifest", f"{HELLO_DIR / 'app.py'}:app"], tmp_path)
    assert result.returncode == 0
    assert [page["path"] for page in manifest["pages"]] == ["/", "/add"]


def test_manifest_target_from_config_file(project: Path) -> None:
    write(project, "fluxlit.toml", 'target = "catalog:app"\n')
    _, manifest = run_json(["pages", "manifest"], project)
    assert manifest["title"] == "Catalog"


def test_manifest_of_plain_asgi_app_fails(project: Path) -> None:
    write(project, "api.py", "from fastapi import FastAPI\napp = FastAPI()\n")
    result = run_fluxlit(["pages", "manifest", "api:app"], project)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "not a fluxlit.FluxLit object" in result.stderr
    assert "Wrap it: FluxLit(api=app)" in result.stderr


def test_manifest_import_error_shows_traceback(project: Path) -> None:
    write(project, "broken.py", "import missing_dependency\n")
    result = run_fluxlit(["pages", "manifest", "broken:app"], project)
    assert result.returncode == 1
    assert "fluxlit: pages manifest: importing 'broken:app' raised ModuleNotFoundError" in (
        result.stderr
    )
    assert "Traceback (most recent call last)" in result.stderr


def test_manifest_missing_attribute_fails(project: Path) -> None:
    result = run_fluxlit(["pages", "manifest", "catalog:nothing"], project)
    assert result.returncode == 1
    assert "has no attribute 'nothing'" in result.stderr


def test_manifest_missing_target_file_is_usage_error(project: Path) -> None:
    result = run_fluxlit(["pages", "manifest", "missing.py:app"], project)
    assert result.returncode == 2
    assert "was not found" in result.stderr


def test_manifest_crash_is_reported(project: Path) -> None:
    write(project, "crash.py", "import os\nos.abort()\n")
    result = run_fluxlit(["pages", "manifest", "crash:app"], project)
    assert result.returncode == 1
    assert "exited with status 134" in result.stderr


def test_pages_without_subcommand_is_usage_error(project: Path) -> None:
    assert run_fluxlit(["pages"], project).returncode == 2


def test_validate_valid_app(project: Path) -> None:
    result = run_fluxlit(["pages", "validate", "catalog:app"], project)
    assert result.returncode == 0, result.stdout
    assert result.stdout == "2 page(s) checked, no problems\n"
    strict = run_fluxlit(["pages", "validate", "--strict", "catalog:app"], project)
    assert strict.returncode == 0, strict.stdout
    assert strict.stdout == "2 page(s) checked with handler signatures, no problems\n"


def test_validate_reports_one_line_per_problem(project: Path) -> None:
    result = run_fluxlit(["pages", "validate", "problems:app"], project)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "/a/b: page paths '/a-b' and '/a/b' both map to the URL path 'a-b', so one of the pages "
        "cannot be reached",
        "/a-b: page path '/a-b' is registered more than once",
        "/bad path: page path '/bad path' is invalid: each segment must be non-empty and contain "
        "only letters, digits, '_' and '-'",
    ]


def test_validate_strict_checks_handlers(project: Path) -> None:
    result = run_fluxlit(["pages", "validate", "--strict", "problems:app"], project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("/async: handler asynchronous is async")
    assert lines[4].startswith("/three: handler three(st, client, extra) cannot be called")
    assert "every other parameter needs a default" in lines[4]


def test_validate_strict_from_environment(project: Path) -> None:
    result = run_fluxlit(["pages", "validate", "problems:app"], project, {"FLUXLIT_STRICT": "1"})
    assert len(result.stdout.splitlines()) == 5


def test_validate_import_error_fails(project: Path) -> None:
    write(project, "broken.py", "raise ValueError('bad settings')\n")
    result = run_fluxlit(["pages", "validate", "broken:app"], project)
    assert result.returncode == 1
    assert "ValueError: bad settings" in result.stderr


def test_validate_timeout(project: Path) -> None:
    write(project, "slow.py", "import time\ntime.sleep(30)\n")
    result = run_fluxlit(["pages", "validate", "slow:app", "--import-timeout-ms", "1000"], project)
    assert result.returncode == 1
    assert "did not finish in time" in result.stderr
