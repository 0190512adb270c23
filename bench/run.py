"""Load benchmark: the real server against a bare ASGI app with the same model, over loopback.

    make bench                                  # one worker on one core, wrk on the other
    .venv/bin/python bench/run.py --sweep 1,2,4,8   # workers on cores 0-7, wrk on 8-15, server and floor in turns
    .venv/bin/python bench/run.py --telemetry   # single-row /score with Application Insights off and on
    .venv/bin/python bench/run.py --capture     # single-row /score with payload capture off, 10 % and 100 % (Azurite)
    .venv/bin/python bench/run.py --against ../main   # before/after: another checkout's server and this one, in turns
Needs wrk (`apt-get install wrk`). Prints requests/s, rows/s, p50 and p99 per scenario, with auth
enabled and metrics and access logs on, as in production. Every server loads the same model file:
the shared benchmark model when it is there (../shared/bench), else `--model`; the mixed-type scenarios
load a bank-marketing-like model with text columns, built on the fly (bench/mixed_model.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: bench/ is a package of the repository
from bench import mixed_model  # noqa: E402

KEY = "bench-key-0123456789abcdef"
SHARED_MODEL = REPO.parent / "shared" / "bench" / "svc-weather-2524sv.onnx"
BUNDLED_MODEL = REPO / "serving" / "model" / "model.onnx"
ROW = [5.0, 0.95, 10.0, 180.0, 3.0, 995.0, 2.0]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: str | bytes
    content_type: str
    rows: int
    headers: tuple[tuple[str, str], ...] = ()


def v2_binary_body(rows: int) -> tuple[bytes, int]:
    """A v2 infer body with its rows as binary tensor data (tritonclient's default), and its JSON length."""
    data = struct.pack(f"<{rows * len(ROW)}f", *(ROW * rows))
    tensor = {
        "name": "input",
        "shape": [rows, len(ROW)],
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(data)},
    }
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + data, len(header)


_BINARY_64, _BINARY_64_JSON = v2_binary_body(64)


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
    Scenario(
        "v2 infer, 64 rows",
        "/v2/models/weather-rain/infer",
        json.dumps({"inputs": [{"name": "input", "shape": [64, 7], "datatype": "FP32", "data": [ROW] * 64}]}),
        "application/json",
        64,
    ),
    Scenario(
        "v2 binary, 64 rows",
        "/v2/models/weather-rain/infer",
        _BINARY_64,
        "application/octet-stream",
        64,
        (("Inference-Header-Content-Length", str(_BINARY_64_JSON)),),
    ),
]


# A model with one input per column: numbers, an integer and text (bench/mixed_model.py).
MIXED_ROW = list(mixed_model.RECORD.values())
MIXED_SCENARIOS = [
    Scenario("mixed score, 1 record", "/score", json.dumps({"data": [mixed_model.RECORD]}), "application/json", 1),
    Scenario("mixed score, 64 rows", "/score", json.dumps({"data": [MIXED_ROW] * 64}), "application/json", 64),
    Scenario("mixed CSV, 1 row", "/invocations", ",".join(map(str, MIXED_ROW)) + "\n", "text/csv", 1),
    Scenario(
        "mixed v2 infer, 1 row",
        "/v2/models/weather-rain/infer",
        json.dumps(
            {
                "inputs": [
                    {"name": c, "shape": [1, 1], "datatype": d, "data": [mixed_model.RECORD[c]]}
                    for c, d in zip(
                        mixed_model.COLUMNS, ["FP32", "BYTES", "BYTES", "BYTES", "FP32", "INT64"], strict=True
                    )
                ]
            }
        ),
        "application/json",
        1,
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lua_string(data: str | bytes) -> str:
    """A Lua string literal of any bytes (Lua has no \\u escapes: bytes as three-digit \\ddd)."""
    raw = data.encode() if isinstance(data, str) else data
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in raw) + '"'


def wrk_script(scenario: Scenario, directory: Path) -> Path:
    path = directory / f"{abs(hash(scenario.name))}.lua"
    headers = [("Content-Type", scenario.content_type), ("Authorization", f"Bearer {KEY}"), *scenario.headers]
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(scenario.body)}\n"
        + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in headers)
    )
    return path


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, script: Path, connections: int, duration: int, cores: str | None, threads: int = 1
) -> dict[str, float]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
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


