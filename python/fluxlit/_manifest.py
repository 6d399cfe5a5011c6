"""Describe and check an app's pages for the `fluxlit pages` and `fluxlit doctor` commands.

The fluxlit binary runs this module with the chosen interpreter, in a process of its own, so
that an import that crashes or hangs cannot take the command down:

    python -m fluxlit._manifest manifest TARGET APP_DIR
    python -m fluxlit._manifest validate TARGET APP_DIR [--strict]
    python -m fluxlit._manifest probe TARGET APP_DIR

Each command prints one JSON object on stdout. Whatever the app prints while it is imported goes
to stderr, so stdout stays parseable. Exit status: 0 when the command ran (validation problems
are part of the JSON), 1 when the target could not be loaded (the JSON contains an "error" object),
2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ._app import FluxLit, PageRecord, _check_path
from ._target import TargetError, load_fluxlit, load_target

MANIFEST_VERSION = 1
# The manifest's shape may still change between releases, and consumers can read this field to
# tell a stable format from an experimental one.
MANIFEST_STABILITY = "experimental"

# The page runner calls every handler as handler(st, client).
_RUNNER_ARGUMENTS = 2


class _LoadFailed(Exception):
    """The target could not be loaded. `details` is the "error" object to print."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details["message"])
        self.details = details


def build_manifest(app: FluxLit) -> dict[str, Any]:
    """Return version 1 of the manifest: the app's title and one entry per page, in order."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "manifest_stability": MANIFEST_STABILITY,
        "title": app.title,
        "pages": [describe_page(page) for page in app.pages],
    }


def describe_page(page: PageRecord) -> dict[str, Any]:
    """Return the manifest entry of one page, with "children" only when the page has some."""
    entry: dict[str, Any] = {
        "path": page.path,
        "title": page.title,
        "tags": list(page.tags),
        "description": page.description,
        "icon": page.icon,
        "parameters": [
            {"name": parameter.name, "annotation": parameter.annotation}
            for parameter in page.parameters
        ],
        "dependencies": list(page.dependencies),
    }
    # PageRecord has no children yet; records that carry nested pages get them listed.
    children = getattr(page, "children", None)
    if children:
        entry["children"] = [describe_page(child) for child in children]
    return entry


def find_problems(app: FluxLit, strict: bool) -> list[dict[str, str]]:
    """Return the problems of the app's pages as {"code", "path", "message"} objects.

    Always checked: page paths that are invalid, registered twice, or that map to the URL path
    of another page. With `strict`, also handlers that the page runner cannot call.
    """
    problems: list[dict[str, str]] = []
    paths: set[str] = set()
    url_paths: dict[str, str] = {}
    for page in app.pages:
        try:
            _check_path(page.path)
        except (TypeError, ValueError) as error:
            problems.append(_problem("invalid_path", page, str(error)))
            continue
        if page.path in paths:
            message = f"page path {page.path!r} is registered more than once"
            problems.append(_problem("duplicate_path", page, message))
            continue
        paths.add(page.path)
        other = url_paths.setdefault(page.url_path, page.path)
        if other != page.path:
            message = (
                f"page paths {other!r} and {page.path!r} both map to the URL path "
                f"{page.url_path!r}, so one of the pages cannot be reached"
            )
            problems.append(_problem("url_path_clash", page, message))
        if strict:
            problems.extend(_handler_problems(page))
    return problems


def _problem(code: str, page: PageRecord, message: str) -> dict[str, str]:
    return {"code": code, "path": str(page.path), "message": message}


def _handler_problems(page: PageRecord) -> list[dict[str, str]]:
    handler = page.handler
    name = getattr(handler, "__qualname__", repr(handler))
    if inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler):
        message = (
            f"handler {name} is async, but the page runner calls it without awaiting the result; "
            "make it a plain function"
        )
        return [_problem("async_handler", page, message)]
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as error:
        message = f"the signature of handler {name} cannot be inspected: {error}"
        return [_problem("handler_signature", page, message)]
    try:
        signature.bind(*([None] * _RUNNER_ARGUMENTS))
    except TypeError as error:
        message = (
            f"handler {name}{signature} cannot be called as handler(st, client): {error}. It "
            "must take two positional parameters, and every other parameter needs a default"
        )
        return [_problem("handler_signature", page, message)]
    return []


def probe_target(value: Any) -> dict[str, Any]:
    """Return what kind of app `value` is: a FluxLit object, another ASGI callable, or neither."""
    type_name = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, FluxLit):
        return {"kind": "fluxlit", "type": type_name, "title": value.title, "pages": len(value.pages)}
    if _accepts_asgi_call(value):
        return {"kind": "asgi", "type": type_name}
    return {"kind": "other", "type": type_name}


def _accepts_asgi_call(value: Any) -> bool:
    if not callable(value):
        return False
    try:
        inspect.signature(value).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:
        # No introspectable signature (some builtins): it is callable, so let the server decide.
        return True
    return True


def _load(loader: Callable[[str, str], Any], target: str, app_dir: str) -> Any:
    """Import the target with stdout sent to stderr; raise _LoadFailed with the error object."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return loader(target, app_dir)
    except TargetError as error:
        raise _LoadFailed(
            {"type": "TargetError", "message": str(error), "traceback": None}
        ) from None
    except BaseException as error:  # noqa: BLE001 - the app's import may raise anything
        details = {
            "type": type(error).__name__,
            "message": f"importing {target!r} raised {type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
        }
        raise _LoadFailed(details) from None


def _run(command: str, target: str, app_dir: str, strict: bool) -> dict[str, Any]:
    if command == "probe":
        return probe_target(_load(load_target, target, app_dir))
    app = _load(load_fluxlit, target, app_dir)
    if command == "manifest":
        return build_manifest(app)
    return {"pages": len(app.pages), "problems": find_problems(app, strict)}


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fluxlit._manifest")
    parser.add_argument("command", choices=["manifest", "validate", "probe"])
    parser.add_argument("target", help="module:attribute or /path/to/file.py:attribute")
    parser.add_argument("app_dir", help="directory put first on sys.path")
    parser.add_argument("--strict", action="store_true", help="validate: check handlers too")
    options = parser.parse_args(arguments)

    stdout = sys.stdout
    try:
        result = _run(options.command, options.target, options.app_dir, options.strict)
    except _LoadFailed as failure:
        stdout.write(json.dumps({"error": failure.details}) + "\n")
        return 1
    stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
