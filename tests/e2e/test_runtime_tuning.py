"""How the binary tunes the kernel's scheduling of its threads and the app's garbage collector.

`io_scheduling` puts the I/O thread under SCHED_BATCH when the process may use one CPU only
(`auto`) or always (`batch`), so that its wake-ups do not preempt the Python thread. The
Python thread and the Streamlit child keep the normal policy. After start-up, the app's heap
is frozen, so that full collections skip it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import harness

HEAP_TARGET = f"{harness.APPS_DIR / 'heap_app.py'}:app"


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Let processes started inside the block run on one CPU only, as `taskset -c N` does."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def thread_policies(pid: int) -> dict[int, int]:
    """Return the scheduling policy of every thread of `pid`, by thread id."""
    return {
        int(entry.name): os.sched_getscheduler(int(entry.name))
        for entry in Path(f"/proc/{pid}/task").iterdir()
    }


def start(launcher: harness.Launcher, *extra: str, single_cpu: bool) -> harness.Fluxlit:
    if not single_cpu:
        return launcher.start(*extra)
    with one_cpu():
        return launcher.start(*extra)


def test_auto_batches_io_thread_on_one_cpu(launcher: harness.Launcher) -> None:
    server = start(launcher, single_cpu=True)
    policies = thread_policies(server.pid)
    # The main thread runs the I/O loop; the others (the Python thread among them) are normal.
    assert policies.pop(server.pid) == os.SCHED_BATCH
    assert policies and all(policy == os.SCHED_OTHER for policy in policies.values()), policies
    streamlit = server.streamlit_pid()
    assert streamlit is not None
    assert os.sched_getscheduler(streamlit) == os.SCHED_OTHER
    assert os.sched_getaffinity(streamlit) == {min(os.sched_getaffinity(0))}
    assert "io_scheduling = auto" in server.wait_for_log("SCHED_BATCH")
    response = httpx.get(server.api_url("/users"), timeout=10)
    assert response.status_code == 200
    assert httpx.get(server.url("/"), timeout=10).status_code == 200
    assert server.stop() == 0


def test_auto_keeps_normal_policy_with_several_cpus(launcher: harness.Launcher) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may use one CPU only")
    server = start(launcher, single_cpu=False)
    assert set(thread_policies(server.pid).values()) == {os.SCHED_OTHER}
    assert server.stop() == 0


def test_batch_and_normal_override_auto(launcher: harness.Launcher) -> None:
    batched = start(launcher, "--io-scheduling", "batch", single_cpu=False)
    assert thread_policies(batched.pid)[batched.pid] == os.SCHED_BATCH
    assert os.sched_getscheduler(batched.streamlit_pid()) == os.SCHED_OTHER
    normal = start(launcher, "--io-scheduling", "normal", single_cpu=True)
    assert set(thread_policies(normal.pid).values()) == {os.SCHED_OTHER}
    assert not [line for line in normal.log_lines() if "SCHED_BATCH" in line.message]
    assert batched.stop() == 0
    assert normal.stop() == 0


def test_unknown_policy_is_refused_with_the_choices(launcher: harness.Launcher) -> None:
    process, stdout, stderr = harness.spawn(["run", harness.HELLO_TARGET, "--io-scheduling", "fast"])
    assert process.wait(timeout=30) != 0
    text = "\n".join(stderr.snapshot() + stdout.snapshot())
    assert "fast" in text
    assert "batch" in text and "normal" in text


def test_app_heap_is_frozen_after_startup(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", target=HEAP_TARGET, ready=False)
    report = httpx.get(server.api_url("/"), timeout=10).json()
    # Everything the interpreter, the runtime and the app imported is frozen: thousands of
    # objects. Without the freeze the count is 0.
    assert report["frozen"] > 1000
    assert report["thread_policy"] == os.SCHED_OTHER
    assert server.stop() == 0