def server_command(port: int, bare: bool, workers: int) -> list[str]:
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
        "--workers",
        str(workers),
    ]


@dataclass(frozen=True)
class Setup:
    workers: int
    server_cores: str | None  # taskset list, e.g. "0" or "0-7"
    load_cores: str | None
    wrk_threads: int
    connections: int
    extra_env: tuple[tuple[str, str], ...] = ()


@dataclass
class Running:
    """A started server: where it answers and its process (the parent of any workers)."""

    url: str
    process: subprocess.Popen[bytes]
    bare: bool
    setup: Setup


@contextmanager
def running(
    args: argparse.Namespace, bare: bool, setup: Setup, tree: Path = REPO, model: Path | None = None
) -> Iterator[Running]:
    """Start the server (or the floor), from `tree`'s code, wait until every worker is up, stop it on leaving."""
    port = free_port()
    model = model or args.model
    env = {
        **os.environ,
        "SERVING_API_KEYS": KEY,
        "SERVING_WORKERS": str(setup.workers),
        "SERVING_LOG_LEVEL": "warning",
        "SERVING_MODEL": str(model),
        "SERVING_MODEL_NAME": "weather-rain",  # the v2 scenario's URL, whatever the file's metadata says
        "BENCH_MODEL": str(model),
        **dict(setup.extra_env),
    }
    command = server_command(port, bare, setup.workers)
    if setup.server_cores is not None:
        command = ["taskset", "-c", setup.server_cores, *command]
    # Access lines are still formatted and written, to /dev/null rather than a terminal.
    server = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        time.sleep(1.0 + 0.2 * setup.workers)  # every worker up, not only the first
        yield Running(url, server, bare, setup)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def header(args: argparse.Namespace, server: Running, label: str = "") -> str:
    setup = server.setup
    what = "bare ASGI app, no features (the floor)" if server.bare else "the server: auth, metrics and access log on"
    return (
        f"\n{what}{label}\nserver cores {setup.server_cores}, wrk cores {setup.load_cores} "
        f"({setup.wrk_threads} threads), {setup.workers} worker(s), {setup.connections} connections, "
        f"{args.duration}s each, model {Path(args.model).name}"
    )


COLUMNS = f"{'scenario':<26}{'requests/s':>12}{'rows/s':>12}{'p50 ms':>9}{'p99 ms':>9}"


def measure_scenario(
    args: argparse.Namespace, server: Running, scenario: Scenario, directory: Path, name: str = ""
) -> dict[str, float]:
    """Warm up, run wrk on one scenario, print its line (and what --per-request etc. ask for)."""
    setup = server.setup
    script = wrk_script(scenario, directory)
    run = (server.url + scenario.path, script, setup.connections)
    run_wrk(*run, 2, setup.load_cores, setup.wrk_threads)  # warm up
    pids = _processes(server.process.pid)
    label = f"{'bare' if server.bare else 'server'}-{setup.workers}w-{scenario.name}"
    profiler = start_profile(args.profile, pids, server.process.pid, label, args.duration)
    before, counted = cpu_seconds(pids), task_counters(pids)
    result = run_wrk(*run, args.duration, setup.load_cores, setup.wrk_threads)
    after, counters = cpu_seconds(pids), task_counters(pids) - counted
    # CPU time of the server's processes per request: far steadier than requests/s on a shared machine.
    result["cpu_us"] = sum(after[p] - before.get(p, 0.0) for p in after) / max(result["rps"] * args.duration, 1) * 1e6
    print(
        f"{name or scenario.name:<26}{result['rps']:>12,.0f}{result['rps'] * scenario.rows:>12,.0f}"
        f"{result['p50']:>9.2f}{result['p99']:>9.2f}",
        flush=True,
    )
    if args.cpu_split and len(pids) > 2:
        busy = sorted(after[p] - before.get(p, 0.0) for p in after if p != server.process.pid)
        print(f"  CPU seconds per worker over {args.duration}s: {', '.join(f'{b:.1f}' for b in busy)}")
    if args.per_request:
        requests = result["rps"] * args.duration
        cpu_us = sum(after[p] - before.get(p, 0.0) for p in after) / requests * 1e6
        print(f"  per request: {cpu_us:.1f} µs CPU, {counters.per(requests)}")
    if profiler is not None:
        print(finish_profile(*profiler))
    if args.syscalls:
        calls = count_syscalls(pids, server.process.pid, run, setup)
        print(f"  system calls per request (strace, one worker): {calls}")
    return result


