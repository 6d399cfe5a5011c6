"""Profile fluxlit under one kind of load with callgrind, perf or strace.

- `callgrind` counts instructions in user space (the kernel's share is not in it).
  Instrumentation starts once fluxlit is ready, so start-up is not in the profile. The top
  functions by exclusive instruction count are printed at the end.
- `syscalls` counts the system calls per request with strace.
- `app` splits the CPU time per request of fluxlit and of uvicorn into the app's own calls
  and the rest, on one API route. It also times the same calls in a loop with no sockets
  inside each server's process (timed_app.py), which shows how much slower the app itself runs
  when its calls alternate with the server's socket work.
- `cpu` samples all of the server CPU with perf's software clock while the load runs, kernel
  included, and prints the CPU time per request by thread, by shared object and by function.
  For an API route it does the same for uvicorn on the same app, side by side. The machine
  here has no hardware counters (`perf stat -e instructions true` prints `<not supported>`),
  so the samples come from a timer, not from cycles.

    /usr/bin/python3 scripts/bench/profile.py callgrind api /trivial
    /usr/bin/python3 scripts/bench/profile.py syscalls proxy /static/bundle.js
    /usr/bin/python3 scripts/bench/profile.py cpu api /items
    /usr/bin/python3 scripts/bench/profile.py app api /trivial
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import benchlib
from benchlib import PYTHON, Server

# wrk connections under callgrind, which runs the gateway about 50 times slower.
CALLGRIND_CONNECTIONS = 8
# Samples that perf takes per second of CPU time in `cpu` mode, so each sample is 250 µs.
CPU_SAMPLES_PER_SECOND = 4000
# Lines of the per-function table in `cpu` mode.
CPU_TOP_FUNCTIONS = 30
# Maximum relative difference between perf's CPU time of the server and what /proc counted, and
# the absolute difference always allowed, because /proc counts in clock ticks of 10 ms.
CPU_TIME_TOLERANCE = 0.1
CPU_TIME_TOLERANCE_SECONDS = 0.05


def start(mode: str, kind: str, binary: Path, directory: Path,
          app_file: str = "asgi_app.py") -> tuple[Server, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUXLIT_", "STREAMLIT_")) and name != "VIRTUAL_ENV"
    }
    command = [str(binary), "run", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
               "--python", PYTHON]
    if kind == "api":
        command.append("--no-ui")
    else:
        environment["PYTHONPATH"] = str(benchlib.BENCH_DIR / "standin")
    command.append(f"{benchlib.BENCH_DIR / app_file}:app")
    if mode == "callgrind":
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={directory / 'callgrind.out'}", *command]
    server = Server("fluxlit", command, directory / "fluxlit.log", environment=environment,
                    working_directory=directory)
    with benchlib.stop_on_failure(server):
        port = benchlib.wait_for_port_line(server, timeout=180)
        base = f"http://127.0.0.1:{port}"
        benchlib.wait_for_http(base + "/api/readyz", server, timeout=180)
    return server, base


def run_load(kind: str, target: str, base: str, seconds: int, connections: int,
             body_file: Path, api_prefix: str = "/api") -> tuple[int, str]:
    """Run the load; return the number of requests or round trips and what they were."""
    if kind == "proxy" and target == "ws":
        completed = subprocess.run(
            ["taskset", "-c", benchlib.LOAD_CPU, PYTHON, str(benchlib.BENCH_DIR / "ws_load.py"),
             "load", base.replace("http://", "ws://") + "/_stcore/stream", "--connections",
             str(connections), "--duration", str(seconds), "--warmup", "0"],
            capture_output=True, text=True, check=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        return result["messages"], "WebSocket round trips"
    url = base + (api_prefix + target if kind == "api" else target)
    post_body = body_file if kind == "api" and target == "/echo" else None
    result = benchlib.run_wrk(url, seconds, connections, post_body)
    if result.errors:
        sys.exit(f"wrk counted {result.errors} socket errors, timeouts or error responses (status "
                 f"400 or above) at {url}; pass a target that answers with 2xx or 3xx")
    return result.requests, f"requests to {url}"


def perf_cpu_seconds(data: Path, pids: list[int], keys: str) -> dict[tuple[str, ...], float]:
    """Return the CPU seconds in `data` of the processes `pids` (their threads included) by `keys`.

    perf report applies --pid to a row after it has merged the samples of every process with
    the row's keys. A row that another process (say another python3) reached first is then
    dropped whole, and one that a listed process reached first also contains the other's
    samples. Sorting by thread first keeps each row to one thread.
    """
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
         "--pid", ",".join(map(str, pids)), "--sort", f"pid,{keys}", "-F", f"period,pid,{keys}",
         "-t", "\t"],
        capture_output=True, text=True, check=True,
    ).stdout
    seconds: dict[tuple[str, ...], float] = {}
    for line in report.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        # The period of a cpu-clock sample is the CPU time it stands for, in nanoseconds.
        period, _thread, *names = (field.strip() for field in line.split("\t"))
        key = tuple(names)
        seconds[key] = seconds.get(key, 0.0) + int(period) / 1e9
    return seconds


def sample_cpu(server: Server, load: Callable[[int], int], seconds: int,
               directory: Path) -> tuple[int, dict, dict]:
    """Run `load` while perf samples the server CPU.

    Returns the requests or round trips that `load` counted, and the CPU seconds of the server
    and its children by thread and shared object and by function. Exits when the samples and
    the CPU time that /proc counted for the same processes differ by more than
    CPU_TIME_TOLERANCE.
    """
    load(2)  # warm-up
    pids = [server.pid, *benchlib.descendant_pids(server.pid)]
    data = directory / f"{server.name}.perf"
    used_before = sum(benchlib.cpu_seconds(pid) for pid in pids)
    # perf starts before the load and stops after it. The server sleeps outside the load, so the
    # extra time adds no samples of it.
    recorder = subprocess.Popen(
        ["perf", "record", "-a", "-C", benchlib.SERVER_CPU, "-e", "cpu-clock",
         "-F", str(CPU_SAMPLES_PER_SECOND), "-o", str(data), "--", "sleep", str(seconds + 2)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.0)
    count = load(seconds)
    _, errors = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0:
        sys.exit(f"perf record failed: {errors.strip()}")
    used = sum(benchlib.cpu_seconds(pid) for pid in pids) - used_before
    by_object = perf_cpu_seconds(data, pids, "comm,dso")
    sampled = sum(by_object.values())
    print(f"{server.name}: perf sampled {sampled:.2f} s of CPU, /proc counted {used:.2f} s")
    if abs(sampled - used) > max(CPU_TIME_TOLERANCE * used, CPU_TIME_TOLERANCE_SECONDS):
        sys.exit(f"perf sampled {sampled:.2f} s of CPU for {server.name} but /proc counted "
                 f"{used:.2f} s, so the profile would be wrong. Check that every process of the "
                 f"server runs on CPU {benchlib.SERVER_CPU} and that perf lost no samples.")
    return count, by_object, perf_cpu_seconds(data, pids, "sym")


def microseconds_per_request(cpu_seconds: float, requests: int) -> float:
    return cpu_seconds * 1e6 / requests


def profile_cpu(arguments: argparse.Namespace, directory: Path, connections: int,
                body_file: Path) -> None:
    """Run `cpu` mode: fluxlit, and for an API route uvicorn too, each alone under the load."""
    servers = ["fluxlit"] + (["uvicorn"] if arguments.kind == "api" else [])
    results = {}
    for name in servers:
        if name == "fluxlit":
            server, base = start("cpu", arguments.kind, arguments.binary, directory)
            api_prefix = "/api"
        else:
            from asgi_bench import start_uvicorn

            server, base = start_uvicorn(directory)
            api_prefix = ""  # uvicorn serves the app's routes at the root
        try:
            def load(seconds: int) -> int:
                return run_load(arguments.kind, arguments.target, base, seconds, connections,
                                body_file, api_prefix)[0]

            results[name] = sample_cpu(server, load, arguments.seconds, directory)
        finally:
            server.stop(timeout=120)

    for name, (count, by_object, _) in results.items():
        total = microseconds_per_request(sum(by_object.values()), count)
        print(f"\n{name}: {count} requests or round trips, {total:.1f} µs of CPU each")
        for (thread, shared_object), cpu in sorted(by_object.items(), key=lambda i: -i[1]):
            cost = microseconds_per_request(cpu, count)
            if cost >= 0.1:
                print(f"  {cost:8.1f} µs  {thread:<18} {shared_object}")

    functions: dict[str, dict[str, float]] = {}
    for name, (count, _, by_function) in results.items():
        for (function,), cpu in by_function.items():
            functions.setdefault(function, {})[name] = microseconds_per_request(cpu, count)
    top = sorted(functions.items(), key=lambda item: -sum(item[1].values()))[:CPU_TOP_FUNCTIONS]
    print(f"\nFunctions, µs per request: {'  '.join(f'{name:>8}' for name in results)}")
    for function, costs in top:
        columns = "  ".join(f"{costs.get(name, 0.0):8.1f}" for name in results)
        print(f"  {columns}  {function}")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=600) as response:
        return json.loads(response.read())


def profile_app(arguments: argparse.Namespace, directory: Path, connections: int,
                body_file: Path) -> None:
    """Run `app` mode: each server's CPU per request, split into the app's calls and the rest."""
    import asgi_app

    routes = [path for _, _, path, _ in asgi_app.ROUTES]
    if arguments.kind != "api" or arguments.target not in routes:
        sys.exit(f"app mode times the calls of the API app on one of its routes; pass the kind "
                 f"api and one of {', '.join(routes)}")
    rows = []
    for name in ("fluxlit", "uvicorn"):
        if name == "fluxlit":
            server, base = start("app", "api", arguments.binary, directory, "timed_app.py")
            api_prefix = "/api"
        else:
            from asgi_bench import start_uvicorn

            server, base = start_uvicorn(directory, "timed_app:app")
            api_prefix = ""
        try:
            run_load("api", arguments.target, base, 2, connections, body_file, api_prefix)
            get_json(base + api_prefix + "/_app_cpu")  # forget the warm-up's calls
            pids = [server.pid, *benchlib.descendant_pids(server.pid)]
            used_before = sum(benchlib.cpu_seconds(pid) for pid in pids)
            count, _ = run_load("api", arguments.target, base, arguments.seconds, connections,
                                body_file, api_prefix)
            used = sum(benchlib.cpu_seconds(pid) for pid in pids) - used_before
            under_load = get_json(base + api_prefix + "/_app_cpu")["median_us"]
            in_loop = get_json(f"{base}{api_prefix}/_loop_cpu?path={arguments.target}")[
                "median_us"]
        finally:
            server.stop(timeout=120)
        total = microseconds_per_request(used, count)
        rows.append([name, f"{count / arguments.seconds:,.0f}", f"{total:.1f}", f"{in_loop:.1f}",
                     f"{under_load:.1f}", f"{under_load - in_loop:+.1f}",
                     f"{total - under_load:.1f}"])
    print(f"\nRoute {arguments.target}, {connections} connections, {arguments.seconds} s per "
          "server, medians of the app's calls in µs of thread CPU time:\n")
    print(benchlib.markdown_table(
        ["Server", "req/s", "CPU µs/req", "app call in a loop", "app call under load",
         "slowdown under load", "rest of the server"], rows))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of 1 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["callgrind", "syscalls", "cpu", "app"])
    parser.add_argument("kind", choices=["api", "proxy"])
    parser.add_argument("target", help="API route (/trivial, /items, /echo, /large), or for "
                        "proxy: /_stcore/health, /static/bundle.js or ws")
    parser.add_argument("--seconds", type=positive_int, default=20, help="load duration")
    parser.add_argument("--connections", type=positive_int, help="default: 8 under callgrind, else 64")
    parser.add_argument("--binary", type=Path,
                        default=benchlib.REPO_ROOT / "build" / "release" / "fluxlit")
    parser.add_argument("--keep", type=Path, help="copy the callgrind output file here")
    arguments = parser.parse_args()
    # The servers run in a temporary directory, so a relative path would not resolve there.
    arguments.binary = arguments.binary.resolve()
    connections = arguments.connections or (
        CALLGRIND_CONNECTIONS if arguments.mode == "callgrind" else 64
    )

    sys.path.insert(0, str(benchlib.BENCH_DIR))
    import asgi_app

    with tempfile.TemporaryDirectory(prefix="fluxlit-profile-") as name:
        directory = Path(name)
        body_file = directory / "echo.json"
        body_file.write_bytes(asgi_app.make_echo_body())
        if arguments.mode == "cpu":
            profile_cpu(arguments, directory, connections, body_file)
            return
        if arguments.mode == "app":
            profile_app(arguments, directory, connections, body_file)
            return
        server, base = start(arguments.mode, arguments.kind, arguments.binary, directory)
        try:
            if arguments.mode == "callgrind":
                subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                               capture_output=True)
                count, description = run_load(arguments.kind, arguments.target, base,
                                       arguments.seconds, connections, body_file)
                subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                               capture_output=True)
            else:
                tracer = subprocess.Popen(
                    ["strace", "-f", "-c", "-o", str(directory / "strace.txt"), "-p",
                     str(server.pid)],
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)  # let strace attach to every thread
                count, description = run_load(arguments.kind, arguments.target, base,
                                       arguments.seconds, connections, body_file)
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=60)
        finally:
            server.stop(timeout=120)

        print(f"{count} {description}")
        if arguments.mode == "syscalls":
            print((directory / "strace.txt").read_text())
            return
        outputs = sorted(directory.glob("callgrind.out*"))
        if not outputs:
            sys.exit(f"callgrind wrote no output; see {server.log_path}")
        annotated = subprocess.run(["callgrind_annotate", str(outputs[0])], capture_output=True,
                                   text=True, check=True).stdout
        total = re.search(r"^([\d,]+) .*PROGRAM TOTALS", annotated, re.MULTILINE)
        if total and count:
            instructions = int(total.group(1).replace(",", ""))
            print(f"{instructions:,} instructions, {instructions / count:,.0f} per request or "
                  "round trip (every thread, requests that were in flight included)")
        lines = annotated.splitlines()
        first = next((i for i, line in enumerate(lines) if "PROGRAM TOTALS" in line), 0)
        print("\n".join(lines[first:first + 40]))
        if arguments.keep:
            arguments.keep.write_bytes(outputs[0].read_bytes())
            print(f"callgrind output copied to {arguments.keep}")


if __name__ == "__main__":
    main()
