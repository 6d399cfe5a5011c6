"""What the stand-in saw, kept for tests to read from GET /_standin/record.

The tornado thread and the script threads both write here, so every access takes the lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Each list keeps only the latest entries so a long proxy test cannot grow the record without
# bound.
MAX_ENTRIES = 100


def jsonable(value: Any) -> Any:
    """Convert a recorded argument to JSON-serialisable data; unknown objects become repr()."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    to_dict = getattr(value, "dict", None)
    if callable(to_dict):
        try:
            return jsonable(to_dict())
        except TypeError:
            pass
    return repr(value)


@dataclass
class ScriptRun:
    """One execution of the main script, from a WebSocket session or GET /_standin/run."""

    trigger: str
    requested_page: str | None
    session_state: dict[str, Any]
    started: float = field(default_factory=time.time)
    page: str | None = None  # url_path of the page that ran; "" for the default page
    page_not_found: bool = False
    pages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    containers: list[str] = field(default_factory=lambda: ["main"])
    error: str | None = None
    traceback: str | None = None

    def record_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(
            {
                "name": name,
                "args": jsonable(list(args)),
                "kwargs": jsonable(kwargs),
                "container": self.containers[-1],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "requested_page": self.requested_page,
            "page": self.page,
            "page_not_found": self.page_not_found,
            "pages": self.pages,
            "calls": self.calls,
            "error": self.error,
            "traceback": self.traceback,
        }


_local = threading.local()


def current_run() -> ScriptRun | None:
    """Return the script run of the calling thread, or None outside a run."""
    return getattr(_local, "run", None)


@contextmanager
def active_run(run: ScriptRun) -> Iterator[ScriptRun]:
    """Make `run` the calling thread's current run for the duration of the block."""
    previous = current_run()
    _local.run = run
    try:
        yield run
    finally:
        _local.run = previous


class Record:
    """Everything the stand-in process observed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._static: dict[str, Any] = {}
        self._lists: dict[str, deque[Any]] = {
            name: deque(maxlen=MAX_ENTRIES)
            for name in (
                "subprotocols",
                "origin_rejections",
                "websocket_sessions",
                "websocket_closes",
                "runs",
                "uploads",
                "requests",
                "slow_requests",
            )
        }
        self._pages: list[dict[str, Any]] = []

    def set_static(self, **values: Any) -> None:
        with self._lock:
            self._static.update(values)

    def append(self, name: str, entry: Any) -> None:
        with self._lock:
            self._lists[name].append(entry)

    def update(self, entry: dict[str, Any], **values: Any) -> None:
        """Change an entry that was appended earlier, under the lock."""
        with self._lock:
            entry.update(values)

    def add_run(self, run: ScriptRun) -> None:
        with self._lock:
            self._lists["runs"].append(run.to_dict())
            if run.pages:
                self._pages = list(run.pages)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            result = dict(self._static)
            result["pages"] = list(self._pages)
            for name, entries in self._lists.items():
                result[name] = jsonable(list(entries))
            return result


RECORD = Record()