def measure(
    args: argparse.Namespace, bare: bool, setup: Setup, scenarios: list[Scenario] | None = None, label: str = ""
) -> dict[str, dict[str, float]]:
    """Start one server, run its scenarios, print a table; the results by scenario name."""
    scenarios = scenarios or (SCENARIOS[:2] if bare else SCENARIOS)
    with running(args, bare, setup) as server, tempfile.TemporaryDirectory() as directory:
        print(header(args, server, label))
        print(COLUMNS)
        results = {scenario.name: measure_scenario(args, server, scenario, Path(directory)) for scenario in scenarios}
        from bench.footprint import describe, memory  # it reuses this module's commands and constants

        print(f"  memory after the scenarios, {describe(memory(server.process.pid))}")
        return results


def measure_mixed(args: argparse.Namespace, setup: Setup) -> dict[str, dict[str, float]]:
    """The mixed-type scenarios, on a server with the model built by bench/mixed_model.py."""
    with tempfile.TemporaryDirectory() as directory:
        model = mixed_model.build(Path(directory) / "bank-mixed.onnx")
        with running(args, False, setup, model=model) as server:
            print(header(args, server, " (mixed types)").replace(Path(args.model).name, model.name))
            print(COLUMNS)
            return {s.name: measure_scenario(args, server, s, Path(directory)) for s in MIXED_SCENARIOS}


def against(args: argparse.Namespace, setup: Setup) -> None:
    """Before/after in the same run: the server from another checkout (`--against`), then this one, in
    turns for --repeat rounds, each on the same cores with the same model; medians and their ratio."""
    trees = (("before", args.against.resolve()), ("after", REPO))
    figures: dict[str, dict[str, list[float]]] = {s.name: {"before": [], "after": []} for s in SCENARIOS}
    cpu: dict[str, dict[str, list[float]]] = {s.name: {"before": [], "after": []} for s in SCENARIOS}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for round_number in range(args.repeat):
                for who, tree in trees:
                    with running(args, False, setup, tree) as server:
                        print(header(args, server, f" ({who}: {tree}, round {round_number + 1})"))
                        print(COLUMNS)
                        for scenario in SCENARIOS:
                            result = measure_scenario(args, server, scenario, Path(directory))
                            figures[scenario.name][who].append(result["rps"])
                            cpu[scenario.name][who].append(result["cpu_us"])
    finally:  # a round cut short (wrk without a latency table on a starved machine) keeps the ones before
        _against_summary(figures, cpu)


def _against_summary(figures: dict[str, dict[str, list[float]]], cpu: dict[str, dict[str, list[float]]]) -> None:
    print("\nscenario | requests/s before, after (medians) | after / before | server CPU µs per request before, after")
    for name, by in figures.items():
        if not by["before"] or not by["after"]:
            continue
        before, after = statistics.median(by["before"]), statistics.median(by["after"])
        cpu_before, cpu_after = statistics.median(cpu[name]["before"]), statistics.median(cpu[name]["after"])
        print(f"{name} | {before:,.0f}, {after:,.0f} | {after / before:.1%} | {cpu_before:.0f}, {cpu_after:.0f}")


