"""Compare FluxLit's API path with uvicorn on the same FastAPI app, and with the in-process
ceiling of that app, and with the socket floor: nginx sending the same bytes.

The three servers run at once, pinned to CPU 0, and wrk (one thread) loads one of them at a
time from CPU 1. Each round runs every route against every server, in an order that reverses
from round to round so that drift of the machine hits all alike, and then runs ceiling.py on
CPU 0.
The report takes the median over the rounds. Run it through scripts/bench/asgi.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import benchlib
from benchlib import PYTHON, Server

sys.path.insert(0, str(benchlib.BENCH_DIR))
import asgi_app  # noqa: E402

API_PREFIX = "/api"
WARMUP_SECONDS = 2
FLUXLIT = "fluxlit"
UVICORN = "uvicorn"
FLOOR = "nginx"
# The nginx floor returns a body from its configuration when the body fits in one of its
# parameters (nginx reads configuration tokens into a 4 KiB buffer), and from a file otherwise.
FLOOR_INLINE_MAX_BYTES = 3072

# Targets for FluxLit, as ratios measured on a 2-core machine.
TRIVIAL_THROUGHPUT_TARGET = 1.25
LARGE_THROUGHPUT_TARGET = 1.7
PYDANTIC_CEILING_TARGET = 0.97
BRIDGE_COST_TARGET_US = 6.0
PYDANTIC_PATHS = ("/items", "/echo")
# CPU time of other processes during a run, as a share of one CPU, above which the run is
# reported as skewed.
OTHER_LOAD_WARNING = 0.05


@dataclass
class Sample:
    requests_per_second: float
    p50_us: int
    p99_us: int
    cpu_us_per_request: float
    rss_bytes: int
    load_cpu_fraction: float
    other_load: float


@dataclass
class RouteResults:
    samples: dict[str, list[Sample]] = field(
        default_factory=lambda: {FLUXLIT: [], UVICORN: [], FLOOR: []}
    )
    ceiling: list[dict] = field(default_factory=list)
    # The same ceiling under interpreters built from libpython3.11 as fluxlit embeds it, by the
    # name of the library (see python_main.c).
    linked_ceilings: dict[str, list[dict]] = field(default_factory=dict)

    def median(self, server: str, attribute: str) -> float:
        return benchlib.median([getattr(sample, attribute) for sample in self.samples[server]])

    def ceiling_median(self, key: str) -> float:
        return benchlib.median([result[key] for result in self.ceiling])

    def linked_ceiling_median(self, library: str, key: str) -> float | None:
        results = self.linked_ceilings.get(library)
        if not results:
            return None
        return benchlib.median([result[key] for result in results])


def server_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLUXLIT_", "STREAMLIT_")) and name != "VIRTUAL_ENV"
    }


def start_fluxlit(binary: Path, work_directory: Path) -> tuple[Server, str]:
    target = f"{benchlib.BENCH_DIR / 'asgi_app.py'}:app"
    server = Server(
        FLUXLIT,
        [str(binary), "run", "--no-ui", "--host", "127.0.0.1", "--port", "0",
         "--log-level", "warning", "--python", PYTHON, target],
        work_directory / "fluxlit.log",
        environment=server_environment(),
        working_directory=work_directory,
    )
    with benchlib.stop_on_failure(server):
        port = benchlib.wait_for_port_line(server)
        base = f"http://127.0.0.1:{port}{API_PREFIX}"
        benchlib.wait_for_http(f"{base}/readyz", server)
    return server, base


def start_uvicorn(work_directory: Path, app: str = "asgi_app:app") -> tuple[Server, str]:
    port = benchlib.free_port()
    server = Server(
        UVICORN,
        [PYTHON, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
         "--log-level", "warning", "--host", "127.0.0.1", "--port", str(port),
         "--app-dir", str(benchlib.BENCH_DIR), app],
        work_directory / "uvicorn.log",
        environment=server_environment(),
        working_directory=work_directory,
    )
    base = f"http://127.0.0.1:{port}"
    with benchlib.stop_on_failure(server):
        benchlib.wait_for_http(f"{base}/trivial", server)
    return server, base


def check_same_responses(
    bases: dict[str, str], echo_body: bytes
) -> dict[str, tuple[bytes, str]]:
    """Fail unless every server returns 200, the same body and the same Content-Type on every
    route.

    Returns the body and the content type of each route's response, by path.
    """
    responses = {}
    for _, method, path, sends_body in asgi_app.ROUTES:
        answers: dict[str, tuple[bytes, str]] = {}
        for name, base in bases.items():
            request = urllib.request.Request(
                base + path,
                data=echo_body if sends_body else None,
                method=method,
                headers={"Content-Type": "application/json"} if sends_body else {},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    answers[name] = (response.read(), response.headers.get("content-type", ""))
            except urllib.error.HTTPError as error:
                raise RuntimeError(f"{name} returned {error.code} for {method} {base + path}; "
                                   "its log in the benchmark directory says why") from error
        if len(set(answers.values())) != 1:
            described = ", ".join(f"{name}: {len(body)} bytes of {content_type or 'no type'}"
                                  for name, (body, content_type) in answers.items())
            raise RuntimeError(f"the servers return different responses to {method} {path} "
                               f"({described})")
        responses[path] = next(iter(answers.values()))
    return responses


def floor_locations(responses: dict[str, tuple[bytes, str]], directory: Path) -> str:
    """Write nginx locations that return each route's response bytes."""
    directory.mkdir()
    directory.chmod(0o755)
    methods = {path: method for _, method, path, _ in asgi_app.ROUTES}
    blocks = []
    for index, (path, (body, content_type)) in enumerate(responses.items()):
        location = API_PREFIX + path
        inline = (
            len(body) <= FLOOR_INLINE_MAX_BYTES
            and body.isascii()
            and not any(character in body for character in (b"'", b"\\", b"$", b"\n"))
        )
        if inline:
            answer = f"return 200 '{body.decode()}';"
        elif methods[path] == "GET":
            body_path = directory / f"body-{index}"
            body_path.write_bytes(body)
            body_path.chmod(0o644)
            answer = f"alias {body_path};"
        else:
            # nginx serves files to GET and HEAD only, and the body cannot go inline.
            raise RuntimeError(f"the nginx floor cannot serve {methods[path]} {path}: its "
                               f"{len(body)}-byte response does not fit in its configuration")
        blocks.append(f"        location = {location} {{\n"
                      f'            default_type "{content_type}";\n'
                      f"            {answer}\n"
                      f"        }}")
    return "\n".join(blocks)


