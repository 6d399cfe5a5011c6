"""The script that the Streamlit child runs: `python -m streamlit run <this file>`.

It loads the FluxLit object named by FLUXLIT_TARGET (relative to FLUXLIT_APP_DIR) and turns its
registered pages into Streamlit pages with `st.navigation`. Streamlit runs the script again for
every rerun, so it stays cheap: the target module is imported once and cached in sys.modules.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if importlib.util.find_spec("fluxlit") is None:
    # Streamlit runs this file by path, so the package is importable only when its parent
    # directory is on sys.path. Children started without PYTHONPATH get it added here.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxlit._app import FluxLit, PageRecord
from fluxlit._client import ApiClient
from fluxlit._target import TargetError, load_fluxlit_from_environment


def make_page_callable(st: Any, record: PageRecord) -> Callable[[], None]:
    """Wrap a page handler as the zero-argument callable that `st.Page` runs."""

    def run_page() -> None:
        with ApiClient() as client:
            record.handler(st, client)

    run_page.__name__ = getattr(record.handler, "__name__", "page")
    run_page.__qualname__ = getattr(record.handler, "__qualname__", run_page.__name__)
    run_page.__doc__ = record.handler.__doc__
    return run_page


def build_pages(st: Any, app: FluxLit) -> list[Any]:
    """Create one `st.Page` per registered page, in registration order.

    Every page gets an explicit URL path, "" for the default page at "/". Streamlit would
    otherwise infer one from the callable's name, and it checks inferred paths for duplicates
    even on the default page, so a handler named like another page's path would clash.
    """
    pages = []
    for record in app.pages:
        options: dict[str, Any] = {
            "title": record.title,
            "icon": record.icon,
            "url_path": record.url_path,
        }
        if record.is_default:
            options["default"] = True
        pages.append(st.Page(make_page_callable(st, record), **options))
    return pages


def main(st: Any) -> None:
    """Load the application and run the page that Streamlit's navigation selects."""
    try:
        app = load_fluxlit_from_environment()
    except TargetError as error:
        st.error(f"FluxLit could not load the application: {error}")
        return
    if not app.pages:
        st.warning(
            f"The application {app.title!r} has no pages. Register one with "
            "@app.page('/') on a function that takes (st, client)."
        )
        return
    st.navigation(build_pages(st, app)).run()


if __name__ == "__main__":
    import streamlit

    main(streamlit)
