"""Footprint: memory per process and start-up time of the real server against the bare app, in one run.

    .venv/bin/python bench/footprint.py                    # 1, 2, 4 and 8 workers, 3 rounds
    .venv/bin/python bench/footprint.py --workers 1,4 --rounds 5
    .venv/bin/python bench/footprint.py --against ../main   # another checkout's server too, in turns

For each worker count, in turns (the order swapped every round, so a neighbour's load that comes and
goes is spread over both): start `python -m serving serve` (auth on, metrics and access lines on, as
bench/run.py starts it) or `bench/bare_asgi.py` under `uvicorn --workers`, both with the same model;
time from the process's start to the first `/ping` 200 and to the first scored `/score` (the bare app
answers any path by scoring, so both are its first answer); then, once every worker is up and its
memory has settled, the resident (RSS) and proportional (PSS: shared pages divided among the
processes that map them) memory of every process of the server. Prints each run, then the medians:
PSS totals are the fair comparison (spawned workers share their libraries' pages), RSS the figure a
`ps` or a container's per-process view shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import BUNDLED_MODEL, KEY, ROW, SHARED_MODEL, free_port  # noqa: E402
from bench.run import server_command as command  # noqa: E402

SCORE_BODY = json.dumps({"data": [ROW]}).encode()


@dataclass(frozen=True)
class Memory:
    """One process's memory, in bytes."""

    pid: int
    role: str  # parent, worker, single (one process that serves) or tracker (multiprocessing's helper)
    rss: int
    pss: int