def start_floor(work_directory: Path, responses: dict[str, tuple[bytes, str]]
                ) -> tuple[Server, str, int]:
    locations = floor_locations(responses, work_directory / "floor-bodies")
    first_get = next(path for _, method, path, _ in asgi_app.ROUTES if method == "GET")
    server, base, worker = benchlib.start_nginx(
        FLOOR, work_directory, "nginx-floor.conf.template", {"LOCATIONS": locations},
        API_PREFIX + first_get,
    )
    return server, base + API_PREFIX, worker


def measure_round(
    server: Server, url: str, arguments: argparse.Namespace, body_file: Path | None,
    cpu_pid: int,
) -> Sample:
    """Load `url` once; CPU and RSS are those of `cpu_pid` (nginx's worker, not its master)."""
    server.check_alive()
    cpu_before = benchlib.cpu_seconds(cpu_pid)
    with benchlib.OtherLoad(sorted({server.pid, cpu_pid})) as other_load:
        result = benchlib.run_wrk(url, arguments.duration, arguments.connections, body_file)
    cpu_after = benchlib.cpu_seconds(cpu_pid)
    if other_load.cpu_fraction > OTHER_LOAD_WARNING:
        print(f"warning: other processes used {other_load.cpu_fraction:.0%} of a CPU during "
              f"the run against {server.name} at {url}; its numbers are skewed",
              file=sys.stderr, flush=True)
    if result.errors:
        raise RuntimeError(f"wrk counted {result.errors} errors against {server.name} at {url}")
    return Sample(
        requests_per_second=result.requests_per_second,
        p50_us=result.p50_us,
        p99_us=result.p99_us,
        cpu_us_per_request=(cpu_after - cpu_before) / result.requests * 1e6,
        rss_bytes=benchlib.rss_bytes(cpu_pid),
        load_cpu_fraction=result.load_cpu_fraction,
        other_load=other_load.cpu_fraction,
    )