def _processes(root: int) -> list[int]:
    """The server's process and its workers (children), from /proc."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == root:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


@dataclass(frozen=True)
class Counters:
    """What a system charges per event, and sandboxes such as gVisor charge much more for."""

    minor_faults: int = 0
    major_faults: int = 0
    voluntary_switches: int = 0
    forced_switches: int = 0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True)))

    def per(self, requests: float) -> str:
        return ", ".join(f"{value / requests:.3f} {name.replace('_', ' ')}" for name, value in self.__dict__.items())


def task_counters(pids: list[int]) -> Counters:
    """Page faults and context switches of every thread of these processes, from /proc."""
    totals = [0, 0, 0, 0]
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                status = (task / "status").read_text()
            except OSError:
                continue
            switches = dict(re.findall(r"^(\w*voluntary_ctxt_switches):\s+(\d+)", status, re.MULTILINE))
            totals[0] += int(fields[7])
            totals[1] += int(fields[9])
            totals[2] += int(switches.get("voluntary_ctxt_switches", 0))
            totals[3] += int(switches.get("nonvoluntary_ctxt_switches", 0))
    return Counters(*totals)


def one_worker(pids: list[int], parent: int) -> int:
    """A worker of a multi-worker server (each serves its share alike), or the server itself."""
    return max(p for p in pids if p != parent) if len(pids) > 1 else parent


def start_profile(
    directory: Path | None, pids: list[int], parent: int, label: str, duration: int
) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy samples one worker while wrk runs: where its time goes, beside the floor's."""
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / (re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-") + ".txt")
    command = ["py-spy", "record", "--rate", "250", "--duration", str(max(1, duration - 1)), "--format", "raw"]
    command += ["--nonblocking", "--output", str(output), "--pid", str(one_worker(pids, parent))]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), output


def finish_profile(profiler: subprocess.Popen[bytes], output: Path, top: int = 12) -> str:
    """The frames the worker was in most often (self time), from py-spy's collapsed stacks."""
    _, errors = profiler.communicate(timeout=60)
    if profiler.returncode != 0 or not output.exists():
        return f"  py-spy failed ({errors.decode(errors='replace').strip()[:200]})"
    total, own = self_time(output.read_text())
    lines = [f"  profile of one worker, {total} samples, in {output} (self time):"]
    lines += [f"    {n / total:6.1%} {frame[:110]}" for frame, n in own[:top]]
    return "\n".join(lines)


def self_time(collapsed: str) -> tuple[int, list[tuple[str, int]]]:
    """Samples in all, and per innermost frame (most first), from collapsed stacks (`a;b;c 12` a line)."""
    own: dict[str, int] = {}
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frame = stack.rsplit(";", 1)[-1] or "(native or idle)"
        own[frame] = own.get(frame, 0) + int(count)
    return sum(own.values()), sorted(own.items(), key=lambda item: -item[1])


def syscall_counts(table: str) -> dict[str, int]:
    """Calls per system call from `strace -c`'s table (its total row left out)."""
    rows = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", table, re.MULTILINE)
    return {name: int(calls) for calls, name in rows if name != "total"}


