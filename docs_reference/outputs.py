"""The stack outputs, from the committed offline plans (`plans/<stack>.txt`, which `make plans` writes from the
program and a test keeps current): each output's value in each shipped stack, secrets masked."""

from __future__ import annotations

import re
from pathlib import Path

from docs_reference.tables import table

PLANS = Path(__file__).resolve().parents[1] / "plans"
OUTPUT = re.compile(r"^([a-z0-9_]+): (.*)$")


def outputs(plan: Path) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in plan.read_text().splitlines() if (m := OUTPUT.match(line))}


def reference() -> str:
    stacks = {plan.stem: outputs(plan) for plan in sorted(PLANS.glob("*.txt"))}
    names = sorted({name for found in stacks.values() for name in found})
    rows = [
        (f"`{name}`", *(f"`{found[name]}`" if name in found else "—" for found in stacks.values())) for name in names
    ]
    return table(("Output", *(f"`{stack}` (offline plan)" for stack in stacks)), rows)
