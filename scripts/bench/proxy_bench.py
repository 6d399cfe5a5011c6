"""Compare FluxLit's proxy path with nginx and with no proxy, in front of the same upstream.

The upstream is upstream.py (Tornado, one process). It is reached three ways: directly,
through nginx (one worker, configured from nginx.conf.template), and through FluxLit, which
starts its own copy of upstream.py as its Streamlit child through scripts/bench/standin. Every
server runs on CPU 0, and every load generator on CPU 1. Each round runs every test against
the three paths in an order that rotates between rounds; the report takes the median. Before
any load, the idle-memory test opens 1,000 WebSockets through each gateway and reads its RSS.
Run it through scripts/bench/proxy.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import benchlib
from benchlib import PYTHON, Server

DIRECT = "direct"
NGINX = "nginx"
FLUXLIT = "fluxlit"
PATHS = (DIRECT, NGINX, FLUXLIT)
GATEWAYS = (NGINX, FLUXLIT)

HEALTH = "/_stcore/health"
STATIC_FILE = "/static/bundle.js"
STATIC_FILE_BYTES = 300 * 1024
STREAM = "/_stcore/stream"
WARMUP_SECONDS = 2
IDLE_SETTLE_SECONDS = 3

# Targets for FluxLit against nginx, as ratios measured on a 2-core machine.
HEALTH_TARGET = 1.1
WEBSOCKET_TARGET = 1.1
STATIC_FILE_TARGET = 1.2
# CPU time of other processes during a run, as a share of one CPU, above which the run is
# reported as skewed.
OTHER_LOAD_WARNING = 0.05


@dataclass
class Sample:
    rate: float
    p50_us: float
    p99_us: float
    gateway_cpu_us: float | None
    load_cpu_fraction: float
    other_load: float


@dataclass
class TestResults:
    label: str
    unit: str
    samples: dict[str, list[Sample]] = field(
        default_factory=lambda: {path: [] for path in PATHS}
    )

    def median(self, path: str, attribute: str) -> float:
        return benchlib.median([getattr(sample, attribute) for sample in self.samples[path]])


@dataclass
class Gateway:
    server: Server
    base: str
    measured_pid: int | None  # the process whose CPU and RSS count as the gateway's
    pids: list[int]  # every process on this path: gateway and upstream


def server_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUXLIT_", "STREAMLIT_")) and name != "VIRTUAL_ENV"
    }


def start_upstream(work_directory: Path) -> Gateway:
    port = benchlib.free_port()
    server = Server(
        "upstream",
        [PYTHON, str(benchlib.BENCH_DIR / "upstream.py"), "--port", str(port)],
        work_directory / "upstream.log",
        environment=server_environment(),
    )
    base = f"http://127.0.0.1:{port}"
    with benchlib.stop_on_failure(server):
        benchlib.wait_for_http(base + HEALTH, server)
    return Gateway(server, base, None, [server.pid])


def start_nginx(work_directory: Path, upstream: Gateway) -> Gateway:
    server, base, worker = benchlib.start_nginx(
        NGINX, work_directory, "nginx.conf.template",
        {"UPSTREAM_PORT": upstream.base.rsplit(":", 1)[1]}, HEALTH,
    )
    return Gateway(server, base, worker, [server.pid, worker, *upstream.pids])


def start_fluxlit(binary: Path, work_directory: Path) -> Gateway:
    environment = server_environment()
    standin = str(benchlib.BENCH_DIR / "standin")
    environment["PYTHONPATH"] = os.pathsep.join(
        entry for entry in [standin, environment.get("PYTHONPATH", "")] if entry
    )
    target = f"{benchlib.BENCH_DIR / 'asgi_app.py'}:app"
    server = Server(
        FLUXLIT,
        [str(binary), "run", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
         "--python", PYTHON, target],
        work_directory / "fluxlit.log",
        environment=environment,
        working_directory=work_directory,
    )
    with benchlib.stop_on_failure(server):
        port = benchlib.wait_for_port_line(server)
        base = f"http://127.0.0.1:{port}"
        benchlib.wait_for_http(base + "/api/readyz", server)
    return Gateway(server, base, server.pid, [server.pid, *benchlib.descendant_pids(server.pid)])


def check_responses(gateways: dict[str, Gateway]) -> None:
    """Fail unless every path returns the upstream's health text and the whole static file."""
    for name, gateway in gateways.items():
        with urllib.request.urlopen(gateway.base + HEALTH, timeout=10) as response:
            if response.read() != b"ok":
                raise RuntimeError(f"{name} returned another body for {HEALTH}")
        with urllib.request.urlopen(gateway.base + STATIC_FILE, timeout=10) as response:
            size = len(response.read())
            if size != STATIC_FILE_BYTES:
                raise RuntimeError(f"{name} returned {size} bytes for {STATIC_FILE}")


