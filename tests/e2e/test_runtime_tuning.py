"""How the binary tunes the kernel's scheduling of its threads and the app's garbage collector.

`io_scheduling` puts the I/O thread under SCHED_BATCH when the process may use one CPU only
(`auto`) or always (`batch`), so that its wake-ups do not preempt the Python thread. The
Python thread and the Streamlit child keep the normal policy. After start-up, the app's heap
is frozen, so that full collections skip it.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import harness

HEAP_TARGET = f"{harness.APPS_DIR / 'heap_app.py'}:app"


@contextlib.contextmanager
def started_under_batch() -> Iterator[None]:
    """Start processes inside the block under SCHED_BATCH, as `chrt -b 0` does."""
    policy = os.sched_getscheduler(0)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, os.sched_param(0))



def thread_policies(pid: int) -> dict[int, int]:
    """Return the scheduling policy of every thread of `pid`, by thread id."""
    return {
        int(entry.name): os.sched_getscheduler(int(entry.name))
        for entry in Path(f"/proc/{pid}/task").iterdir()
    }


def start(launcher: harness.Launcher, *extra: str, single_cpu: bool) -> harness.Fluxlit:
    if not single_cpu:
        return launcher.start(*extra)
    with harness.one_cpu():
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
    names = {Path(f"/proc/{server.pid}/task/{tid}/comm").read_text().strip() for tid in policies}
    assert "fluxlit-python" in names
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


def test_policy_set_by_launcher_is_kept(launcher: harness.Launcher) -> None:
    with started_under_batch(), harness.one_cpu():
        server = launcher.start("--io-scheduling", "auto")
    # Every thread and the Streamlit child keep the policy that the process started with.
    assert set(thread_policies(server.pid).values()) == {os.SCHED_BATCH}
    assert os.sched_getscheduler(server.streamlit_pid()) == os.SCHED_BATCH
    assert "keeps the scheduling policy" in server.wait_for_log("io_scheduling = auto")
    assert server.stop() == 0


def test_workers_batch_on_one_cpu_and_keep_name(launcher: harness.Launcher) -> None:
    with harness.one_cpu():
        server = launcher.start("--workers", "2")
    parent_name = Path(f"/proc/{server.pid}/comm").read_text().strip()
    workers = [
        info.pid
        for info in harness.descendants(server.pid)
        if info.pid != server.streamlit_pid() and harness.runs_binary(info.pid)
    ]
    assert len(workers) == 2, workers
    for pid in workers:
        # The parent keeps the normal policy; each worker batches its own I/O thread.
        assert Path(f"/proc/{pid}/comm").read_text().strip() == parent_name
        assert thread_policies(pid)[pid] == os.SCHED_BATCH
    assert thread_policies(server.pid)[server.pid] == os.SCHED_OTHER
    assert server.stop() == 0


def test_unknown_policy_is_refused_with_the_choices(launcher: harness.Launcher) -> None:
    arguments = ["run", harness.HELLO_TARGET, "--io-scheduling", "fast"]
    process, stdout, stderr = harness.spawn(arguments)
    assert process.wait(timeout=30) != 0
    # The reader thread may still be reading the pipe after the exit, so wait for the line.
    message = stderr.wait_for("io_scheduling", 10)
    assert message is not None, stdout.snapshot()
    assert '"fast"' in message
    assert "batch" in message
    assert "normal" in message


def test_app_heap_is_frozen_after_startup(launcher: harness.Launcher) -> None:
    server = launcher.start("--no-ui", target=HEAP_TARGET, ready=False)
    report = httpx.get(server.api_url("/"), timeout=10).json()
    # Everything the interpreter, the runtime and the app imported is frozen: thousands of
    # objects. Without the freeze the count is 0.
    assert report["frozen"] > 1000
    assert report["thread_policy"] == os.SCHED_OTHER
    assert server.stop() == 0


# Each version of this app holds a reference cycle whose collection creates a directory, and
# freezes the heap at import, as apps tuned for pre-fork servers do.
SELF_FREEZING_APP = textwrap.dedent(
    """
    import gc
    import os
    import weakref

    from fastapi import FastAPI

    VERSION = 1


    class Node:
        pass


    node = Node()
    node.cycle = node
    weakref.finalize(node, os.mkdir, os.path.join(os.environ["FINALIZED_DIR"], f"v{VERSION}"))
    gc.freeze()

    app = FastAPI()


    @app.get("/version")
    async def version():
        return {"version": VERSION}
    """
)


def write_self_freezing_app(directory: Path, version: int) -> None:
    text = SELF_FREEZING_APP.replace("VERSION = 1", f"VERSION = {version}")
    harness.replace_app_file(directory, text)


def test_reload_collects_old_app_frozen_by_app(
    launcher: harness.Launcher, tmp_path: Path
) -> None:
    app_directory = tmp_path / "app"
    finalized = tmp_path / "finalized"
    app_directory.mkdir()
    finalized.mkdir()
    write_self_freezing_app(app_directory, 1)
    server = launcher.start(
        "--no-ui",
        "--reload-debounce-ms",
        "100",
        target="app:app",
        command="dev",
        cwd=app_directory,
        extra_environment={"FINALIZED_DIR": str(finalized)},
    )
    harness.wait_for_version(server, 1)
    for version in (2, 3):
        write_self_freezing_app(app_directory, version)
        harness.wait_for_version(server, version)
        # The previous version's cycle is garbage once its reload finished. When it is frozen
        # again by the new import, it is never freed and each reload leaks a whole app.
        assert (finalized / f"v{version - 1}").is_dir(), sorted(os.listdir(finalized))
    assert not (finalized / "v3").exists()
    assert server.stop() == 0