STATIC_LIBRARY = "libpython3.11.a"
SHARED_LIBRARY = "libpython3.11.so"


def build_linked_pythons(work_directory: Path) -> dict[str, Path]:
    """Compile python_main.c against each libpython3.11 on the machine, linked as fluxlit is.

    The link arguments follow CMakeLists.txt. Returns the interpreters by library name.
    """
    # The python3.11-config on PATH may belong to another build; Debian's matches PYTHON.
    flags = subprocess.run(["/usr/bin/python3.11-config", "--includes"], capture_output=True,
                           text=True)
    archive = subprocess.run(
        [PYTHON, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBPL') + '/' + "
         "sysconfig.get_config_var('LIBRARY'))"],
        capture_output=True, text=True,
    ).stdout.strip()
    link_arguments = {
        STATIC_LIBRARY: ["-Wl,--whole-archive", archive, "-Wl,--no-whole-archive", "-lexpat",
                         "-lz", "-ldl", "-lm", "-lutil", "-Wl,--export-dynamic", "-no-pie"],
        SHARED_LIBRARY: ["-lpython3.11"],
    }
    interpreters = {}
    for library, arguments in link_arguments.items():
        output = work_directory / f"python-{library}"
        completed = subprocess.run(
            ["gcc", "-O2", *flags.stdout.split(), str(benchlib.BENCH_DIR / "python_main.c"),
             "-o", str(output), *arguments],
            capture_output=True, text=True,
        )
        if flags.returncode != 0 or completed.returncode != 0:
            print(f"warning: cannot build an interpreter linked against {library}, so the "
                  f"report has no ceiling for it:\n{flags.stderr}{completed.stderr}",
                  file=sys.stderr)
            continue
        interpreters[library] = output
    return interpreters


def run_ceiling(interpreter: Path | str, requests: int) -> list[dict]:
    completed = subprocess.run(
        ["taskset", "-c", benchlib.SERVER_CPU, str(interpreter),
         str(benchlib.BENCH_DIR / "ceiling.py"), "--requests", str(requests)],
        capture_output=True, text=True, check=True,
    )
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def linked_cost_text(route: RouteResults, library: str, ceiling_cpu: float) -> str:
    linked_cpu = route.linked_ceiling_median(library, "cpu_us_per_request")
    if linked_cpu is None:
        return "not measured"
    return f"{linked_cpu:.1f} ({linked_cpu - ceiling_cpu:+.1f})"


def bridge_only_cost_text(route: RouteResults, floor: bool = False) -> str:
    linked_cpu = route.linked_ceiling_median(STATIC_LIBRARY, "cpu_us_per_request")
    if linked_cpu is None:
        return "not measured"
    cost = route.median(FLUXLIT, "cpu_us_per_request") - linked_cpu
    if floor:
        cost -= route.median(FLOOR, "cpu_us_per_request")
    return f"{cost:.1f}"


def status_text(met: bool, value: str) -> str:
    return f"met ({value})" if met else f"missed ({value})"