def websocket_url(gateway: Gateway) -> str:
    return gateway.base.replace("http://", "ws://") + STREAM


def gateway_cpu(gateway: Gateway) -> float:
    return benchlib.cpu_seconds(gateway.measured_pid) if gateway.measured_pid else 0.0


def warn_other_load(other_load: benchlib.OtherLoad, gateway: Gateway, path: str) -> None:
    if other_load.cpu_fraction > OTHER_LOAD_WARNING:
        print(f"warning: other processes used {other_load.cpu_fraction:.0%} of a CPU during "
              f"the run through {gateway.server.name} at {path}; its numbers are skewed",
              file=sys.stderr, flush=True)


def measure_http(gateway: Gateway, path: str, arguments: argparse.Namespace) -> Sample:
    gateway.server.check_alive()
    cpu_before = gateway_cpu(gateway)
    with benchlib.OtherLoad(gateway.pids) as other_load:
        result = benchlib.run_wrk(gateway.base + path, arguments.duration, arguments.connections)
    cpu_after = gateway_cpu(gateway)
    warn_other_load(other_load, gateway, path)
    if result.errors:
        raise RuntimeError(f"wrk counted {result.errors} errors at {gateway.base + path}")
    return Sample(
        rate=result.requests_per_second,
        p50_us=result.p50_us,
        p99_us=result.p99_us,
        gateway_cpu_us=(
            (cpu_after - cpu_before) / result.requests * 1e6 if gateway.measured_pid else None
        ),
        load_cpu_fraction=result.load_cpu_fraction,
        other_load=other_load.cpu_fraction,
    )


