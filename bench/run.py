"""Load benchmark: the real server on one core, wrk on the other, over loopback.

    make bench                      # or: .venv/bin/python bench/run.py --duration 10
Needs wrk (`apt-get install wrk`). Prints requests/s, rows/s, p50 and p99 per scenario, with auth
enabled and metrics and access logs on, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789abcdef"
ROW = [5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: str
    content_type: str
    rows: int


SCENARIOS = [
    Scenario("score, 1 row", "/score", json.dumps({"data": [ROW]}), "application/json", 1),
    Scenario("score, 64 rows", "/score", json.dumps({"data": [ROW] * 64}), "application/json", 64),
    Scenario("invocations CSV, 1 row", "/invocations", ",".join(map(str, ROW)) + "\n", "text/csv", 1),
    Scenario(
        "v2 infer, 1 row",
        "/v2/models/weather-rain/infer",
        json.dumps({"inputs": [{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": ROW}]}),
        "application/json",
        1,
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk_script(scenario: Scenario, directory: Path) -> Path:
    path = directory / f"{abs(hash(scenario.name))}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(scenario.body)}\n"
        f'wrk.headers["Content-Type"] = "{scenario.content_type}"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    return path


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, connections: int, duration: int, core: int | None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)$", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        "p99": to_ms(re.search(r"^\s+99%\s+(\S+)$", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
    }


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=1):  # noqa: S310 (loopback)
                return
        except urllib.error.HTTPError:
            return  # answering at all is enough for the bare app
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not become ready")


def server_command(port: int, bare: bool) -> list[str]:
    if not bare:
        return [sys.executable, "-m", "serving", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_asgi:app",
        "--port",
        str(port),
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
    ]


def measure(args: argparse.Namespace, bare: bool, cores: tuple[int | None, int | None]) -> dict[str, dict[str, float]]:
    """Start one server, run its scenarios, print a table; the results by scenario name."""
    server_core, load_core = cores
    port = free_port()
    env = {**os.environ, "SERVING_API_KEYS": KEY, "SERVING_WORKERS": str(args.workers), "SERVING_LOG_LEVEL": "warning"}
    command = server_command(port, bare)
    scenarios = SCENARIOS[:2] if bare else SCENARIOS
    if server_core is not None:
        command = ["taskset", "-c", str(server_core), *command]
    # Access lines are still formatted and written, to /dev/null rather than a terminal.
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    results = {}
    try:
        wait_ready(url)
        what = "bare ASGI app, no features (the floor)" if bare else "the server: auth, metrics and access log on"
        print(
            f"\n{what}\nserver core {server_core}, wrk core {load_core}, {1 if bare else args.workers} worker(s), "
            f"{args.connections} connections, {args.duration}s each"
        )
        print(f"{'scenario':<26}{'requests/s':>12}{'rows/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
        with tempfile.TemporaryDirectory() as directory:
            for scenario in scenarios:
                script = wrk_script(scenario, Path(directory))
                run_wrk(url + scenario.path, script, args.connections, 2, load_core)  # warm up
                result = run_wrk(url + scenario.path, script, args.connections, args.duration, load_core)
                results[scenario.name] = result
                print(
                    f"{scenario.name:<26}{result['rps']:>12,.0f}{result['rps'] * scenario.rows:>12,.0f}"
                    f"{result['p50']:>9.2f}{result['p99']:>9.2f}",
                    flush=True,
                )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bare", action="store_true", help="measure only bench/bare_asgi.py (the floor)")
    parser.add_argument("--no-floor", action="store_true", help="measure only the server, not the floor after it")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    cores = sorted(os.sched_getaffinity(0))
    pinning = (cores[0], cores[1]) if len(cores) > 1 else (None, None)
    if args.bare:
        measure(args, True, pinning)
        return
    server = measure(args, False, pinning)
    if args.no_floor:
        return
    floor = measure(args, True, pinning)
    # Machines (and the same VM from day to day) differ a lot; the share of the floor measured in the
    # same run is the figure that travels.
    print()
    for name in floor:
        share = server[name]["rps"] / floor[name]["rps"]
        print(f"{name}: the server does {share:.0%} of the floor's requests/s on this machine")


if __name__ == "__main__":
    main()