def count_syscalls(pids: list[int], parent: int, run: tuple[str, Path, int], setup: Setup) -> str:
    """strace -c on one worker (every thread) while wrk runs 3 s more: calls per request, the most frequent."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace)"
    worker = one_worker(pids, parent)
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as report:
        tracer = subprocess.Popen(
            ["strace", "-c", "-f", "-p", str(worker), "-o", report.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached
        result = run_wrk(*run, 3, setup.load_cores, setup.wrk_threads)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        table = report.read()
    calls = syscall_counts(table)
    if not calls:
        return f"strace could not attach or counted nothing ({table.strip()[:120]!r})"
    # A worker sees its share of the load: its requests are the total divided by the workers.
    requests = result["rps"] * 3 / max(1, setup.workers)
    top = sorted(calls.items(), key=lambda item: -item[1])[:5]
    return f"{sum(calls.values()) / requests:.2f} ({', '.join(f'{name} {n / requests:.2f}' for name, n in top)})"


def shares(server: dict[str, dict[str, float]], floor: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: server[name]["rps"] / floor[name]["rps"] for name in floor}


def cpu_list(text: str) -> set[int]:
    """CPU numbers from the kernel's list format ("0-3,8,10-11")."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def shared_physical_cores(server: set[int], load: set[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> list[str]:
    """Server and load CPUs that are hyperthreads of one physical core (they then share its caches
    and execution units, which slows each by how much the other uses): "0+8" per pair, from sysfs."""
    pairs = []
    for cpu in sorted(server):
        try:
            siblings = cpu_list((sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text())
        except (OSError, ValueError):
            continue
        pairs += [f"{cpu}+{other}" for other in sorted(siblings & load)]
    return pairs


def sweep_cores(cores: str | None, available: list[int], workers: int) -> tuple[list[int], list[int]]:
    """The server's and wrk's CPUs: `--cores SERVER:LOAD` (kernel list format), else the two halves."""
    if cores is None:
        half = len(available) // 2
        server, load = available[:half], available[half:]
    else:
        try:
            server_text, load_text = cores.split(":")
            server, load = sorted(cpu_list(server_text)), sorted(cpu_list(load_text))
        except ValueError:
            raise SystemExit(f"--cores {cores!r}: expected SERVER:LOAD CPU lists, e.g. 0-3:8-11") from None
        if not (set(server) | set(load)) <= set(available) or set(server) & set(load) or not load:
            raise SystemExit(f"--cores {cores!r}: two separate, non-empty sets of this machine's CPUs {available}")
    if len(server) < workers:
        raise SystemExit(f"--sweep {workers} workers needs {workers} server CPUs, got {server} (--cores SERVER:LOAD)")
    return server, load


def sweep(args: argparse.Namespace) -> None:
    """Workers 1, 2, 4, 8 on the first half of the cores (or `--cores`), wrk on the rest, 16 connections a worker.

    The server and the floor run side by side (the idle one sleeps) and take turns on each scenario,
    `--repeat` rounds, the first turn alternating: the ratio of two adjacent runs is what counts,
    since a shared machine's speed drifts by a fifth over the minutes one server's runs take.
    """
    server_cpus, load_cpus = sweep_cores(args.cores, sorted(os.sched_getaffinity(0)), max(args.sweep))
    server_cores, load_cores = ",".join(map(str, server_cpus)), ",".join(map(str, load_cpus))
    shared = shared_physical_cores(set(server_cpus), set(load_cpus))
    print(
        f"hyperthreads of one core, server and wrk: {' '.join(shared)}"
        if shared
        else "no server core shares a physical core with wrk's (or the topology is not shown)"
    )
    scenarios = SCENARIOS[:2]
    table = []
    for workers in args.sweep:
        setup = Setup(workers, server_cores, load_cores, min(workers, len(load_cpus)), args.connections * workers)
        figures: dict[str, dict[str, list[float]]] = {s.name: {"server": [], "floor": []} for s in scenarios}
        with (
            running(args, False, setup) as server,
            running(args, True, setup) as floor,
            tempfile.TemporaryDirectory() as directory,
        ):
            print(header(args, server, ", taking turns with the floor") + f", {args.repeat} rounds")
            print(COLUMNS)
            for round_ in range(args.repeat):
                turns = [("server", server), ("floor", floor)]
                for scenario in scenarios:
                    for who, target in turns if round_ % 2 == 0 else turns[::-1]:
                        name = f"{who}, {scenario.name}"
                        result = measure_scenario(args, target, scenario, Path(directory), name)
                        figures[scenario.name][who].append(result["rps"])
        table.append((workers, figures))
    print("\nworkers | scenario | server requests/s | floor requests/s | server / floor, per round | median")
    for workers, figures in table:
        for name, runs in figures.items():
            ratios = [s / f for s, f in zip(runs["server"], runs["floor"], strict=True)]
            server_rps, floor_rps = statistics.median(runs["server"]), statistics.median(runs["floor"])
            print(
                f"{workers} | {name} | {server_rps:,.0f} | {floor_rps:,.0f} | "
                f"{' '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f}"
            )


class _Discard(BaseHTTPRequestHandler):
    """A stand-in ingestion endpoint: accepts and drops what the exporter sends."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def telemetry(args: argparse.Namespace, setup: Setup) -> None:
    """Single-row /score with telemetry off, on, off, on: the cost of Application Insights."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    on = (
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{sink.server_address[1]}/",
        ),
        ("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true"),
    )
    figures: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.repeat):
        for state, extra in (("off", ()), ("on", on)):
            result = measure(
                args, False, Setup(**{**setup.__dict__, "extra_env": extra}), SCENARIOS[:1], f", telemetry {state}"
            )
            figures[state].append(result[SCENARIOS[0].name]["rps"])
    sink.shutdown()
    off, on_ = (sum(v) / len(v) for v in (figures["off"], figures["on"]))
    print(f"\nsingle-row /score: telemetry off {off:,.0f} requests/s, on {on_:,.0f}: {on_ / off:.1%} of off")