def build_report(
    results: dict[str, RouteResults],
    facts: dict,
    arguments: argparse.Namespace,
) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### API: FluxLit and uvicorn ({stamp})",
        "",
        benchlib.facts_markdown(facts),
        "",
        f"Medians of {arguments.rounds} interleaved rounds of {arguments.duration} s per server "
        f"and route, wrk with 1 thread and {arguments.connections} connections on CPU 1, "
        "servers on CPU 0. CPU is the server process's user plus system time divided by the "
        "requests served. The nginx rows are the socket floor: one nginx worker that answers "
        "each route with the bytes the app returns (from its configuration, or from a file "
        "through sendfile for the 100 KiB body), with no app and no Python. Its CPU per "
        "request estimates the least that a server spends on this machine to read these "
        "requests and send these responses, so a server of the app needs about the ceiling's "
        "CPU plus the floor's. wrk on CPU 1 limits these runs before nginx is saturated, and "
        "nginx then handles fewer requests per wake-up than at full load, so the estimate is, "
        "if anything, high. Its ratios to uvicorn are left out.",
        "",
        server_table(results),
        "",
        f"In-process ceiling: ceiling.py calls the app through ASGI with no sockets, "
        f"{arguments.ceiling_requests} requests per route in sequence on uvloop, on CPU 0. "
        "Bridge cost is FluxLit's CPU per request minus the ceiling's, and the uvicorn column "
        "is the same difference for uvicorn. The ceiling and uvicorn run under Debian's "
        "/usr/bin/python3. The next two columns run the same ceiling under interpreters linked "
        "against libpython3.11.a, as fluxlit embeds it by default, and against "
        "libpython3.11.so, its fallback (python_main.c). The archive runs the same Python code "
        "slower than /usr/bin/python3, whose build inlined more of the interpreter, so the "
        "next column is FluxLit's CPU per request minus the libpython3.11.a ceiling: the cost "
        "of the bridge itself. The last column subtracts the nginx floor from that as well: "
        "what the bridge costs beyond reading and writing the sockets.",
        "",
        ceiling_table(results),
        "",
        "Targets:",
        "",
        benchlib.markdown_table(["Target", "Result"], target_rows(results)),
    ]

    def samples_of(servers: tuple[str, ...]) -> list[Sample]:
        return [sample for route in results.values() for server in servers
                for sample in route.samples[server]]

    load = max(sample.load_cpu_fraction for sample in samples_of((FLUXLIT, UVICORN)))
    floor_load = min(sample.load_cpu_fraction for sample in samples_of((FLOOR,)))
    other = [sample.other_load for sample in samples_of((FLUXLIT, UVICORN, FLOOR))]
    lines += [
        "",
        f"Highest CPU use of wrk on CPU 1 in any run against FluxLit or uvicorn: {load:.0%}; "
        f"lowest in any run against the nginx floor: {floor_load:.0%}. CPU used by other "
        f"processes during a run, as a share of one CPU: median {benchlib.median(other):.1%}, "
        f"highest {max(other):.1%}.",
    ]
    return "\n".join(lines)


def server_table(results: dict[str, RouteResults]) -> str:
    rows = []
    for label, _, path, _ in asgi_app.ROUTES:
        route = results[path]
        for server in (FLUXLIT, UVICORN, FLOOR):
            rps = route.median(server, "requests_per_second")
            p99 = route.median(server, "p99_us")
            per_round = [sample.requests_per_second for sample in route.samples[server]]
            ratios = [
                benchlib.format_ratio(rps / route.median(UVICORN, "requests_per_second")),
                benchlib.format_ratio(p99 / route.median(UVICORN, "p99_us")),
            ] if server != FLOOR else ["", ""]
            rows.append([
                label if server == FLUXLIT else "",
                server,
                f"{rps:,.0f}",
                f"{min(per_round):,.0f}-{max(per_round):,.0f}",
                benchlib.format_ms(route.median(server, "p50_us")),
                benchlib.format_ms(p99),
                f"{route.median(server, 'cpu_us_per_request'):.1f}",
                f"{route.median(server, 'rss_bytes') / 2**20:.1f}",
                *ratios,
            ])
    return benchlib.markdown_table(
        ["Route", "Server", "req/s", "req/s range", "p50 ms", "p99 ms", "CPU µs/req",
         "RSS MiB", "req/s vs uvicorn", "p99 vs uvicorn"],
        rows,
    )


