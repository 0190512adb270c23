"""Health probes while one worker parses large bodies: /ping latency, printed, never asserted.

    .venv/bin/python bench/health_under_parsing.py [--seconds 10] [--senders 40]

One worker; `--senders` curl processes each post a 6 MB body to /score again and again (a body of
`{}` objects, of empty rows, and valid rows with long numbers, in turn by scenario), while this
script asks /ping every 50 ms and prints the median, p99 and worst. Kubernetes' default probe
timeout is 1 s. Needs curl. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import KEY, free_port, wait_ready  # noqa: E402

LIMIT = 6 * 1024 * 1024


def bodies() -> dict[str, bytes]:
    count = (LIMIT - 20) // 3
    digits = "5." + "0" * ((LIMIT - 40) // (10_000 * 7) - 4)
    rows = ",".join(["[" + ",".join([digits] * 7) + "]"] * 10_000)
    return {
        "6 MB of {} (refused)": b'{"data":[' + b",".join([b"{}"] * count) + b"]}",
        "6 MB of [] (refused)": b'{"data":[' + b",".join([b"[]"] * count) + b"]}",
        "6 MB of valid rows": ('{"data":[' + rows + "]}").encode(),
    }


def ping_latencies(url: str, seconds: float) -> list[float]:
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        with urllib.request.urlopen(url + "/ping", timeout=30) as response:  # noqa: S310 (loopback)
            response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument("--server-cpus", help="taskset CPU list for the server, e.g. 0 (senders: --sender-cpus)")
    parser.add_argument("--sender-cpus", help="taskset CPU list for the curl senders and the probe, e.g. 1")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SERVING_WORKERS": "1",
        "SERVING_API_KEYS": KEY,
        "SERVING_ACCESS_LOG": "false",
        "SERVING_SCORING_TIMEOUT_MS": "60000",
        "SERVING_MAX_QUEUE_WAIT_MS": "60000",
    }
    pin = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
    server = subprocess.Popen(
        [*pin, sys.executable, "-m", "serving", "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env
    )
    if args.sender_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.sender_cpus.split(",")})
    try:
        wait_ready(url)
        with tempfile.TemporaryDirectory() as scratch:
            for name, body in bodies().items():
                path = Path(scratch) / "body.json"
                path.write_bytes(body)
                loop = (
                    f"while :; do curl -s -o /dev/null -H 'Authorization: Bearer {KEY}' "
                    f"-H 'Content-Type: application/json' -H 'Expect:' --data-binary @{path} {url}/score; done"
                )
                senders = [subprocess.Popen(["sh", "-c", loop]) for _ in range(args.senders)]
                try:
                    time.sleep(1)
                    latencies = ping_latencies(url, args.seconds)
                finally:
                    for sender in senders:
                        sender.kill()
                    for sender in senders:
                        sender.wait()
                p99 = latencies[math.ceil(len(latencies) * 0.99) - 1]  # nearest rank
                print(
                    f"{name:24} /ping median {statistics.median(latencies):6.0f} ms  p99 {p99:6.0f} ms  "
                    f"worst {latencies[-1]:6.0f} ms  ({len(latencies)} probes)"
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