def run_ws_load(url: str, connections: int, duration: float, warmup: float) -> dict:
    completed = subprocess.run(
        ["taskset", "-c", benchlib.LOAD_CPU, PYTHON, str(benchlib.BENCH_DIR / "ws_load.py"),
         "load", url, "--connections", str(connections), "--duration", str(duration),
         "--warmup", str(warmup)],
        capture_output=True, text=True, timeout=duration + warmup + 120,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"ws_load.py failed on {url}:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_websocket(gateway: Gateway, arguments: argparse.Namespace) -> Sample:
    gateway.server.check_alive()
    cpu_before = gateway_cpu(gateway)
    with benchlib.OtherLoad(gateway.pids) as other_load:
        result = run_ws_load(websocket_url(gateway), arguments.ws_connections,
                             arguments.duration, 1.0)
    cpu_after = gateway_cpu(gateway)
    warn_other_load(other_load, gateway, STREAM)
    return Sample(
        rate=result["messages_per_second"],
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        # CPU over the warm-up and the measured time, per measured message: an upper bound.
        gateway_cpu_us=(
            (cpu_after - cpu_before) / result["messages"] * 1e6 if gateway.measured_pid else None
        ),
        load_cpu_fraction=result["client_cpu_fraction"],
        other_load=other_load.cpu_fraction,
    )


def measure_idle_memory(gateway: Gateway, count: int) -> dict:
    """Open `count` idle WebSockets through the gateway and return its RSS before and with them."""
    time.sleep(IDLE_SETTLE_SECONDS)
    before = benchlib.rss_bytes(gateway.measured_pid)
    client = subprocess.Popen(
        ["taskset", "-c", benchlib.LOAD_CPU, PYTHON, str(benchlib.BENCH_DIR / "ws_load.py"),
         "idle", websocket_url(gateway), "--connections", str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = client.stdout.readline()
        if not line:
            raise RuntimeError(f"ws_load.py idle exited with status {client.wait()}")
        opened = json.loads(line)["opened"]
        time.sleep(IDLE_SETTLE_SECONDS)
        with_connections = benchlib.rss_bytes(gateway.measured_pid)
        client.stdin.write("close\n")
        client.stdin.flush()
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return {
        "opened": opened,
        "rss_idle": before,
        "rss_with_connections": with_connections,
        "bytes_per_connection": (with_connections - before) / opened,
    }


def ratio_text(value: float, reference: float) -> str:
    return benchlib.format_ratio(value / reference)


def build_report(
    tests: dict[str, TestResults],
    memory: dict[str, dict],
    facts: dict,
    arguments: argparse.Namespace,
) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Proxy: FluxLit, nginx and direct ({stamp})",
        "",
        benchlib.facts_markdown(facts),
        "",
        f"Medians of {arguments.rounds} interleaved rounds of {arguments.duration} s per path "
        f"and test. HTTP: wrk with 1 thread and {arguments.connections} connections. "
        f"WebSocket: {arguments.ws_connections} connections, each sending a 1 KiB binary "
        "message and waiting for its echo before the next. Load runs on CPU 1, and the "
        "upstream and the gateway share CPU 0. Gateway CPU is the FluxLit process's or the "
        "nginx worker's user plus system time per request or round trip.",
        "",
        rate_table(tests),
        "",
        f"Idle WebSockets: {arguments.idle_connections} opened through each gateway before any "
        "load, RSS read after a 3 s settle.",
        "",
        memory_table(memory, arguments.idle_connections),
        "",
        "Targets:",
        "",
        benchlib.markdown_table(["Target", "Result"], target_rows(tests, memory)),
    ]

    highest_wrk = max(
        sample.load_cpu_fraction
        for key, test in tests.items() if key != "websocket"
        for samples in test.samples.values() for sample in samples
    )
    highest_client = max(
        sample.load_cpu_fraction
        for samples in tests["websocket"].samples.values() for sample in samples
    )
    other = [
        sample.other_load
        for test in tests.values() for samples in test.samples.values() for sample in samples
    ]
    lines += [
        "",
        f"Highest CPU use on CPU 1 in any run: wrk {highest_wrk:.0%}, WebSocket client "
        f"{highest_client:.0%}. CPU used by other processes during a run, as a share of one "
        f"CPU: median {benchlib.median(other):.1%}, highest {max(other):.1%}.",
    ]
    return "\n".join(lines)


def rate_table(tests: dict[str, TestResults]) -> str:
    rows = []
    for test in tests.values():
        for path in PATHS:
            rate = test.median(path, "rate")
            p99 = test.median(path, "p99_us")
            cpu = [sample.gateway_cpu_us for sample in test.samples[path]]
            rows.append([
                test.label if path == DIRECT else "",
                path,
                f"{rate:,.0f} {test.unit}",
                benchlib.format_ms(test.median(path, "p50_us")),
                benchlib.format_ms(p99),
                f"{benchlib.median(cpu):.1f}" if cpu[0] is not None else "",
                ratio_text(rate, test.median(DIRECT, "rate")),
                ratio_text(rate, test.median(NGINX, "rate")),
                ratio_text(p99, test.median(NGINX, "p99_us")),
            ])
    return benchlib.markdown_table(
        ["Test", "Path", "Rate", "p50 ms", "p99 ms", "Gateway CPU µs", "Rate vs direct",
         "Rate vs nginx", "p99 vs nginx"],
        rows,
    )


def memory_table(memory: dict[str, dict], idle_connections: int) -> str:
    rows = []
    for name in GATEWAYS:
        result = memory[name]
        rows.append([
            name,
            f"{result['rss_idle'] / 2**20:.1f}",
            f"{result['rss_with_connections'] / 2**20:.1f}",
            f"{result['bytes_per_connection']:,.0f}",
        ])
    return benchlib.markdown_table(
        ["Gateway", "RSS idle MiB", f"RSS with {idle_connections} MiB", "Bytes per WebSocket"],
        rows,
    )


def target_rows(tests: dict[str, TestResults], memory: dict[str, dict]) -> list[list[str]]:
    rows = []
    for key, target in (("health", HEALTH_TARGET), ("file", STATIC_FILE_TARGET),
                        ("websocket", WEBSOCKET_TARGET)):
        test = tests[key]
        ratio = test.median(FLUXLIT, "rate") / test.median(NGINX, "rate")
        rows.append([f"{test.label} rate >= {target}x nginx",
                     ("met" if ratio >= target else "missed") + f" ({ratio:.2f}x)"])
    for test in tests.values():
        ratio = test.median(FLUXLIT, "p99_us") / test.median(NGINX, "p99_us")
        rows.append([f"{test.label} p99 <= nginx's",
                     ("met" if ratio <= 1.0 else "missed") + f" ({ratio:.2f}x of nginx's)"])
    fluxlit_bytes = memory[FLUXLIT]["bytes_per_connection"]
    nginx_bytes = memory[NGINX]["bytes_per_connection"]
    rows.append(["memory per idle WebSocket <= nginx's",
                 ("met" if fluxlit_bytes <= nginx_bytes else "missed")
                 + f" ({fluxlit_bytes:,.0f} B against {nginx_bytes:,.0f} B)"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="FluxLit proxy path against nginx and direct.")
    parser.add_argument("--binary", type=Path,
                        default=benchlib.REPO_ROOT / "build" / "release" / "fluxlit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--ws-connections", type=int, default=50)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    parser.add_argument("--append", type=Path, help="append the Markdown report to this file")
    arguments = parser.parse_args()
    # The servers run in a temporary directory, so a relative path would not resolve there.
    arguments.binary = arguments.binary.resolve()

    facts = benchlib.machine_facts(arguments.binary, ["tornado", "websockets", "uvloop"],
                                   ["wrk", "nginx"])
    print(benchlib.facts_markdown(facts), flush=True)

    tests = {
        "health": TestResults(f"GET {HEALTH}", "req/s"),
        "file": TestResults("GET 300 KiB file", "req/s"),
        "websocket": TestResults("WebSocket 1 KiB echo", "msg/s"),
    }
    memory: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fluxlit-bench-") as directory:
        work_directory = Path(directory)
        gateways: dict[str, Gateway] = {}
        try:
            gateways[DIRECT] = start_upstream(work_directory)
            gateways[NGINX] = start_nginx(work_directory, gateways[DIRECT])
            gateways[FLUXLIT] = start_fluxlit(arguments.binary, work_directory)
            check_responses(gateways)

            for name in GATEWAYS:
                memory[name] = measure_idle_memory(gateways[name], arguments.idle_connections)
                result = memory[name]
                print(f"idle {name:<8} {result['opened']} WebSockets: RSS "
                      f"{result['rss_idle'] / 2**20:.1f} -> "
                      f"{result['rss_with_connections'] / 2**20:.1f} MiB, "
                      f"{result['bytes_per_connection']:,.0f} B each", flush=True)

            for gateway in gateways.values():
                for path in (HEALTH, STATIC_FILE):
                    benchlib.run_wrk(gateway.base + path, WARMUP_SECONDS, arguments.connections)

            for round_number in range(arguments.rounds):
                order = PATHS[round_number % 3:] + PATHS[:round_number % 3]
                for key, test in tests.items():
                    for name in order:
                        gateway = gateways[name]
                        if key == "health":
                            sample = measure_http(gateway, HEALTH, arguments)
                        elif key == "file":
                            sample = measure_http(gateway, STATIC_FILE, arguments)
                        else:
                            sample = measure_websocket(gateway, arguments)
                        test.samples[name].append(sample)
                        cpu = (f"{sample.gateway_cpu_us:6.1f} µs"
                               if sample.gateway_cpu_us is not None else "     -   ")
                        print(f"round {round_number + 1} {test.label:<22} {name:<8} "
                              f"{sample.rate:>9,.0f} {test.unit}  "
                              f"p50 {sample.p50_us / 1000:6.2f} ms  "
                              f"p99 {sample.p99_us / 1000:6.2f} ms  gateway CPU {cpu}  "
                              f"load CPU {sample.load_cpu_fraction:.0%}", flush=True)
        finally:
            for gateway in reversed(list(gateways.values())):
                gateway.server.stop()

    print()
    report = build_report(tests, memory, facts, arguments)
    benchlib.write_report(report, arguments.output, arguments.append)


if __name__ == "__main__":
    main()