def ceiling_table(results: dict[str, RouteResults]) -> str:
    rows = []
    for label, _, path, _ in asgi_app.ROUTES:
        route = results[path]
        ceiling_rps = route.ceiling_median("requests_per_second")
        ceiling_cpu = route.ceiling_median("cpu_us_per_request")
        rows.append([
            label,
            f"{ceiling_rps:,.0f}",
            f"{ceiling_cpu:.1f}",
            benchlib.format_ratio(route.median(FLUXLIT, "requests_per_second") / ceiling_rps),
            f"{route.median(FLUXLIT, 'cpu_us_per_request') - ceiling_cpu:.1f}",
            f"{route.median(UVICORN, 'cpu_us_per_request') - ceiling_cpu:.1f}",
            linked_cost_text(route, STATIC_LIBRARY, ceiling_cpu),
            linked_cost_text(route, SHARED_LIBRARY, ceiling_cpu),
            bridge_only_cost_text(route),
            bridge_only_cost_text(route, floor=True),
        ])
    return benchlib.markdown_table(
        ["Route", "Ceiling req/s", "Ceiling CPU µs/req", "FluxLit vs ceiling",
         "FluxLit bridge cost µs/req", "uvicorn server cost µs/req",
         f"{STATIC_LIBRARY} ceiling CPU µs/req (extra)",
         f"{SHARED_LIBRARY} ceiling CPU µs/req (extra)",
         f"FluxLit cost over the {STATIC_LIBRARY} ceiling µs/req",
         f"FluxLit cost over the {STATIC_LIBRARY} ceiling and the nginx floor µs/req"],
        rows,
    )


