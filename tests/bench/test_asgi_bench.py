"""scripts/bench/asgi_bench.py: the nginx socket floor answers with the app's bytes."""

from __future__ import annotations

import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "scripts" / "bench"
sys.path.insert(0, str(BENCH_DIR))
import asgi_bench  # noqa: E402

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")

ECHO_BODY = b'{"id":42,"note":"' + b"x" * 900 + b'"}'
# A quote and a dollar sign keep it out of nginx's configuration, so it is served from a file.
LARGE_BODY = (b"it's $HOME " * 9400)[:100 * 1024]
RESPONSES = {
    "/trivial": (b'{"message":"hello"}', "application/json"),
    "/items": (b'[{"id":1,"name":"a {b} c;"}]', "application/json"),
    "/echo": (ECHO_BODY, "application/json"),
    "/large": (LARGE_BODY, "application/octet-stream"),
}


def fetch(url: str, method: str, body: bytes | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


@needs_nginx
def test_floor_sends_the_same_bytes() -> None:
    # As in the benchmark, a directory straight under /tmp: nginx's worker runs as `nobody`
    # when started by root, and pytest's own temporary directories are private to root.
    with tempfile.TemporaryDirectory(prefix="fluxlit-floor-") as directory:
        server, base, worker = asgi_bench.start_floor(Path(directory), RESPONSES)
        try:
            check_floor(base, server.pid, worker)
        finally:
            server.stop()


def check_floor(base: str, master: int, worker: int) -> None:
    for _, method, path, sends_body in asgi_bench.asgi_app.ROUTES:
        status, body = fetch(base + path, method, ECHO_BODY if sends_body else None)
        assert status == 200, path
        assert body == RESPONSES[path][0], path
    assert Path(f"/proc/{worker}/comm").read_text().strip() == "nginx"
    assert worker != master


def test_floor_serves_unquotable_get_body_from_file(tmp_path: Path) -> None:
    locations = asgi_bench.floor_locations(RESPONSES, tmp_path / "bodies")
    large = locations[locations.index("location = /api/large"):]
    assert f"alias {tmp_path / 'bodies' / 'large'};" in large.splitlines()[2]
    assert (tmp_path / "bodies" / "large").read_bytes() == LARGE_BODY
    assert "return 200 '{\"message\":\"hello\"}';" in locations


def test_floor_refuses_post_body_it_cannot_hold(tmp_path: Path) -> None:
    responses = dict(RESPONSES, **{"/echo": (b"x" * 5000, "application/json")})
    with pytest.raises(RuntimeError, match=r"cannot answer POST /echo: its 5000-byte response"):
        asgi_bench.floor_locations(responses, tmp_path / "bodies")
