"""The stand-in Streamlit server's HTTP surface, started as the fluxlit binary starts it."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
import time
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from support import USERS, Standin, StubApi, standin_environment

PAGES = [
    {"title": "Users", "icon": "👥", "url_path": "", "default": True},
    {"title": "Add a user", "icon": "➕", "url_path": "add", "default": False},
]


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    """Parse each Set-Cookie line on its own, keyed by cookie name."""
    cookies: dict[str, SimpleCookie] = {}
    for line in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(line)
        for name in cookie:
            cookies[name] = cookie
    return cookies


def xsrf_token(standin: Standin) -> str:
    return set_cookies(httpx.get(f"{standin.url}/_stcore/health"))["_xsrf"]["_xsrf"].value


def test_startup_prints_url_line(standin: Standin) -> None:
    output = "".join(standin.stdout_lines)
    assert "You can now view your Streamlit app in your browser." in output
    assert f"URL: http://127.0.0.1:{standin.port}" in output


def test_health_sets_both_xsrf_cookies(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/_stcore/health")
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["cache-control"] == "no-cache"
    cookies = set_cookies(response)
    xsrf = cookies["_xsrf"]["_xsrf"]
    streamlit_xsrf = cookies["_streamlit_xsrf"]["_streamlit_xsrf"]
    assert xsrf.value == streamlit_xsrf.value
    assert xsrf["path"] == "/"
    assert streamlit_xsrf["path"] == "/"
    assert len(response.headers.get_list("set-cookie")) == 2


def test_health_keeps_existing_xsrf_cookie(standin: Standin) -> None:
    token = xsrf_token(standin)
    response = httpx.get(f"{standin.url}/_stcore/health", cookies={"_xsrf": token})
    assert "_xsrf" not in set_cookies(response)
    assert "_streamlit_xsrf" in set_cookies(response)


def test_health_head_has_no_body(standin: Standin) -> None:
    response = httpx.head(f"{standin.url}/_stcore/health")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "2"


def test_health_options_is_204(standin: Standin) -> None:
    response = httpx.options(f"{standin.url}/_stcore/health")
    assert response.status_code == 204
    assert response.content == b""


def test_healthz_is_deprecated(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/healthz")
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["deprecation"] == "True"
    assert "/_stcore/health>" in response.headers["link"]


def test_host_config_is_json(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/_stcore/host-config")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["allowedOrigins"], list)
    assert body["useExternalAuthToken"] is False


def test_index_is_not_cached(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/html")
    assert re.search(r'src="\./static/js/main\.[0-9a-f]{8}\.js"', response.text)
    assert httpx.get(f"{standin.url}/index.html").content == response.content


def bundle_url(standin: Standin) -> str:
    index = httpx.get(f"{standin.url}/").text
    match = re.search(r'src="\./(static/js/main\.[0-9a-f]{8}\.js)"', index)
    assert match is not None
    return f"{standin.url}/{match.group(1)}"


def test_bundle_is_cacheable(standin: Standin) -> None:
    url = bundle_url(standin)
    response = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public"
    assert "content-encoding" not in response.headers
    assert len(response.content) == 1 << 20
    etag = response.headers["etag"]
    again = httpx.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


def test_bundle_is_gzipped_on_request(standin: Standin) -> None:
    url = bundle_url(standin)
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"}).content
    with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
    assert len(raw) < len(plain)
    assert gzip.decompress(raw) == plain


def test_unknown_path_serves_index(standin: Standin) -> None:
    index = httpx.get(f"{standin.url}/").content
    response = httpx.get(f"{standin.url}/add")
    assert response.status_code == 200
    assert response.content == index
    assert httpx.get(f"{standin.url}/deep/page/path").content == index


@pytest.mark.parametrize("path", ["/app/_stcore/health", "/x/_stcore/host-config"])
def test_probe_suffixes_are_404(standin: Standin, path: str) -> None:
    assert httpx.get(standin.url + path).status_code == 404


def test_trailing_slash_redirects(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/add/?tab=2")
    assert response.status_code == 301
    assert response.headers["location"] == "/add?tab=2"


def test_slash_redirect_stays_on_site(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}//evil.example/")
    assert response.status_code == 301
    assert response.headers["location"] == "/evil.example"


def test_upload_without_token_is_403(standin: Standin) -> None:
    response = httpx.put(f"{standin.url}/_stcore/upload_file/s1/f1", content=b"data")
    assert response.status_code == 403


def test_upload_with_wrong_token_is_403(standin: Standin) -> None:
    token = xsrf_token(standin)
    response = httpx.put(
        f"{standin.url}/_stcore/upload_file/s1/f1",
        content=b"data",
        cookies={"_xsrf": token},
        headers={"X-Xsrftoken": "2|00000000|00000000000000000000000000000000|0"},
    )
    assert response.status_code == 403


def test_upload_with_token_is_204(standin: Standin) -> None:
    token = xsrf_token(standin)
    body = bytes(range(256)) * 4096
    response = httpx.put(
        f"{standin.url}/_stcore/upload_file/session-7/file-9",
        content=body,
        cookies={"_xsrf": token},
        headers={"X-Xsrftoken": token, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 204
    assert response.content == b""
    upload = standin.record()["uploads"][-1]
    assert upload["session_id"] == "session-7"
    assert upload["file_id"] == "file-9"
    assert upload["bytes"] == len(body)
    assert upload["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_streams_chunked_body(standin: Standin) -> None:
    token = xsrf_token(standin)

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * 65536

    response = httpx.put(
        f"{standin.url}/_stcore/upload_file/s/chunked",
        content=chunks(),
        cookies={"_xsrf": token},
        headers={"X-Xsrftoken": token},
    )
    assert response.status_code == 204
    assert standin.record()["uploads"][-1]["bytes"] == 8 * 65536


def test_media_full_get(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/media/clip-5000.mp4")
    assert response.status_code == 200
    assert len(response.content) == 5000
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert httpx.get(f"{standin.url}/media/clip-5000.mp4").content == response.content


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-1023", 0, 1024), ("bytes=4990-", 4990, 5000), ("bytes=-100", 4900, 5000)],
)
def test_media_range_is_206(standin: Standin, header: str, start: int, end: int) -> None:
    full = httpx.get(f"{standin.url}/media/clip-5000.mp4").content
    response = httpx.get(f"{standin.url}/media/clip-5000.mp4", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/5000"
    assert response.content == full[start:end]


def test_media_range_past_end_is_416(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/media/clip-5000.mp4", headers={"Range": "bytes=5000-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */5000"


def test_media_head_has_no_body(standin: Standin) -> None:
    response = httpx.head(f"{standin.url}/media/clip-5000.mp4")
    assert response.status_code == 200
    assert response.headers["content-length"] == "5000"
    assert response.content == b""


def test_sse_sends_spaced_events(standin: Standin) -> None:
    arrivals: list[float] = []
    events: list[dict] = []
    started = time.monotonic()
    with httpx.stream("GET", f"{standin.url}/_standin/sse", timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
                events.append(json.loads(line[6:]))
    assert [event["index"] for event in events] == [0, 1, 2, 3, 4]
    assert arrivals[0] < 0.5
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert min(gaps) > 0.1


def test_slow_route_completes(standin: Standin) -> None:
    response = httpx.get(f"{standin.url}/_standin/slow", params={"ms": 50})
    assert response.status_code == 200
    assert standin.record()["slow_requests"][-1] == {
        "ms": 50,
        "completed": True,
        "closed_by_client": False,
    }


def test_slow_route_records_client_close(standin: Standin) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{standin.url}/_standin/slow", params={"ms": 4000}, timeout=0.3)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        entry = standin.record()["slow_requests"][-1]
        if entry["closed_by_client"]:
            break
        time.sleep(0.05)
    assert entry == {"ms": 4000, "completed": False, "closed_by_client": True}


def test_headers_route_echoes_request(standin: Standin) -> None:
    response = httpx.post(
        f"{standin.url}/_standin/headers?q=1",
        content=b"12345",
        headers={"X-Forwarded-For": "203.0.113.7", "Cookie": "a=1; b=2"},
    )
    body = response.json()
    assert body["method"] == "POST"
    assert body["uri"] == "/_standin/headers?q=1"
    assert ["X-Forwarded-For", "203.0.113.7"] in body["headers"]
    assert ["Cookie", "a=1; b=2"] in body["headers"]
    assert body["body_bytes"] == 5


# Tornado 6.2's max_header_size default, which Streamlit keeps and so does the stand-in. It counts
# the request line, the headers and the blank line that ends them.
TORNADO_HEADER_LIMIT = 65536


def status_for_head_of_size(standin: Standin, size: int) -> int | None:
    """Send a GET whose head is exactly `size` bytes long and return the response status, or
    None when the connection closes without a response."""
    fixed_lines = ["GET /_standin/headers HTTP/1.1", "Host: 127.0.0.1", "X-Pad: ", ""]
    fixed_bytes = sum(len(line) + 2 for line in fixed_lines)
    connection = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        connection.putrequest("GET", "/_standin/headers", skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", "127.0.0.1")
        connection.putheader("X-Pad", "p" * (size - fixed_bytes))
        connection.endheaders()
        return connection.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return None
    finally:
        connection.close()


def test_head_at_tornado_limit_gets_200(standin: Standin) -> None:
    assert status_for_head_of_size(standin, TORNADO_HEADER_LIMIT) == 200


def test_oversized_head_gets_no_response(standin: Standin) -> None:
    assert status_for_head_of_size(standin, TORNADO_HEADER_LIMIT + 1) is None


def test_record_has_startup_details(standin: Standin) -> None:
    record = standin.record()
    assert record["argv"][:2] == ["run", record["script"]]
    assert record["script"].endswith("fluxlit/_streamlit_entry.py")
    assert "--server.port" in record["argv"]
    assert record["port"] == standin.port
    assert record["options"]["server.headless"] is True
    assert record["options"]["browser.gatherUsageStats"] is False
    assert record["env"]["FLUXLIT_TARGET"] == "examples/hello/app.py:app"
    assert "FLUXLIT_APP_DIR" in record["env"]


def test_record_lists_requests(standin: Standin) -> None:
    httpx.get(f"{standin.url}/_stcore/host-config", headers={"X-Trace": "t-1"})
    request = standin.record()["requests"][-1]
    assert request["method"] == "GET"
    assert request["uri"] == "/_stcore/host-config"
    assert ["X-Trace", "t-1"] in request["headers"]


def test_run_default_page_calls_api(standin: Standin, module_stub_api: StubApi) -> None:
    response = httpx.get(f"{standin.url}/_standin/run", timeout=20)
    assert response.status_code == 200
    run = response.json()
    assert run["page"] == ""
    assert run["error"] is None
    assert run["pages"] == PAGES
    names = [call["name"] for call in run["calls"]]
    assert names == ["navigation", "title", "dataframe"]
    assert run["calls"][2]["args"] == [USERS]
    assert module_stub_api.requests[-1].path == "/api/users"
    assert standin.record()["pages"] == PAGES


def test_run_named_page(standin: Standin) -> None:
    run = httpx.get(f"{standin.url}/_standin/run", params={"page": "add"}, timeout=20).json()
    assert run["page"] == "add"
    assert run["page_not_found"] is False
    calls = [(call["name"], call["container"]) for call in run["calls"]]
    assert calls == [
        ("navigation", "main"),
        ("header", "main"),
        ("form", "main"),
        ("text_input", "form:add_user"),
        ("text_input", "form:add_user"),
        ("form_submit_button", "form:add_user"),
    ]


def test_run_unknown_page_falls_back(standin: Standin) -> None:
    run = httpx.get(f"{standin.url}/_standin/run", params={"page": "nope"}, timeout=20).json()
    assert run["page_not_found"] is True
    assert run["page"] == ""


def test_run_error_is_500(launch_standin: Callable[..., Standin]) -> None:
    # Without FLUXLIT_API_BASE_URL the default page's ApiClient cannot be created.
    process = launch_standin(environment=standin_environment())
    response = httpx.get(f"{process.url}/_standin/run", timeout=20)
    assert response.status_code == 500
    body = response.json()
    assert "FLUXLIT_API_BASE_URL" in body["error"]
    assert "Traceback" in body["traceback"]


def test_wrong_target_shows_error(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin(environment=standin_environment("examples/hello/app.py:logger"))
    run = httpx.get(f"{process.url}/_standin/run", timeout=20).json()
    assert run["error"] is None
    assert [call["name"] for call in run["calls"]] == ["error"]
    assert "not a fluxlit.FluxLit object" in run["calls"][0]["args"][0]


def test_health_is_503_while_starting(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin(["--standin.healthDelayMs", "1500"])
    assert httpx.get(f"{process.url}/_stcore/health").status_code == 503
    deadline = time.monotonic() + 10
    while httpx.get(f"{process.url}/_stcore/health").status_code != 200:
        assert time.monotonic() < deadline, "health never turned 200"
        time.sleep(0.1)


def test_options_merge_env_and_flags(launch_standin: Callable[..., Standin]) -> None:
    environment = standin_environment(
        extra={"STREAMLIT_SERVER_MAX_UPLOAD_SIZE": "50", "STREAMLIT_SERVER_ENABLE_CORS": "false"}
    )
    process = launch_standin(["--server.maxUploadSize=1"], environment=environment)
    options = process.record()["options"]
    assert options["server.maxUploadSize"] == 1
    assert options["server.enableCORS"] is False
    health = httpx.get(f"{process.url}/_stcore/health")
    assert health.headers["access-control-allow-origin"] == "*"


def test_upload_above_limit_is_413(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin(["--server.maxUploadSize", "1"])
    token = xsrf_token(process)
    response = httpx.put(
        f"{process.url}/_stcore/upload_file/s/big",
        content=b"x" * ((1 << 20) + 1),
        cookies={"_xsrf": token},
        headers={"X-Xsrftoken": token},
    )
    assert response.status_code == 413
    assert "server.maxUploadSize=1 MB" in response.text
    exact = httpx.put(
        f"{process.url}/_stcore/upload_file/s/exact",
        content=b"x" * (1 << 20),
        cookies={"_xsrf": token},
        headers={"X-Xsrftoken": token},
    )
    assert exact.status_code == 204


def test_exit_route_ends_process(launch_standin: Callable[..., Standin]) -> None:
    process = launch_standin()
    assert httpx.get(f"{process.url}/_standin/exit", params={"code": 3}).status_code == 200
    assert process.process.wait(10) == 3


def test_handler_named_like_page_path(
    launch_standin: Callable[..., Standin], tmp_path: Path, module_stub_api: StubApi
) -> None:
    # The default page's handler is called `add`, the name Streamlit would infer as its path.
    (tmp_path / "clash_app.py").write_text(
        "from fluxlit import FluxLit\n"
        "app = FluxLit()\n"
        "@app.page('/')\n"
        "def add(st, client):\n"
        "    st.write('home')\n"
        "@app.page('/add')\n"
        "def other(st, client):\n"
        "    st.write('add')\n"
    )
    environment = standin_environment(
        f"{tmp_path}/clash_app.py:app", {"FLUXLIT_API_BASE_URL": module_stub_api.url}
    )
    process = launch_standin(environment=environment)
    for page, text in (("", "home"), ("add", "add")):
        run = httpx.get(f"{process.url}/_standin/run", params={"page": page}, timeout=20).json()
        assert run["error"] is None
        assert run["calls"][-1]["args"] == [text]


def test_inferred_duplicate_paths_fail(
    launch_standin: Callable[..., Standin], tmp_path: Path
) -> None:
    script = tmp_path / "duplicate_pages.py"
    script.write_text(
        "import streamlit as st\n"
        "def render():\n"
        "    st.write('one')\n"
        "first = render\n"
        "def render():\n"
        "    st.write('two')\n"
        "st.navigation([st.Page(first, default=True), st.Page(render)]).run()\n"
    )
    process = launch_standin(script=script)
    response = httpx.get(f"{process.url}/_standin/run", timeout=20)
    assert response.status_code == 500
    assert "two pages with the URL path 'render'" in response.json()["error"]