def _kilobytes(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(root: int) -> list[int]:
    """Every process below `root` (children, their children), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def memory(root: int) -> list[Memory]:
    """RSS and PSS of `root` and every process below it (PSS from smaps_rollup, where the kernel has it)."""
    children = descendants(root)
    result = []
    for pid in [root, *children]:
        try:
            rss = _kilobytes(Path(f"/proc/{pid}/status").read_text(), "VmRSS")
            try:
                pss = _kilobytes(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss")
            except OSError:
                pss = rss
        except OSError:
            continue  # gone meanwhile
        role = "single" if not children else "parent" if pid == root else "worker"
        with contextlib.suppress(OSError):
            if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                role = "tracker"  # uvicorn's spawned workers start it, for the bare app as for the server
        result.append(Memory(pid, role, rss, pss))
    return result


def describe(processes: list[Memory]) -> str:
    """One line: each process's RSS (PSS) and the totals, in MB."""
    parts = [f"{p.role} {p.rss / 1e6:.0f} ({p.pss / 1e6:.0f})" for p in processes]
    total_rss, total_pss = sum(p.rss for p in processes), sum(p.pss for p in processes)
    return f"MB RSS (PSS): {', '.join(parts)}; total {total_rss / 1e6:.0f} ({total_pss / 1e6:.0f})"


def _status(url: str, body: bytes | None) -> int | None:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=body, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _until(check: str, deadline: float, url: str, body: bytes | None) -> float:
    while time.monotonic() < deadline:
        if _status(url, body) == 200:
            return time.monotonic()
        time.sleep(0.005)
    raise SystemExit(f"no 200 from {check} in time")


def _settled(root: int, workers: int, deadline: float) -> list[Memory]:
    """Memory once every worker exists and the total has stopped growing (two readings 0.5 s apart)."""
    previous = None
    while time.monotonic() < deadline:
        now = memory(root)
        serving = [p for p in now if p.role in ("worker", "single")]
        total = sum(p.rss for p in now)
        if len(serving) >= workers and previous is not None and abs(total - previous) < 0.005 * total:
            return now
        previous = total if len(serving) >= workers else None
        time.sleep(0.5)
    return memory(root)


@dataclass(frozen=True)
class Run:
    ping_s: float
    score_s: float
    processes: list[Memory]


def start_once(bare: bool, workers: int, model: Path, tree: Path = REPO) -> Run:
    port = free_port()
    env = {
        **os.environ,
        "SERVING_API_KEYS": KEY,
        "SERVING_WORKERS": str(workers),
        "SERVING_LOG_LEVEL": "warning",
        "SERVING_MODEL": str(model),
        "BENCH_MODEL": str(model),
    }
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    process = subprocess.Popen(
        command(port, bare, workers), cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = started + 120
        if bare:  # it answers every path by scoring: its first answer is both
            ping = score = _until("the bare app", deadline, url + "/score", SCORE_BODY)
        else:
            ping = _until("/ping", deadline, url + "/ping", None)
            score = _until("/score", deadline, url + "/score", SCORE_BODY)
        processes = _settled(process.pid, workers, time.monotonic() + 60)
        return Run(ping - started, score - started, processes)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(runs: dict[tuple[str, int], list[Run]], counts: list[int]) -> None:
    print("\nMedians. Memory in MB, RSS (PSS); start-up in seconds from the process's start")
    print(
        "workers | app | parent | each worker | total RSS (PSS) | server / bare, RSS (PSS) "
        "| first /ping 200 | first /score 200 | server / bare, first answer"
    )
    for workers in counts:
        figures = {}
        for who in ("bare", "before", "server"):
            done = runs.get((who, workers), [])
            if not done:
                continue
            parent = [p for r in done for p in r.processes if p.role == "parent"]
            serving = [p for r in done for p in r.processes if p.role in ("worker", "single")]
            figures[who] = {
                "parent_rss": _median([p.rss for p in parent]) if parent else 0.0,
                "parent_pss": _median([p.pss for p in parent]) if parent else 0.0,
                "worker_rss": _median([p.rss for p in serving]),
                "worker_pss": _median([p.pss for p in serving]),
                "rss": _median([sum(p.rss for p in r.processes) for r in done]),
                "pss": _median([sum(p.pss for p in r.processes) for r in done]),
                "ping": _median([r.ping_s for r in done]),
                "score": _median([r.score_s for r in done]),
            }
        for who, f in figures.items():
            ratio = ""
            if who != "bare" and "bare" in figures:
                bare = figures["bare"]
                ratio = (
                    f"{f['rss'] / bare['rss']:.2f}x ({f['pss'] / bare['pss']:.2f}x) | {f['ping']:.2f} | "
                    f"{f['score']:.2f} | {f['ping'] / bare['ping']:.2f}x"
                )
            else:
                ratio = f" | {f['ping']:.2f} | {f['score']:.2f} | "
            parent = f"{f['parent_rss'] / 1e6:.0f} ({f['parent_pss'] / 1e6:.0f})" if f["parent_rss"] else "-"
            print(
                f"{workers} | {who} | {parent} | {f['worker_rss'] / 1e6:.0f} ({f['worker_pss'] / 1e6:.0f}) | "
                f"{f['rss'] / 1e6:.0f} ({f['pss'] / 1e6:.0f}) | {ratio}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=lambda v: [int(w) for w in v.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--rounds", type=int, default=3, help="starts of each app at each worker count")
    parser.add_argument("--model", type=Path, default=SHARED_MODEL if SHARED_MODEL.exists() else BUNDLED_MODEL)
    parser.add_argument("--no-bare", action="store_true", help="only the server")
    parser.add_argument("--against", type=Path, help="another checkout (e.g. main's): its server too, in turns")
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"model not found: {args.model} (--model)")
    print(f"model {args.model.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[tuple[str, int], list[Run]] = {}
    apps = [("server", False, REPO)] + ([] if args.no_bare else [("bare", True, REPO)])
    if args.against:
        apps.append(("before", False, args.against.resolve()))
    for workers in args.workers:
        for round_ in range(args.rounds):
            for who, bare, tree in apps if round_ % 2 == 0 else apps[::-1]:
                run = start_once(bare, workers, args.model, tree)
                runs.setdefault((who, workers), []).append(run)
                print(
                    f"{workers} worker(s), {who:<6} first /ping {run.ping_s:5.2f} s, first /score "
                    f"{run.score_s:5.2f} s; {describe(run.processes)}",
                    flush=True,
                )
    summary(runs, args.workers)


if __name__ == "__main__":
    main()
