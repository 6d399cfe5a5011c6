"""Loading the application object named by a target such as `app:app` or `src/app.py:app`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ._app import FluxLit

TARGET_ENV = "FLUXLIT_TARGET"
APP_DIR_ENV = "FLUXLIT_APP_DIR"


class TargetError(Exception):
    """A target that is malformed, cannot be found, or names the wrong kind of object."""


@dataclass(frozen=True)
class Target:
    """A parsed target: either a module name or a file path, and an attribute path in it."""

    text: str
    module: str | None
    file: str | None
    attribute: str


def parse_target(text: str) -> Target:
    """Split `module:attr` or `path/to/file.py:attr`; the attribute may be dotted (`a.b`)."""
    location, colon, attribute = text.rpartition(":")
    if not colon or not location or not attribute:
        raise TargetError(
            f"invalid target {text!r}: expected 'module:attribute' or "
            "'path/to/file.py:attribute', for example 'app:app'"
        )
    if not all(part.isidentifier() for part in attribute.split(".")):
        raise TargetError(f"invalid target {text!r}: {attribute!r} is not an attribute name")
    if location.endswith(".py") or "/" in location or os.sep in location:
        return Target(text=text, module=None, file=location, attribute=attribute)
    if not all(part.isidentifier() for part in location.split(".")):
        raise TargetError(f"invalid target {text!r}: {location!r} is not a module name")
    return Target(text=text, module=location, file=None, attribute=attribute)


def load_target(text: str, app_dir: str | os.PathLike[str] | None = None) -> Any:
    """Import the target's module and return the object it names.

    `app_dir` (default: the current directory) is put first on sys.path, and relative file
    paths resolve against it. Raises TargetError when the module, the file or the attribute
    is missing. Errors raised while the module itself runs propagate unchanged.
    """
    target = parse_target(text)
    directory = Path(app_dir if app_dir is not None else os.getcwd()).resolve()
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    if target.file is not None:
        module = _import_file(target, directory)
    else:
        module = _import_module(target, directory)
    value: Any = module
    for name in target.attribute.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise TargetError(
                f"target {text!r}: {module.__name__!r} has no attribute {target.attribute!r}"
            ) from None
    return value


def load_fluxlit(text: str, app_dir: str | os.PathLike[str] | None = None) -> FluxLit:
    """Load the target like `load_target` and check that it is a FluxLit object."""
    value = load_target(text, app_dir)
    if not isinstance(value, FluxLit):
        hint = " Wrap it: FluxLit(api=app)." if _looks_like_asgi_app(value) else ""
        raise TargetError(
            f"target {text!r} is a {type(value).__module__}.{type(value).__qualname__}, "
            f"not a fluxlit.FluxLit object.{hint}"
        )
    return value


def load_fluxlit_from_environment() -> FluxLit:
    """Load the FluxLit object named by FLUXLIT_TARGET, relative to FLUXLIT_APP_DIR."""
    text = os.environ.get(TARGET_ENV)
    if not text:
        raise TargetError(
            f"the {TARGET_ENV} environment variable is not set; the fluxlit binary sets it to "
            "the application target, for example 'app:app'"
        )
    return load_fluxlit(text, os.environ.get(APP_DIR_ENV) or None)


def _import_module(target: Target, directory: Path) -> ModuleType:
    assert target.module is not None
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as error:
        # Only a miss on the target module (or one of its parents) is the target's fault. A
        # missing import inside the user's module is the user's error and propagates.
        missing = error.name or ""
        if target.module == missing or target.module.startswith(missing + "."):
            raise TargetError(
                f"target {target.text!r}: module {target.module!r} not found "
                f"(searched {directory} and sys.path)"
            ) from None
        raise


def _import_file(target: Target, directory: Path) -> ModuleType:
    assert target.file is not None
    path = (directory / target.file).resolve()
    if not path.is_file():
        raise TargetError(f"target {target.text!r}: file {str(path)!r} not found")
    name = _module_name_for(path)
    existing = sys.modules.get(name)
    if existing is not None and _same_file(getattr(existing, "__file__", None), path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"target {target.text!r}: cannot import {str(path)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs so that the module's own classes (pydantic models, dataclasses)
    # can find it by name, as they can for a normal import.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _module_name_for(path: Path) -> str:
    """Use the file's stem as module name unless another module already has that name."""
    stem = path.stem
    existing = sys.modules.get(stem)
    if stem.isidentifier():
        if existing is None or _same_file(getattr(existing, "__file__", None), path):
            return stem
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    return f"_fluxlit_target_{digest}"


def _same_file(file: str | None, path: Path) -> bool:
    return file is not None and Path(file).resolve() == path


def _looks_like_asgi_app(value: Any) -> bool:
    return callable(value) and hasattr(value, "router")
