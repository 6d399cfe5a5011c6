"""Profile fluxlit under one kind of load with callgrind, or count its system calls with strace.

callgrind counts instructions in user space (the kernel's share is not in it), so the
`syscalls` mode complements it with the system calls per request. The machine here has no
hardware counters for `perf` (`perf stat -e instructions true` prints `<not supported>`),
which is why callgrind is used.

    /usr/bin/python3 scripts/bench/profile.py callgrind api /trivial
    /usr/bin/python3 scripts/bench/profile.py syscalls proxy /static/bundle.js
    /usr/bin/python3 scripts/bench/profile.py callgrind proxy ws

Instrumentation starts once fluxlit is ready, so start-up is not in the profile. The output
file and the top functions by exclusive instruction count are printed at the end.
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
from pathlib import Path

import benchlib
from benchlib import PYTHON, Server

# wrk connections under callgrind, which runs the gateway about 50 times slower.
CALLGRIND_CONNECTIONS = 8


def start(mode: str, kind: str, binary: Path, directory: Path) -> tuple[Server, str]:
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
    command.append(f"{benchlib.BENCH_DIR / 'asgi_app.py'}:app")
    if mode == "callgrind":
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={directory / 'callgrind.out'}", *command]
    server = Server("fluxlit", command, directory / "fluxlit.log", environment=environment,
                    working_directory=directory)
    port = benchlib.wait_for_port_line(server, timeout=180)
    base = f"http://127.0.0.1:{port}"
    benchlib.wait_for_http(base + "/api/readyz", server, timeout=180)
    return server, base


def run_load(kind: str, target: str, base: str, seconds: int, connections: int,
             body_file: Path) -> tuple[int, str]:
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
    url = base + ("/api" + target if kind == "api" else target)
    post_body = body_file if kind == "api" and target == "/echo" else None
    result = benchlib.run_wrk(url, seconds, connections, post_body)
    return result.requests, f"requests to {url}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["callgrind", "syscalls"])
    parser.add_argument("kind", choices=["api", "proxy"])
    parser.add_argument("target", help="API route (/trivial, /items, /echo, /large), or for "
                        "proxy: /_stcore/health, /static/bundle.js or ws")
    parser.add_argument("--seconds", type=int, default=20, help="load duration")
    parser.add_argument("--connections", type=int, help="default: 8 under callgrind, else 64")
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
