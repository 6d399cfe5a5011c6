"""Loading targets in both forms, `module:attr` and `path/to/file.py:attr`."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxlit import FluxLit
from fluxlit._target import (
    Target,
    TargetError,
    load_fluxlit,
    load_fluxlit_from_environment,
    load_target,
    parse_target,
)

APP_SOURCE = """
from fluxlit import FluxLit

app = FluxLit("{title}")
holder = type("Holder", (), {{"inner": app}})
not_fluxlit = object()
"""


@pytest.fixture
def app_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory with a uniquely named package and file module, removed from sys.modules."""
    name = "target_" + request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")
    package = tmp_path / f"{name}_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(APP_SOURCE.format(title="from package"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f"{name}_file.py").write_text(APP_SOURCE.format(title="from file"))
    saved_path = list(sys.path)
    yield tmp_path
    sys.path[:] = saved_path
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]


def module_name(app_dir: Path) -> str:
    return next(p.name for p in app_dir.iterdir() if p.name.endswith("_pkg"))


def file_name(app_dir: Path) -> str:
    return next((app_dir / "src").iterdir()).name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app:app", Target("app:app", "app", None, "app")),
        ("pkg.mod:api", Target("pkg.mod:api", "pkg.mod", None, "api")),
        ("app.py:app", Target("app.py:app", None, "app.py", "app")),
        ("src/app.py:app", Target("src/app.py:app", None, "src/app.py", "app")),
        ("/abs/app.py:obj.app", Target("/abs/app.py:obj.app", None, "/abs/app.py", "obj.app")),
    ],
)
def test_parse_accepts_both_forms(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app", "expected 'module:attribute'"),
        ("app:", "expected 'module:attribute'"),
        (":app", "expected 'module:attribute'"),
        ("app:1x", "'1x' is not an attribute name"),
        ("my-app:app", "'my-app' is not a module name"),
    ],
)
def test_parse_rejects_malformed(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(text)


def test_module_form_loads(app_dir: Path) -> None:
    app = load_target(f"{module_name(app_dir)}.main:app", app_dir)
    assert isinstance(app, FluxLit)
    assert app.title == "from package"
    assert str(app_dir.resolve()) in sys.path


def test_file_form_resolves_against_app_dir(app_dir: Path) -> None:
    app = load_target(f"src/{file_name(app_dir)}:app", app_dir)
    assert isinstance(app, FluxLit)
    assert app.title == "from file"


def test_file_form_accepts_absolute_path(app_dir: Path) -> None:
    path = app_dir / "src" / file_name(app_dir)
    assert load_target(f"{path}:app", "/").title == "from file"


def test_file_form_is_imported_once(app_dir: Path) -> None:
    target = f"src/{file_name(app_dir)}:app"
    assert load_target(target, app_dir) is load_target(target, app_dir)


def test_dotted_attribute_is_followed(app_dir: Path) -> None:
    app = load_target(f"{module_name(app_dir)}.main:holder.inner", app_dir)
    assert app is load_target(f"{module_name(app_dir)}.main:app", app_dir)


def test_missing_module_is_reported(app_dir: Path) -> None:
    with pytest.raises(TargetError, match=r"module 'no_such_module_xyz' not found"):
        load_target("no_such_module_xyz:app", app_dir)


def test_missing_submodule_is_reported(app_dir: Path) -> None:
    with pytest.raises(TargetError, match=r"module '.*_pkg\.nope' not found"):
        load_target(f"{module_name(app_dir)}.nope:app", app_dir)


def test_missing_file_is_reported(app_dir: Path) -> None:
    with pytest.raises(TargetError, match=r"file '.*missing\.py' not found"):
        load_target("src/missing.py:app", app_dir)


def test_missing_attribute_is_reported(app_dir: Path) -> None:
    with pytest.raises(TargetError, match=r"has no attribute 'nothing'"):
        load_target(f"{module_name(app_dir)}.main:nothing", app_dir)


def test_import_error_inside_module_propagates(tmp_path: Path) -> None:
    (tmp_path / "broken_target_mod.py").write_text("import dependency_that_is_missing_xyz\n")
    try:
        with pytest.raises(ModuleNotFoundError) as caught:
            load_target("broken_target_mod:app", tmp_path)
        assert caught.value.name == "dependency_that_is_missing_xyz"
    finally:
        sys.path.remove(str(tmp_path.resolve()))


def test_failed_file_import_leaves_no_module(tmp_path: Path) -> None:
    (tmp_path / "raising_target_file.py").write_text("raise RuntimeError('startup failed')\n")
    with pytest.raises(RuntimeError, match="startup failed"):
        load_target("raising_target_file.py:app", tmp_path)
    assert "raising_target_file" not in sys.modules
    sys.path.remove(str(tmp_path.resolve()))


def test_load_fluxlit_rejects_other_objects(app_dir: Path) -> None:
    with pytest.raises(TargetError, match=r"is a builtins\.object, not a fluxlit\.FluxLit"):
        load_fluxlit(f"{module_name(app_dir)}.main:not_fluxlit", app_dir)


def test_load_fluxlit_suggests_wrapping_fastapi(tmp_path: Path) -> None:
    (tmp_path / "plain_fastapi_target.py").write_text(
        textwrap.dedent(
            """
            from fastapi import FastAPI
            api = FastAPI()
            """
        )
    )
    try:
        with pytest.raises(TargetError, match=r"FastAPI.*Wrap it: FluxLit\(api=app\)"):
            load_fluxlit("plain_fastapi_target.py:api", tmp_path)
    finally:
        sys.modules.pop("plain_fastapi_target", None)
        sys.path.remove(str(tmp_path.resolve()))


def test_environment_names_target(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXLIT_TARGET", f"src/{file_name(app_dir)}:app")
    monkeypatch.setenv("FLUXLIT_APP_DIR", str(app_dir))
    assert load_fluxlit_from_environment().title == "from file"


def test_environment_without_target_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUXLIT_TARGET", raising=False)
    with pytest.raises(TargetError, match="FLUXLIT_TARGET environment variable is not set"):
        load_fluxlit_from_environment()


def test_example_loads_by_file_path() -> None:
    repo_root = Path(__file__).resolve().parents[2]
    app = load_fluxlit("examples/hello/app.py:app", repo_root)
    assert app.title == "Hello FluxLit"
    assert [page.path for page in app.pages] == ["/", "/add"]
