"""The inference handlers' own time, in process: parse, predict and encode, without HTTP.

    .venv/bin/python bench/handler_path.py [--against ../main] [--rounds 5]

Each scenario's best time over many calls (the model's and the code's speed, not the machine's noise,
which only ever adds time), for this checkout and, with --against, another one in turns; each
checkout runs in its own process, its own `serving` package imported from its directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.run import BUNDLED_MODEL, ROW, SCENARIOS, SHARED_MODEL  # noqa: E402

CALLS = 2000


def measure(model: Path, calls: int) -> dict[str, float]:
    """Best µs per call of each scenario's handler, in this process's `serving`."""
    from serving import handlers
    from serving.routes import TABLE
    from serving.runtime import ModelRuntime

    runtime = ModelRuntime(model, name="weather-rain")
    runtime.warm_up()
    if len(ROW) != runtime.n_features:
        raise SystemExit(f"the scenarios' rows have {len(ROW)} values; {model.name} takes {runtime.n_features}")
    best = {}
    for scenario in SCENARIOS:
        body = scenario.body.encode() if isinstance(scenario.body, str) else scenario.body
        headers = {b"content-type": scenario.content_type.encode()}
        headers.update({k.lower().encode(): v.encode() for k, v in scenario.headers})
        route, params = TABLE.match(scenario.path) or (None, {})
        if route is None or route.infer is None:
            raise SystemExit(f"{scenario.path} is not an inference route")
        handler = route.infer(params)
        call = handlers.Call(body, headers, runtime, 1000)
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            handler(call).finish(None)
            timings.append(time.perf_counter() - started)
        best[scenario.name] = min(timings) * 1e6
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout (e.g. main's), measured in turns")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--model", type=Path, default=SHARED_MODEL if SHARED_MODEL.exists() else BUNDLED_MODEL)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.calls)))
        return
    trees = [("before", args.against.resolve())] if args.against else []
    trees.append(("after" if args.against else "this", REPO))
    figures: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for who, tree in trees:
            # `serving` imported from the checkout first: later path changes cannot swap it.
            code = (
                f"import sys; sys.argv = ['x', '--child', '--model', {str(args.model)!r}, '--calls', '{args.calls}']; "
                f"sys.path.insert(0, {str(tree)!r}); import serving; "
                f"assert serving.__file__.startswith({str(tree)!r}), serving.__file__; "
                f"import runpy; runpy.run_path({str(REPO / 'bench' / 'handler_path.py')!r}, run_name='__main__')"
            )
            out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True)
            for name, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
                figures.setdefault(name, {}).setdefault(who, []).append(value)
    print("scenario | " + " | ".join(f"{who} µs (median of {args.rounds} bests)" for who, _ in trees) + " | ratio")
    for name, by in figures.items():
        medians = [statistics.median(by[who]) for who, _ in trees]
        ratio = f"{medians[-1] / medians[0]:.1%}" if len(medians) == 2 else "-"
        print(f"{name} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {ratio}")


if __name__ == "__main__":
    main()