CAPTURE_STATES = (("off", 0), ("10 %", 10), ("100 %", 100))


def capture(args: argparse.Namespace, setup: Setup) -> None:
    """Single-row /score with capture off, at 10 % and at 100 %, in turns, writing to Azurite; then whether
    every record captured reached the store after the server's SIGTERM."""
    sys.path.insert(0, str(REPO))
    from azure.storage.blob import ContainerClient

    from tests.azurite import AZURITE_BLOB, running_azurite

    if not AZURITE_BLOB.exists():
        raise SystemExit("--capture needs Azurite: make .tools/azurite/.installed-stamp")
    figures: dict[str, list[float]] = {name: [] for name, _ in CAPTURE_STATES}
    losses = []
    with (
        tempfile.TemporaryDirectory() as store,
        tempfile.TemporaryDirectory() as directory,
        # With the load generator, off the server's core: the store is not what is measured.
        running_azurite(Path(store), setup.load_cores) as azurite,
    ):
        container = ContainerClient.from_connection_string(azurite.connection_string, "capture")
        container.create_container()
        for round_ in range(args.repeat):
            # Each round starts with another state, so a neighbour's load that comes and goes is spread over all.
            states = CAPTURE_STATES[round_ % 3 :] + CAPTURE_STATES[: round_ % 3]
            for name, percent in states:
                endpoint = f"bench-{round_}-{percent}"
                extra = (
                    ("SERVING_CAPTURE_PERCENT", str(percent)),
                    ("SERVING_CAPTURE_CONNECTION_STRING", azurite.connection_string),
                    ("SERVING_CAPTURE_CONTAINER", "capture"),
                    ("SERVING_CAPTURE_ENDPOINT", endpoint),
                )
                with running(args, False, Setup(**{**setup.__dict__, "extra_env": extra})) as server:
                    if round_ == 0 and percent == 0:  # the first run
                        print(header(args, server, ", capture off / 10 % / 100 % to Azurite, in turns"))
                        print(COLUMNS)
                    result = measure_scenario(args, server, SCENARIOS[0], Path(directory), f"capture {name}")
                    figures[name].append(result["rps"])
                    answered, uploaded, dropped = _capture_counts(server.url)
                if percent == 100:
                    stored = sum(
                        len(container.download_blob(blob.name).readall().splitlines())
                        for blob in container.list_blobs(name_starts_with=f"capture/{endpoint}/")
                    )
                    losses.append((answered, uploaded, dropped, stored))
    # Each round's figure against the same round's capture-off run, then the median: a neighbour's load
    # that comes and goes skews a round, not the result.
    print()
    for name, _ in CAPTURE_STATES[1:]:
        ratios = [on / off for on, off in zip(figures[name], figures["off"], strict=True)]
        print(
            f"single-row /score, capture {name}: per round {' '.join(f'{r:.1%}' for r in ratios)} of off; "
            f"median {statistics.median(ratios):.1%}"
        )
    for answered, uploaded, dropped, stored in losses:
        print(
            f"capture 100 %: {answered:,} scored; before SIGTERM {uploaded:,} uploaded, {dropped:,} dropped; "
            f"in the store after shutdown {stored:,} ({answered - dropped - stored:,} lost)"
        )