def target_rows(results: dict[str, RouteResults]) -> list[list[str]]:
    def throughput_ratio(path: str) -> float:
        route = results[path]
        return route.median(FLUXLIT, "requests_per_second") / route.median(
            UVICORN, "requests_per_second"
        )

    rows = []
    ratio = throughput_ratio("/trivial")
    rows.append([f"trivial JSON req/s >= {TRIVIAL_THROUGHPUT_TARGET}x uvicorn",
                 status_text(ratio >= TRIVIAL_THROUGHPUT_TARGET, benchlib.format_ratio(ratio))])
    ratio = throughput_ratio("/large")
    rows.append([f"100 KiB req/s >= {LARGE_THROUGHPUT_TARGET}x uvicorn",
                 status_text(ratio >= LARGE_THROUGHPUT_TARGET, benchlib.format_ratio(ratio))])
    for path in PYDANTIC_PATHS:
        route = results[path]
        ratio = route.median(FLUXLIT, "requests_per_second") / route.ceiling_median(
            "requests_per_second"
        )
        rows.append([f"{path} req/s >= {PYDANTIC_CEILING_TARGET}x in-process ceiling",
                     status_text(ratio >= PYDANTIC_CEILING_TARGET, benchlib.format_ratio(ratio))])
    for _, _, path, _ in asgi_app.ROUTES:
        route = results[path]
        ratio = route.median(FLUXLIT, "p99_us") / route.median(UVICORN, "p99_us")
        rows.append([f"{path} p99 <= uvicorn's",
                     status_text(ratio <= 1.0, f"{benchlib.format_ratio(ratio)} of uvicorn's")])
    for _, _, path, _ in asgi_app.ROUTES:
        route = results[path]
        cost = route.median(FLUXLIT, "cpu_us_per_request") - route.ceiling_median(
            "cpu_us_per_request"
        )
        floor = route.median(FLOOR, "cpu_us_per_request")
        rows.append([f"{path} bridge cost <= {BRIDGE_COST_TARGET_US:.0f} µs/req",
                     status_text(cost <= BRIDGE_COST_TARGET_US,
                                 f"{cost:.1f} µs; the nginx floor alone takes {floor:.1f} µs")])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="FluxLit API path against uvicorn.")
    parser.add_argument("--binary", type=Path,
                        default=benchlib.REPO_ROOT / "build" / "release" / "fluxlit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ceiling-requests", type=int, default=20000,
                        help="requests per route in each ceiling run")
    parser.add_argument("--output", type=Path, help="also write the Markdown report here")
    parser.add_argument("--append", type=Path, help="append the Markdown report to this file")
    arguments = parser.parse_args()
    # The servers run in a temporary directory, so a relative path would not resolve there.
    arguments.binary = arguments.binary.resolve()

    facts = benchlib.machine_facts(
        arguments.binary,
        ["fastapi", "pydantic", "starlette", "uvicorn", "uvloop", "httptools"],
        ["wrk", "nginx"],
    )
    print(benchlib.facts_markdown(facts), flush=True)

    results = {path: RouteResults() for _, _, path, _ in asgi_app.ROUTES}
    with tempfile.TemporaryDirectory(prefix="fluxlit-bench-") as directory:
        work_directory = Path(directory)
        echo_body = asgi_app.make_echo_body()
        body_file = work_directory / "echo.json"
        body_file.write_bytes(echo_body)

        linked_pythons = build_linked_pythons(work_directory)
        servers: dict[str, tuple[Server, str]] = {}
        cpu_pids: dict[str, int] = {}
        try:
            servers[FLUXLIT] = start_fluxlit(arguments.binary, work_directory)
            servers[UVICORN] = start_uvicorn(work_directory)
            responses = check_same_responses(
                {name: base for name, (_, base) in servers.items()}, echo_body
            )
            floor_server, floor_base, cpu_pids[FLOOR] = start_floor(work_directory, responses)
            servers[FLOOR] = (floor_server, floor_base)
            check_same_responses({name: base for name, (_, base) in servers.items()}, echo_body)

            for _, _, path, sends_body in asgi_app.ROUTES:
                for server, base in servers.values():
                    benchlib.run_wrk(base + path, WARMUP_SECONDS, arguments.connections,
                                     body_file if sends_body else None)

            order = [FLUXLIT, UVICORN, FLOOR]
            for round_number in range(arguments.rounds):
                for label, _, path, sends_body in asgi_app.ROUTES:
                    for name in order:
                        server, base = servers[name]
                        sample = measure_round(server, base + path, arguments,
                                               body_file if sends_body else None,
                                               cpu_pids.get(name, server.pid))
                        results[path].samples[name].append(sample)
                        print(f"round {round_number + 1} {label:<28} {name:<8} "
                              f"{sample.requests_per_second:>9,.0f} req/s  "
                              f"p50 {sample.p50_us / 1000:6.2f} ms  "
                              f"p99 {sample.p99_us / 1000:6.2f} ms  "
                              f"CPU {sample.cpu_us_per_request:6.1f} µs/req  "
                              f"wrk CPU {sample.load_cpu_fraction:.0%}", flush=True)
                    order.reverse()
                for ceiling in run_ceiling(PYTHON, arguments.ceiling_requests):
                    results[ceiling["path"]].ceiling.append(ceiling)
                    print(f"round {round_number + 1} ceiling {ceiling['path']:<10} "
                          f"{ceiling['requests_per_second']:>9,.0f} req/s  "
                          f"CPU {ceiling['cpu_us_per_request']:6.1f} µs/req", flush=True)
                for library, interpreter in linked_pythons.items():
                    for ceiling in run_ceiling(interpreter, arguments.ceiling_requests):
                        route = results[ceiling["path"]]
                        route.linked_ceilings.setdefault(library, []).append(ceiling)
                        print(f"round {round_number + 1} ceiling on {library} "
                              f"{ceiling['path']:<10} {ceiling['requests_per_second']:>9,.0f} "
                              f"req/s  CPU {ceiling['cpu_us_per_request']:6.1f} µs/req",
                              flush=True)
        finally:
            for server, _ in servers.values():
                server.stop()

    print()
    report = build_report(results, facts, arguments)
    benchlib.write_report(report, arguments.output, arguments.append)


if __name__ == "__main__":
    main()
