"""scripts/bench/asgi_bench.py: the nginx socket floor returns the app's bytes, the response
check, and the cost arithmetic of the report."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    # Small, but a quote and a dollar sign send it to a file too.
    "/items": (b'[{"id":1,"name":"it\'s $5 {b} c;"}]', "application/json; charset=utf-8"),
    "/echo": (ECHO_BODY, "application/json"),
    "/large": (LARGE_BODY, "application/octet-stream"),
}


def fetch(url: str, method: str, body: bytes | None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read(), response.headers["content-type"]


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
        status, body, content_type = fetch(base + path, method, ECHO_BODY if sends_body else None)
        assert status == 200, path
        assert (body, content_type) == RESPONSES[path], path
    assert Path(f"/proc/{worker}/comm").read_text().strip() == "nginx"
    assert worker != master


def test_unquotable_get_body_uses_file(tmp_path: Path) -> None:
    locations = asgi_bench.floor_locations(RESPONSES, tmp_path / "bodies")
    for index, path in enumerate(RESPONSES):
        block = locations[locations.index(f"location = /api{path} "):].splitlines()
        assert block[1].strip() == f'default_type "{RESPONSES[path][1]}";'
        if path in ("/items", "/large"):
            assert block[2].strip() == f"alias {tmp_path / 'bodies' / f'body-{index}'};"
            assert (tmp_path / "bodies" / f"body-{index}").read_bytes() == RESPONSES[path][0]
        else:
            assert block[2].strip() == f"return 200 '{RESPONSES[path][0].decode()}';"


def test_floor_rejects_oversized_post_body(tmp_path: Path) -> None:
    responses = dict(RESPONSES, **{"/echo": (b"x" * 5000, "application/json")})
    with pytest.raises(RuntimeError, match=r"cannot serve POST /echo: its 5000-byte response"):
        asgi_bench.floor_locations(responses, tmp_path / "bodies")


@contextmanager
def serving(bodies: dict[str, bytes], status: int = 200) -> Iterator[str]:
    """Serve `bodies` by path on 127.0.0.1, to GET and POST alike; yield the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def respond(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = bodies.get(self.path, b"")
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = respond

        def log_message(self, *arguments: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def app_bodies() -> dict[str, bytes]:
    return {path: f"{path} body".encode() for _, _, path, _ in asgi_bench.asgi_app.ROUTES}


def test_same_responses_returned_by_path() -> None:
    with serving(app_bodies()) as first, serving(app_bodies()) as second:
        responses = asgi_bench.check_same_responses({"a": first, "b": second}, ECHO_BODY)
    assert responses == {path: (body, "application/json") for path, body in app_bodies().items()}


def test_different_bodies_name_each_server() -> None:
    changed = dict(app_bodies(), **{"/echo": b"other"})
    with serving(app_bodies()) as first, serving(changed) as second:
        with pytest.raises(RuntimeError, match=r"different responses to POST /echo \(a: 10 bytes "
                           r"of application/json, b: 5 bytes of application/json\)"):
            asgi_bench.check_same_responses({"a": first, "b": second}, ECHO_BODY)


def test_error_status_names_the_server() -> None:
    with serving(app_bodies()) as first, serving(app_bodies(), status=403) as second:
        with pytest.raises(RuntimeError, match=r"^b returned 403 for GET http://127"):
            asgi_bench.check_same_responses({"a": first, "b": second}, ECHO_BODY)


def sample(cpu_us: float) -> asgi_bench.Sample:
    return asgi_bench.Sample(requests_per_second=1000.0, p50_us=100, p99_us=200,
                             cpu_us_per_request=cpu_us, rss_bytes=1, load_cpu_fraction=0.5,
                             other_load=0.0)


def test_cost_over_ceiling_and_floor() -> None:
    route = asgi_bench.RouteResults()
    for fluxlit, floor in ((60.0, 4.0), (50.0, 5.0), (55.0, 6.0)):
        route.samples[asgi_bench.FLUXLIT].append(sample(fluxlit))
        route.samples[asgi_bench.FLOOR].append(sample(floor))
    for cpu in (30.0, 31.0, 32.0):
        route.linked_ceilings.setdefault(asgi_bench.STATIC_LIBRARY, []).append(
            {"cpu_us_per_request": cpu}
        )
    # Medians: FluxLit 55, ceiling 31, floor 5.
    assert asgi_bench.bridge_only_cost_text(route) == "24.0"
    assert asgi_bench.bridge_only_cost_text(route, floor=True) == "19.0"


def test_failed_start_stops_the_server(tmp_path: Path) -> None:
    server = asgi_bench.Server("sleeper", ["sleep", "60"], tmp_path / "sleeper.log")
    with pytest.raises(KeyboardInterrupt):
        with asgi_bench.benchlib.stop_on_failure(server):
            raise KeyboardInterrupt  # as Ctrl-C during the wait for the server
    assert server.process.poll() is not None