def _capture_counts(url: str) -> tuple[int, int, int]:
    """Requests scored by /score, and capture's uploaded and dropped records, from the server's metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:  # noqa: S310 (loopback)
        text = response.read().decode()

    def value(pattern: str) -> int:
        found = re.search(pattern + r" (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0

    return (
        value(r'^mlserve_requests_total\{route="/score",status="200"\}'),
        value(r'^mlserve_capture_records_total\{outcome="uploaded"\}'),
        value(r'^mlserve_capture_records_total\{outcome="dropped"\}'),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16, help="connections (per worker with --sweep)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", type=Path, default=SHARED_MODEL if SHARED_MODEL.exists() else BUNDLED_MODEL)
    parser.add_argument("--bare", action="store_true", help="measure only bench/bare_asgi.py (the floor)")
    parser.add_argument("--no-floor", action="store_true", help="measure only the server, not the floor after it")
    parser.add_argument("--sweep", type=lambda v: [int(w) for w in v.split(",")], help="worker counts, e.g. 1,2,4,8")
    parser.add_argument(
        "--cores", help="with --sweep: server and wrk CPUs, e.g. 0-3:8-11 (default: the first and second half)"
    )
    parser.add_argument("--telemetry", action="store_true", help="single-row /score with telemetry off and on")
    parser.add_argument("--capture", action="store_true", help="single-row /score with capture off, 10 %% and 100 %%")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. main's): its server and this one in turns")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed-type (text columns) scenarios")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of server/floor turns (--sweep) or off/on (--telemetry)"
    )
    parser.add_argument("--cpu-split", action="store_true", help="print each worker's CPU time per scenario")
    parser.add_argument(
        "--per-request", action="store_true", help="CPU time, page faults and context switches per request"
    )
    parser.add_argument("--syscalls", action="store_true", help="system calls per request of one worker (strace)")
    parser.add_argument("--profile", type=Path, help="py-spy profiles of one worker per scenario, into this folder")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy on PATH (it is in requirements-dev.txt)")
    if not args.model.exists():
        raise SystemExit(f"model not found: {args.model} (--model)")
    if args.sweep:
        sweep(args)
        return
    cores = sorted(os.sched_getaffinity(0))
    pinned = (str(cores[0]), str(cores[1])) if len(cores) > 1 else (None, None)
    setup = Setup(args.workers, pinned[0], pinned[1], 1, args.connections)
    if args.telemetry:
        telemetry(args, setup)
        return
    if args.capture:
        capture(args, setup)
        return
    if args.against:
        against(args, setup)
        return
    if args.bare:
        measure(args, True, setup)
        return
    server = measure(args, False, setup)
    if not args.no_mixed:
        measure_mixed(args, setup)
    if args.no_floor:
        return
    floor = measure(args, True, setup)
    # Machines (and the same VM from day to day) differ a lot; the share of the floor measured in the
    # same run is the figure that travels.
    print()
    for name, share in shares(server, floor).items():
        print(f"{name}: the server does {share:.0%} of the floor's requests/s on this machine")


if __name__ == "__main__":
    main()
