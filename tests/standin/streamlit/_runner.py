"""Running the main script the way Streamlit does: once per rerun, in a worker thread."""

from __future__ import annotations

import logging
import runpy
import traceback
from typing import Any

from ._api import StopScript
from ._recording import RECORD, ScriptRun, active_run

logger = logging.getLogger("streamlit.standin")


def run_script(
    script_path: str,
    *,
    trigger: str,
    requested_page: str | None = None,
    session_state: dict[str, Any] | None = None,
) -> ScriptRun:
    """Execute the script as `__main__` with a fresh recording and return the finished run.

    Blocks for as long as the script does, so call it from a worker thread. Exceptions from
    the script are stored in the run, as Streamlit shows them in the page instead of failing.
    """
    run = ScriptRun(
        trigger=trigger,
        requested_page=requested_page,
        session_state=session_state if session_state is not None else {},
    )
    with active_run(run):
        try:
            runpy.run_path(script_path, run_name="__main__")
        except StopScript:
            pass
        except Exception as error:  # noqa: BLE001 - every script error belongs in the run
            run.error = f"{type(error).__name__}: {error}"
            run.traceback = traceback.format_exc()
            logger.info("script run (%s, page %r) failed: %s", trigger, requested_page, run.error)
    RECORD.add_run(run)
    return run
