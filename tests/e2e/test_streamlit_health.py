"""A Streamlit child that hangs while it runs is detected by health checks and restarted.

SIGSTOP leaves the stand-in's listening socket open, so connections succeed but nothing
responds, as with a child stuck in a deadlock.
"""

from __future__ import annotations

import os
import signal
import time

import httpx

import harness

HEALTH_SETTINGS = {
    "FLUXLIT_STREAMLIT_HEALTH_INTERVAL_MS": "200",
    "FLUXLIT_STREAMLIT_HEALTH_TIMEOUT_MS": "300",
    "FLUXLIT_STREAMLIT_HEALTH_FAILURE_THRESHOLD": "2",
}
# Two checks of 200 ms wait and 300 ms timeout each take about 1 s; the rest is margin for a
# loaded machine.
DETECTION_TIMEOUT_S = 10.0
DETECTION_LIMIT_S = 5.0
# A local 503 takes milliseconds; waiting on the hung child would take the upstream timeout.
LOCAL_REPLY_LIMIT_S = 1.0


def readiness(server: harness.Fluxlit) -> tuple[int, dict]:
    response = httpx.get(server.api_url("/readyz"), timeout=5)
    return response.status_code, response.json()


def test_stopped_child_is_replaced(launcher: harness.Launcher) -> None:
    server = launcher.start(
        extra_environment=HEALTH_SETTINGS,
        expected_errors=["health checks in a row"],
    )
    hung_pid = server.streamlit_pid()
    assert hung_pid is not None
    assert httpx.get(server.url("/"), timeout=5).status_code == 200

    os.kill(hung_pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        status, body = readiness(server)
        while status == 200 and time.monotonic() - stopped_at < DETECTION_TIMEOUT_S:
            time.sleep(0.05)
            status, body = readiness(server)
        detected_after = time.monotonic() - stopped_at
        assert status == 503, f"still ready {detected_after:.1f} s after SIGSTOP"
        # The settings reached the supervisor: the defaults would take about 9 s.
        assert detected_after < DETECTION_LIMIT_S
        assert body["checks"]["streamlit"]["ok"] is False
        assert body["checks"]["streamlit"]["state"] in ("restarting", "starting")

        # While no child is ready, UI requests get a local 503 at once instead of hanging.
        started = time.monotonic()
        response = httpx.get(server.url("/"), timeout=10)
        elapsed = time.monotonic() - started
        if response.status_code == 503:
            assert response.headers["retry-after"] == "2"
            assert response.headers["x-fluxlit-reason"] == "streamlit_not_ready"
            assert elapsed < LOCAL_REPLY_LIMIT_S
        else:
            # The new child was already ready when the request arrived.
            assert response.status_code == 200
    finally:
        # Lets the stand-in exit if the supervisor only sent SIGTERM and the test failed early.
        try:
            os.kill(hung_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    server.wait_ready()
    assert server.streamlit_pid() != hung_pid
    assert httpx.get(server.url("/"), timeout=5).status_code == 200
    assert not harness.is_running(harness.read_process(hung_pid))
    server.wait_for_log("failed 2 health checks in a row")
    server.wait_for_log("was stopped after failing its health checks")
