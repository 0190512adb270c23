"""Start-up of the image: from `podman run` to the first `/ping` 200 and the first scored `/score`.

    .venv/bin/python bench/image_start.py [--workers 1,2,4] [--rounds 3] [--against ../main]

Builds serving/ with podman as the container tests do (tests/container/podman.py: the real
Dockerfile, on a stand-in base where no registry is reachable; rebuilt only when serving/ changes),
then runs it with the shared benchmark model mounted read-only, a key set and the given worker
count, and times each start from the `podman run` call. With --against, another checkout's image
too, in turns. Needs podman and runc, and root (see ../shared/CONTAINERS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.footprint import KEY, SCORE_BODY, SHARED_MODEL, _status, free_port  # noqa: E402


def build(tree: Path) -> str:
    """The serving image of `tree`'s serving/ (its tag from its sources), built unless it exists."""
    import hashlib

    from stacks.image import source_fingerprint
    from tests.container.podman import _build, base_image, stand_in_for

    base = base_image()
    tag = hashlib.sha256((base + source_fingerprint(str(tree / "serving"))).encode()).hexdigest()[:16]
    return _build(f"localhost/mlserve-bench:{tag}", tree / "serving", *stand_in_for("serving", base))


def start_once(image: str, workers: int, model: Path) -> tuple[float, float]:
    from tests.container.podman import ULIMITS, podman

    port = free_port()
    name = f"mlserve-bench-{os.getpid()}-{port}"
    url = f"http://127.0.0.1:{port}"
    options = [
        *ULIMITS,
        "-p",
        f"127.0.0.1:{port}:8080",
        "-v",
        f"{model.parent}:/bench:ro",
        "-e",
        f"SERVING_MODEL=/bench/{model.name}",
        "-e",
        f"SERVING_API_KEYS={KEY}",
        "-e",
        f"SERVING_WORKERS={workers}",
    ]
    started = time.monotonic()
    try:
        podman("run", "-d", "--name", name, *options, image, "serve")
        deadline = started + 120
        ping = score = None
        while time.monotonic() < deadline and score is None:
            if ping is None and _status(url + "/ping", None) == 200:
                ping = time.monotonic()
            if ping is not None and _status(url + "/score", SCORE_BODY) == 200:
                score = time.monotonic()
            time.sleep(0.005)
        if ping is None or score is None:
            raise SystemExit(f"{image} did not answer in time")
        return ping - started, score - started
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=lambda v: [int(w) for w in v.split(",")], default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=SHARED_MODEL)
    parser.add_argument("--against", type=Path, help="another checkout: its image too, in turns")
    args = parser.parse_args()
    from tests.container.podman import missing

    if reason := missing():
        raise SystemExit(f"cannot run the image here: {reason}")
    images = [("this", build(REPO))] + ([("before", build(args.against.resolve()))] if args.against else [])
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for workers in args.workers:
        for round_ in range(args.rounds):
            for who, image in images if round_ % 2 == 0 else images[::-1]:
                ping, score = start_once(image, workers, args.model.resolve())
                times.setdefault((who, workers), []).append((ping, score))
                print(f"{workers} worker(s), {who}: first /ping {ping:.2f} s, first /score {score:.2f} s", flush=True)
    print("\nworkers | image | first /ping 200, median s | first /score 200, median s")
    for (who, workers), runs in times.items():
        ping = statistics.median(r[0] for r in runs)
        score = statistics.median(r[1] for r in runs)
        print(f"{workers} | {who} | {ping:.2f} | {score:.2f}")


if __name__ == "__main__":
    main()
