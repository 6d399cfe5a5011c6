"""The CPU accounting of scripts/bench/profile.py's `cpu` mode, against real perf recordings."""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "scripts" / "bench"
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")


def load_profile_script() -> ModuleType:
    # The file is named like the standard library's `profile`, so it is loaded by path.
    sys.path.insert(0, str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location("bench_profile", BENCH_DIR / "profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spin(cpu: int, seconds: float) -> subprocess.Popen:
    """Start a `python3` process on `cpu` that keeps it busy for `seconds` of wall time."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    return subprocess.Popen(["taskset", "-c", str(cpu), PYTHON, "-c", code])


def test_cpu_time_ignores_same_named_process(tmp_path: Path) -> None:
    # Two processes named python3 share one CPU. The other one runs from before the recording
    # and the measured one starts later, so a report that merged processes by command name
    # would credit their shared rows to the other one.
    profile = load_profile_script()
    cpu = max(os.sched_getaffinity(0))
    data = tmp_path / "spin.perf"
    other = spin(cpu, 4.0)
    try:
        recorder = subprocess.Popen(
            ["perf", "record", "-a", "-C", str(cpu), "-e", "cpu-clock", "-F", "1000",
             "-o", str(data), "--", "sleep", "3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(0.8)
        # No other child is reaped meanwhile, so the change is the measured process's CPU time.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        measured = spin(cpu, 1.0)
        measured.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        _, errors = recorder.communicate(timeout=60)
        assert recorder.returncode == 0, errors
    finally:
        other.kill()
        other.wait()

    by_object = profile.perf_cpu_seconds(data, [measured.pid], "comm,dso")
    sampled_seconds = sum(by_object.values())
    used_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert used_seconds > 0.2, "the measured process hardly ran; the machine is too busy"
    assert sampled_seconds == pytest.approx(used_seconds, rel=0.2)
